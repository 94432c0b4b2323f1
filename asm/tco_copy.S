// tco_copy.S -- copying tagged memory through untagged pointers with PSTATE.TCO set.
//
// Code that moves data on behalf of someone else (a kernel's copy of a user page, a VMM
// emulating DMA) often holds addresses without the owner's tag. Setting PSTATE.TCO (Tag Check
// Override) makes every load and store tag-unchecked; clearing it restores checking.
//
//   aarch64mte run asm/tco_copy.S --mem src:64 --mem dst:64
//
// The source (64 bytes) has tag S and the destination (64 bytes) tag D; the copy uses the
// tag-0 addresses of both inside `msr tco, #1` ... `msr tco, #0`, and completes. x11 reads TCO
// inside the window (1 << 25) and x12 after it (0). The program then repeats one load through
// the tag-0 source address with TCO clear: it is checked, so it ends the run on a synchronous
// tag-check fault at `checked_again` (ESR_EL1 0x96000011, allocation tag S, logical tag 0).
// Memory at dst = memory at src = 00 01 02 ... 3f.

    .text
    .globl _start
_start:
    // Colour the two buffers with two different non-zero tags
    adr     x0, src
    mov     x9, #1
    irg     x0, x0, x9          // tag S
    gmi     x9, x0, x9
    adr     x1, dst
    irg     x1, x1, x9          // tag D != S
    mov     x2, #0
2:  add     x3, x0, x2          // (STG has no register-offset form: form the address)
    stg     x0, [x3]
    add     x3, x1, x2
    stg     x1, [x3]
    add     x2, x2, #16
    cmp     x2, #64
    b.ne    2b

    // Fill the source through its tagged pointer: bytes 0, 1, 2, ...
    mov     x2, #0
3:  strb    w2, [x0, x2]
    add     x2, x2, #1
    cmp     x2, #64
    b.ne    3b

    // The unchecked copy, through the tag-0 addresses
    adr     x4, src
    adr     x5, dst
    msr     tco, #1             // PSTATE.TCO = 1: accesses are not tag checked
    mrs     x11, tco            // reads 1 << 25
    mov     x14, x4             // copy cursors
    mov     x15, x5
    add     x2, x4, #64
4:  ldp     x6, x7, [x14], #16
    stp     x6, x7, [x15], #16
    cmp     x14, x2
    b.ne    4b
    msr     tco, #0             // checking is back on
    mrs     x12, tco

    .globl checked_again
checked_again:
    ldr     x8, [x4]            // tag 0 vs S: a synchronous tag-check fault
    mov     x13, #1             // not reached

    .bss
    .balign 16
    .globl src, dst
src:    .skip 64
dst:    .skip 64
