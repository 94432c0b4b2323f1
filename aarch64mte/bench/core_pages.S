// core_pages.S -- the page routines a kernel runs on tagged pages (row `pages`): save a page's
// tags with LDGM (as Linux's mte_save_page_tags does before swapping a page out), clear the
// page with DC GZVA (mte_zero_clear_page_tags), restore its tags with STGM
// (mte_restore_page_tags).
//
// Each pass runs the three over PAGES pages. The saved form is Linux's: one doubleword per
// 256 bytes, granule i's tag in bits 4i+3:4i. LDGM and STGM move 4 << GMID_EL1.BS bytes'
// worth of tags at a time (BS read at run time: 6 on QEMU's max CPU, 16 granules; the same
// doubleword serves every block of its 256 bytes), DC GZVA clears DCZID_EL0's block (64 bytes
// on both engines) to tag 0. The restore XORs each saved doubleword with a pattern that
// changes every pass, so every pass moves different tags. A pass moves 3 * 256 granules a
// page. The tag checksum folds in every saved doubleword; the work checksum the page
// addresses, since raw Unicorn runs LDGM, STGM, DC GZVA and MRS GMID_EL1 as NOPs (its x5
// starts at 6, so it runs the same loops).

        .equ    PAGES, 4

        .text
work:                                       // x1 = ITERATIONS, x6 = bench_k (core_boot.S)
        adr     x12, tag_pages
        add     x16, x12, #(PAGES * 4096)
        adr     x13, saved_tags
        mov     x5, #6
        mrs     x5, gmid_el1
        ubfx    x5, x5, #0, #4
        mov     x7, #4
        lsl     x7, x7, x5                  // bytes per LDGM and STGM
        mrs     x8, dczid_el0
        ubfx    x8, x8, #0, #4
        mov     x10, #4
        lsl     x10, x10, x8                // bytes per DC GZVA
        movz    x9, #0x0f1e, lsl #48        // the pattern, and what each pass adds to it
        movk    x9, #0x2d3c, lsl #32
        movk    x9, #0x4b5a, lsl #16
        movk    x9, #0x6978
        movz    x17, #0x1111, lsl #48
        movk    x17, #0x1111, lsl #32
        movk    x17, #0x1111, lsl #16
        movk    x17, #0x1113

pass:   mov     x0, x12
        mov     x2, x13
page:
        // save: one doubleword of tags per 256 bytes
        mov     x3, x2
1:      mov     x14, xzr
2:      mov     x15, xzr
        ldgm    x15, [x0]
        orr     x14, x14, x15
        add     x0, x0, x7
        tst     x0, #0xff
        b.ne    2b
        str     x14, [x3], #8
        madd    x21, x21, x6, x14
        tst     x0, #0xfff
        b.ne    1b
        sub     x0, x0, #4096
        // clear: data and tags, the tags to the pointer's (0)
        mov     x4, x0
3:      dc      gzva, x4
        add     x4, x4, x10
        tst     x4, #0xfff
        b.ne    3b
        // restore, each doubleword XORed with the pattern
        mov     x3, x2
4:      ldr     x14, [x3], #8
        eor     x14, x14, x9
5:      stgm    x14, [x0]
        add     x0, x0, x7
        tst     x0, #0xff
        b.ne    5b
        tst     x0, #0xfff
        b.ne    4b
        add     x2, x2, #128
        madd    x20, x20, x6, x0
        cmp     x0, x16
        b.ne    page
        add     x9, x9, x17
        subs    x1, x1, #1
        b.ne    pass
        ret

        .bss
        .balign 4096
tag_pages:      .skip   PAGES * 4096
saved_tags:     .skip   PAGES * 128
