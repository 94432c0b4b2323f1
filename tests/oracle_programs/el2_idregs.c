/* EL2 boot: identification registers read at EL1 after the drop (start.S leaves HCR_EL2.TID3
 * and TID5 clear, so nothing traps), and the bulk tag instructions sized by them:
 * ID_AA64PFR0_EL1.EL2 != 0, ID_AA64PFR1_EL1.MTE >= 2, GMID_EL1.BS in 2..6 with LDGM moving
 * exactly 4 << BS bytes of tags, DCZID_EL0 sizing DC GZVA. Prints the values so a run can be
 * compared with the oracle. Exit status = failed checks. */
#include "mte_env.h"

extern u64 boot_el;
static unsigned char blk[1024] __attribute__((aligned(1024)));

int main(void) {
    check("entered at EL2", boot_el == 2);
    mte_setup(1);
    u64 pfr0 = SYSREG_R(ID_AA64PFR0_EL1), pfr1 = SYSREG_R(ID_AA64PFR1_EL1);
    u64 gmid = SYSREG_R(GMID_EL1), dczid = SYSREG_R(DCZID_EL0);
    show("ID_AA64PFR0_EL1.EL2", (pfr0 >> 8) & 15);
    show("ID_AA64PFR1_EL1.MTE", (pfr1 >> 8) & 15);
    show("GMID_EL1", gmid);
    show("DCZID_EL0", dczid);
    check("EL2 implemented (AArch64)", ((pfr0 >> 8) & 15) == 1 || ((pfr0 >> 8) & 15) == 2);
    check("MTE2 or later", ((pfr1 >> 8) & 15) >= 2);
    u64 bs = gmid & 15;
    check("GMID_EL1.BS in 2..6", bs >= 2 && bs <= 6);
    check("DCZID_EL0.DZP = 0", (dczid & 16) == 0);

    /* Tag all 64 granules 1..15,1..; LDGM at the block start must report exactly the
     * 4 << BS bytes' granules (tag of granule i in bits 4i+3:4i), zero above them. */
    int i;
    for (i = 0; i < 64; i++) stg(with_tag(blk + 16 * i, (i % 15) + 1));
    u64 v, want = 0, n = (4UL << bs) / 16;
    asm volatile("ldgm %0, [%1]" : "=r"(v) : "r"(blk) : "memory");
    for (i = 0; i < (int)n; i++) want |= (u64)((i % 15) + 1) << (4 * i);
    show("LDGM at the block start", v);
    check("LDGM reads GMID_EL1.BS's block", v == want);

    /* DC GZVA: zeroes data and sets the tag of DCZID's block only. */
    u64 zs = 4UL << (dczid & 15);
    blk[0] = 0x5a;
    asm volatile("dc gzva, %0" :: "r"(with_tag(blk, 9)) : "memory");
    check("DC GZVA sets the block's tags", ldg_tag(blk) == 9 && ldg_tag(blk + zs - 16) == 9);
    check("... and no more", ldg_tag(blk + zs) == ((zs / 16) % 15) + 1);
    check("... and zeroes the data", blk[0] == 0);
    return fails;
}
