// MMIO accesses to a device at x0 (an IPA no RAM memslot backs), each a KVM_EXIT_MMIO whose
// size, direction, register and sign extension come from the data abort's ISS (ISV = 1):
//   ldr  w10, [x0]        4 bytes read into W10
//   ldrsh x11, [x0, #2]   2 bytes read, sign-extended to 64 bits
//   strb w12, [x0, #1]    1 byte written (w12 = 0xab)
//   str  x13, [x0, #8]    8 bytes written (x13 = 0x1122334455667788)
// and last a pair load (LDP has no instruction syndrome: ISV = 0, KVM_EXIT_ARM_NISV).
    .text
_start:
    ldr     w10, [x0]
    ldrsh   x11, [x0, #2]
    mov     w12, #0xab
    strb    w12, [x0, #1]
    ldr     x13, =0x1122334455667788
    str     x13, [x0, #8]
    ldp     x14, x15, [x0]
    ret
