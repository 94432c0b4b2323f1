/* Entry for the allocator examples on the virt board (QEMU -M virt,mte=on -cpu max or
 * aarch64mte run): EL1, a stack, the tagged memory map (mte_setup in boot.c), main, then
 * semihosting exit with main's return value. No exception vectors: a tag-check fault stops
 * aarch64mte with its report (QEMU would spin at address 0x200). */
    .section .text.boot, "ax"
    .globl _start
_start:
    ldr     x0, =stack_top
    mov     sp, x0
    mov     x0, #(3 << 20)          // CPACR_EL1.FPEN: no traps for SIMD/FP
    msr     cpacr_el1, x0
    isb
    bl      mte_setup
    bl      main
    bl      exit_program
1:  b       1b
