// ldgm_stgm_copy.S -- copy the allocation tags of a region in blocks with LDGM/STGM.
//
// LDGM and STGM move the tags of one block of memory to or from a register. The block size is
// IMPLEMENTATION DEFINED: 4 << GMID_EL1.BS bytes (BS = 2..6, so 1..16 granules). The address
// is aligned down to the block, and the tag of granule i sits in register bits 4i+3:4i, where
// i is taken from address bits 7:4. A portable copy therefore reads GMID_EL1 for its stride
// and keeps source and destination at the same offset modulo 256 bytes (both 256-aligned
// here). Both instructions are UNDEFINED at EL0, so this is kernel (EL1) code.
//
//   aarch64mte run asm/ldgm_stgm_copy.S --gmid-bs 2 --tags src:512 --tags dst:512   (any 2..6)
//
// The source's 32 granules get tags (7i + 3) mod 16. Ends by running off the end of the text:
//   x21 = block size in bytes (4 << BS), x22 = LDGM/STGM pairs executed (512 / x21),
//   x20 = granules whose tags differ between src and dst afterwards, checked with LDG (0).

    .equ    LEN, 512

    .text
    .globl _start
_start:
    // 1. Give every source granule its own tag.
    adr     x0, src
    mov     x2, #0              // granule index i
    mov     x4, #3              // its tag, (7i + 3) mod 16
1:  add     x3, x0, x2, lsl #4  // src + 16i
    bfi     x3, x4, #56, #4     // with the tag in bits 59:56
    stg     x3, [x3]
    add     x4, x4, #7
    and     x4, x4, #15
    add     x2, x2, #1
    cmp     x2, #(LEN / 16)
    b.ne    1b

    // 2. Block size from GMID_EL1.BS (bits 3:0): 4 << BS bytes per LDGM/STGM.
    mrs     x9, gmid_el1
    and     x9, x9, #15
    mov     x21, #4
    lsl     x21, x21, x9

    // 3. The copy: one LDGM and one STGM per block.
    adr     x0, src
    adr     x1, dst
    mov     x2, #0              // byte offset
    mov     x22, #0             // blocks copied
2:  ldgm    x5, [x0]            // tags of the block at x0 (x0's own tag bits are ignored)
    stgm    x5, [x1]            // ... become the tags of the block at x1
    add     x0, x0, x21
    add     x1, x1, x21
    add     x2, x2, x21
    add     x22, x22, #1
    cmp     x2, #LEN
    b.lo    2b

    // 4. Check granule by granule with LDG.
    adr     x0, src
    adr     x1, dst
    mov     x20, #0             // mismatches
    mov     x2, #0
3:  mov     x6, x0              // LDG inserts the tag into its destination's own value,
    ldg     x6, [x0]            // so start from the plain address
    mov     x7, x1
    ldg     x7, [x1]
    ubfx    x6, x6, #56, #4
    ubfx    x7, x7, #56, #4
    cmp     x6, x7
    cinc    x20, x20, ne
    add     x0, x0, #16
    add     x1, x1, #16
    add     x2, x2, #16
    cmp     x2, #LEN
    b.ne    3b

    .bss
    .balign 256
    .globl src, dst
src:    .skip LEN
dst:    .skip LEN
