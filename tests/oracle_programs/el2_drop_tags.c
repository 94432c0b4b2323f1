/* EL2 boot: start.S finds itself at EL2, sets HCR_EL2 = RW | ATA and drops to EL1. The EL1
 * program must then tag and check exactly as when booted at EL1: HCR_EL2.ATA = 1 leaves
 * allocation-tag access to SCTLR_EL1.ATA (AllocationTagAccessIsEnabled), so GCR_EL1/RGSR_EL1
 * do not trap, IRG follows the seeded LFSR, and a wrong tag takes a synchronous Tag Check Fault
 * to EL1 (not to EL2: HCR_EL2.TGE = 0). Run with virtualization=on. Exit status = failed checks. */
#include "mte_env.h"

extern u64 boot_el;                                  /* start.S: the EL it was entered at */
static u64 buf[8] __attribute__((aligned(16)));

int main(void) {
    u64 cur = (SYSREG_R(CurrentEL) >> 2) & 3;
    check("entered at EL2", boot_el == 2);
    check("running at EL1 after the drop", cur == 1);
    u64 pfr0 = SYSREG_R(ID_AA64PFR0_EL1);
    check("ID_AA64PFR0_EL1.EL2 says EL2 is implemented", ((pfr0 >> 8) & 15) != 0);

    mte_setup(1);                                    /* TCF = sync */
    SYSREG_W(GCR_EL1, 0x0001);                       /* exclude tag 0, RRND = 0: no trap */
    SYSREG_W(RGSR_EL1, 0x1234UL << 8);
    check("GCR_EL1 reads back", SYSREG_R(GCR_EL1) == 0x0001);
    u64 p;
    asm volatile("irg %0, %1" : "=r"(p) : "r"((u64)buf));
    check("IRG: first seeded tag is 0xe", (p >> 56) == 0xe);
    stg(p);
    check("LDG reads the tag STG stored", ldg_tag(buf) == 0xe);
    *(volatile u64 *)p = 42;
    check("matching store: no fault", nexc == 0);
    u64 bad = with_tag(buf, 3);
    (void)*(volatile u64 *)bad;
    check("wrong tag: one fault taken at EL1", nexc == 1);
    check("ESR_EL1 = 0x96000011 (EC 0x25, DFSC tag check)", last_esr == 0x96000011);
    check("FAR_EL1[59:0] is the tagged address", (last_far & 0x0fffffffffffffffUL) == bad);
    asm volatile("msr tco, #1" ::: "memory");
    (void)*(volatile u64 *)bad;
    asm volatile("msr tco, #0" ::: "memory");
    check("TCO = 1: unchecked", nexc == 1);
    return fails;
}
