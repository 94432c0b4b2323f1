/* Counts executed instructions from UC_HOOK_BLOCK without entering Python.
 * One A64 instruction is 4 bytes, so a block of `size` bytes is size / 4 instructions.
 * When the next block would pass `limit`, the run is stopped before that block executes
 * (hit_limit = 1); a block at a misaligned PC is stopped too (hit_limit = 2): the engine would
 * run the bytes there, where the architecture takes a PC alignment fault. */
#include "core.h"

void mte_block_count(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
    core_t *c = (core_t *)user;
    uint64_t n = size >> 2;
    if (addr & 3) {                     /* a misaligned PC: the run loop takes the fault */
        c->hit_limit = 2;
        c->last_addr = addr;
        c->last_size = 0;
        c->api.emu_stop(uc);
        return;
    }
    if (c->insns + n > c->limit) {
        c->hit_limit = 1;
        c->last_addr = addr;
        c->last_size = 0;
        c->api.emu_stop(uc);
        return;
    }
    c->insns += n;
    c->last_addr = addr;
    c->last_size = size;
}
