// Tag a granule, let the VMM act (doorbell), then read the tag and the data back.
//
// In:  x0 = address, x1 = tag.  Out: x10 = LDG after the doorbell, x11 = the data loaded
// through the tagged pointer after it (0x5eed stored before it).
// The doorbell is a store to 0x0a000000, where no device is: KVM_EXIT_MMIO to the VMM.
    .text
_start:
    bfi     x0, x1, #56, #4
    stg     x0, [x0]
    mov     x2, #0x5eed
    str     x2, [x0]
    ldr     x3, =0x0a000000
    str     xzr, [x3]
    ldg     x4, [x0]
    ubfx    x10, x4, #56, #4
    ldr     x11, [x0]
    ret
