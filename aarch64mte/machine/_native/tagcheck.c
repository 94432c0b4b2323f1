/* The tag check of ordinary loads and stores, on the engine's tag-alias windows.
 *
 * The TLB fill gives a page the plain RAM mapping when no access through that pointer tag can
 * fail; every other page is reached through the alias window of the pointer's logical tag, so
 * this hook sees each access there with that tag in PA bits 43:40. An instruction is checked
 * once, at its first access here (AArch64.CheckTag over its whole footprint, before any part of
 * it has effect); the instruction is the one at the engine's PC, which Unicorn keeps exact in
 * memory hooks as long as nothing writes PC unbatched during the run.
 *
 * Handled here: every granule of the footprint lies in the page of this access and holds the
 * pointer's tag, or the instruction is not tag-checked at all. Everything else (a mismatch,
 * a footprint reaching into another page, an encoding not seen before) goes to Python, which
 * decides the outcome: no fault, an asynchronous fault in TFSR, or a synchronous fault with no
 * effect.
 */
#include <string.h>
#include "core.h"

static winfo_t *word_info(core_t *c, uint64_t pc)
{
    uint32_t w;
    const ctlb_t *ct = &c->ctlb[(pc >> 12) & (CTLB_N - 1)];
    if (ct->key == ((pc & ~0xfffULL) | 1)) {
        memcpy(&w, ct->host + (pc & 0xfff), 4);
    } else {
        int64_t fetched = c->py_fetch ? c->py_fetch(pc) : -1;
        if (fetched < 0)
            return NULL;
        w = (uint32_t)fetched;
    }
    winfo_t *e = &c->winfo[(uint32_t)(w * 2654435761u) >> 22];
    if (!e->filled || e->word != w) {
        winfo_t fresh;
        fresh.word = w;
        fresh.filled = 0;
        fresh.flags = 0;
        if (!c->py_winfo || !c->py_winfo(w, &fresh))
            return NULL;
        fresh.word = w;
        fresh.filled = 1;
        *e = fresh;
    }
    return e;
}

/* The address of the instruction's first access, from the registers as they are before it. */
static uint64_t effective_address(core_t *c, uc_engine *uc, const winfo_t *wi)
{
    uint64_t va = read_x_or_sp(c, uc, wi->base);
    if (!(wi->flags & WI_POST))
        va += (uint64_t)wi->disp;
    if (wi->flags & WI_HAS_INDEX) {
        uint64_t x = read_x(c, uc, wi->index);
        if (wi->flags & WI_INDEX_W) {
            x &= 0xffffffffULL;
            if ((wi->flags & WI_INDEX_SIGNED) && (x >> 31))
                x |= 0xffffffff00000000ULL;
        }
        va += x << wi->shift;
    }
    return va;
}

void mte_check_access(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value,
                      void *user)
{
    core_t *c = (core_t *)user;
    uint64_t pc = 0;
    (void)value;
    if (c->in_fault)
        return;
    c->api.reg_read(uc, UC_ARM64_REG_PC, &pc);
    if (pc == c->inst_pc && c->insns == c->inst_insns && c->last_addr == c->inst_blk)
        return;                                 /* a later access of an instruction checked */
    c->inst_pc = pc;
    c->inst_insns = c->insns;
    c->inst_blk = c->last_addr;

    uint64_t pa = addr & PA_MASK;
    unsigned ltag = (unsigned)(addr >> ALIAS_SHIFT) & 0xf;
    uint64_t n = size > 0 ? (uint64_t)size : 1;
    region_t *r = core_region(c, pa, n);
    if (!r || (pa & 0xfff) + n > 0x1000)
        goto slow;
    winfo_t *wi = word_info(c, pc);
    if (!wi || !(wi->flags & WI_VALID))
        goto slow;
    if (!(wi->flags & WI_CHECKED))
        return;

    uint64_t first, last;                        /* granules (PA) of the footprint */
    if (wi->fp > n) {
        uint64_t va = effective_address(c, uc, wi);
        uint64_t acc = (va & ~0xfffULL) | (pa & 0xfff);
        if (acc < va)
            acc += 0x1000;
        if (acc - va >= wi->fp || ((va ^ acc) >> 12) || (((va + wi->fp - 1) ^ acc) >> 12))
            goto slow;                           /* not in this page alone: Python */
        first = (pa & ~0xfffULL) | (va & 0xff0);
        last = (pa & ~0xfffULL) | ((va + wi->fp - 1) & 0xff0);
        if (first < r->base || last + 16 > r->base + r->size)
            goto slow;
    } else {
        first = pa & ~0xfULL;
        last = (pa + n - 1) & ~0xfULL;
    }
    for (uint64_t g = first; g <= last; g += 16)
        if (r->tags[(g - r->base) >> 4] != ltag)
            goto slow;
    c->tag_checks++;
    c->native_checks++;
    if (type == UC_MEM_WRITE && !(wi->flags & WI_RMW))
        c->checked_granules_written += ((last - first) >> 4) + 1;
    else
        c->checked_granules_read += ((last - first) >> 4) + 1;
    return;
slow:
    c->py_check(uc, (int)type, addr, size);
}
