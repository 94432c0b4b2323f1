/* A buffer overflow: a 40-byte name buffer (48 bytes, three granules, once rounded) is
 * filled with one byte too many; the 49th byte lands in the next block, whose granules carry
 * that block's tag. */
#include "alloc.h"

static void fill(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i % 26];
}

int main(void)
{
    char *name = mte_malloc(40);                /* rounded up to 48 bytes */
    u64 *counts = mte_malloc(64);               /* the block right after it */
    counts[0] = 7;
    fill(name, "abcdefghijklmnopqrstuvwxyz", 48);
    print("name filled\n");
    fill(name, "abcdefghijklmnopqrstuvwxyz", 49);   /* one byte past the block: fault */
    print("never printed\n");
    return (int)counts[0];
}
