// core_mte.S -- MTE instructions in a loop, the way an allocator colours a 64-byte object
// (row `mte`).
//
// Each iteration takes the next 64-byte object of a 4 KiB page and runs eleven MTE
// instructions on it: IRG (a random tag, never the last object's: GMI's mask), GMI, ADDG, STG,
// STZG, ST2G, LDG, SUBG, SUBP, CMPP (SUBPS) and STGP; eleven ordinary instructions fold the
// results into the checksums and move on. The tag checksum takes GMI's mask, LDG's tag,
// SUBP's difference and CMPP's Z flag; the work checksum takes only the object offsets, since
// raw Unicorn runs the MTE instructions as NOPs.

        .text
work:                                       // x1 = ITERATIONS, x6 = bench_k (core_boot.S)
        adr     x12, mte_page
        mov     x11, #0                     // this iteration's object: its offset in the page
        mov     x9, #0                      // IRG's exclusion mask: the last object's tag
1:      add     x3, x12, x11                // p, tag 0
        irg     x3, x3, x9                  // p with a new random tag
        gmi     x9, x3, xzr                 // {tag(p)}: excluded next time
        addg    x4, x3, #32, #1             // p + 32, tag(p) + 1
        stg     x3, [x3]                    // granule 0: tag(p)
        stzg    x3, [x3, #16]               // granule 1: tag(p), data zeroed
        st2g    x4, [x4]                    // granules 2 and 3: tag(p) + 1
        mov     x5, x3
        ldg     x5, [x3, #48]               // p with granule 3's tag
        subg    x7, x4, #32, #1             // p with tag(p) again
        subp    x8, x4, x3                  // 32
        cmpp    x7, x3                      // equal
        cinc    x21, x21, eq
        stgp    x20, x11, [x7]              // granule 0: data and tag(p)
        madd    x21, x21, x6, x9
        add     x21, x21, x5, lsr #56
        add     x21, x21, x8
        madd    x20, x20, x6, x11
        add     x11, x11, #64
        and     x11, x11, #0xfc0
        subs    x1, x1, #1
        b.ne    1b
        ret

        .bss
        .balign 4096
mte_page:       .skip   4096
