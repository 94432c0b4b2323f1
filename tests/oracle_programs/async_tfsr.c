/* Asynchronous and asymmetric tag checking, read back through TFSR_EL1.
 * Exit status = failed checks. */
#include "mte_env.h"

static u64 buf[8] __attribute__((aligned(16)));

int main(void) {
    mte_setup(2);                                    /* TCF = async */
    SYSREG_W(TFSR_EL1, 0);
    u64 good = with_tag(buf, 7), bad = with_tag(buf, 3);
    stg(good);
    show("TFSR_EL1 before", SYSREG_R(TFSR_EL1));
    *(volatile u64 *)bad = 42;                       /* mismatch: recorded, not raised */
    asm volatile("dsb sy\n isb" ::: "memory");
    u64 tfsr = SYSREG_R(TFSR_EL1);
    show("TFSR_EL1 after async store", tfsr);
    check("async: no exception", nexc == 0);
    check("async: TF0 set", tfsr == 1);
    check("async: the store landed", *(volatile u64 *)good == 42);
    SYSREG_W(TFSR_EL1, 0);
    show("TFSR_EL1 cleared", SYSREG_R(TFSR_EL1));

    SYSREG_W(SCTLR_EL1, SYSREG_R(SCTLR_EL1) | (3UL << 40));   /* TCF = asymmetric */
    (void)*(volatile u64 *)bad;                      /* read: synchronous */
    check("asymm: a read faults synchronously", nexc == 1 && (last_esr & 0x3f) == 0x11);
    show("ESR_EL1 of the read", last_esr);
    show("FAR_EL1 of the read", last_far);
    *(volatile u64 *)bad = 43;                       /* write: asynchronous */
    asm volatile("dsb sy\n isb" ::: "memory");
    show("TFSR_EL1 after asymm store", SYSREG_R(TFSR_EL1));
    check("asymm: a write does not fault", nexc == 1);
    check("asymm: the write landed", *(volatile u64 *)good == 43);
    return fails;
}
