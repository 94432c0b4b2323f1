/* A small allocator that uses MTE the way real ones do (Scudo, glibc's with MTE): each block
 * gets a random tag when it is handed out (IRG, then STG over its granules) and a different
 * random tag when it is freed, so a pointer kept past free, or one that runs past its block
 * into the next, carries a tag the memory does not have.
 *
 * Blocks are multiples of 16 bytes, laid end to end in a 64 KiB heap; their sizes and which
 * are free are kept beside the heap (so neighbouring blocks really touch), and mte_malloc
 * reuses a freed block first fit. */
#include <arm_acle.h>
#include "alloc.h"

#define GRANULE 16
#define HEAP_SIZE 65536
#define MAX_BLOCKS 256

struct block {
    size_t offset, size;
    int free;
};

static unsigned char heap[HEAP_SIZE] __attribute__((aligned(GRANULE)));
static size_t heap_used;
static struct block blocks[MAX_BLOCKS];
static int nblocks;

/* Give the granules of [p, p + size) the tag of p. */
static void set_tags(unsigned char *p, size_t size)
{
    for (size_t off = 0; off < size; off += GRANULE)
        __arm_mte_set_tag(p + off);
}

void *mte_malloc(size_t size)
{
    size = (size + GRANULE - 1) & ~(size_t)(GRANULE - 1);
    struct block *b = 0;
    for (int i = 0; i < nblocks && !b; i++)
        if (blocks[i].free && blocks[i].size >= size)
            b = &blocks[i];
    if (!b) {
        if (nblocks == MAX_BLOCKS || heap_used + size > HEAP_SIZE)
            return 0;
        b = &blocks[nblocks++];
        b->offset = heap_used;
        b->size = size;
        heap_used += size;
    }
    b->free = 0;
    unsigned char *p = __arm_mte_create_random_tag(&heap[b->offset], 0);
    set_tags(p, b->size);
    return p;
}

void mte_free(void *p)
{
    size_t offset = (unsigned char *)((u64)p & ~(0xFUL << 56)) - heap;
    for (int i = 0; i < nblocks; i++) {
        if (blocks[i].offset == offset && !blocks[i].free) {
            /* a new tag, never the one the block had: the old pointer no longer matches */
            u64 exclude = __arm_mte_exclude_tag(p, 0);
            set_tags(__arm_mte_create_random_tag(p, exclude), blocks[i].size);
            blocks[i].free = 1;
            return;
        }
    }
}
