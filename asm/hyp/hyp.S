// hyp.S -- an EL2 hypervisor that runs the MTE guest (guest.S) at EL1 behind a stage-2
// translation, one scenario per HCR_EL2 setting (0-5, see guest.S), then checks MTE at EL2 in
// host mode ({E2H,TGE} = {1,1}, scenario 6, no guest), and prints one line per check:
// "ok NAME" or "FAIL NAME got=0x.. want=0x..", then "# N checks, F failed"; the exit status
// (semihosting SYS_EXIT_EXTENDED) is F.
//
//   qemu-system-aarch64 -M virt,mte=on,virtualization=on -cpu max -semihosting -nographic \
//       -kernel hyp.elf                      (hyp.elf: aarch64mte asm asm/hyp/hyp.S -o hyp.elf)
//   aarch64mte run asm/hyp/hyp.S --boot-el 2
//
// Physical memory (RAM at 0x40000000):
//   0x40080000  the guest image (guest.S, included first), 64 KiB; IPA = PA
//   0x40090000  the hypervisor: text, then rodata, data and bss (tables, stack), page aligned;
//               never mapped at stage 2
//   0x40100000  guest RAM (64 KiB), 0x40200000.. the guest's special pages; IPA = PA
//
// EL2 runs with its own stage 1 (TTBR0_EL2: RAM as Normal Tagged, SCTLR_EL2.ATA = 1, TCF = 0)
// so that it can read, set and zero allocation tags of guest memory by physical address.
//
// Stage 2 (VMSAv8-64, 4 KiB granule) is laid out as Linux KVM does for a 40-bit IPA space:
// VTCR_EL2.T0SZ = 24, SL0 = 1 (start at level 1), two concatenated level-1 tables (IPA[39:30]
// indexes 1024 entries), TG0 = 4K, SH0 = Inner, ORGN0 = IRGN0 = WB RA WA, PS = the PA range
// (ID_AA64MMFR0_EL1.PARange, at most 48 bits). Stage-2 descriptors: MemAttr[3:0] bits [5:2],
// S2AP bits [7:6] (bit 6 read, bit 7 write), SH bits [9:8], AF bit 10, XN bit 54.
// The map is the table s2_map below; asm/hyp/stage2.toml describes the same map.

    .text
    .include "guest.S"
    .org    0x10000

    .equ    NSCENARIOS, 6
    .equ    NDEMAND, 4
    .equ    L3_BASE_IPA, 0x40000000      // the two L3 tables cover 0x40000000..0x403fffff
    .equ    DEVICE_VALUE, 0xf0e1d2c3b4a59687

    // S2 descriptor attribute helpers
    .equ    S2_PAGE, 3
    .equ    S2_SH_INNER, (3 << 8)
    .equ    S2_AF, (1 << 10)

    .globl  _start
_start:
    mrs     x0, currentel
    ubfx    x0, x0, #2, #2
    cmp     x0, #2
    b.eq    1f
    // Not at EL2 (the MMU is off at whatever EL this is; semihosting still works).
    adr     x1, msg_not_el2
    mov     x0, #4                      // SYS_WRITE0
    hlt     #0xf000
    mov     x0, #1
    b       semihost_exit
1:  adr     x0, hyp_stack_top
    mov     sp, x0
    adr     x0, hyp_vectors
    msr     vbar_el2, x0

    // ---- EL2 stage 1: L1 table, 1 GiB blocks, VA = PA ----------------------------------------
    //   [0] 0x00000000 Device-nGnRE (Attr1), XN       [1] 0x40000000 Normal Tagged (Attr0 0xF0)
    adr     x0, hyp_l1
    ldr     x1, =0x0040000000000405
    str     x1, [x0]
    ldr     x1, =0x40000701
    str     x1, [x0, #8]
    dsb     ishst
    ldr     x1, =0x04f0
    msr     mair_el2, x1
    // TCR_EL2 (E2H = 0): RES1 bits 31, 23 | TBI (20) | PS 40 bits | TG0 4K | SH0 inner |
    // ORGN0/IRGN0 WB WA | T0SZ 25. TBI lets STG take the tag from the address.
    ldr     x1, =0x80923519
    msr     tcr_el2, x1
    msr     ttbr0_el2, x0
    isb
    tlbi    alle2
    dsb     ish
    isb
    // SCTLR_EL2 (E2H = 0): RES1 | M | C | SA | I | ATA (43); TCF = 0: EL2 accesses are unchecked.
    ldr     x1, =0x0000080030c5183d
    msr     sctlr_el2, x1
    isb

    // ---- EL2 controls that reset to UNKNOWN values --------------------------------------------
    mov     x0, #0x22ff                 // CPTR_EL2: RES1 bits only, no FP/SVE/SME traps
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mov     x0, #3                      // CNTHCTL_EL2.EL1PCTEN, EL1PCEN
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    mov     x1, #0                      // MDCR_EL2: no debug traps, HPMN = PMCR_EL0.N
    mrs     x0, id_aa64dfr0_el1
    ubfx    x0, x0, #8, #4              // PMUVer
    cbz     x0, 1f
    cmp     x0, #0xf
    b.eq    1f
    mrs     x1, pmcr_el0
    ubfx    x1, x1, #11, #5
1:  msr     mdcr_el2, x1
    mrs     x0, id_aa64mmfr0_el1
    ubfx    x0, x0, #56, #4             // FGT: clear the fine-grained trap registers
    cbz     x0, 1f
    msr     s3_4_c1_c1_4, xzr           // HFGRTR_EL2
    msr     s3_4_c1_c1_5, xzr           // HFGWTR_EL2
    msr     s3_4_c1_c1_6, xzr           // HFGITR_EL2
    msr     s3_4_c3_c1_4, xzr           // HDFGRTR_EL2
    msr     s3_4_c3_c1_5, xzr           // HDFGWTR_EL2
1:  mrs     x0, id_aa64mmfr1_el1
    ubfx    x0, x0, #40, #4             // HCX: HCRX_EL2 = 0
    cbz     x0, 1f
    msr     s3_4_c1_c2_2, xzr
1:  isb

    // ---- stage 2 ---------------------------------------------------------------------------
    mrs     x0, id_aa64mmfr0_el1
    and     x0, x0, #0xf                // PARange
    mov     x1, #5
    cmp     x0, x1
    csel    x0, x0, x1, ls
    ldr     x1, =0x80003558             // RES1 | SH0 | ORGN0 | IRGN0 | SL0 = 1 | T0SZ = 24
    orr     x1, x1, x0, lsl #16
    msr     vtcr_el2, x1
    adr     x0, s2_l1
    adr     x1, s2_l2
    orr     x1, x1, #3
    str     x1, [x0, #8]                // L1[1]: IPA 0x40000000..0x7fffffff -> L2
    adr     x0, s2_l2
    adr     x1, s2_l3
    orr     x2, x1, #3
    str     x2, [x0]                    // L2[0]: 0x40000000..0x401fffff -> L3 (first)
    add     x2, x2, #0x1000
    str     x2, [x0, #8]                // L2[1]: 0x40200000..0x403fffff -> L3 (second)
    adr     x0, s2_l1
    orr     x0, x0, #(1 << 48)          // VMID 1
    msr     vttbr_el2, x0
    isb

    // Stale data and tags on the demand pages, as a previous owner could leave them: tag 0xa,
    // data 0xdeadbeef... The guest must see neither.
    adr     x3, demand_pages
    mov     x4, #NDEMAND
    ldr     x2, =0xdeadbeefdeadbeef
    mov     x5, #0x0a00000000000000
2:  ldr     x0, [x3], #8
    orr     x0, x0, x5
    mov     x1, #256
1:  stg     x0, [x0]
    stp     x2, x2, [x0], #16
    subs    x1, x1, #1
    b.ne    1b
    subs    x4, x4, #1
    b.ne    2b
    dsb     ish

    adr     x0, msg_banner
    bl      out_str
    bl      out_flush
    adr     x0, name_boot_el2
    mov     x1, #2
    mov     x2, #2
    bl      report

// ---- one guest run per scenario --------------------------------------------------------------
run_scenario:
    adr     x0, cur_scenario
    ldr     x19, [x0]
    cmp     x19, #NSCENARIOS
    b.hs    host_scenario
    adr     x0, scenarios
    add     x20, x0, x19, lsl #4
    ldr     x0, [x20, #8]               // header line
    bl      out_str
    bl      out_flush
    adr     x0, exit_log
    stp     xzr, xzr, [x0]
    stp     xzr, xzr, [x0, #16]
    str     xzr, [x0, #32]
    ldr     x21, [x20]                  // HCR_EL2
    ubfx    x0, x21, #46, #1            // FWB
    bl      s2_build
    msr     hcr_el2, x21
    isb
    tlbi    vmalls12e1
    dsb     ish
    isb
    ldr     x0, =0x30d00800             // SCTLR_EL1: RES1, MMU off, until the guest sets it
    msr     sctlr_el1, x0
    adr     x0, guest_entry
    msr     elr_el2, x0
    mov     x0, #0x3c5                  // EL1h, DAIF masked
    msr     spsr_el2, x0
    isb
    mov     x0, x19
    eret

scenario_finished:                      // from HVC DONE
    adr     x0, hyp_stack_top
    mov     sp, x0
    adr     x0, cur_scenario
    ldr     x1, [x0]
    add     x1, x1, #1
    str     x1, [x0]
    b       run_scenario

// ---- 6: host mode, EL2 alone: HCR_EL2.{E2H,TGE} = {1,1}, HCR_EL2.ATA = 0 ---------------------
// EL2 now runs in the EL2&0 regime (TCR_EL2 and SCTLR_EL2 take the EL1 layouts). Checks:
// - register redirection (FEAT_VHE): at EL2 with E2H = 1, the TFSR_EL1 encoding accesses
//   TFSR_EL2 and TFSR_EL12 (S3_5_C5_C6_0) accesses TFSR_EL1;
// - HCR_EL2.ATA gates only EL1 and EL0 outside host mode (AllocationTagAccessIsEnabled: its
//   HCR_EL2.ATA term requires el IN {EL0, EL1} and {E2H,TGE} != '11'): EL2 keeps tag access;
// - SCTLR_EL2.TCF = 2 (asynchronous) at EL2: a mismatching store sets TFSR_EL2.TF0 and raises
//   nothing (AArch64.ReportTagCheckFault(EL2, bit 55));
// - IRG at EL2 takes GCR_EL1.Exclude (there is no GCR_EL2).
host_scenario:
    adr     x0, hdr_host
    bl      out_str
    bl      out_flush
    mov     x0, #2
    msr     tfsr_el1, x0                // TFSR_EL1 = TF1
    msr     tfsr_el2, xzr
    ldr     x0, =0x30c50830             // EL2 MMU off while the regime changes
    msr     sctlr_el2, x0
    isb
    ldr     x0, =0x0000000488000000     // HCR_EL2: E2H (34) | RW (31) | TGE (27)
    msr     hcr_el2, x0
    isb
    // TCR_EL2 in the EL1 layout: T0SZ 25, WB WA, inner, TG0 4K, EPD1, IPS 40 bits, TBI0.
    ldr     x0, =0x2200803519
    msr     tcr_el2, x0
    isb
    tlbi    alle2
    dsb     ish
    isb
    // SCTLR_EL2 in the EL1 layout: RES1 | M | C | SA | I | ATA (43) | TCF = 2 (41:40).
    ldr     x0, =0x00000a0030d0180d
    msr     sctlr_el2, x0
    isb
    mrs     x1, tfsr_el1
    adr     x0, name_host_tfsr_el1
    mov     x2, #0
    bl      report
    mrs     x1, s3_5_c5_c6_0            // TFSR_EL12
    adr     x0, name_host_tfsr_el12
    mov     x2, #2
    bl      report
    adr     x19, host_granule
    mov     x20, #0x0500000000000000
    orr     x20, x20, x19
    stg     x20, [x20]
    mov     x1, x19
    ldg     x1, [x1]
    ubfx    x1, x1, #56, #4
    adr     x0, name_host_stg
    mov     x2, #5
    bl      report
    // This code runs in the exception taken for the guest's last HVC: entry to EL2 set
    // PSTATE.TCO (AArch64.TakeException), so nothing is checked until TCO is cleared.
    mrs     x1, tco
    adr     x0, name_host_tco
    mov     x2, #(1 << 25)
    bl      report
    msr     tco, #0
    mov     x21, #0x0300000000000000
    orr     x21, x21, x19
    mov     x0, #0x77
    str     x0, [x21]                   // wrong tag: asynchronous fault
    dsb     sy
    isb
    mrs     x1, tfsr_el1                // = TFSR_EL2 here
    adr     x0, name_host_async
    mov     x2, #1
    bl      report
    mrs     x1, s3_5_c5_c6_0
    adr     x0, name_host_async_el1
    mov     x2, #2
    bl      report
    ldr     x1, [x20]
    adr     x0, name_host_store_landed
    mov     x2, #0x77
    bl      report
    ldr     x0, =0xff7f                 // GCR_EL1: exclude every tag but 7, RRND = 0
    msr     gcr_el1, x0
    isb
    irg     x1, x19
    ubfx    x1, x1, #56, #4
    adr     x0, name_host_irg
    mov     x2, #7
    bl      report
    ldr     x0, =0x0000080030d0180d     // TCF = 0 again
    msr     sctlr_el2, x0
    isb

all_done:
    adr     x0, msg_sum1
    bl      out_str
    adr     x0, n_checks
    ldr     x0, [x0]
    bl      out_dec
    adr     x0, msg_sum2
    bl      out_str
    adr     x0, n_failed
    ldr     x0, [x0]
    bl      out_dec
    adr     x0, msg_sum3
    bl      out_str
    bl      out_flush
    adr     x0, n_failed
    ldr     x0, [x0]
    b       semihost_exit

// semihost_exit: x0 = exit code. SYS_EXIT_EXTENDED (0x20) with ADP_Stopped_ApplicationExit.
semihost_exit:
    adr     x1, exit_block
    mov     x2, #0x26
    movk    x2, #2, lsl #16
    stp     x2, x0, [x1]
    mov     x0, #0x20
    hlt     #0xf000
1:  wfi
    b       1b

// ---- stage-2 map ---------------------------------------------------------------------------
// s2_build: x0 = HCR_EL2.FWB the map is for. Rewrites both L3 tables from s2_map (plus the
// demand page once it has been faulted in) and invalidates the VMID's TLB entries. Only called
// while no guest runs, so break-before-make is the whole-table clear + TLBI below.
s2_build:
    stp     x29, x30, [sp, #-16]!
    mov     x9, x0
    adr     x10, s2_l3
    mov     x1, #1024
1:  subs    x1, x1, #1
    str     xzr, [x10, x1, lsl #3]
    b.ne    1b
    dsb     ishst
    tlbi    vmalls12e1
    dsb     ish
    adr     x11, s2_map
    adr     x12, s2_map_end
2:  cmp     x11, x12
    b.hs    4f
    ldp     x13, x14, [x11]             // IPA, size
    ldp     w0, w1, [x11, #16]          // kind, permissions
    mov     x2, x9
    bl      s2_attrs
    add     x14, x13, x14
    mov     x5, #L3_BASE_IPA
3:  orr     x3, x13, x0
    sub     x4, x13, x5
    lsr     x4, x4, #12
    str     x3, [x10, x4, lsl #3]
    add     x13, x13, #0x1000
    cmp     x13, x14
    b.lo    3b
    add     x11, x11, #24
    b       2b
4:  mov     x11, #0                     // demand pages faulted in so far
5:  adr     x0, demand_mapped
    ldr     x0, [x0, x11, lsl #3]
    cbz     x0, 6f
    adr     x1, demand_pages
    ldr     x1, [x1, x11, lsl #3]
    mov     x0, x9
    bl      s2_map_demand
6:  add     x11, x11, #1
    cmp     x11, #NDEMAND
    b.lo    5b
    dsb     ishst
    tlbi    vmalls12e1
    dsb     ish
    isb
    ldp     x29, x30, [sp], #16
    ret

// s2_map_demand: x0 = FWB, x1 = IPA of a demand page. Maps it Normal Write-Back, read-write,
// execute-never.
s2_map_demand:
    stp     x29, x30, [sp, #-16]!
    stp     x1, xzr, [sp, #-16]!
    mov     x2, x0
    mov     w0, #0
    mov     w1, #3
    bl      s2_attrs
    ldp     x1, xzr, [sp], #16
    orr     x0, x0, x1
    adr     x2, s2_l3
    mov     x3, #L3_BASE_IPA
    sub     x1, x1, x3
    lsr     x1, x1, #12
    str     x0, [x2, x1, lsl #3]
    dsb     ishst
    ldp     x29, x30, [sp], #16
    ret

// s2_attrs: w0 = kind, w1 = permissions (1 r, 2 w, 4 x), x2 = FWB -> x0 = page descriptor bits
// other than the output address. Clobbers x1-x3.
s2_attrs:
    adr     x3, s2_memattr
    add     x3, x3, w0, uxtw #1
    ldrb    w3, [x3, x2]                // MemAttr[3:0] for this kind and FWB
    lsl     x0, x3, #2
    orr     x0, x0, #S2_PAGE
    orr     x0, x0, #S2_SH_INNER
    orr     x0, x0, #S2_AF
    and     x3, x1, #3                  // S2AP: bit 6 read, bit 7 write
    orr     x0, x0, x3, lsl #6
    tst     x1, #4
    b.ne    1f
    orr     x0, x0, #(1 << 54)          // XN
1:  ret

// ---- exits from the guest --------------------------------------------------------------------
el2_lower_sync:
    msr     tpidr_el2, x0
    adr     x0, gregs
    stp     x1, x2, [x0, #8]
    stp     x3, x4, [x0, #24]
    stp     x5, x6, [x0, #40]
    stp     x7, x8, [x0, #56]
    stp     x9, x10, [x0, #72]
    stp     x11, x12, [x0, #88]
    stp     x13, x14, [x0, #104]
    stp     x15, x16, [x0, #120]
    stp     x17, x18, [x0, #136]
    stp     x19, x20, [x0, #152]
    stp     x21, x22, [x0, #168]
    stp     x23, x24, [x0, #184]
    stp     x25, x26, [x0, #200]
    stp     x27, x28, [x0, #216]
    stp     x29, x30, [x0, #232]
    mrs     x1, tpidr_el2
    str     x1, [x0]
    bl      handle_exit
    adr     x0, gregs
    ldp     x1, x2, [x0, #8]
    ldp     x3, x4, [x0, #24]
    ldp     x5, x6, [x0, #40]
    ldp     x7, x8, [x0, #56]
    ldp     x9, x10, [x0, #72]
    ldp     x11, x12, [x0, #88]
    ldp     x13, x14, [x0, #104]
    ldp     x15, x16, [x0, #120]
    ldp     x17, x18, [x0, #136]
    ldp     x19, x20, [x0, #152]
    ldp     x21, x22, [x0, #168]
    ldp     x23, x24, [x0, #184]
    ldp     x25, x26, [x0, #200]
    ldp     x27, x28, [x0, #216]
    ldp     x29, x30, [x0, #232]
    ldr     x0, [x0]
    eret

// handle_exit: the guest's registers are in gregs (x0..x30); x19 = ESR_EL2 from here on.
handle_exit:
    stp     x29, x30, [sp, #-16]!
    mrs     x19, esr_el2
    lsr     x20, x19, #26
    cmp     x20, #0x16
    b.eq    exit_hvc
    cmp     x20, #0x24
    b.eq    exit_dabt
    cmp     x20, #0x18
    b.eq    exit_sysreg
    b       exit_unexpected
exit_return:
    ldp     x29, x30, [sp], #16
    ret

// Resume the guest after the instruction that exited.
exit_skip:
    mrs     x0, elr_el2
    add     x0, x0, #4
    msr     elr_el2, x0
    b       exit_return

// log_exit: record an exit that is not a hypercall. x0 = ESR, x1 = FAR, x2 = HPFAR.
log_exit:
    adr     x3, exit_log
    stp     x0, x1, [x3]
    str     x2, [x3, #16]
    ldr     x4, [x3, #24]
    add     x4, x4, #1
    str     x4, [x3, #24]
    ret

// ---- hypercalls (EC 0x16). ELR_EL2 already points after the HVC. ----
exit_hvc:
    adr     x21, gregs
    ldr     x0, [x21]
    cmp     x0, #0
    b.eq    scenario_finished
    cmp     x0, #1
    b.eq    hvc_print
    cmp     x0, #2
    b.eq    hvc_check
    cmp     x0, #3
    b.eq    hvc_last_exit
    cmp     x0, #4
    b.eq    hvc_tag_peek
    cmp     x0, #5
    b.eq    hvc_tag_poke
    mov     x0, #-1                     // unknown function
    str     x0, [x21]
    b       exit_return

hvc_print:
    ldr     x0, [x21, #8]
    bl      out_str
    bl      out_flush
    str     xzr, [x21]
    b       exit_return

hvc_check:
    ldr     x0, [x21, #8]
    ldr     x1, [x21, #16]
    ldr     x2, [x21, #24]
    bl      report
    str     x0, [x21]
    b       exit_return

hvc_last_exit:
    adr     x0, exit_log
    ldp     x1, x2, [x0]
    stp     x1, x2, [x21]
    ldp     x1, x2, [x0, #16]
    stp     x1, x2, [x21, #16]
    ldr     x1, [x0, #32]
    str     x1, [x21, #32]
    b       exit_return

// Tag peek/poke: only guest RAM and the guest's special pages (IPA = PA there).
hvc_tag_peek:
    ldr     x1, [x21, #8]
    bl      guest_tag_range
    cbz     x0, 1f
    ldg     x1, [x1]
    ubfx    x0, x1, #56, #4
    str     x0, [x21]
    b       exit_return
1:  mov     x0, #-1
    str     x0, [x21]
    b       exit_return

hvc_tag_poke:
    ldr     x1, [x21, #8]
    bl      guest_tag_range
    cbz     x0, 1b
    ldr     x2, [x21, #16]
    and     x1, x1, #~0xf
    bfi     x1, x2, #56, #4
    stg     x1, [x1]
    dsb     ish
    str     xzr, [x21]
    b       exit_return

// guest_tag_range: x1 = IPA -> x0 = 1 if EL2 lets the guest peek/poke its tag, else 0.
guest_tag_range:
    ldr     x2, =GUEST_RAM
    ldr     x3, =DEMAND_GZVA_IPA + 0x1000
    cmp     x1, x2
    ccmp    x1, x3, #2, hs              // C clear (lo) only if x1 >= GUEST_RAM and x1 < end
    cset    x0, lo
    ret

// ---- data aborts from the guest (EC 0x24) ----
exit_dabt:
    mrs     x21, far_el2
    mrs     x22, hpfar_el2
    mov     x0, x19
    mov     x1, x21
    mov     x2, x22
    bl      log_exit
    and     x23, x19, #0x3c             // DFSC without the level
    cmp     x23, #0x0c
    b.eq    dabt_permission
    cmp     x23, #0x04
    b.ne    exit_unexpected
    ubfx    x24, x22, #4, #40           // HPFAR_EL2.FIPA = IPA[51:12]
    lsl     x24, x24, #12
    adr     x25, demand_pages
    mov     x26, #0
1:  ldr     x0, [x25, x26, lsl #3]
    cmp     x24, x0
    b.eq    dabt_demand
    add     x26, x26, #1
    cmp     x26, #NDEMAND
    b.lo    1b
    ldr     x25, =MMIO_IPA
    cmp     x24, x25
    b.eq    dabt_mmio
    b       exit_unexpected

// First touch of a demand page (x24 = its IPA, x26 = its index): zero its data and tags with
// DC GZVA at EL2 (through EL2's Tagged map, address tag 0), map it, and retry the access
// (ELR_EL2 unchanged).
dabt_demand:
    mrs     x1, dczid_el0
    and     x1, x1, #0xf
    mov     x2, #4
    lsl     x2, x2, x1                  // block size in bytes
    mov     x0, x24
    add     x3, x0, #0x1000
1:  dc      gzva, x0
    add     x0, x0, x2
    cmp     x0, x3
    b.lo    1b
    dsb     ish
    adr     x0, demand_mapped
    mov     x1, #1
    str     x1, [x0, x26, lsl #3]
    mrs     x0, hcr_el2
    ubfx    x0, x0, #46, #1
    mov     x1, x24
    bl      s2_map_demand
    isb
    b       exit_return

// Permission fault: HPFAR_EL2 is UNKNOWN (it is written only for Translation, Access flag and
// Address size faults, and for faults on a stage-1 walk); find the IPA with AT S1E1R, as KVM
// does, log it in HPFAR format, and skip the instruction.
dabt_permission:
    mrs     x25, par_el1
    at      s1e1r, x21
    isb
    mrs     x24, par_el1
    msr     par_el1, x25
    tbnz    x24, #0, exit_unexpected
    ubfx    x24, x24, #12, #40
    lsl     x24, x24, #4
    adr     x0, exit_log
    str     x24, [x0, #16]
    b       exit_skip

// MMIO window: emulate a single-register access from the syndrome (ISV = 1): SAS size, SSE sign
// extension, SRT register (31 = zero register), SF 64-bit register, WnR direction. ISV = 0: skip.
dabt_mmio:
    tbz     x19, #24, exit_skip
    ubfx    x21, x19, #22, #2           // SAS
    ubfx    x22, x19, #16, #5           // SRT
    mov     x23, #8
    lsl     x23, x23, x21               // access size in bits
    mov     x25, #64
    sub     x25, x25, x23
    adr     x26, gregs
    tbnz    x19, #6, 3f
    ldr     x24, =DEVICE_VALUE
    lsl     x24, x24, x25
    tbnz    x19, #21, 1f
    lsr     x24, x24, x25
    b       2f
1:  asr     x24, x24, x25
2:  tbnz    x19, #15, 1f
    mov     w24, w24                    // a W register: the upper half becomes zero
1:  cmp     x22, #31
    b.eq    exit_skip
    str     x24, [x26, x22, lsl #3]
    b       exit_skip
3:  mov     x24, #0
    cmp     x22, #31
    b.eq    1f
    ldr     x24, [x26, x22, lsl #3]
1:  lsl     x24, x24, x25
    lsr     x24, x24, x25
    adr     x0, exit_log
    str     x24, [x0, #32]
    b       exit_skip

// ---- trapped MSR/MRS (EC 0x18) ----
// ISS: Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt [9:5], CRm [4:1], Direction [0].
exit_sysreg:
    mov     x0, x19
    mov     x1, #0
    mov     x2, #0
    bl      log_exit
    tbz     x19, #0, exit_skip          // MSR: ignored
    ubfx    x21, x19, #5, #5            // Rt
    ldr     x0, =0x3ffc1e
    and     x22, x19, x0                // the register, without Rt and Direction
    mov     x24, #0
    ldr     x0, =0x384000               // GMID_EL1 = S3_1_C0_C0_4
    cmp     x22, x0
    b.ne    1f
    mov     x24, #4                     // BS = 4: 64-byte LDGM/STGM blocks
    b       2f
1:  ldr     x0, =0x320008               // ID_AA64PFR1_EL1 = S3_0_C0_C4_1
    cmp     x22, x0
    b.ne    2f
    mrs     x24, id_aa64pfr1_el1
    bic     x24, x24, #0xf00
    orr     x24, x24, #0x200            // MTE = 2 (FEAT_MTE2)
2:  cmp     x21, #31
    b.eq    exit_skip
    adr     x0, gregs
    str     x24, [x0, x21, lsl #3]
    b       exit_skip

// Anything else ends the run: print what it was, count it as a failure.
exit_unexpected:
    adr     x0, msg_unexpected_exit
    bl      out_str
    mov     x0, x19
    bl      out_hex
    adr     x0, msg_far
    bl      out_str
    mrs     x0, far_el2
    bl      out_hex
    adr     x0, msg_elr
    bl      out_str
    mrs     x0, elr_el2
    bl      out_hex
    adr     x0, msg_nl
    bl      out_str
    bl      out_flush
    b       fail_and_finish

el2_bad_vector:
    adr     x0, hyp_stack_top
    mov     sp, x0
    adr     x0, msg_bad_vector
    bl      out_str
    mrs     x0, esr_el2
    bl      out_hex
    adr     x0, msg_elr
    bl      out_str
    mrs     x0, elr_el2
    bl      out_hex
    adr     x0, msg_nl
    bl      out_str
    bl      out_flush
fail_and_finish:
    adr     x0, hyp_stack_top
    mov     sp, x0
    adr     x0, n_failed
    ldr     x1, [x0]
    add     x1, x1, #1
    str     x1, [x0]
    adr     x0, n_checks
    ldr     x1, [x0]
    add     x1, x1, #1
    str     x1, [x0]
    b       all_done

// ---- output ----------------------------------------------------------------------------------
// report: x0 = check name, x1 = got, x2 = want. Prints the line, counts it; x0 = 1 if ok.
report:
    stp     x29, x30, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    adr     x0, n_checks
    ldr     x1, [x0]
    add     x1, x1, #1
    str     x1, [x0]
    cmp     x20, x21
    b.ne    1f
    adr     x0, msg_ok
    bl      out_str
    mov     x0, x19
    bl      out_str
    adr     x0, msg_nl
    bl      out_str
    bl      out_flush
    mov     x0, #1
    b       2f
1:  adr     x0, n_failed
    ldr     x1, [x0]
    add     x1, x1, #1
    str     x1, [x0]
    adr     x0, msg_fail
    bl      out_str
    mov     x0, x19
    bl      out_str
    adr     x0, msg_got
    bl      out_str
    mov     x0, x20
    bl      out_hex
    adr     x0, msg_want
    bl      out_str
    mov     x0, x21
    bl      out_hex
    adr     x0, msg_nl
    bl      out_str
    bl      out_flush
    mov     x0, #0
2:  ldp     x21, x22, [sp], #16
    ldp     x19, x20, [sp], #16
    ldp     x29, x30, [sp], #16
    ret

// out_str: append the NUL-terminated string at x0 to the line (cut at the buffer's end).
out_str:
    adr     x1, line_ptr
    ldr     x2, [x1]
    adr     x4, line_buf_end - 1
1:  cmp     x2, x4
    b.hs    2f
    ldrb    w3, [x0], #1
    cbz     w3, 2f
    strb    w3, [x2], #1
    b       1b
2:  str     x2, [x1]
    ret

// out_char: append the character in w0.
out_char:
    adr     x1, line_ptr
    ldr     x2, [x1]
    adr     x4, line_buf_end - 1
    cmp     x2, x4
    b.hs    1f
    strb    w0, [x2], #1
    str     x2, [x1]
1:  ret

// out_hex: append x0 as 0x followed by its hex digits, no leading zeros.
out_hex:
    stp     x29, x30, [sp, #-16]!
    mov     x5, x0
    mov     w0, #'0'
    bl      out_char
    mov     w0, #'x'
    bl      out_char
    clz     x6, x5
    mov     x7, #63
    sub     x6, x7, x6
    and     x6, x6, #~3                 // shift of the first digit
    cbnz    x5, 1f
    mov     x6, #0                      // 0 prints as 0x0
1:  lsr     x0, x5, x6
    and     x0, x0, #0xf
    cmp     x0, #10
    add     x7, x0, #'0'
    add     x0, x0, #('a' - 10)
    csel    x0, x7, x0, lo
    bl      out_char
    subs    x6, x6, #4
    b.ge    1b
    ldp     x29, x30, [sp], #16
    ret

// out_dec: append x0 in decimal.
out_dec:
    stp     x29, x30, [sp, #-16]!
    sub     sp, sp, #32
    mov     x5, x0
    mov     x6, #0
    mov     x7, #10
1:  udiv    x8, x5, x7
    msub    x9, x8, x7, x5
    add     x9, x9, #'0'
    strb    w9, [sp, x6]
    add     x6, x6, #1
    mov     x5, x8
    cbnz    x5, 1b
2:  sub     x6, x6, #1
    ldrb    w0, [sp, x6]
    bl      out_char
    cbnz    x6, 2b
    add     sp, sp, #32
    ldp     x29, x30, [sp], #16
    ret

// out_flush: write the line with SYS_WRITE0 and start a new one.
out_flush:
    adr     x1, line_ptr
    ldr     x2, [x1]
    strb    wzr, [x2]
    adr     x2, line_buf
    str     x2, [x1]
    mov     x1, x2
    mov     x0, #4
    hlt     #0xf000
    ret

// ---- EL2 vectors -----------------------------------------------------------------------------
    .balign 0x800
hyp_vectors:
    .rept   8
    b       el2_bad_vector
    .balign 0x80
    .endr
    b       el2_lower_sync              // +0x400 lower EL, AArch64, synchronous
    .balign 0x80
    .rept   7
    b       el2_bad_vector
    .balign 0x80
    .endr

    .ltorg

// Read-only data stays in .text and zero-initialised data in .data: GNU ld would merge
// .rodata into the text segment and .bss into the data segment, and the ELF files of the two
// assemblers would then differ in their program headers.
// Scenarios: HCR_EL2 (RW = bit 31, VM = 0, DC = 12, TID3 = 18, FWB = 46, ATA = 56, DCT = 57,
// TID5 = 58) and the header line.
    .balign 8
scenarios:
    .quad   0x0100000080000001, hdr_base
    .quad   0x0000000080000001, hdr_ata0
    .quad   0x0500000080040001, hdr_tid
    .quad   0x0100400080000001, hdr_fwb
    .quad   0x0300000080001001, hdr_dct
    .quad   0x0100000080001001, hdr_dc

// The stage-2 map (asm/hyp/stage2.toml): IPA, size, kind, permissions (1 r, 2 w, 4 x); PA = IPA.
// Kinds: 0 Normal Write-Back, 1 Normal Non-cacheable, 2 Device-nGnRE, 3 raw MemAttr 0b0111,
// 4 raw MemAttr 0b0110. Not here: the demand pages (demand_pages, mapped on first touch as
// kind 0, rw) and the MMIO window 0x0a000000 (never mapped).
s2_map:
    .quad   0x40080000, 0x10000
    .word   0, 5
    .quad   0x40100000, 0x10000
    .word   0, 3
    .quad   0x40201000, 0x1000
    .word   1, 3
    .quad   0x40202000, 0x1000
    .word   0, 1
    .quad   0x40203000, 0x1000
    .word   3, 3
    .quad   0x40204000, 0x1000
    .word   4, 3
s2_map_end:

// Demand pages: not mapped at stage 2 until the guest first touches them.
demand_pages:
    .quad   DEMAND_IPA, DEMAND_STG_IPA, DEMAND_LDG_IPA, DEMAND_GZVA_IPA

// MemAttr[3:0] per kind: without FWB, with FWB. Normal WB is 0b1111 (Outer WB, Inner WB)
// without FWB and 0b0110 (forced Write-Back) with it, as KVM maps guest RAM.
s2_memattr:
    .byte   0xf, 0x6
    .byte   0x5, 0x5
    .byte   0x1, 0x1
    .byte   0x7, 0x7
    .byte   0x6, 0x6

msg_not_el2:    .asciz "FAIL boot.currentel_el2 (not started at EL2; run with virtualization=on)\n"
msg_banner:     .asciz "# aarch64mte EL2 conformance: hypervisor at EL2, MTE guest at EL1\n"
name_boot_el2:  .asciz "boot.currentel_el2"
hdr_base:       .asciz "# scenario 0 base: HCR_EL2 = RW VM ATA\n"
hdr_ata0:       .asciz "# scenario 1 ata0: HCR_EL2 = RW VM (ATA = 0)\n"
hdr_tid:        .asciz "# scenario 2 tid: HCR_EL2 = RW VM ATA TID5 TID3\n"
hdr_fwb:        .asciz "# scenario 3 fwb: HCR_EL2 = RW VM ATA FWB\n"
hdr_dct:        .asciz "# scenario 4 dct: HCR_EL2 = RW VM ATA DC DCT, guest stage 1 off\n"
hdr_dc:         .asciz "# scenario 5 dc: HCR_EL2 = RW VM ATA DC, guest stage 1 off\n"
hdr_host:       .asciz "# scenario 6 host: HCR_EL2 = E2H TGE RW (ATA = 0), EL2 alone in the EL2&0 regime\n"
name_host_tfsr_el1:     .asciz "host.mrs_tfsr_el1_reads_tfsr_el2"
name_host_tfsr_el12:    .asciz "host.mrs_tfsr_el12_reads_tfsr_el1"
name_host_stg:          .asciz "host.el2_tag_access_with_hcr_ata0"
name_host_tco:          .asciz "host.tco_set_by_exception_entry"
name_host_async:        .asciz "host.async_store_sets_tfsr_el2_tf0"
name_host_async_el1:    .asciz "host.async_leaves_tfsr_el1"
name_host_store_landed: .asciz "host.async_store_landed"
name_host_irg:          .asciz "host.irg_uses_gcr_el1"
msg_ok:         .asciz "ok "
msg_fail:       .asciz "FAIL "
msg_got:        .asciz " got="
msg_want:       .asciz " want="
msg_nl:         .asciz "\n"
msg_far:        .asciz " far="
msg_elr:        .asciz " elr="
msg_unexpected_exit: .asciz "FAIL hyp.unexpected_exit esr="
msg_bad_vector: .asciz "FAIL hyp.unexpected_exception esr="
msg_sum1:       .asciz "# "
msg_sum2:       .asciz " checks, "
msg_sum3:       .asciz " failed\n"

    .data
    .balign 8
cur_scenario:   .quad 0
n_checks:       .quad 0
n_failed:       .quad 0
demand_mapped:  .quad 0, 0, 0, 0
line_ptr:       .quad line_buf
exit_log:       .quad 0, 0, 0, 0, 0     // ESR, FAR, HPFAR (or IPA), count, MMIO store data
exit_block:     .quad 0, 0
    .balign 16
host_granule:   .quad 0, 0

    .balign 0x2000
s2_l1:          .skip 0x2000            // two concatenated level-1 tables
s2_l2:          .skip 0x1000
s2_l3:          .skip 0x2000            // 0x40000000..0x401fffff, 0x40200000..0x403fffff
hyp_l1:         .skip 0x1000
gregs:          .skip 31 * 8
    .balign 16
line_buf:       .skip 256
line_buf_end:
    .balign 16
hyp_stack:      .skip 0x2000
hyp_stack_top:
