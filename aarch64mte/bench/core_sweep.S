// core_sweep.S -- loads and stores sweeping one 4 KiB page, granule by granule
// (rows `untagged`, `checked` and `mixed`).
//
// Each pass visits the page's 256 granules in order: load the doubleword at granule + 8, fold
// it into the work checksum (x20 = x20 * K + loaded), store the checksum back there, so every
// pass reads what the one before wrote. The pointer to granule i carries the logical tag
// PAGE_TAG + i * TAG_STEP (mod 16): it advances by 16 bytes and by TAG_STEP in its top byte
// (only bits 59:56 are the tag; TBI ignores the whole byte). With COLOUR set the program first
// gives granule i that same allocation tag, with STG through the same pointers, so every
// access of the passes is tag checked and passes the check.
//   untagged  TAGGED_MAP 0: MMU off, Untagged memory, nothing checked
//   checked   PAGE_TAG 5, TAG_STEP 0: every granule tag 5
//   mixed     PAGE_TAG 3, TAG_STEP 5: 16 different tags, no two neighbours alike
// A pass is 256 loads, 256 stores and 1,156 instructions.

        .text
work:                                       // x1 = ITERATIONS, x6 = bench_k (core_boot.S)
        adr     x8, sweep_page
        mov     x9, #PAGE_TAG
        orr     x8, x8, x9, lsl #56
        mov     x7, #TAG_STEP
        lsl     x7, x7, #56
        add     x7, x7, #16
.if COLOUR
        mov     x3, x8
        mov     x4, #256
1:      stg     x3, [x3]
        add     x3, x3, x7
        subs    x4, x4, #1
        b.ne    1b
.endif
        mov     x20, x1                     // the work checksum starts from the pass count
2:      mov     x3, x8
        mov     x4, #64
3:
        .rept   4
        ldr     x5, [x3, #8]
        madd    x20, x20, x6, x5
        str     x20, [x3, #8]
        add     x3, x3, x7
        .endr
        subs    x4, x4, #1
        b.ne    3b
        subs    x1, x1, #1
        b.ne    2b
.if COLOUR
        // the tag checksum: every granule's allocation tag, read back with LDG
        mov     x3, x8
        mov     x4, #256
4:      mov     x5, xzr
        ldg     x5, [x3]
        lsr     x5, x5, #56
        madd    x21, x21, x6, x5
        add     x3, x3, #16
        subs    x4, x4, #1
        b.ne    4b
.endif
        ret

        .bss
        .balign 4096
sweep_page:     .skip   4096
