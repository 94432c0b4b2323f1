/* IRG with GCR_EL1.RRND = 0: the tag sequence from a fixed RGSR_EL1 seed, exclusion masks,
 * ADDG/SUBG stepping. Exit status = failed checks. */
#include "mte_env.h"

static u64 buf[2] __attribute__((aligned(16)));

static u64 irg(u64 p, u64 mask) { u64 r; asm volatile("irg %0, %1, %2" : "=r"(r) : "r"(p), "r"(mask)); return r; }

int main(void) {
    int i;
    mte_setup(1);
    SYSREG_W(GCR_EL1, 0x0001);                       /* exclude tag 0, RRND = 0 */
    SYSREG_W(RGSR_EL1, 0x1234UL << 8);
    put("IRG tags, GCR_EL1 = 0x0001, seed 0x1234:");
    for (i = 0; i < 16; i++) { put(" "); putnib(irg((u64)buf, 0) >> 56); }
    put("\n");
    show("RGSR_EL1 after 16", SYSREG_R(RGSR_EL1));

    put("IRG tags, Xm = 0xaaaa:");
    for (i = 0; i < 8; i++) { put(" "); putnib(irg((u64)buf, 0xaaaa) >> 56); }
    put("\n");
    show("RGSR_EL1 after 24", SYSREG_R(RGSR_EL1));

    SYSREG_W(GCR_EL1, 0xffd7);                       /* only tags 3 and 5 */
    u64 p = irg((u64)buf, 0), q;
    put("IRG with only {3,5}: "); putnib(p >> 56); put("\n");
    asm volatile("addg %0, %1, #16, #1" : "=r"(q) : "r"(p));
    show("ADDG #16, #1", q - (u64)buf);
    asm volatile("subg %0, %1, #16, #2" : "=r"(q) : "r"(p));
    show("SUBG #16, #2", q - (u64)buf);
    q = irg((u64)buf, 0x28);
    show("IRG with everything excluded", q);
    check("all excluded gives tag 0", (q >> 56) == 0);
    u64 m;
    asm volatile("gmi %0, %1, %2" : "=r"(m) : "r"(with_tag(buf, 9)), "r"((u64)0x100));
    show("GMI tag 9 into 0x100", m);
    return fails;
}
