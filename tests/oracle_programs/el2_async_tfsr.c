/* EL2 boot, asynchronous tag checking at EL1 after the drop: a mismatching access sets
 * TFSR_EL1.TF0 (address bit 55 = 0, TTBR0) or TF1 (bit 55 = 1, TTBR1) and raises nothing
 * (AArch64.TagCheckFault with TCF = 2 -> AArch64.ReportTagCheckFault(EL1, bit 55)). The fault
 * belongs to the EL1&0 regime: TFSR_EL2 is untouched (it is EL2's own, not readable here).
 * Asymmetric mode: reads synchronous, writes asynchronous. Exit status = failed checks. */
#include "mte_env.h"

extern u64 boot_el;
static u64 buf[8] __attribute__((aligned(16)));

#define TTBR1_BASE 0xffffff8000000000UL              /* T1SZ = 25: the top 512 GiB */

int main(void) {
    check("entered at EL2", boot_el == 2);
    mte_setup(2);                                    /* TCF = async */
    /* TTBR1 shares the L1 table: VA TTBR1_BASE + 1 GiB maps PA 0x40000000 (RAM, Tagged). */
    SYSREG_W(TTBR1_EL1, (u64)l1);
    u64 tcr = SYSREG_R(TCR_EL1);
    tcr &= ~(1UL << 23);                             /* EPD1 = 0: walk TTBR1 */
    tcr |= (25UL << 16) | (1UL << 24) | (1UL << 26) | (3UL << 28) | (2UL << 30) | (1UL << 38);
    SYSREG_W(TCR_EL1, tcr);                          /* T1SZ 25, WB WA, inner, TG1 4K, TBI1 */
    asm volatile("tlbi vmalle1\n dsb sy\n isb" ::: "memory");
    SYSREG_W(TFSR_EL1, 0);

    u64 good = with_tag(buf, 7);
    stg(good);
    *(volatile u64 *)with_tag(buf, 3) = 1;           /* TTBR0 address, wrong tag */
    asm volatile("dsb sy\n isb" ::: "memory");
    u64 t = SYSREG_R(TFSR_EL1);
    show("TFSR_EL1 after a TTBR0 mismatch", t);
    check("TTBR0 mismatch sets TF0 only", t == 1);
    check("no exception", nexc == 0);
    check("the store landed", *(volatile u64 *)good == 1);

    SYSREG_W(TFSR_EL1, 0);
    u64 hi = (TTBR1_BASE + (u64)buf) | (0xfUL << 60);      /* bits 63:60 all ones */
    u64 hi_bad = (hi & ~(0xfUL << 56)) | (5UL << 56);
    u64 hi_good = (hi & ~(0xfUL << 56)) | (7UL << 56);
    check("the TTBR1 alias reads the same data", *(volatile u64 *)hi_good == 1);
    check("... with no fault through the right tag", SYSREG_R(TFSR_EL1) == 0 && nexc == 0);
    *(volatile u64 *)hi_bad = 2;                     /* TTBR1 address, wrong tag */
    asm volatile("dsb sy\n isb" ::: "memory");
    t = SYSREG_R(TFSR_EL1);
    show("TFSR_EL1 after a TTBR1 mismatch", t);
    check("TTBR1 mismatch sets TF1 only", t == 2);
    check("no exception", nexc == 0);

    SYSREG_W(TFSR_EL1, 0);
    SYSREG_W(SCTLR_EL1, SYSREG_R(SCTLR_EL1) | (3UL << 40));   /* TCF = asymmetric */
    (void)*(volatile u64 *)with_tag(buf, 3);
    check("asymm: a read faults synchronously at EL1", nexc == 1 && last_esr == 0x96000011);
    *(volatile u64 *)with_tag(buf, 3) = 3;
    asm volatile("dsb sy\n isb" ::: "memory");
    check("asymm: a write sets TF0", SYSREG_R(TFSR_EL1) == 1 && nexc == 1);
    return fails;
}
