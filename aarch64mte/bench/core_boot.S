// core_boot.S -- the start and the end every `bench core` program shares.
//
// Each benchmark row is one bare-metal program for the `virt` board (RAM at 0x4000_0000,
// Arm semihosting): this file, then the row's own source, which defines `work`. The harness
// puts `.equ` lines in front: ITERATIONS (how many times the row repeats its workload; `work`
// gets it in x1, read from `bench_iterations`, in .data, so that the text holds only
// instructions and raw Unicorn's NOP substitution cannot touch it; x6 holds `bench_k`) and TAGGED_MAP (1: turn the MMU on with RAM
// mapped Normal Tagged; 0: leave it off, so memory is Untagged and nothing is checked), and
// whatever the row's source asks for.
//
// The same bytes run on the emulator (from QEMU virt's reset state: EL1, MMU off), on raw
// Unicorn (every MTE instruction replaced by a NOP, stopped at `done`) and on
// `qemu-system-aarch64 -M virt,mte=on -cpu max -semihosting`. `work` leaves two checksums:
//   x20  the work checksum: loop trip counts and the data the row loaded and stored. It does
//        not depend on any MTE instruction, so all three engines must agree on it.
//   x21  the tag checksum: what the MTE instructions produced (tags, exclusion masks, tag
//        words). Raw Unicorn has no MTE; the emulator and QEMU must agree on it.
// `done` prints them through semihosting as "W=<16 hex digits> T=<16 hex digits>" and exits
// with status 0. An exception prints "E=<ESR_EL1> F=<FAR_EL1>" and exits with status 3;
// a row that finds its own state wrong exits with status 4 (`b bench_fail`).

        .arch   armv8.5-a+memtag

        .text
        .globl  _start
_start:
        adr     x0, vectors
        msr     vbar_el1, x0
        // TCR_EL1: T0SZ 25 (39-bit VA, walks start at level 1), 4 KiB granule, inner and outer
        // write-back, inner shareable, EPD1 (no TTBR1 walks), IPS 40 bits, TBI0 (pointer tags).
        // TBI0 applies with the MMU off too.
        movz    x0, #0x3519
        movk    x0, #0x0080, lsl #16
        movk    x0, #0x0022, lsl #32
        msr     tcr_el1, x0
        isb
.if TAGGED_MAP
        // One level-1 block: the GiB holding RAM, identity, MAIR attribute 0 = 0xF0 (Normal,
        // Tagged), inner shareable, access flag set.
        adr     x0, boot_l1
        movz    x1, #0x4000, lsl #16
        mov     x2, #0x701
        orr     x1, x1, x2
        str     x1, [x0, #8]
        mov     x1, #0xf0
        msr     mair_el1, x1
        msr     ttbr0_el1, x0
        isb
        tlbi    vmalle1
        dsb     sy
        isb
        // SCTLR_EL1: M, C, I on top of the reset value; ATA and ATA0 (tag access), TCF and
        // TCF0 = 1 (synchronous tag-check faults).
        movz    x1, #0x1805
        movk    x1, #0x30d0, lsl #16
        movk    x1, #0x0d40, lsl #32
        msr     sctlr_el1, x1
        isb
.endif
        // GCR_EL1.Exclude = {0}: IRG never picks tag 0, which stays the tag of everything the
        // program does not colour. RRND = 0 and a fixed RGSR_EL1 seed make IRG deterministic
        // (the same tags on the emulator and on QEMU).
        mov     x0, #1
        msr     gcr_el1, x0
        mov     x0, #0x1234
        lsl     x0, x0, #8
        msr     rgsr_el1, x0
        isb
        mov     x20, #0
        mov     x21, #0
        adr     x1, bench_iterations        // what every row's `work` starts from
        ldr     x1, [x1]
        adr     x6, bench_k
        ldr     x6, [x6]
        bl      work

        .globl  done
done:
        adr     x19, report
        mov     w0, #'W'
        mov     x1, x20
        bl      put_field
        mov     w0, #' '
        strb    w0, [x19], #1
        mov     w0, #'T'
        mov     x1, x21
        bl      put_field
        mov     x0, #0
        b       bench_exit

// An exception: print ESR_EL1 and FAR_EL1, exit with status 3.
exception:
        adr     x19, report
        mov     w0, #'E'
        mrs     x1, esr_el1
        bl      put_field
        mov     w0, #' '
        strb    w0, [x19], #1
        mov     w0, #'F'
        mrs     x1, far_el1
        bl      put_field
        mov     x0, #3
        b       bench_exit

        .globl  bench_fail
bench_fail:
        adr     x19, report
        mov     w0, #'X'
        mov     x1, x20
        bl      put_field
        mov     x0, #4

// Print the line at `report` (terminated here), exit with status x0 (semihosting SYS_EXIT,
// ADP_Stopped_ApplicationExit).
bench_exit:
        mov     w1, #'\n'
        strb    w1, [x19], #1
        strb    wzr, [x19]
        mov     x22, x0
        mov     x0, #0x04                   // SYS_WRITE0
        adr     x1, report
        hlt     #0xf000
        adr     x1, exit_block
        movz    x2, #0x0026
        movk    x2, #0x2, lsl #16           // ADP_Stopped_ApplicationExit
        stp     x2, x22, [x1]
        mov     x0, #0x18                   // SYS_EXIT
        hlt     #0xf000
        b       .

// Append "<w0>=<x1 as 16 hex digits>" at x19 (advanced).
put_field:
        strb    w0, [x19], #1
        mov     w0, #'='
        strb    w0, [x19], #1
        mov     x3, #60
1:      lsr     x4, x1, x3
        and     x4, x4, #15
        add     x5, x4, #'0'
        add     x6, x4, #('a' - 10)
        cmp     x4, #10
        csel    x5, x5, x6, lo
        strb    w5, [x19], #1
        subs    x3, x3, #4
        b.pl    1b
        ret

        .balign 2048
vectors:
        .rept   16
        b       exception
        .balign 128
        .endr

        .data
        .balign 8
        .globl  bench_iterations
bench_iterations: .quad ITERATIONS          // a datum, not a literal in .text (see `work`)
        .balign 8
        .globl  bench_k
bench_k:        .quad   0x9e3779b97f4a7c15  // the odd multiplier the checksums fold with

        .bss
        .balign 4096
boot_l1:        .skip   4096
report:         .skip   64
exit_block:     .skip   16
