// use_after_free.S -- a freed object is retagged, and a stale pointer faults on its next use.
//
// "malloc" picks a tag with IRG and colours the object's granules with STG. "free" colours
// them again with a different tag (GMI adds the old tag to the exclusion mask, so IRG cannot
// pick it again). The stale pointer still carries the old tag, so the load through it fails
// its tag check: with SCTLR_EL1.TCF = 1 (synchronous) that is a Data Abort, DFSC 0b010001,
// taken before the load has any effect.
//
//   aarch64mte run asm/use_after_free.S
//
// Ends on the unhandled exception (exit status 1) at the instruction labelled `stale_load`:
//   ESR_EL1 = 0x96000011 (EC 0x25 same-EL data abort, IL = 1, WnR = 0, DFSC = tag check)
//   FAR_EL1 = x0 + 8 with x0's tag, x3 unchanged (0),
//   x19 = the object's tag while live, x20 = its tag after free (x20 != x19, neither 0).

    .text
    .globl _start
_start:
    adr     x0, heap            // the object: 32 bytes = two granules
    mov     x9, #1              // never hand out tag 0
    irg     x0, x0, x9          // malloc: random tag
    stg     x0, [x0]            // colour both granules
    stg     x0, [x0, #16]
    ubfx    x19, x0, #56, #4

    mov     x1, #42
    str     x1, [x0]            // use while live: tags match
    ldr     x2, [x0]

    // free(): pick a tag different from the live one and recolour the memory
    gmi     x9, x0, x9          // x9 |= 1 << tag(x0)
    irg     x10, x0, x9         // the new tag excludes 0 and the old tag
    stg     x10, [x10]
    stg     x10, [x10, #16]
    ubfx    x20, x10, #56, #4

    .globl stale_load
stale_load:
    ldr     x3, [x0, #8]        // use after free: logical tag x19 != allocation tag x20
    mov     x4, #1              // not reached

    .bss
    .balign 16
    .globl heap
heap:   .skip 64
