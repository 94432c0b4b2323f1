// irg_exclude.S -- which tags IRG, ADDG and GMI can produce under GCR_EL1 and an IRG mask.
//
// IRG chooses among the tags not excluded by (Xm<15:0> OR GCR_EL1.Exclude); with every tag
// excluded it gives 0. With GCR_EL1.RRND = 0 the choice is the architected one: a 4-bit
// offset from the RGSR_EL1.SEED LFSR, stepped forward from RGSR_EL1.TAG over excluded tags
// (ChooseNonExcludedTag), so runs repeat. ADDG and SUBG step the tag forward the same way
// (SUBG subtracts only from the address), using GCR_EL1.Exclude alone. GMI ORs
// 1 << (pointer's tag) into a mask.
//
//   aarch64mte run asm/irg_exclude.S
//
// GCR_EL1.Exclude = 0xffd7 leaves tags 3 and 5 only. Ends by running off the end of the text:
//   x2, x3, x4 = IRG tags with no extra mask: each 3 or 5
//   x5 = IRG tag with tag 3 also excluded by Xm: 5
//   x8 = GMI of a tag-5 pointer into an empty mask: 0x20
//   x9 = ADDG #0, #1 from tag 5: the next allowed tag, wrapping past 15: 3
//   x10 = SUBG #0, #1 from tag 3: the tag still steps forward: 5
//   x11 = ADDG #0, #0 from tag 5 (offset 0 keeps an allowed tag): 5
//   x7 = IRG tag with all 16 tags excluded: 0
//   x12 = GCR_EL1 as read back (0xffd7)

    .text
    .globl _start
_start:
    movz    x0, #0xffd7         // GCR_EL1: Exclude = all but {3, 5}; RRND (bit 16) = 0
    msr     gcr_el1, x0
    isb
    mrs     x12, gcr_el1

    adr     x1, buf
    irg     x2, x1              // Xm omitted: XZR, no extra exclusions
    irg     x3, x1, xzr
    irg     x4, x1
    ubfx    x2, x2, #56, #4
    ubfx    x3, x3, #56, #4
    ubfx    x4, x4, #56, #4

    mov     x6, #(1 << 3)       // also exclude 3: only 5 is left
    irg     x5, x1, x6
    gmi     x8, x5, xzr         // 1 << 5

    addg    x9, x5, #0, #1      // 5 + 1 -> 6..15, 0..2 excluded -> 3
    subg    x10, x9, #0, #1     // tag 3 + 1 -> 4 excluded -> 5
    addg    x11, x5, #0, #0     // 5 is allowed: stays 5
    ubfx    x5, x5, #56, #4
    ubfx    x9, x9, #56, #4
    ubfx    x10, x10, #56, #4
    ubfx    x11, x11, #56, #4

    mov     x6, #(1 << 3) | (1 << 5)
    irg     x7, x1, x6          // nothing left to choose: tag 0
    ubfx    x7, x7, #56, #4

    .bss
    .balign 16
buf:    .skip 16
