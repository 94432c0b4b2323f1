// Live migration: a page whose tags change while its data does not must be sent again.
//
// The guest colours buf's first four granules with tag 2 and stores data, rings the doorbell
// (the VMM starts a live migration: every page is sent), then stores tag 9 into the same
// granules -- STG only, the data untouched -- and rings it again (the VMM sends what
// KVM_GET_DIRTY_LOG reports). An STG is a write at stage 2 (AArch64.S2CheckPermissions
// checks write permission for it), so with the page write-protected for dirty logging it
// faults, and KVM logs the page.
    .text
_start:
    ldr     x0, =buf
    mov     x1, #2
    bfi     x0, x1, #56, #4
    mov     x2, x0
    stg     x2, [x2], #16
    stg     x2, [x2], #16
    stg     x2, [x2], #16
    stg     x2, [x2], #16
    mov     x3, #0xda7a
    str     x3, [x0]
    ldr     x4, =0x0a000000
    str     xzr, [x4]                   // doorbell 1
    mov     x1, #9
    bfi     x0, x1, #56, #4
    mov     x2, x0
    stg     x2, [x2], #16               // tags only
    stg     x2, [x2], #16
    stg     x2, [x2], #16
    stg     x2, [x2], #16
    str     xzr, [x4]                   // doorbell 2
    ldr     x10, [x0]                   // through the new tag
    ret

    .data
    .balign 4096
buf:
    .skip   4096
