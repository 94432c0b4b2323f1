// An access to one of the MTE system registers, chosen by x9:
//   0: MRS GCR_EL1   1: MRS RGSR_EL1   2: MSR TFSR_EL1   3: MRS TFSRE0_EL1
// With HCR_EL2.ATA = 0 each traps to EL2 (EC 0x18; their accessibility pseudocode checks
// HCR_EL2.ATA); KVM hides them from a VM without MTE, so the guest gets an UNDEFINED
// exception at that instruction. With MTE they are the guest's own: x0 = the value read.
    .text
_start:
    cbz     x9, gcr_read
    cmp     x9, #1
    b.eq    rgsr_read
    cmp     x9, #2
    b.eq    tfsr_write
    b       tfsre0_read
gcr_read:
    mrs     x0, gcr_el1
    ret
rgsr_read:
    mrs     x0, rgsr_el1
    ret
tfsr_write:
    msr     tfsr_el1, xzr
    ret
tfsre0_read:
    mrs     x0, tfsre0_el1
    ret
