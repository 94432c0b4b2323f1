// overflow.S -- a byte-by-byte write that runs past its buffer stops at the granule boundary.
//
// A 48-byte object (three granules) gets tag A; its neighbour gets a different tag B. A loop
// writes 64 bytes through the object's pointer. The first 48 stores match; the 49th is the
// first byte of the neighbour's granule, whose allocation tag differs from the pointer's
// logical tag, so the store is a synchronous tag-check fault and writes nothing.
//
//   aarch64mte run asm/overflow.S --mem obj:64 --tags obj:64
//
// Ends on the unhandled exception at `overflow_store`:
//   x2 = 48 (the index of the first byte outside the object),
//   ESR_EL1 = 0x96000051 (EC 0x25, IL = 1, WnR = 1: a write, DFSC = tag check),
//   FAR_EL1 = obj + 48 with tag A, memory: obj[0..47] = 0xaa, obj[48..63] untouched (0).

    .text
    .globl _start
_start:
    adr     x0, obj
    mov     x9, #1              // exclude tag 0
    irg     x0, x0, x9          // tag A
    stg     x0, [x0]            // the object: granules 0, 1, 2
    stg     x0, [x0, #16]
    stg     x0, [x0, #32]

    gmi     x9, x0, x9          // the neighbour gets a tag other than 0 and A
    add     x5, x0, #48
    irg     x5, x5, x9          // tag B
    stg     x5, [x5]
    ubfx    x19, x0, #56, #4    // A
    ubfx    x20, x5, #56, #4    // B

    mov     w1, #0xaa
    mov     x2, #0              // byte index
    mov     x3, #64             // one granule too many
1:
    .globl overflow_store
overflow_store:
    strb    w1, [x0, x2]
    add     x2, x2, #1
    cmp     x2, x3
    b.ne    1b
    mov     x4, #1              // not reached

    .bss
    .balign 16
    .globl obj
obj:    .skip 64
