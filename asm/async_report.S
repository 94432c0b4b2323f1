// async_report.S -- asynchronous tag checking: mismatches are recorded, not raised.
//
// With SCTLR_EL1.TCF = 0b10 (asynchronous) a failed tag check at EL1 does not take an
// exception: the access completes and TFSR_EL1.TF0 (bit 0; TF1 is bit 1, for addresses with
// bit 55 set) is set. Software reads TFSR_EL1 later, after a DSB and an ISB, to learn that some
// earlier access failed, as an OS does on kernel entry and exit.
//
//   aarch64mte run asm/async_report.S --mem buf:16
//
// Ends by running off the end of the text, with no exception:
//   x10 = TFSR_EL1 before the bad accesses (0), x11 = after them (1: TF0),
//   x12 = TFSR_EL1 after software clears it (0),
//   x13 = 0x5a5a, read back through the mismatching pointer (the store landed),
//   memory at buf = 5a 5a 00 ...

    .text
    .globl _start
_start:
    // TCF (SCTLR_EL1 bits 41:40) = 0b10: asynchronous tag-check faults at EL1
    mrs     x1, sctlr_el1
    bic     x1, x1, #0x30000000000
    orr     x1, x1, #0x20000000000
    msr     sctlr_el1, x1
    isb

    msr     tfsr_el1, xzr       // start with no recorded fault
    isb
    mrs     x10, tfsr_el1

    adr     x0, buf
    mov     x9, #1
    irg     x0, x0, x9          // tag T (not 0)
    stg     x0, [x0]            // buf's granule has tag T
    adr     x2, buf             // the same address with logical tag 0: mismatches T

    movz    x3, #0x5a5a
    str     x3, [x2]            // mismatching store: completes, TF0 set
    ldr     x13, [x2]           // mismatching load: completes too

    dsb     sy                  // asynchronous faults are visible in TFSR_EL1
    isb                         // after a DSB and a context synchronization
    mrs     x11, tfsr_el1       // bit 0 (TF0): an access via an address with bit 55 = 0

    msr     tfsr_el1, xzr       // acknowledge
    isb
    mrs     x12, tfsr_el1

    .bss
    .balign 16
    .globl buf
buf:    .skip 32
