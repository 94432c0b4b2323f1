// Read a granule's tag, optionally store one, read it again.
//
// In:  x0 = address (IPA = VA in the snippet profile), x1 = tag to store, or 16 for none.
// Out: x10 = the tag LDG read before, x11 = the tag LDG reads after, x12 = the doubleword
//      at the address (loaded through a pointer carrying the tag read after).
    .text
_start:
    ldg     x2, [x0]
    ubfx    x10, x2, #56, #4
    cmp     x1, #16
    b.eq    1f
    bfi     x0, x1, #56, #4
    stg     x0, [x0]
1:  mov     x2, x0
    ldg     x2, [x0]                    // X[t] with the allocation tag inserted
    ubfx    x11, x2, #56, #4
    ldr     x12, [x2]
    ret
