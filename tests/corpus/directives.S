// Directives, sections, symbols and literal pools: both backends must agree byte for byte.
/* block comment
   over two lines */
        .equ    UART, 0x09000000
        .set    COUNT, 4
        FLAGS = (1 << 31) | (1 << 56)
        .arch   armv8.5-a+memtag

        .macro  SAVE a, b, off=0
        stp     \a, \b, [sp, #\off]
        .endm

        .macro  TAGLOOP reg, n
        .rept   \n
        stg     \reg, [\reg], #16
        .endr
        .endm

        .section .text.boot, "ax"
        .globl  _start
        .type   _start, %function
_start: mov     x0, #FLAGS & 0xffff0000
        mov     x1, #(1 << 31)
        movz    x2, #:abs_g1:UART
        ldr     x3, =UART
        ldr     x4, =0x123456789abcdef0
        ldr     w5, =0x12345678
        ldr     x6, =message
        ldr     x7, =UART                       // reuses the pool entry
        adr     x8, message
        adrp    x9, table
        add     x9, x9, :lo12:table
        ldr     x10, [x9, #:lo12:table]
        SAVE    x0, x1
        SAVE    x2, x3, 16
        TAGLOOP x11, COUNT
        b       1f
        nop
1:      cbz     x0, 1b
        tbnz    x1, #3, 2f
        b.ne    1b
2:      bl      func
        irg     x0, sp
        addg    x1, x0, #COUNT * 16, #COUNT - 1
        stg     x1, [x1, #-(COUNT * 16)]!
        stgp    x0, x1, [sp, #-0x400]
        msr     tco, #1
        mrs     x2, gmid_el1
        dc      gva, x0
        .ltorg
        .size   _start, . - _start

        .text
func:   nop ; nop
        ret
        .balign 32
aligned: .word  0x11223344
        .inst   0xd503201f
        .p2align 4
        .align  3
code2:  ldr     x0, =aligned
        ldr     x1, =COUNT * 3
        .rept   3
        add     x0, x0, #COUNT
        .endr
        .irp    r, x2, x3, x4
        mov     \r, #1
        .endr
        ret

        .section .rodata
message: .asciz "hello, \"world\"\n"
        .ascii  "abc", "def"
        .string "tab\there"
        .byte   1, 2, 3, -1, 'A', 0x7f
        .balign 2
        .hword  0x1234, -2
        .balign 4
        .word   message, message + 4, . - message
        .balign 8
        .quad   func, 0xffffffffffffffff
        .space  5
        .skip   3, 0xaa
        .zero   2
        .fill   3, 2, 0x5a5a

        .data
        .balign 16
table:  .quad   _start, func, code2
counter: .word  COUNT
        .if COUNT > 2
        .word   1
        .else
        .word   2
        .endif
        .ifdef  UART
        .byte   9
        .endif
        .ifndef NOT_DEFINED
        .byte   10
        .endif

        .bss
        .balign 16
buffer: .space  256
tail:   .zero   16
