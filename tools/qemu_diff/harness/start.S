/* Boot, exception vectors and the test trampoline of the differential harness.
 *
 * The harness runs at EL1h on SP_EL1. A test body runs at EL1t or EL0t on SP_EL0, entered by
 * ERET from enter_test; every synchronous exception it takes comes back here, to vector 0x000
 * (current EL, SP0) or 0x400 (lower EL, AArch64), and is handed to exc_handler in C. The handler
 * either resumes the body (after it has set ELR_EL1) or ends the test, in which case control
 * returns from enter_test as if it were an ordinary call. Anything else is a harness fault. */
    .section .text.boot, "ax"
    .globl _start
_start:
    ldr   x0, =__stack_top
    mov   sp, x0
    ldr   x0, =vectors
    msr   vbar_el1, x0
    mov   x0, #(3 << 20)             /* CPACR_EL1.FPEN = 11: SIMD loads and stores untrapped */
    msr   cpacr_el1, x0
    isb
    bl    harness_main
1:  wfi
    b     1b

/* void enter_test(const struct entry *e): e = { x[31], sp_el0, elr, spsr } */
    .globl enter_test
enter_test:
    ldr   x9, =harness_saved
    stp   x19, x20, [x9, #0]
    stp   x21, x22, [x9, #16]
    stp   x23, x24, [x9, #32]
    stp   x25, x26, [x9, #48]
    stp   x27, x28, [x9, #64]
    stp   x29, x30, [x9, #80]
    mov   x10, sp
    str   x10, [x9, #96]
    ldr   x10, [x0, #248]
    msr   sp_el0, x10
    ldr   x10, [x0, #256]
    msr   elr_el1, x10
    ldr   x10, [x0, #264]
    msr   spsr_el1, x10
    .irp  v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    movi  v\v\().2d, #0
    .endr
    msr   fpsr, xzr
    clrex                            /* no exclusive monitor left open by the previous test */
    ldp   x2, x3, [x0, #16]
    ldp   x4, x5, [x0, #32]
    ldp   x6, x7, [x0, #48]
    ldp   x8, x9, [x0, #64]
    ldp   x10, x11, [x0, #80]
    ldp   x12, x13, [x0, #96]
    ldp   x14, x15, [x0, #112]
    ldp   x16, x17, [x0, #128]
    ldp   x18, x19, [x0, #144]
    ldp   x20, x21, [x0, #160]
    ldp   x22, x23, [x0, #176]
    ldp   x24, x25, [x0, #192]
    ldp   x26, x27, [x0, #208]
    ldp   x28, x29, [x0, #224]
    ldr   x30, [x0, #240]
    ldp   x0, x1, [x0, #0]
    eret

    .macro VEC kind
    .balign 0x80
    sub   sp, sp, #256
    stp   x0, x1, [sp, #0]
    mov   x0, #\kind
    b     exc_common
    .endm

    .balign 0x800
vectors:
    .irp  k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    VEC   \k
    .endr

exc_common:
    stp   x2, x3, [sp, #16]
    stp   x4, x5, [sp, #32]
    stp   x6, x7, [sp, #48]
    stp   x8, x9, [sp, #64]
    stp   x10, x11, [sp, #80]
    stp   x12, x13, [sp, #96]
    stp   x14, x15, [sp, #112]
    stp   x16, x17, [sp, #128]
    stp   x18, x19, [sp, #144]
    stp   x20, x21, [sp, #160]
    stp   x22, x23, [sp, #176]
    stp   x24, x25, [sp, #192]
    stp   x26, x27, [sp, #208]
    stp   x28, x29, [sp, #224]
    str   x30, [sp, #240]
    mov   x1, sp
    mrs   x2, esr_el1
    mrs   x3, far_el1
    mrs   x4, elr_el1
    mrs   x5, spsr_el1
    mrs   x6, sp_el0
    bl    exc_handler                /* 0: resume the body; 1: the test has ended */
    cbnz  x0, test_end
    ldp   x2, x3, [sp, #16]
    ldp   x4, x5, [sp, #32]
    ldp   x6, x7, [sp, #48]
    ldp   x8, x9, [sp, #64]
    ldp   x10, x11, [sp, #80]
    ldp   x12, x13, [sp, #96]
    ldp   x14, x15, [sp, #112]
    ldp   x16, x17, [sp, #128]
    ldp   x18, x19, [sp, #144]
    ldp   x20, x21, [sp, #160]
    ldp   x22, x23, [sp, #176]
    ldp   x24, x25, [sp, #192]
    ldp   x26, x27, [sp, #208]
    ldp   x28, x29, [sp, #224]
    ldr   x30, [sp, #240]
    ldp   x0, x1, [sp, #0]
    add   sp, sp, #256
    eret
test_end:
    ldr   x9, =harness_saved
    ldp   x19, x20, [x9, #0]
    ldp   x21, x22, [x9, #16]
    ldp   x23, x24, [x9, #32]
    ldp   x25, x26, [x9, #48]
    ldp   x27, x28, [x9, #64]
    ldp   x29, x30, [x9, #80]
    ldr   x10, [x9, #96]
    mov   sp, x10
    ret

    .data
    .balign 16
harness_saved: .space 112
