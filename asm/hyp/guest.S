// guest.S -- an EL1 MTE guest for the EL2 conformance hypervisor (hyp.S), and for any other EL2
// that implements the same hypercall ABI and stage-2 map (asm/hyp/stage2.toml).
//
// Self-contained: code, strings and literals only, linked at IPA 0x4008_0000 whether it is
// assembled alone or `.include`d first in hyp.S; everything it writes lives in guest RAM at IPA
// 0x4010_0000 (stage-1 table, data, stack, tag buffer). It runs one scenario per entry:
//
//   entry at guest_entry (IPA 0x40080000), EL1h, DAIF masked, x0 = scenario number
//     0 base   HCR_EL2 = RW VM ATA            demand page, tags, MMIO, stage-2 attributes
//     1 ata0   HCR_EL2 = RW VM                MTE register traps, tag access disabled
//     2 tid    HCR_EL2 = RW VM ATA TID5 TID3  GMID_EL1 and ID_AA64PFR1_EL1 trapped
//     3 fwb    HCR_EL2 = RW VM ATA FWB        stage-2 MemAttr in FEAT_S2FWB encoding
//     4 dct    HCR_EL2 = RW VM ATA DC DCT     stage 1 off: Normal, Tagged by default
//     5 dc     HCR_EL2 = RW VM ATA DC         stage 1 off: Normal, Untagged by default
//
// Hypercall ABI: HVC #0, function number in x0, arguments in x1..x3; results in x0..x4; every
// other register is preserved. Addresses passed are IPAs (the guest maps VA = IPA).
//   0 DONE                         the scenario is finished (does not return)
//   1 PRINT     x1 = string        print a NUL-terminated line fragment
//   2 CHECK     x1 = name, x2 = got, x3 = want
//                                  EL2 prints "ok NAME" or "FAIL NAME got=0x.. want=0x.."
//   3 LAST_EXIT                    x0 = ESR_EL2, x1 = FAR_EL2, x2 = HPFAR_EL2 of the most recent
//                                  exit that was not a hypercall (for a stage-2 permission
//                                  fault, where HPFAR_EL2 is UNKNOWN, the IPA from AT S1E1R in
//                                  HPFAR format; 0 for a trapped system register), x3 = the
//                                  number of such exits in this scenario, x4 = the data of the
//                                  most recent emulated MMIO store
//   4 TAG_PEEK  x1 = IPA           x0 = the allocation tag stored in physical memory there
//   5 TAG_POKE  x1 = IPA, x2 = tag set the allocation tag in physical memory there
//
// What EL2 must do on the other exits (the guest's checks depend on it):
//   - stage-2 translation fault on a demand page (IPA 0x40200000, 0x40205000, 0x40206000,
//     0x40207000): zero the page's data and tags, map it Normal Write-Back read-write, retry;
//   - stage-2 translation fault in the MMIO window (IPA 0x0a000000, 4 KiB) with ISV = 1:
//     emulate a device whose every register reads 0xf0e1d2c3b4a59687 (truncated to the access
//     size, then sign- or zero-extended as SSE and SF say) and that records stores; with ISV = 0,
//     skip the instruction; either way resume after it;
//   - stage-2 permission fault: skip the instruction;
//   - trapped MSR/MRS (EC 0x18): writes are ignored; reads return GMID_EL1.BS = 4 for GMID_EL1,
//     the real ID_AA64PFR1_EL1 with MTE (bits 11:8) = 2 for ID_AA64PFR1_EL1, 0 otherwise; skip.
// docs/el2-programs.md gives the expected output and the exit sequence.

    .equ    HVC_DONE, 0
    .equ    HVC_PRINT, 1
    .equ    HVC_CHECK, 2
    .equ    HVC_LAST_EXIT, 3
    .equ    HVC_TAG_PEEK, 4
    .equ    HVC_TAG_POKE, 5

    .equ    GUEST_RAM, 0x40100000       // stage-1 L1 table
    .equ    GDATA, 0x40101000           // +0 EL1 exceptions, +8 ESR_EL1, +16 FAR_EL1, +24 ELR_EL1
    .equ    GSTACK_TOP, 0x40103000
    .equ    GBUF, 0x40103000            // a page of guest RAM for tag tests
    .equ    DEMAND_IPA, 0x40200000      // not mapped at stage 2 until first touched
    .equ    NC_IPA, 0x40201000          // stage 2 Normal Non-cacheable
    .equ    RO_IPA, 0x40202000          // stage 2 read-only
    .equ    P0111_IPA, 0x40203000       // stage 2 MemAttr 0b0111
    .equ    P0110_IPA, 0x40204000       // stage 2 MemAttr 0b0110
    .equ    DEMAND_STG_IPA, 0x40205000  // demand pages first touched by STG, LDG, DC GZVA
    .equ    DEMAND_LDG_IPA, 0x40206000
    .equ    DEMAND_GZVA_IPA, 0x40207000
    .equ    MMIO_IPA, 0x0a000000        // never mapped at stage 2: emulated by EL2
    .equ    ALIAS_OFFSET, 0x40000000    // VA 0x80000000+x maps IPA 0x40000000+x Untagged

    // CHECK name, reg, want: report "reg == want" (want: a constant). Clobbers x0-x3.
    .macro  CHECK name, reg, want
    mov     x2, \reg
    ldr     x3, =\want
    adr     x1, 8f
    mov     x0, #HVC_CHECK
    hvc     #0
    b       9f
8:  .asciz  "\name"
    .balign 4
9:
    .endm

    // CHECKR name, reg, reg2: report "reg == reg2" (reg2 must not be x2). Clobbers x0-x3.
    .macro  CHECKR name, reg, reg2
    mov     x2, \reg
    mov     x3, \reg2
    adr     x1, 8f
    mov     x0, #HVC_CHECK
    hvc     #0
    b       9f
8:  .asciz  "\name"
    .balign 4
9:
    .endm

    .macro  LAST_EXIT
    mov     x0, #HVC_LAST_EXIT
    hvc     #0
    .endm

    // PEEK ipa_reg: x0 = the physical allocation tag at that IPA
    .macro  PEEK reg
    mov     x1, \reg
    mov     x0, #HVC_TAG_PEEK
    hvc     #0
    .endm

    // POKE ipa_reg, tag: set the physical allocation tag at that IPA
    .macro  POKE reg, tag
    mov     x1, \reg
    mov     x2, #\tag
    mov     x0, #HVC_TAG_POKE
    hvc     #0
    .endm

    // EXC reg: reg = number of EL1 exceptions the guest has taken so far
    .macro  EXC reg
    ldr     \reg, =GDATA
    ldr     \reg, [\reg]
    .endm

    .text
    .globl  guest_entry
guest_entry:
    mov     x19, x0                     // scenario number
    msr     daifset, #0xf
    adr     x1, guest_vectors
    msr     vbar_el1, x1
    msr     spsel, #1
    ldr     x1, =GSTACK_TOP
    mov     sp, x1
    ldr     x20, =GDATA
    stp     xzr, xzr, [x20]
    stp     xzr, xzr, [x20, #16]

    // Stage 1: one L1 table, T0SZ = 25 (39-bit VA), 1 GiB blocks, VA = IPA.
    //   [0] 0x00000000 Device-nGnRE (Attr1), execute-never      (the MMIO window)
    //   [1] 0x40000000 Normal Tagged (Attr0 = 0xF0)             (RAM)
    //   [2] 0x80000000 -> IPA 0x40000000 Normal WB Untagged (Attr2 = 0xFF), execute-never
    ldr     x1, =GUEST_RAM
    mov     x2, #512
1:  subs    x2, x2, #1
    str     xzr, [x1, x2, lsl #3]
    b.ne    1b
    ldr     x2, =0x0060000000000405     // UXN | PXN | AF | AttrIndx 1 | block
    str     x2, [x1]
    ldr     x2, =0x40000701             // AF | SH inner | AttrIndx 0 | block
    str     x2, [x1, #8]
    ldr     x2, =0x0060000040000709     // UXN | PXN | AF | SH inner | AttrIndx 2 | block
    str     x2, [x1, #16]
    dsb     ishst
    ldr     x2, =0xff04f0               // MAIR_EL1: Attr0 0xF0 Tagged, Attr1 0x04, Attr2 0xFF
    msr     mair_el1, x2
    // TCR_EL1: T0SZ 25, IRGN0/ORGN0 WB WA, SH0 inner, TG0 4K, EPD1, IPS 40 bits, TBI0
    ldr     x2, =0x2200803519
    msr     tcr_el1, x2
    msr     ttbr0_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    // SCTLR_EL1: RES1 | C | I | ATA | TCF = 1 (synchronous); M except in the DC scenarios,
    // where HCR_EL2.DC makes stage 1 behave as disabled anyway (D8.2.11, AArch64.S1Enabled).
    ldr     x2, =0x0000090030d01804
    cmp     x19, #4
    b.hs    1f
    orr     x2, x2, #1
1:  msr     sctlr_el1, x2
    isb

    cmp     x19, #0
    b.eq    scenario_base
    cmp     x19, #1
    b.eq    scenario_ata0
    cmp     x19, #2
    b.eq    scenario_tid
    cmp     x19, #3
    b.eq    scenario_fwb
    cmp     x19, #5
    b.ls    scenario_dc
    CHECK   guest.unknown_scenario, x19, 0
    b       guest_done

// ---- 0: base --------------------------------------------------------------------------------
scenario_base:
    // GCR_EL1 = Exclude {0}, RRND = 0; RGSR_EL1.SEED = 0x1234: IRG is the architected LFSR
    // (ChooseRandomNonExcludedTag), so the first tag is 0xe. HCR_EL2.ATA = 1: no trap.
    mov     x1, #1
    msr     gcr_el1, x1
    ldr     x1, =0x123400
    msr     rgsr_el1, x1
    isb

    // The demand page: the first touch is a stage-2 Translation fault at level 3 (the stage-2
    // L3 table exists, the entry is invalid). EL2 zeroes data and tags, maps it, retries.
    // Single-register load, no writeback: ISV = 1, SAS = 0b11, SRT = 2, SF = 1 (ESR_EL2 ISS
    // encoding for EC 0x24); HPFAR_EL2.FIPA = IPA[47:12] in bits [43:4].
    ldr     x21, =DEMAND_IPA
    ldr     x2, [x21, #0x40]
    CHECK   base.demand.data_zeroed, x2, 0
    LAST_EXIT
    mov     x22, x1
    mov     x23, x2
    mov     x24, x3
    CHECK   base.demand.esr_el2, x0, 0x93c28007
    CHECK   base.demand.far_el2, x22, 0x40200040
    CHECK   base.demand.hpfar_el2, x23, 0x402000
    CHECK   base.demand.one_exit, x24, 1
    add     x5, x21, #0x40
    ldg     x5, [x5]
    ubfx    x5, x5, #56, #4
    CHECK   base.demand.ldg_tag_zeroed, x5, 0
    add     x5, x21, #0x80
    PEEK    x5
    CHECK   base.demand.peek_tag_zeroed, x0, 0

    // Demand pages first touched by a tag access: tag loads and stores are not single-register
    // loads/stores, so ISV = 0 (and IL = 1); STG and DC GZVA are writes (WnR = 1), LDG a read.
    // For DC GZVA FAR_EL2 is the register's address, tag and all, not the block's.
    ldr     x21, =DEMAND_STG_IPA
    mov     x5, #0x0d00000000000000
    orr     x5, x5, x21
    add     x5, x5, #0x30
    stg     x5, [x5]                    // faults, EL2 maps the page, STG is retried
    LAST_EXIT
    mov     x22, x1
    mov     x23, x2
    CHECK   base.demand_stg.esr_el2, x0, 0x92000047
    CHECKR  base.demand_stg.far_el2, x22, x5
    CHECK   base.demand_stg.hpfar_el2, x23, 0x402050
    add     x6, x21, #0x30
    ldg     x6, [x6]
    ubfx    x6, x6, #56, #4
    CHECK   base.demand_stg.retried_tag, x6, 0xd
    add     x6, x21, #0x20
    PEEK    x6
    CHECK   base.demand_stg.neighbour_zeroed, x0, 0
    ldr     x21, =DEMAND_LDG_IPA
    add     x5, x21, #0x18
    mov     x6, x5
    ldg     x6, [x6]
    LAST_EXIT
    mov     x22, x1
    CHECK   base.demand_ldg.esr_el2, x0, 0x92000007
    // LDG aligns its address down to the granule before the tag read (LDG pseudocode).
    CHECK   base.demand_ldg.far_el2, x22, DEMAND_LDG_IPA + 0x10
    ubfx    x6, x6, #56, #4
    CHECK   base.demand_ldg.retried_tag, x6, 0
    ldr     x21, =DEMAND_GZVA_IPA
    mov     x5, #0x0400000000000000
    orr     x5, x5, x21
    add     x5, x5, #0x128
    dc      gzva, x5
    LAST_EXIT
    mov     x22, x1
    mov     x23, x3
    CHECK   base.demand_gzva.esr_el2, x0, 0x92000047
    CHECKR  base.demand_gzva.far_el2, x22, x5
    CHECK   base.demand_gzva.exits, x23, 4
    add     x6, x21, #0x100
    PEEK    x6
    CHECK   base.demand_gzva.retried_tag, x0, 4

    // Tag the page: IRG (seeded LFSR, exclude {0}) -> 0xe; STG; LDG reads it back.
    ldr     x21, =DEMAND_IPA
    irg     x5, x21
    ubfx    x6, x5, #56, #4
    CHECK   base.irg.first_seeded_tag, x6, 0xe
    add     x6, x5, #0x40
    stg     x6, [x6]
    add     x7, x21, #0x40
    ldg     x7, [x7]
    ubfx    x7, x7, #56, #4
    CHECK   base.stg.ldg_reads_tag, x7, 0xe
    add     x5, x21, #0x40
    PEEK    x5
    CHECK   base.stg.peek_physical_tag, x0, 0xe
    mov     x8, #0x1234
    str     x8, [x6]
    ldr     x9, [x6]
    CHECK   base.tagged.matching_access, x9, 0x1234
    EXC     x9
    CHECK   base.tagged.matching_no_fault, x9, 0
    // Wrong tag: synchronous Tag Check Fault at EL1 (SCTLR_EL1.TCF = 1), taken by the guest's
    // own vector, not by EL2: ESR_EL1 = EC 0x25, DFSC 0b010001, ISV = 0, WnR = 0.
    // FAR_EL1[59:56] = the logical tag; [63:60] UNKNOWN (without FEAT_MTE_TAGGED_FAR): masked.
    eor     x10, x6, #0x0300000000000000
    ldr     x11, [x10]
    EXC     x9
    CHECK   base.tagcheck.el1_exception, x9, 1
    ldr     x12, [x20, #8]
    CHECK   base.tagcheck.esr_el1, x12, 0x96000011
    ldr     x12, [x20, #16]
    and     x12, x12, #0x0fffffffffffffff
    CHECKR  base.tagcheck.far_el1, x12, x10
    LAST_EXIT
    CHECK   base.tagcheck.no_vm_exit, x3, 4

    // Stage 2 Normal Non-cacheable under a Tagged stage 1: the combined attributes are not
    // Write-Back, so the page is Untagged (S2CombineS1MemAttrs, S2MemTagType): LDG reads 0, STG
    // stores nothing, nothing is checked.
    ldr     x21, =NC_IPA
    POKE    x21, 0xc
    mov     x5, #0x0900000000000000
    orr     x5, x5, x21
    stg     x5, [x5]
    mov     x6, x21
    ldg     x6, [x6]
    ubfx    x6, x6, #56, #4
    CHECK   base.s2nc.ldg_zero, x6, 0
    PEEK    x21
    CHECK   base.s2nc.stg_no_effect, x0, 0xc
    mov     x7, #0x55
    mov     x8, #0x0300000000000000     // tag 3
    orr     x8, x8, x21
    str     x7, [x8]
    ldr     x9, [x21]
    CHECK   base.s2nc.data_access, x9, 0x55
    EXC     x9                          // still the one fault of base.tagcheck: no new one
    CHECK   base.s2nc.unchecked, x9, 1

    // Stage 2 read-only: tag reads need only read permission; a tag store is a write, so STG is
    // a stage-2 Permission fault, level 3: EC 0x24, ISV = 0 (not a single general-purpose
    // register load/store), WnR = 1, DFSC 0b001111. FAR_EL2 keeps the pointer's tag (a Data
    // Abort that is not an External abort). HPFAR_EL2 is UNKNOWN for a Permission fault that is
    // not on a stage-1 walk: EL2 reports the IPA it finds with AT S1E1R.
    ldr     x21, =RO_IPA
    POKE    x21, 6
    mov     x5, x21
    ldg     x5, [x5]
    ubfx    x5, x5, #56, #4
    CHECK   base.s2ro.ldg_allowed, x5, 6
    mov     x5, #0x0300000000000000
    orr     x5, x5, x21
    stg     x5, [x5]
    LAST_EXIT
    mov     x22, x1
    mov     x23, x2
    mov     x24, x3
    CHECK   base.s2ro.stg.esr_el2, x0, 0x9200004f
    CHECKR  base.s2ro.stg.far_el2, x22, x5
    CHECK   base.s2ro.stg.ipa, x23, 0x402020
    CHECK   base.s2ro.stg.exits, x24, 5
    PEEK    x21
    CHECK   base.s2ro.stg.no_tag_stored, x0, 6
    // A single-register store to the same page: ISV = 1, SAS = 0b11, SRT = 6, SF = 1, WnR = 1.
    // Its pointer tag (0) does not match the granule's (6), but the stage-2 Permission fault is
    // what is taken: AArch64.MemSingle translates before it checks the tag.
    EXC     x25
    mov     x6, #0x66
    str     x6, [x21, #8]
    LAST_EXIT
    mov     x22, x1
    CHECK   base.s2ro.str.esr_el2, x0, 0x93c6804f
    add     x23, x21, #8
    CHECKR  base.s2ro.str.far_el2, x22, x23
    EXC     x26
    sub     x26, x26, x25
    CHECK   base.s2ro.str.no_tag_check_fault, x26, 0
    mov     x8, #0x0600000000000000
    orr     x8, x8, x21
    mov     x7, #-1
    ldr     x7, [x8, #8]
    CHECK   base.s2ro.str.not_written, x7, 0

    // MMIO: single-register accesses to an IPA with no stage-2 mapping (level 1 Translation
    // fault: the stage-2 L1 entry for 0-1 GiB is invalid, DFSC 0b000101) report ISV = 1 and
    // SAS/SSE/SRT/SF/AR; EL2 emulates the access from them and resumes after it.
    ldr     x21, =MMIO_IPA
    ldrsh   w5, [x21, #4]               // SAS 01, SSE 1, SRT 5, SF 0
    LAST_EXIT
    mov     x22, x1
    mov     x23, x2
    CHECK   base.mmio.ldrsh_w.esr_el2, x0, 0x93650005
    CHECK   base.mmio.ldrsh_w.far_el2, x22, 0x0a000004
    CHECK   base.mmio.ldrsh_w.hpfar_el2, x23, 0xa0000
    CHECK   base.mmio.ldrsh_w.value, x5, 0xffff9687
    ldar    x7, [x21]                   // SAS 11, SSE 0, SRT 7, SF 1, AR 1
    LAST_EXIT
    CHECK   base.mmio.ldar_x.esr_el2, x0, 0x93c7c005
    CHECK   base.mmio.ldar_x.value, x7, 0xf0e1d2c3b4a59687
    ldrsb   x8, [x21, #1]               // SAS 00, SSE 1, SRT 8, SF 1
    LAST_EXIT
    CHECK   base.mmio.ldrsb_x.esr_el2, x0, 0x93288005
    CHECK   base.mmio.ldrsb_x.value, x8, 0xffffffffffffff87
    ldr     w9, [x21, #8]               // SAS 10, SSE 0, SRT 9, SF 0
    LAST_EXIT
    CHECK   base.mmio.ldr_w.esr_el2, x0, 0x93890005
    CHECK   base.mmio.ldr_w.value, x9, 0xb4a59687
    ldr     x10, =0xaaaabbbb12345678
    str     w10, [x21, #8]              // SAS 10, SRT 10, SF 0, WnR 1
    LAST_EXIT
    CHECK   base.mmio.str_w.esr_el2, x0, 0x938a0045
    CHECK   base.mmio.str_w.data, x4, 0x12345678
    strh    wzr, [x21, #2]              // SAS 01, SRT 31 (the zero register), WnR 1
    LAST_EXIT
    CHECK   base.mmio.strh_wzr.esr_el2, x0, 0x935f0045
    CHECK   base.mmio.strh_wzr.data, x4, 0
    ldr     x11, =0x0123456789abcdef
    stlr    x11, [x21]                  // SAS 11, SRT 11, SF 1, AR 1, WnR 1
    LAST_EXIT
    CHECK   base.mmio.stlr_x.esr_el2, x0, 0x93cbc045
    CHECK   base.mmio.stlr_x.data, x4, 0x0123456789abcdef
    // A pair and a writeback form carry no instruction syndrome: ISV = 0.
    ldp     x12, x13, [x21]
    LAST_EXIT
    CHECK   base.mmio.ldp.esr_el2, x0, 0x92000005
    mov     x14, x21
    ldr     x15, [x14], #8
    LAST_EXIT
    CHECK   base.mmio.ldr_postindex.esr_el2, x0, 0x92000005

    // Stage-2 MemAttr 0b0111 and 0b0110 without FWB: Outer Non-cacheable, so Untagged.
    ldr     x0, =P0111_IPA
    mov     x1, #5
    bl      tag_probe
    mov     x22, x1
    CHECK   base.s2_0111.ldg, x0, 0
    CHECK   base.s2_0111.unchecked, x22, 0
    ldr     x0, =P0110_IPA
    mov     x1, #5
    bl      tag_probe
    mov     x22, x1
    CHECK   base.s2_0110.ldg, x0, 0
    CHECK   base.s2_0110.unchecked, x22, 0

    // GMID_EL1 and ID_AA64PFR1_EL1 are readable at EL1 without TID5/TID3.
    mrs     x5, gmid_el1
    and     x5, x5, #0xf
    sub     x5, x5, #2
    cmp     x5, #4
    cset    x5, ls
    CHECK   base.gmid_el1.bs_2_to_6, x5, 1
    mrs     x5, id_aa64pfr1_el1
    ubfx    x5, x5, #8, #4
    cmp     x5, #2
    cset    x5, hs
    CHECK   base.id_aa64pfr1_el1.mte2, x5, 1
    LAST_EXIT
    CHECK   base.exits_total, x3, 15
    b       guest_done

// ---- 1: HCR_EL2.ATA = 0 -----------------------------------------------------------------------
// Allocation tag access is disabled at EL1 (AllocationTagAccessIsEnabled): IRG gives tag 0, LDG
// reads 0, STG stores nothing (STZG still zeroes data), nothing is checked. EL1 accesses to
// GCR_EL1, RGSR_EL1, TFSR_EL1, TFSRE0_EL1 trap to EL2 with EC 0x18 (their MSR/MRS pseudocode:
// EL2Enabled() && HCR_EL2.ATA == '0'); ISS = Op0 Op2 Op1 CRn Rt CRm Direction.
scenario_ata0:
    mov     x1, #1
    msr     gcr_el1, x1                 // S3_0_C1_C0_6, Rt 1, write
    LAST_EXIT
    mov     x22, x3
    CHECK   ata0.msr_gcr_el1.esr_el2, x0, 0x623c0420
    CHECK   ata0.msr_gcr_el1.exits, x22, 1
    mov     x2, #0x77
    mrs     x2, rgsr_el1                // S3_0_C1_C0_5, Rt 2, read
    mov     x21, x2
    LAST_EXIT
    CHECK   ata0.mrs_rgsr_el1.esr_el2, x0, 0x623a0441
    CHECK   ata0.mrs_rgsr_el1.emulated_zero, x21, 0
    msr     tfsr_el1, x3                // S3_0_C5_C6_0, Rt 3, write
    LAST_EXIT
    CHECK   ata0.msr_tfsr_el1.esr_el2, x0, 0x6230146c
    mrs     x4, tfsre0_el1              // S3_0_C5_C6_1, Rt 4, read
    LAST_EXIT
    CHECK   ata0.mrs_tfsre0_el1.esr_el2, x0, 0x6232148d

    ldr     x21, =GBUF
    POKE    x21, 0xb
    irg     x5, x21
    ubfx    x5, x5, #56, #4
    CHECK   ata0.irg_tag_zero, x5, 0
    mov     x6, x21
    ldg     x6, [x6]
    ubfx    x6, x6, #56, #4
    CHECK   ata0.ldg_zero, x6, 0
    PEEK    x21
    CHECK   ata0.peek_tag_still_b, x0, 0xb
    mov     x7, #0x0500000000000000
    orr     x7, x7, x21
    ldr     x8, [x7]
    EXC     x9
    CHECK   ata0.wrong_tag_unchecked, x9, 0
    stg     x7, [x7]
    PEEK    x21
    CHECK   ata0.stg_no_effect, x0, 0xb
    mov     x8, #0x77
    str     x8, [x21, #16]
    add     x9, x7, #16
    stzg    x9, [x9]
    ldr     x8, [x21, #16]
    CHECK   ata0.stzg_zeroes_data, x8, 0
    add     x9, x21, #16
    PEEK    x9
    CHECK   ata0.stzg_no_tag, x0, 0
    // LDGM reads zeros and DC GVA stores no tag when tag access is disabled (LDGM: "if
    // AllocationTagAccessIsEnabled ... else data = Zeros"; DC GVA stores only when enabled).
    mov     x10, #-1
    ldgm    x10, [x21]
    CHECK   ata0.ldgm_zero, x10, 0
    mov     x11, #0x0700000000000000
    add     x12, x21, #0x40
    orr     x11, x11, x12
    dc      gva, x11
    PEEK    x12
    CHECK   ata0.dc_gva_no_tag, x0, 0
    LAST_EXIT
    CHECK   ata0.exits_total, x3, 4
    b       guest_done

// ---- 2: HCR_EL2.TID5 and TID3 ------------------------------------------------------------------
// GMID_EL1 (S3_1_C0_C0_4) is trapped by TID5, ID_AA64PFR1_EL1 (S3_0_C0_C4_1) by TID3: EC 0x18,
// reads; EL2 returns GMID_EL1.BS = 4 and ID_AA64PFR1_EL1.MTE = 2.
scenario_tid:
    mov     x1, #0
    mrs     x1, gmid_el1
    mov     x21, x1
    LAST_EXIT
    mov     x22, x3
    CHECK   tid5.mrs_gmid_el1.esr_el2, x0, 0x62384021
    CHECK   tid5.mrs_gmid_el1.emulated, x21, 4
    CHECK   tid5.mrs_gmid_el1.exits, x22, 1
    mrs     x1, id_aa64pfr1_el1
    ubfx    x21, x1, #8, #4
    LAST_EXIT
    CHECK   tid3.mrs_id_aa64pfr1_el1.esr_el2, x0, 0x62320029
    CHECK   tid3.mrs_id_aa64pfr1_el1.mte_emulated, x21, 2
    LAST_EXIT
    CHECK   tid.exits_total, x3, 2
    b       guest_done

// ---- 3: HCR_EL2.FWB = 1 --------------------------------------------------------------------
// FEAT_S2FWB (S2ApplyFWBMemAttrs): MemAttr[2] = 1 and [1:0] = 0b11 uses the stage-1 attributes,
// 0b10 forces Normal Write-Back (taking stage 1's allocation hints), 0b01 is Non-cacheable.
// Tagged when stage 1 asks for Tagged and the result is Normal WB RWA (S2MemTagType): the
// 0b0111 and 0b0110 pages that were Untagged without FWB are now Tagged; 0b0101 stays Untagged;
// the stage-1 Untagged alias of a 0b0110 page stays Untagged (only stage 1 asks for tags).
scenario_fwb:
    ldr     x0, =P0111_IPA
    mov     x1, #5
    bl      tag_probe
    mov     x22, x1
    CHECK   fwb.s2_0111.ldg, x0, 5
    CHECK   fwb.s2_0111.checked, x22, 1
    ldr     x21, =P0111_IPA
    PEEK    x21
    CHECK   fwb.s2_0111.peek, x0, 5
    ldr     x0, =P0110_IPA
    mov     x1, #6
    bl      tag_probe
    mov     x22, x1
    CHECK   fwb.s2_0110.ldg, x0, 6
    CHECK   fwb.s2_0110.checked, x22, 1
    ldr     x0, =NC_IPA + 0x100
    mov     x1, #7
    bl      tag_probe
    mov     x22, x1
    CHECK   fwb.s2_0101.ldg, x0, 0
    CHECK   fwb.s2_0101.unchecked, x22, 0
    ldr     x0, =GBUF + 0x100
    mov     x1, #8
    bl      tag_probe
    mov     x22, x1
    CHECK   fwb.ram.ldg, x0, 8
    CHECK   fwb.ram.checked, x22, 1
    // Stage-1 Untagged alias (Attr 0xFF) of the 0b0110 page: its tag (6) is not visible.
    ldr     x21, =P0110_IPA + ALIAS_OFFSET
    mov     x5, x21
    ldg     x5, [x5]
    ubfx    x5, x5, #56, #4
    CHECK   fwb.s1_untagged_alias.ldg, x5, 0
    EXC     x23
    mov     x6, #0x0900000000000000
    orr     x6, x6, x21
    ldr     x7, [x6]
    EXC     x24
    sub     x24, x24, x23
    CHECK   fwb.s1_untagged_alias.unchecked, x24, 0
    LAST_EXIT
    CHECK   fwb.exits_total, x3, 0
    b       guest_done

// ---- 4, 5: HCR_EL2.DC with and without DCT -------------------------------------------------
// With HCR_EL2.DC = 1 the EL1&0 stage 1 behaves as disabled and gives Normal Write-Back RWA
// memory; it is Tagged when HCR_EL2.DCT = 1 (AArch64.S1DisabledOutput). TCR_EL1.TBI0 still
// applies, so tagged pointers work with the MMU off.
scenario_dc:
    ldr     x0, =GBUF + 0x200
    mov     x1, #0xa
    bl      tag_probe
    mov     x22, x1
    cmp     x19, #4
    b.ne    1f
    CHECK   dct.ldg, x0, 0xa
    CHECK   dct.checked, x22, 1
    ldr     x21, =GBUF + 0x200
    PEEK    x21
    CHECK   dct.peek, x0, 0xa
    LAST_EXIT
    CHECK   dct.exits_total, x3, 0
    b       guest_done
1:  CHECK   dc.ldg, x0, 0
    CHECK   dc.unchecked, x22, 0
    LAST_EXIT
    CHECK   dc.exits_total, x3, 0
    b       guest_done

// tag_probe: x0 = address with tag 0, x1 = tag (1..14) to store with STG at it.
// Returns x0 = the tag LDG reads back, x1 = EL1 exceptions taken by a load through a pointer
// with the wrong tag (1 if the location is Tagged and checked, else 0). Clobbers x2-x9.
tag_probe:
    orr     x2, x0, x1, lsl #56
    stg     x2, [x2]
    mov     x3, x0
    ldg     x3, [x3]
    ubfx    x4, x3, #56, #4
    ldr     x5, =GDATA
    ldr     x6, [x5]
    eor     x7, x2, #0x0100000000000000
    ldr     x8, [x7]
    ldr     x9, [x5]
    sub     x1, x9, x6
    mov     x0, x4
    ret

guest_done:
    mov     x0, #HVC_DONE
    hvc     #0
    b       guest_done

// ---- EL1 vectors: a synchronous exception from EL1 (SPx) is counted and skipped --------------
    .balign 0x800
guest_vectors:
    .rept   4
    b       guest_bad_vector
    .balign 0x80
    .endr
    b       guest_sync                  // +0x200 current EL, SPx, synchronous
    .balign 0x80
    .rept   11
    b       guest_bad_vector
    .balign 0x80
    .endr

guest_sync:
    stp     x0, x1, [sp, #-16]!
    ldr     x0, =GDATA
    ldr     x1, [x0]
    add     x1, x1, #1
    str     x1, [x0]
    mrs     x1, esr_el1
    str     x1, [x0, #8]
    mrs     x1, far_el1
    str     x1, [x0, #16]
    mrs     x1, elr_el1
    str     x1, [x0, #24]
    add     x1, x1, #4
    msr     elr_el1, x1
    ldp     x0, x1, [sp], #16
    eret

guest_bad_vector:
    mrs     x5, esr_el1
    CHECK   guest.unexpected_exception.esr_el1, x5, 0
    b       guest_done

    .ltorg
guest_end:
