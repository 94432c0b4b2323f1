// tagcopy.S -- what copying allocation tags costs: user-space LDG/STG loops against a kernel
// entry point that moves tags with LDGM/STGM, plus page clearing and page copying.
//
// The program boots at EL1 (the `snippet` profile's default) and sets itself up like a small
// kernel: its own stage-1 tables (the page holding the EL0 routines is EL0 read/execute and
// EL1 never-execute, the EL1 code and data are EL1-only, the rest of RAM -- where the pages
// under test live -- is EL0 read/write), its own exception vectors (VBAR_EL1), tag access,
// DC ZVA/GZVA and SIMD for EL0; then it ERETs to the EL0 routine whose address is in x5.
// Every EL0 routine ends at `el0_done`, which asks EL1 to exit with status 0 through `svc #0`
// (x8 = 0); EL1 leaves by Arm semihosting SYS_EXIT.
//
// Registers on entry (set by the harness with set_reg, or `aarch64mte run --set`):
//   x5  EL0 routine to run: one of the labels below (`--set x5=read_ldg`)
//   x0  first page (16-byte aligned, Tagged memory; bits 59:56 may hold a logical tag)
//   x1  number of 4 KiB pages (0 allowed)
//   x2  second buffer: the one-tag-per-byte buffer (read/write), or the destination pages
//       (copy); unused by the clears
//
// The one-tag-per-byte format is that of PTRACE_PEEKMTETAGS / PTRACE_POKEMTETAGS and of
// KVM_ARM_MTE_COPY_TAGS: byte i holds the allocation tag of granule i in bits 3:0.
//
// Kernel services (EL0: x8 = number, `svc #0`; they clobber x9-x17 and the flags):
//   0  exit, status in x0
//   1  read tags  of x1 pages at x0 into the byte buffer at x2   (LDGM per GMID_EL1 block)
//   2  write tags of x1 pages at x0 from the byte buffer at x2   (STGM per GMID_EL1 block)
//   3  copy x1 pages at x0, data and tags, to x2                  (LDP/STP, LDGM/STGM)
// The services read GMID_EL1.BS at run time, so they are correct for every block size from
// 4 << 2 = 16 bytes (one granule per LDGM) to 4 << 6 = 256 bytes (sixteen granules).
// Like the kernel, they use general-purpose registers only (no kernel_neon_begin needed).

        .arch   armv8.5-a+memtag

        .text
        .global _start
_start:
        b       el1_boot                    // the boot code lives with the EL1 code

// ------------------------------------------------------------------------------------------
// EL0 routines. Each one is what a VMM or debugger can run in user space today, or the
// caller of a kernel service. All end with `b el0_done`.

        .global noop
noop:                                       // the baseline: boot, nothing, exit
        b       el0_done

// Read tags with one LDG per granule, eight granules per iteration. LDG writes only bits
// 59:56 of its destination, so x4,x6,x7,x10..x14 (zeroed once) always read back as tag << 56;
// `orr x9, xN, x9, lsr #8` shifts the eight tags into one doubleword, first granule lowest.
        .global read_ldg
read_ldg:
        lsl     x3, x1, #8                  // granules = pages * 256
        cbz     x3, 2f
        mov     x4, xzr
        mov     x6, xzr
        mov     x7, xzr
        mov     x10, xzr
        mov     x11, xzr
        mov     x12, xzr
        mov     x13, xzr
        mov     x14, xzr
1:      ldg     x4, [x0]
        ldg     x6, [x0, #16]
        ldg     x7, [x0, #32]
        ldg     x10, [x0, #48]
        ldg     x11, [x0, #64]
        ldg     x12, [x0, #80]
        ldg     x13, [x0, #96]
        ldg     x14, [x0, #112]
        orr     x9, x4, x9, lsr #8
        orr     x9, x6, x9, lsr #8
        orr     x9, x7, x9, lsr #8
        orr     x9, x10, x9, lsr #8
        orr     x9, x11, x9, lsr #8
        orr     x9, x12, x9, lsr #8
        orr     x9, x13, x9, lsr #8
        orr     x9, x14, x9, lsr #8
        str     x9, [x2], #8
        add     x0, x0, #128
        subs    x3, x3, #8
        b.ne    1b
2:      b       el0_done

// Read the same tags through the kernel's LDGM service.
        .global read_ldgm
read_ldgm:
        mov     x8, #1
        svc     #0
        b       el0_done

// Restore tags with one STG per granule: eight tag bytes per load; STG takes the tag from
// bits 59:56 of its source, so shifting byte k to the top of a register is enough.
        .global write_stg
write_stg:
        lsl     x3, x1, #8
        cbz     x3, 2f
1:      ldr     x4, [x2], #8
        lsl     x6, x4, #56
        lsl     x7, x4, #48
        lsl     x10, x4, #40
        lsl     x11, x4, #32
        lsl     x12, x4, #24
        lsl     x13, x4, #16
        lsl     x14, x4, #8
        stg     x6, [x0]
        stg     x7, [x0, #16]
        stg     x10, [x0, #32]
        stg     x11, [x0, #48]
        stg     x12, [x0, #64]
        stg     x13, [x0, #80]
        stg     x14, [x0, #96]
        stg     x4, [x0, #112]
        add     x0, x0, #128
        subs    x3, x3, #8
        b.ne    1b
2:      b       el0_done

// Restore the same tags through the kernel's STGM service.
        .global write_stgm
write_stgm:
        mov     x8, #2
        svc     #0
        b       el0_done

// Clear pages (data 0, tags := the logical tag of x0) with an STG loop and DC ZVA: the tags of
// each DC ZVA block first, so that the (tag-checked) DC ZVA then matches them.
        .global clear_stg
clear_stg:
        mrs     x9, dczid_el0
        and     x9, x9, #0xf
        mov     x10, #4
        lsl     x9, x10, x9                 // DC ZVA block in bytes (4 << DCZID_EL0.BS)
        add     x3, x0, x1, lsl #12         // end
        cmp     x0, x3
        b.hs    3f
1:      add     x11, x0, x9                 // end of this block
2:      stg     x0, [x0], #16
        cmp     x0, x11
        b.lo    2b
        sub     x12, x0, x9
        dc      zva, x12
        cmp     x0, x3
        b.lo    1b
3:      b       el0_done

// Clear the same pages with DC GZVA: data and tags of a whole block in one instruction.
        .global clear_gzva
clear_gzva:
        mrs     x9, dczid_el0
        and     x9, x9, #0xf
        mov     x10, #4
        lsl     x9, x10, x9
        add     x3, x0, x1, lsl #12
        cmp     x0, x3
        b.hs    2f
1:      dc      gzva, x0
        add     x0, x0, x9
        cmp     x0, x3
        b.lo    1b
2:      b       el0_done

// Copy pages with their tags in user space: LDG puts the source granule's tag into the
// destination pointer, and STGP stores the data pair and that tag together. PSTATE.TCO is set
// around the loop, as a VMM does for accesses to guest memory that are not its own.
        .global copy_el0
copy_el0:
        lsl     x3, x1, #8
        cbz     x3, 2f
        msr     tco, #1
1:      ldg     x2, [x0]
        ldp     x4, x6, [x0], #16
        stgp    x4, x6, [x2], #16
        ldg     x2, [x0]
        ldp     x4, x6, [x0], #16
        stgp    x4, x6, [x2], #16
        ldg     x2, [x0]
        ldp     x4, x6, [x0], #16
        stgp    x4, x6, [x2], #16
        ldg     x2, [x0]
        ldp     x4, x6, [x0], #16
        stgp    x4, x6, [x2], #16
        subs    x3, x3, #4
        b.ne    1b
        msr     tco, #0
2:      b       el0_done

// Copy the same pages through the kernel's copy service.
        .global copy_el1
copy_el1:
        mov     x8, #3
        svc     #0
        b       el0_done

        .global el0_done
el0_done:
        mov     x0, #0
        mov     x8, #0
        svc     #0
        b       el0_done                    // not reached

// ------------------------------------------------------------------------------------------
// EL1: vectors and the kernel services.

        .balign 4096                        // EL1-only from here on
el1_vectors:
        // Current EL with SP_EL0: synchronous, IRQ, FIQ, SError
        mov     x20, #0
        b       unexpected
        .balign 128
        mov     x20, #1
        b       unexpected
        .balign 128
        mov     x20, #2
        b       unexpected
        .balign 128
        mov     x20, #3
        b       unexpected
        // Current EL with SP_ELx
        .balign 128
        mov     x20, #4
        b       unexpected
        .balign 128
        mov     x20, #5
        b       unexpected
        .balign 128
        mov     x20, #6
        b       unexpected
        .balign 128
        mov     x20, #7
        b       unexpected
        // Lower EL, AArch64: synchronous -- the SVC entry
        .balign 128
        b       lower_sync
        .balign 128
        mov     x20, #9
        b       unexpected
        .balign 128
        mov     x20, #10
        b       unexpected
        .balign 128
        mov     x20, #11
        b       unexpected
        // Lower EL, AArch32: not used
        .balign 128
        mov     x20, #12
        b       unexpected
        .balign 128
        mov     x20, #13
        b       unexpected
        .balign 128
        mov     x20, #14
        b       unexpected
        .balign 128
        mov     x20, #15
        b       unexpected
        .balign 128

// Boot: page tables, vectors, EL0 permissions, then ERET to the EL0 routine in x5.
// Level 1 entry 1 (0x4000_0000..0x7fff_ffff) becomes a table of 2 MiB blocks; its first block
// becomes a table of 4 KiB pages so that the EL0 text page can differ from the EL1 pages.
PTE_PAGE  = 0x703                           // valid page, AF, inner shareable, AttrIdx 0
PTE_BLOCK = 0x701                           // valid block, AF, inner shareable, AttrIdx 0
el1_boot:
        adr     x10, l3_table
        mov     x11, #0x40000000            // PA of the first 4 KiB page
        mov     x14, #PTE_PAGE
        adr     x15, _start                 // the EL0 text page
        mov     x12, #512
1:      orr     x13, x11, x14
        cmp     x11, x15
        b.ne    2f
        orr     x13, x13, #0xc0             // AP = 0b11: read-only, EL0 too
        orr     x13, x13, #0x20000000000000 // PXN: EL1 never executes EL0's code
2:      str     x13, [x10], #8
        add     x11, x11, #0x1000
        subs    x12, x12, #1
        b.ne    1b
        adr     x10, l2_table
        adr     x13, l3_table
        orr     x13, x13, #3                // table descriptor
        str     x13, [x10], #8
        mov     x11, #0x40200000            // PA of the second 2 MiB block
        mov     x14, #PTE_BLOCK
        orr     x14, x14, #0x40             // AP = 0b01: EL1 and EL0 read/write
        orr     x14, x14, #0x60000000000000 // UXN and PXN: data only
        mov     x12, #511
3:      orr     x13, x11, x14
        str     x13, [x10], #8
        add     x11, x11, #0x200000
        subs    x12, x12, #1
        b.ne    3b
        mrs     x10, ttbr0_el1
        and     x10, x10, #0x0000fffffffff000
        adr     x13, l2_table
        orr     x13, x13, #3
        str     x13, [x10, #8]              // level 1 entry 1 -> our level 2 table
        dsb     ishst
        tlbi    vmalle1
        dsb     ish
        isb
        adr     x9, el1_vectors
        msr     vbar_el1, x9
        mrs     x9, sctlr_el1
        orr     x9, x9, #0x4000             // SCTLR_EL1.DZE: DC ZVA/GVA/GZVA allowed at EL0
        orr     x9, x9, #0x40000000000      // SCTLR_EL1.ATA0: EL0 may access allocation tags
        msr     sctlr_el1, x9
        mrs     x9, cpacr_el1
        orr     x9, x9, #0x300000           // CPACR_EL1.FPEN = 0b11: no FP/SIMD traps
        msr     cpacr_el1, x9
        msr     spsr_el1, xzr               // EL0t, interrupts unmasked, TCO = 0
        msr     elr_el1, x5
        isb
        eret

lower_sync:
        mrs     x9, esr_el1
        lsr     x10, x9, #26
        cmp     x10, #0x15                  // EC 0x15: SVC from AArch64
        b.ne    not_svc
        cbz     x8, svc_exit
        cmp     x8, #1
        b.eq    svc_read_tags
        cmp     x8, #2
        b.eq    svc_write_tags
        cmp     x8, #3
        b.eq    svc_copy_pages
        mov     x0, #-38                    // -ENOSYS
        eret
not_svc:
        mov     x20, #8
        b       unexpected

// Anything but an SVC from EL0 stops the run: x20 = vector index, x21..x23 = ESR, FAR, ELR,
// exit status 100 + index.
unexpected:
        mrs     x21, esr_el1
        mrs     x22, far_el1
        mrs     x23, elr_el1
        add     x0, x20, #100
svc_exit:                                   // x0 = exit status
        adr     x9, exit_block
        mov     x10, #0x26
        movk    x10, #0x2, lsl #16          // ADP_Stopped_ApplicationExit
        stp     x10, x0, [x9]
        mov     x1, x9
        mov     x0, #0x18                   // SYS_EXIT
        hlt     #0xf000
        b       svc_exit

// x9 := bytes per LDGM/STGM block = 4 << GMID_EL1.BS. (Linux: multitag_transfer_size.)
gmid_block:
        mrs     x9, gmid_el1
        and     x9, x9, #0xf
        mov     x10, #4
        lsl     x9, x10, x9
        ret

// Service 1: tags of x1 pages at x0 -> bytes at x2. Per 256 bytes, OR the LDGM results of
// every block into x12 (sixteen 4-bit tags, granule i in bits 4i+3:4i as LDGM places them by
// address bits 7:4), then spread the nibbles into bytes: 8 nibbles -> 8 bytes takes three
// shift-or-mask steps.
svc_read_tags:
        mov     x17, x30
        bl      gmid_block
        mov     x30, x17
        add     x11, x0, x1, lsl #12        // end
        cmp     x0, x11
        b.hs    3f
1:      mov     x12, xzr
2:      ldgm    x13, [x0]
        orr     x12, x12, x13
        add     x0, x0, x9
        tst     x0, #0xff
        b.ne    2b
        mov     w14, w12                    // granules 0..7
        lsr     x15, x12, #32               // granules 8..15
        orr     x14, x14, x14, lsl #16
        orr     x15, x15, x15, lsl #16
        and     x14, x14, #0x0000ffff0000ffff
        and     x15, x15, #0x0000ffff0000ffff
        orr     x14, x14, x14, lsl #8
        orr     x15, x15, x15, lsl #8
        and     x14, x14, #0x00ff00ff00ff00ff
        and     x15, x15, #0x00ff00ff00ff00ff
        orr     x14, x14, x14, lsl #4
        orr     x15, x15, x15, lsl #4
        and     x14, x14, #0x0f0f0f0f0f0f0f0f
        and     x15, x15, #0x0f0f0f0f0f0f0f0f
        stp     x14, x15, [x2], #16
        cmp     x0, x11
        b.lo    1b
3:      mov     x0, #0
        eret

// Service 2: bytes at x2 -> tags of x1 pages at x0. Per 256 bytes, pack sixteen bytes into
// sixteen nibbles (the inverse of the spreading above; bits 7:4 of each byte are ignored, as
// STG ignores them), then STGM every block of the 256 bytes from the same register.
svc_write_tags:
        mov     x17, x30
        bl      gmid_block
        mov     x30, x17
        add     x11, x0, x1, lsl #12
        cmp     x0, x11
        b.hs    3f
1:      ldp     x14, x15, [x2], #16
        and     x14, x14, #0x0f0f0f0f0f0f0f0f
        and     x15, x15, #0x0f0f0f0f0f0f0f0f
        orr     x14, x14, x14, lsr #4
        orr     x15, x15, x15, lsr #4
        and     x14, x14, #0x00ff00ff00ff00ff
        and     x15, x15, #0x00ff00ff00ff00ff
        orr     x14, x14, x14, lsr #8
        orr     x15, x15, x15, lsr #8
        and     x14, x14, #0x0000ffff0000ffff
        and     x15, x15, #0x0000ffff0000ffff
        orr     x14, x14, x14, lsr #16
        orr     x15, x15, x15, lsr #16
        bfi     x14, x15, #32, #32          // x14 = sixteen tags, granule 0 lowest
2:      stgm    x14, [x0]
        add     x0, x0, x9
        tst     x0, #0xff
        b.ne    2b
        cmp     x0, x11
        b.lo    1b
3:      mov     x0, #0
        eret

// Service 3: copy x1 pages at x0 to x2, data then tags, page by page -- the shape of Linux's
// copy_page() followed by mte_copy_page_tags(). Runs with PSTATE.TCO = 1 (set on entry).
svc_copy_pages:
        mov     x17, x30
        bl      gmid_block
        mov     x30, x17
        cbz     x1, 4f
1:      mov     x15, x0                     // page start (source)
        mov     x16, x2                     // page start (destination)
2:      ldp     x10, x11, [x0]
        ldp     x12, x13, [x0, #16]
        stp     x10, x11, [x2]
        stp     x12, x13, [x2, #16]
        ldp     x10, x11, [x0, #32]
        ldp     x12, x13, [x0, #48]
        stp     x10, x11, [x2, #32]
        stp     x12, x13, [x2, #48]
        ldp     x10, x11, [x0, #64]
        ldp     x12, x13, [x0, #80]
        stp     x10, x11, [x2, #64]
        stp     x12, x13, [x2, #80]
        ldp     x10, x11, [x0, #96]
        ldp     x12, x13, [x0, #112]
        stp     x10, x11, [x2, #96]
        stp     x12, x13, [x2, #112]
        add     x0, x0, #128
        add     x2, x2, #128
        tst     x0, #0xfff
        b.ne    2b
3:      ldgm    x10, [x15]
        stgm    x10, [x16]
        add     x15, x15, x9
        add     x16, x16, x9
        tst     x15, #0xfff
        b.ne    3b
        subs    x1, x1, #1
        b.ne    1b
4:      mov     x0, #0
        eret

        .data
        .balign 16
exit_block:
        .quad   0, 0

        .bss
        .balign 4096
l2_table:
        .skip   4096
l3_table:
        .skip   4096
