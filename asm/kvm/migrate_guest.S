// A guest that is migrated mid-run: it colours a buffer, the VMM migrates it at the doorbell,
// then it uses the buffer through the right pointer and, last, through a stale one.
//
// Out (after the doorbell): x10 = the doubleword loaded through the right pointer.
// The last load, through a pointer whose tag is one more than the buffer's, takes a
// synchronous Tag Check Fault at `stale_load` -- on the source and, if the tags were
// carried, on the destination in exactly the same way (FAR, ESR, tags).
    .text
_start:
    ldr     x0, =buf
    irg     x0, x0                      // a random tag (RGSR_EL1's seed: deterministic)
    mov     x1, x0
    stg     x1, [x1], #16               // colour four granules
    stg     x1, [x1], #16
    stg     x1, [x1], #16
    stg     x1, [x1], #16
    mov     x2, #0xc0de
    str     x2, [x0, #48]
    ldr     x3, =0x0a000000
    str     x0, [x3]                    // doorbell: "migrate me now"
    ldr     x10, [x0, #48]              // the right tag
    addg    x4, x0, #0, #1              // the stale pointer: tag + 1
stale_load:
    ldr     x11, [x4, #48]
    ret

    .data
    .balign 4096
buf:
    .skip   4096
