// What a guest sees of MTE. Run under a VM with and without KVM_CAP_ARM_MTE.
//
// Out: x10 = ID_AA64PFR1_EL1 (MTE is bits 11:8), x13 = the tag IRG chose, x11 = the tag LDG
//      reads back after STG stored 6 into buf's first granule, x12 = a load through a pointer
//      whose tag (9) is not the granule's -- reached only when the access is not tag checked.
//
// With MTE (HCR_EL2.ATA = 1, SCTLR_EL1.ATA = 1, TCF sync): IRG draws from the RGSR_EL1 LFSR
// (GCR_EL1 = 0, SEED 0x1234: 0xe), x11 = 6, and the load takes a synchronous Tag Check Fault
// (the snippet profile has no vectors: the run stops there). Without:
// AllocationTagAccessIsEnabled(EL1) is FALSE, so IRG inserts tag 0, STG stores no tag, LDG
// reads 0 (AArch64.MemTag) and the load is Tag Unchecked (AArch64.AccessIsTagChecked):
// x12 = 0x1234.
    .text
_start:
    mrs     x10, id_aa64pfr1_el1
    ldr     x0, =buf
    irg     x13, x0
    ubfx    x13, x13, #56, #4
    mov     x1, #6
    bfi     x0, x1, #56, #4
    stg     x0, [x0]
    ldg     x2, [x0]
    ubfx    x11, x2, #56, #4
    mov     x3, #0x1234
    str     x3, [x0]
    mov     x1, #9
    bfi     x0, x1, #56, #4
wrong_tag_load:
    ldr     x12, [x0]
    ret

    .data
    .balign 4096
buf:
    .skip   4096
