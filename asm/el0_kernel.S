// el0_kernel.S -- a tiny EL1 kernel running an EL0 program with MTE.
//
// The kernel (EL1) builds its own stage-1 tables, installs VBAR_EL1, and ERETs to the user
// program (EL0). The user program makes SVC calls that the kernel serves, tags a heap object
// with IRG and a tagging SVC, uses it, then reads one granule past it. That read fails its tag
// check (SCTLR_EL1.TCF0 = sync) and is taken to EL1 as a Data Abort from a lower EL: EC 0x24,
// DFSC 0b010001, FAR = the tagged address. The kernel prints a report through semihosting and
// exits with code 11, as if the process had died of SIGSEGV.
//
//   aarch64mte run asm/el0_kernel.S        (exit status 11)
//
// Memory map, 4 KiB pages over the first 2 MiB of RAM (Normal Tagged, MAIR attribute 0xF0):
// kernel pages EL1-only; `user_text` read-only and executable at EL0 only; `user_page`
// read-write at EL0 and EL1, never executable. (A page writable at EL0 can never be executed
// at EL1, so the kernel and user cannot simply share one EL0-accessible map.)
//
// System calls: SVC #0 with the number in x8, arguments in x0, x1, the result in x0; other
// registers are preserved.
//   1 puts(x0 = string)            2 tag(x0 = tagged pointer, x1 = length, multiple of 16)
//   3 exit(x0 = code)
//
// Console: "EL0: hello via SVC", "EL0: tagged store and load ok", then
//   "kernel: tag check fault from EL0: FAR=0x... ELR=0x... ESR=0x0000000092000011"
// Registers at the exit: x19 = the user's tagged heap pointer, x20 = 7 (its stored value),
// x21 = 0 (the faulting load wrote nothing), ESR_EL1 = 0x92000011, FAR_EL1 = x19 + 64.

    .equ    SYS_PUTS, 1
    .equ    SYS_TAG, 2
    .equ    SYS_EXIT, 3

    .text
    .globl _start
_start:
    msr     spsel, #1           // the kernel runs on SP_EL1

    // ---- stage-1 tables: L1[1] -> L2, L2[0] -> L3, L3 = 512 pages from 0x40000000 ----
    adr     x0, l1_table
    adr     x1, l2_table
    adr     x3, l3_table
    orr     x2, x1, #3          // table descriptor
    str     x2, [x0, #8]        // L1 entry 1: VA 0x40000000..0x7fffffff
    orr     x2, x3, #3
    str     x2, [x1]            // L2 entry 0: VA 0x40000000..0x401fffff

    movz    x4, #0x4000, lsl #16        // PA of page 0
    mov     x5, #0x703          // page | AttrIndx 0 | AP 00 (EL1 RW) | SH inner | AF
    orr     x5, x5, #(1 << 54)  // UXN: kernel pages never execute at EL0
    mov     x6, #0
1:  orr     x7, x4, x5
    str     x7, [x3, x6, lsl #3]
    add     x4, x4, #0x1000
    add     x6, x6, #1
    cmp     x6, #512
    b.ne    1b

    adr     x8, user_text
    mov     x9, #0x7c3          // page | AP 11 (read-only at EL1 and EL0) | SH | AF
    orr     x9, x9, #(1 << 53)  // PXN: the kernel never executes user code
    bl      map_user_page
    adr     x8, user_page
    mov     x9, #0x743          // page | AP 01 (read-write at EL1 and EL0) | SH | AF
    orr     x9, x9, #(3 << 53)  // PXN and UXN: data
    bl      map_user_page

    mov     x0, #0xf0           // MAIR_EL1.Attr0 = 0xF0: Normal, Tagged, Write-Back
    msr     mair_el1, x0
    movz    x0, #0x3519         // TCR_EL1: T0SZ 25, WB WA walks, SH inner, TG0 4K,
    movk    x0, #0x0080, lsl #16        // EPD1 (no TTBR1 walks),
    movk    x0, #0x0022, lsl #32        // IPS 40 bits, TBI0
    msr     tcr_el1, x0
    adr     x0, l1_table
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    dsb     sy
    isb
    // SCTLR_EL1: RES1 bits | M | C | I | ATA (43) | ATA0 (42) | TCF = 01 (40) | TCF0 = 01 (38)
    movz    x0, #0x1805
    movk    x0, #0x30d0, lsl #16
    movk    x0, #0x0d40, lsl #32
    msr     sctlr_el1, x0
    isb

    adr     x0, vectors
    msr     vbar_el1, x0
    adr     x0, kernel_stack_top
    mov     sp, x0
    adr     x0, user_stack_top
    msr     sp_el0, x0
    msr     tfsre0_el1, xzr

    // ---- enter the user program: EL0t, interrupts unmasked, TCO = 0 ----
    adr     x0, user_entry
    msr     elr_el1, x0
    msr     spsr_el1, xzr
    isb
    eret

// map_user_page: x8 = an address in the page, x9 = descriptor attributes; x3 = L3 table
map_user_page:
    lsr     x10, x8, #12
    and     x10, x10, #511
    and     x11, x8, #0xfffffffffffff000
    orr     x11, x11, x9
    str     x11, [x3, x10, lsl #3]
    ret

// ---- synchronous exception from EL0 ------------------------------------------------------
el0_sync:
    sub     sp, sp, #144
    stp     x1, x2, [sp, #0]
    stp     x3, x4, [sp, #16]
    stp     x5, x6, [sp, #32]
    stp     x7, x8, [sp, #48]
    stp     x9, x10, [sp, #64]
    stp     x11, x12, [sp, #80]
    stp     x13, x14, [sp, #96]
    stp     x15, x16, [sp, #112]
    stp     x17, x30, [sp, #128]

    mrs     x9, esr_el1
    lsr     x10, x9, #26        // ESR_EL1.EC
    cmp     x10, #0x15          // SVC from AArch64
    b.eq    do_svc
    cmp     x10, #0x24          // Data Abort from a lower EL
    b.ne    unexpected_sync
    and     x11, x9, #0x3f      // ISS.DFSC
    cmp     x11, #0x11          // Synchronous Tag Check Fault
    b.ne    unexpected_sync

    adr     x1, msg_fault
    bl      puts
    mrs     x0, far_el1         // the pointer as used, tag included
    bl      puthex
    adr     x1, msg_elr
    bl      puts
    mrs     x0, elr_el1         // the faulting instruction
    bl      puthex
    adr     x1, msg_esr
    bl      puts
    mov     x0, x9
    bl      puthex
    adr     x1, msg_newline
    bl      puts
    mov     x0, #11             // the process is killed: SIGSEGV
    b       semihost_exit

do_svc:
    cmp     x8, #SYS_PUTS
    b.eq    sys_puts
    cmp     x8, #SYS_TAG
    b.eq    sys_tag
    cmp     x8, #SYS_EXIT
    b.eq    semihost_exit
    mov     x0, #-38            // ENOSYS
    b       svc_return

sys_puts:
    mov     x1, x0
    bl      puts
    mov     x0, #0
    b       svc_return

sys_tag:                        // colour [x0, x0 + x1) with x0's tag
    mov     x2, x0
    add     x3, x0, x1
2:  cmp     x2, x3
    b.hs    svc_return
    stg     x2, [x2], #16
    b       2b

svc_return:
    ldp     x1, x2, [sp, #0]
    ldp     x3, x4, [sp, #16]
    ldp     x5, x6, [sp, #32]
    ldp     x7, x8, [sp, #48]
    ldp     x9, x10, [sp, #64]
    ldp     x11, x12, [sp, #80]
    ldp     x13, x14, [sp, #96]
    ldp     x15, x16, [sp, #112]
    ldp     x17, x30, [sp, #128]
    add     sp, sp, #144
    eret                        // back to EL0, after the SVC

unexpected_sync:
    mov     x0, #100
    b       semihost_exit

// ---- semihosting helpers (HLT #0xF000; x0 = operation, x1 = argument) --------------------
puts:                           // x1 = NUL-terminated string: SYS_WRITE0
    mov     x0, #4
    hlt     #0xf000
    ret

puthex:                         // x0 = value, printed as 0x%016x
    adr     x10, hexbuf
    mov     w11, #0x30          // '0'
    strb    w11, [x10]
    mov     w11, #0x78          // 'x'
    strb    w11, [x10, #1]
    add     x13, x10, #2
    mov     x12, #60
3:  lsr     x14, x0, x12
    and     x14, x14, #15
    add     x15, x14, #0x30     // '0' + digit
    add     x16, x14, #0x57     // 'a' + digit - 10
    cmp     x14, #10
    csel    x15, x15, x16, lo
    strb    w15, [x13], #1
    subs    x12, x12, #4
    b.pl    3b
    strb    wzr, [x13]
    mov     x1, x10
    mov     x0, #4
    hlt     #0xf000
    ret

semihost_exit:                  // x0 = exit code: SYS_EXIT, ADP_Stopped_ApplicationExit
    adr     x1, exit_block
    movz    x2, #0x0026
    movk    x2, #0x2, lsl #16
    stp     x2, x0, [x1]
    mov     x0, #0x18
    hlt     #0xf000
4:  b       4b

// ---- vectors: only "lower EL, AArch64, synchronous" is expected --------------------------
    .balign 0x800
vectors:
    mov     x0, #101            // 0x000 current EL with SP0: synchronous
    b       semihost_exit
    .balign 0x80
    mov     x0, #102            // 0x080 IRQ
    b       semihost_exit
    .balign 0x80
    mov     x0, #103            // 0x100 FIQ
    b       semihost_exit
    .balign 0x80
    mov     x0, #104            // 0x180 SError
    b       semihost_exit
    .balign 0x80
    mov     x0, #105            // 0x200 current EL with SPx: synchronous (a kernel bug)
    b       semihost_exit
    .balign 0x80
    mov     x0, #106
    b       semihost_exit
    .balign 0x80
    mov     x0, #107
    b       semihost_exit
    .balign 0x80
    mov     x0, #108
    b       semihost_exit
    .balign 0x80
    b       el0_sync            // 0x400 lower EL, AArch64: synchronous
    .balign 0x80
    mov     x0, #110
    b       semihost_exit
    .balign 0x80
    mov     x0, #111
    b       semihost_exit
    .balign 0x80
    mov     x0, #112
    b       semihost_exit
    .balign 0x80
    mov     x0, #113            // 0x600 lower EL, AArch32: never
    b       semihost_exit
    .balign 0x80
    mov     x0, #114
    b       semihost_exit
    .balign 0x80
    mov     x0, #115
    b       semihost_exit
    .balign 0x80
    mov     x0, #116
    b       semihost_exit

msg_fault:   .asciz "kernel: tag check fault from EL0: FAR="
msg_elr:     .asciz " ELR="
msg_esr:     .asciz " ESR="
msg_newline: .asciz "\n"

// ---- the user program: its own page, read-only and executable at EL0 ---------------------
    .balign 4096
    .globl user_text, user_entry, user_overrun
user_text:
user_entry:
    adr     x0, msg_hello
    mov     x8, #SYS_PUTS
    svc     #0

    adr     x19, user_heap
    mov     x9, #1
    irg     x19, x19, x9        // EL0 may choose tags: SCTLR_EL1.ATA0 = 1
    mov     x0, x19
    mov     x1, #64
    mov     x8, #SYS_TAG
    svc     #0                  // the kernel colours 64 bytes with x19's tag

    mov     x2, #7
    str     x2, [x19, #8]       // checked at EL0: the tags match
    ldr     x20, [x19, #8]
    adr     x0, msg_ok
    mov     x8, #SYS_PUTS
    svc     #0

user_overrun:
    ldr     x21, [x19, #64]     // one granule past the object: allocation tag 0
    mov     x0, #0
    mov     x8, #SYS_EXIT
    svc     #0                  // not reached

msg_hello:  .asciz "EL0: hello via SVC\n"
msg_ok:     .asciz "EL0: tagged store and load ok\n"
    .balign 4096

    .data
    .balign 4096
    .globl user_page, user_heap
user_page:
user_heap:  .skip 4096          // heap object at the start, user stack at the top
user_stack_top:

    .bss
    .balign 4096
l1_table:   .skip 4096
l2_table:   .skip 4096
l3_table:   .skip 4096
            .skip 1024
kernel_stack_top:
hexbuf:     .skip 32
exit_block: .skip 16
