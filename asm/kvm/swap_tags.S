// A swap round trip seen from the guest, and the kernel's packing of a page's tags.
//
// In:  x0 = a page (page aligned), x1 = a second page for the packed tags.
// 1. Every granule g of the page gets tag (g * 7 + 3) & 0xf and the doubleword g.
// 2. The tags are packed as arch/arm64/lib/mte.S mte_save_page_tags packs them: LDGM over
//    each 256-byte block (GMID_EL1.BS gives the LDGM block), the results ORed into one
//    register (LDGM puts the tag of granule i of the block in bits 4i+3:4i) and stored, 16
//    doublewords, 128 bytes, at x1.
// 3. Doorbell (a store to 0x0a000000): the VMM swaps the page out here.
// 4. Every tag is read back with LDG and every doubleword through a pointer with the tag
//    it should have: x20 = the number of granules whose tag or data is wrong (0 expected).
    .text
_start:
    mov     x19, x0
    // 1. tag and fill
    mov     x2, #0                      // granule
1:  mov     x3, #7
    mul     x3, x2, x3
    add     x3, x3, #3
    and     x3, x3, #0xf
    add     x4, x19, x2, lsl #4
    bfi     x4, x3, #56, #4
    stg     x4, [x4]
    str     x2, [x4]
    add     x2, x2, #1
    cmp     x2, #256
    b.ne    1b
    // 2. pack with LDGM (EL1 only)
    mrs     x5, gmid_el1
    ubfx    x5, x5, #0, #4
    mov     x6, #4
    lsl     x5, x6, x5                  // LDGM block size in bytes
    mov     x7, x19
    mov     x8, x1
2:  mov     x9, #0
3:  ldgm    x10, [x7]
    orr     x9, x9, x10
    add     x7, x7, x5
    tst     x7, #0xff
    b.ne    3b
    str     x9, [x8], #8
    tst     x7, #0xfff
    b.ne    2b
    // 3. doorbell
    ldr     x11, =0x0a000000
    str     xzr, [x11]
    // 4. check
    mov     x20, #0
    mov     x2, #0
4:  mov     x3, #7
    mul     x3, x2, x3
    add     x3, x3, #3
    and     x3, x3, #0xf
    add     x4, x19, x2, lsl #4
    mov     x12, x4
    ldg     x12, [x4]
    ubfx    x13, x12, #56, #4
    cmp     x13, x3
    cinc    x20, x20, ne
    bfi     x4, x3, #56, #4
    ldr     x14, [x4]                   // tag checked: a wrong tag would fault here
    cmp     x14, x2
    cinc    x20, x20, ne
    add     x2, x2, #1
    cmp     x2, #256
    b.ne    4b
    ret
