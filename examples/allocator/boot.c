/* What the allocator examples need from the machine: Tagged memory, tag checks, output.
 *
 * mte_setup: one level-1 table of 1 GiB blocks, identity mapped: 0-1 GiB Device-nGnRnE (the
 * UART), 1-2 GiB (RAM) Normal with MAIR attribute 0xF0 (Tagged, Inner/Outer Write-Back);
 * TCR_EL1 with a 39-bit VA, 4 KiB granule, TBI0; SCTLR_EL1 with the MMU and caches on,
 * ATA = 1 (tag access at EL1) and TCF = 01 (synchronous tag-check faults at EL1);
 * GCR_EL1.Exclude = tag 0 so that IRG never hands out the untagged tag; RGSR_EL1 seeded. */
#include "boot.h"

static u64 level1[512] __attribute__((aligned(4096)));

#define SYSREG_W(reg, v) asm volatile("msr " reg ", %0\n isb" :: "r"((u64)(v)) : "memory")

void mte_setup(void)
{
    level1[0] = 0x00000000UL | (1UL << 10) | (1UL << 2) | 1;            /* AF, attr 1, block */
    level1[1] = 0x40000000UL | (1UL << 10) | (3UL << 8) | (0UL << 2) | 1; /* AF, ISH, attr 0 */
    asm volatile("dsb sy" ::: "memory");
    SYSREG_W("mair_el1", 0xF0UL | (0x00UL << 8));    /* attr 0 Tagged Normal, attr 1 Device */
    SYSREG_W("tcr_el1", 25UL | (1UL << 8) | (1UL << 10) | (3UL << 12) | (1UL << 23)
                        | (2UL << 32) | (1UL << 37));
    SYSREG_W("ttbr0_el1", (u64)level1);
    asm volatile("tlbi vmalle1\n dsb sy\n isb" ::: "memory");
    SYSREG_W("s3_0_c1_c0_6", 1);                     /* GCR_EL1: exclude tag 0 */
    SYSREG_W("s3_0_c1_c0_5", 0x1234UL << 8);         /* RGSR_EL1.SEED */
    SYSREG_W("sctlr_el1", 0x30d00800UL | 1 | (1UL << 2) | (1UL << 12) | (1UL << 43)
                          | (1UL << 40));
}

static long semihost(long op, const void *arg)
{
    register long x0 asm("x0") = op;
    register const void *x1 asm("x1") = arg;
    asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
    return x0;
}

void print(const char *s) { semihost(0x04, s); }                  /* SYS_WRITE0 */

void print_hex(u64 v)
{
    char buf[19] = "0x";
    for (int i = 0; i < 16; i++)
        buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
    buf[18] = 0;
    print(buf);
}

void exit_program(int code)
{
    u64 block[2] = { 0x20026, (u64)code };          /* ADP_Stopped_ApplicationExit */
    semihost(0x18, block);                            /* SYS_EXIT */
}
