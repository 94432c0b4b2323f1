/* Counts executed instructions from Unicorn's UC_HOOK_BLOCK without entering Python.
 * One A64 instruction is 4 bytes, so a block of `size` bytes is size / 4 instructions.
 * When the next block would pass `limit`, the run is stopped before that block executes. */
#include <stdint.h>

typedef int (*stop_fn_t)(void *uc);

typedef struct {
    uint64_t insns;       /* instructions counted so far (whole blocks) */
    uint64_t last_addr;   /* start of the most recent block */
    uint64_t last_size;   /* its size in bytes */
    uint64_t limit;       /* stop before a block that would make insns exceed this */
    uint64_t hit_limit;   /* set when the limit stopped the run */
    stop_fn_t stop;       /* uc_emu_stop */
} block_counter_t;

void block_count(void *uc, uint64_t addr, uint32_t size, void *user)
{
    block_counter_t *c = (block_counter_t *)user;
    uint64_t n = size >> 2;
    if (c->insns + n > c->limit) {
        c->hit_limit = 1;
        c->last_addr = addr;
        c->last_size = 0;
        c->stop(uc);
        return;
    }
    c->insns += n;
    c->last_addr = addr;
    c->last_size = size;
}
