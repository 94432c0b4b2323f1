// debug_demo.S -- a program to step through with `aarch64mte debug` or gdb-multiarch.
//
// Colours a 64-byte buffer with one random tag, one granule per call to `tag_granule`, makes a
// few checked accesses that match, then reads one granule past the end of the buffer: that
// granule still has tag 0, so the load at `bad_load` is a synchronous tag-check fault.
//
//   aarch64mte debug asm/debug_demo.S
//   (mte) break loop if x0 == 3
//   (mte) continue
//   (mte) tags x20 80
//   (mte) continue                 -> stops at bad_load with the fault report
//
//   aarch64mte gdbserver asm/debug_demo.S --port 1234
//   gdb-multiarch -ex 'target remote :1234'        (symbols come from the stub)

    .text
    .globl _start
_start:
    adr     x20, buf
    mov     x9, #1              // exclude tag 0 from IRG's choice
    irg     x20, x20, x9        // x20 = buf with a random (seeded, repeatable) tag
    mov     x0, #0              // granule index

    .globl loop
loop:
    add     x1, x20, x0, lsl #4 // pointer to granule x0, with x20's tag
    bl      tag_granule
    add     x0, x0, #1
    cmp     x0, #4
    b.ne    loop

    .globl checked
checked:
    ldr     x2, [x20, #16]      // tags match: no fault
    mov     w3, #0x55
    strb    w3, [x20, #32]

    .globl bad_load
bad_load:
    ldr     x4, [x20, #64]      // one granule past the buffer: allocation tag 0 -> fault
    ret

    .globl tag_granule
tag_granule:                    // set the allocation tag of the granule x1 points to
    stg     x1, [x1]
    ret

    .bss
    .balign 16
    .globl buf
buf:    .skip 64
after:  .skip 64
