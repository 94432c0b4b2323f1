/* Tag provenance: every allocation-tag write the native MTE trap makes is recorded where
 * aarch64mte/machine/provenance.py reads it (and records the Python paths' writes too).
 *
 * Per granule, two words: the writer's PC and `meta`; in a ring of prov_mask + 1 entries, four
 * words per write: its number (seq, from 1), the granule's PA, PC and meta. Write `seq` lives
 * in entry seq & prov_mask and is still there while that entry's first word equals seq.
 *
 * meta: bits 3:0 the tag before the write, 7:4 the tag written, 9:8 the EL, 15:10 the kind
 * (0 none; the instruction's isa op + 1; host writes above that), 63:16 the instruction count
 * with the writing instruction counted.
 */
#ifndef AARCH64MTE_PROVENANCE_H
#define AARCH64MTE_PROVENANCE_H

#include "core.h"

#define PROV_EL_SHIFT 8
#define PROV_KIND_SHIFT 10
#define PROV_INSNS_SHIFT 16

/* The trap is about to run the instruction `op` (isa op number) at `pc`, at EL `el`. */
static inline void prov_begin(core_t *c, uint64_t pc, unsigned op, unsigned el)
{
    c->prov_pc = pc;
    c->prov_meta = ((uint64_t)(op + 1) << PROV_KIND_SHIFT) | ((uint64_t)el << PROV_EL_SHIFT);
}

/* Record the write of `tag` into `slot` (region r's tag byte), before the slot changes. */
static inline void prov_record(core_t *c, region_t *r, const uint8_t *slot, unsigned tag)
{
    uint64_t *last = c->prov_last[r - c->regions];
    if (!last)
        return;
    uint64_t g = (uint64_t)(slot - r->tags);
    uint64_t meta = (c->insns << PROV_INSNS_SHIFT) | c->prov_meta | ((uint64_t)tag << 4) | *slot;
    last[2 * g] = c->prov_pc;
    last[2 * g + 1] = meta;
    uint64_t seq = ++c->prov_seq;
    uint64_t *e = c->prov_ring + 4 * (seq & c->prov_mask);
    e[0] = seq;
    e[1] = r->base + 16 * g;
    e[2] = c->prov_pc;
    e[3] = meta;
}

#endif
