/* Bulk tag access: GMID_EL1 block size, LDGM/STGM, DC GVA/GZVA with DCZID_EL0's block.
 * Run under QEMU's max CPU (GMID_EL1.BS = 6) and under aarch64mte with --gmid-bs 6.
 * Exit status = failed checks. */
#include "mte_env.h"

static unsigned char src[512] __attribute__((aligned(256)));
static unsigned char dst[512] __attribute__((aligned(256)));
static unsigned char blk[256] __attribute__((aligned(256)));

int main(void) {
    int i;
    mte_setup(1);
    u64 gmid = SYSREG_R(GMID_EL1), dczid = SYSREG_R(DCZID_EL0);
    show("GMID_EL1", gmid);
    show("DCZID_EL0", dczid);
    u64 bs = 4UL << (gmid & 15), zs = 4UL << (dczid & 15);

    for (i = 0; i < 32; i++) stg(with_tag(src + 16 * i, (5 * i + 1) & 15));
    u64 v;
    asm volatile("ldgm %0, [%1]" : "=r"(v) : "r"(src + 0x40) : "memory");
    show("LDGM at src+0x40", v);
    asm volatile("ldgm %0, [%1]" : "=r"(v) : "r"(src + 0x100) : "memory");
    show("LDGM at src+0x100", v);

    for (u64 off = 0; off < sizeof src; off += bs) {
        asm volatile("ldgm %0, [%1]" : "=r"(v) : "r"(src + off) : "memory");
        asm volatile("stgm %0, [%1]" :: "r"(v), "r"(dst + off) : "memory");
    }
    put("dst tags:");
    for (i = 0; i < 32; i++) { put(" "); putnib(ldg_tag(dst + 16 * i)); }
    put("\n");
    int same = 1;
    for (i = 0; i < 32; i++) same &= ldg_tag(dst + 16 * i) == ldg_tag(src + 16 * i);
    check("STGM copied every tag", same);

    for (i = 0; i < 256; i++) blk[i] = 0xee;
    asm volatile("dc gva, %0" :: "r"(with_tag(blk, 6)) : "memory");
    asm volatile("dc gzva, %0" :: "r"(with_tag(blk + 128 + 8, 9)) : "memory");
    put("blk tags after DC GVA (tag 6) at 0 and DC GZVA (tag 9) at 136:");
    for (i = 0; i < 16; i++) { put(" "); putnib(ldg_tag(blk + 16 * i)); }
    put("\n");
    u64 zeros = 0, gva_kept = 1;
    volatile unsigned char *b = blk;
    asm volatile("msr tco, #1" ::: "memory");         /* read the bytes whatever their tags */
    for (i = 0; i < 256; i++) {
        if (i >= 128 && i < 128 + (int)zs) zeros += b[i] == 0;
        if (i < (int)zs) gva_kept &= b[i] == 0xee;
    }
    asm volatile("msr tco, #0" ::: "memory");
    check("no tag-check faults", nexc == 0);
    check("DC GZVA zeroed its block", zeros == zs);
    check("DC GVA left data alone", gva_kept);
    return fails;
}
