// core_malloc.S -- a small tagging allocator under a random workload (row `malloc`).
//
// Objects come in four size classes (32, 64, 96, 128 bytes), from a free list per class or
// else from a bump pointer over a 32 KiB heap. malloc gives the object a random tag (IRG,
// excluding the tag it had: GMI) and colours it (ST2G over every 32 bytes); free checks it out
// (loads its first and last doublewords through its tagged pointer), retags it the same way,
// so a stale pointer would fault, and pushes it on its free list, the link written through the
// new pointer. A pseudo-random sequence (xorshift64) picks one of 64 slots per operation: an
// empty slot gets a malloc; an occupied one is used (a load and a store through its pointer)
// or freed, half the time each. Every access to an object is tag checked against the tags of
// a heap where neighbours differ.
//
// The work checksum folds in the data loaded from objects (never a pointer) and the address,
// without its tag, of every object handed out: the same on every engine. The tag checksum
// folds in the tag of every pointer handed out. Raw Unicorn runs IRG, GMI and
// ST2G as NOPs: each IRG's destination is first set to its source, so its pointers stay
// untagged and reach the same addresses. Live objects never need more than 64 * (32 + 64 +
// 96 + 128) bytes of heap; running past the heap ends the program (`bench_fail`).

        .equ    SLOTS, 64
        .equ    HEAP_SIZE, 32768

        .text
work:                                       // x1 = ITERATIONS, x6 = bench_k (core_boot.S)
        adr     x22, heap                   // the bump pointer
        add     x23, x22, #(HEAP_SIZE / 4096), lsl #12
        adr     x24, slots                  // SLOTS x {tagged pointer, size class}
        adr     x25, free_heads             // one free list per size class
        movz    x19, #0x2545, lsl #48       // xorshift64 state
        movk    x19, #0xf491, lsl #32
        movk    x19, #0x4f6c, lsl #16
        movk    x19, #0xdd1d

op:     eor     x19, x19, x19, lsl #13
        eor     x19, x19, x19, lsr #7
        eor     x19, x19, x19, lsl #17
        and     x10, x19, #(SLOTS - 1)
        add     x11, x24, x10, lsl #4
        ldp     x12, x13, [x11]
        cbz     x12, malloc
        tbnz    x19, #8, use

free:   add     x15, x13, #1
        lsl     x15, x15, #5                // size = (class + 1) * 32
        sub     x16, x15, #8
        ldr     x14, [x12]
        ldr     x17, [x12, x16]
        madd    x20, x20, x6, x14
        madd    x20, x20, x6, x17
        gmi     x9, x12, xzr
        mov     x14, x12
        irg     x14, x14, x9                // a new tag, not the one it had
        mov     x16, x14
        mov     x17, x15
1:      st2g    x16, [x16], #32
        subs    x17, x17, #32
        b.ne    1b
        ldr     x17, [x25, x13, lsl #3]
        str     x17, [x14]                  // link, through the new pointer
        str     x14, [x25, x13, lsl #3]
        stp     xzr, xzr, [x11]
        lsr     x16, x14, #56
        madd    x21, x21, x6, x16
        b       next

use:    ldr     x14, [x12, #8]
        add     x14, x14, x19
        str     x14, [x12, #8]
        madd    x20, x20, x6, x14
        b       next

malloc: ubfx    x13, x19, #9, #2            // size class
        add     x15, x13, #1
        lsl     x15, x15, #5
        ldr     x12, [x25, x13, lsl #3]
        cbz     x12, 2f
        ldr     x17, [x12]                  // unlink a freed object, through its pointer
        str     x17, [x25, x13, lsl #3]
        b       3f
2:      mov     x12, x22                    // or carve a new one
        add     x22, x22, x15
        cmp     x22, x23
        b.hi    bench_fail
3:      gmi     x9, x12, xzr
        mov     x14, x12
        irg     x14, x14, x9
        mov     x16, x14
        mov     x17, x15
4:      st2g    x16, [x16], #32
        subs    x17, x17, #32
        b.ne    4b
        sub     x16, x15, #8
        str     x19, [x14]                  // first, second and last doublewords
        str     x20, [x14, #8]
        str     x10, [x14, x16]
        stp     x14, x13, [x11]
        lsr     x16, x14, #56
        madd    x21, x21, x6, x16
        and     x16, x14, #0x00ffffffffffffff
        madd    x20, x20, x6, x16           // where it is, without its tag

next:   subs    x1, x1, #1
        b.ne    op
        ret

        .bss
        .balign 4096
slots:          .skip   SLOTS * 16
free_heads:     .skip   4 * 8
        .balign 4096
heap:           .skip   HEAP_SIZE
