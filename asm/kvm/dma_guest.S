// A driver hands a tagged buffer to a device and reads what the device wrote into it.
//
// The device is the VMM's (a register at 0x0a001000: a store gives it the buffer's address,
// pointer tag included; it then DMAs 64 bytes into the buffer). The guest reads the buffer
// back through its tagged pointer -- tag checked -- and sums the eight doublewords: x10.
// x11 = the tag of each of the four granules, ORed as nibbles (so 0xXXXX for tag X).
    .text
_start:
    ldr     x0, =buf
    irg     x0, x0
    mov     x1, x0
    stg     x1, [x1], #16
    stg     x1, [x1], #16
    stg     x1, [x1], #16
    stg     x1, [x1], #16
    ldr     x2, =0x0a001000
    str     x0, [x2]                    // start the DMA
    mov     x10, #0
    mov     x3, #0
1:  ldr     x4, [x0, x3, lsl #3]
    add     x10, x10, x4
    add     x3, x3, #1
    cmp     x3, #8
    b.ne    1b
    mov     x11, #0
    mov     x3, #0
2:  add     x5, x0, x3, lsl #4
    ldg     x5, [x5]
    ubfx    x6, x5, #56, #4
    orr     x11, x6, x11, lsl #4
    add     x3, x3, #1
    cmp     x3, #4
    b.ne    2b
    ret

    .data
    .balign 4096
buf:
    .skip   4096
