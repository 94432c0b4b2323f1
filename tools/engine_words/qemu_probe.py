#!/usr/bin/env python3
"""Ask QEMU system mode (``-M virt -cpu max``) what each instruction word does: executes, or
takes which exception.

    tools/engine_words/qemu_probe.py 0x2ec21c20 0x4e562dba ...
    -> 2ec21c20  executes
       4e562dba  exception EC=0x00 (Unknown reason: UNDEFINED)  ESR=0x02000000

A bare-metal program boots at EL1 with FP and SVE enabled (CPACR_EL1.FPEN = ZEN = 3), runs each
word once with X0-X18 pointing into a scratch buffer, and records ESR_EL1 from a vector that
steps over the faulting word; the results are printed on the PL011 UART. Needs
aarch64-linux-gnu-as/-ld and qemu-system-aarch64. This is the oracle for "is this a real
instruction that QEMU's max CPU implements".
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

EC_NAMES = {0x00: "Unknown reason: UNDEFINED", 0x07: "SVE/SIMD/FP access trap",
            0x0E: "illegal execution state", 0x15: "SVC", 0x18: "MSR/MRS/system trap",
            0x19: "SVE access trap", 0x22: "PC alignment", 0x25: "data abort",
            0x26: "SP alignment", 0x2C: "FP exception", 0x3C: "BRK"}

PROGRAM = r"""
    .text
    .globl _start
_start:
    ldr   x0, =stack_top
    mov   sp, x0
    adr   x0, vectors
    msr   vbar_el1, x0
    mov   x0, #((3 << 20) | (3 << 16))
    msr   cpacr_el1, x0
    isb
{slots}
    /* print "i:esr" for each slot */
    mov   x19, #0
    ldr   x20, =results
1:  cmp   x19, #{n}
    b.ge  9f
    ldr   x0, [x20, x19, lsl #3]
    bl    puthex
    mov   w0, #10
    bl    putc
    add   x19, x19, #1
    b     1b
9:  mov   x1, #0x26
    movk  x1, #2, lsl #16          /* ADP_Stopped_ApplicationExit */
    ldr   x2, =exit_block
    str   x1, [x2]
    str   xzr, [x2, #8]
    mov   x1, x2
    mov   w0, #0x20                /* SYS_EXIT */
    hlt   #0xf000
    b     .

putc:                               /* w0 -> UART */
    mov   x9, #0x09000000
    strb  w0, [x9]
    ret

puthex:                             /* x0 as 16 hex digits */
    stp   x29, x30, [sp, #-32]!
    str   x21, [sp, #16]
    mov   x21, x0
    mov   x10, #60
2:  lsr   x0, x21, x10
    and   x0, x0, #15
    cmp   x0, #10
    add   x11, x0, #'0'
    add   x12, x0, #('a' - 10)
    csel  x0, x11, x12, lt
    bl    putc
    subs  x10, x10, #4
    b.ge  2b
    ldr   x21, [sp, #16]
    ldp   x29, x30, [sp], #32
    ret

    .balign 0x800
vectors:
    .rept 4
    .balign 0x80
    b     trap
    .endr
    .balign 0x80
    b     trap                      /* current EL, SPx, synchronous */
    .rept 11
    .balign 0x80
    b     .
    .endr

trap:                               /* results[x28] = ESR_EL1; resume after the word */
    mrs   x26, esr_el1
    ldr   x27, =results
    str   x26, [x27, x28, lsl #3]
    mrs   x26, elr_el1
    add   x26, x26, #4
    msr   elr_el1, x26
    eret

    .data
    .balign 16
results:
    .fill {n}, 8, 0xffffffffffffffff
exit_block:
    .quad 0, 0
    .balign 16
scratch:
    .fill 8192, 1, 0
    .balign 16
    .fill 16384, 1, 0
stack_top:
"""

SLOT = """    mov   x28, #{i}
    ldr   x0, =scratch + 4096
{regs}    mov   sp, x0
    .inst 0x{word:08x}
    ldr   x0, =stack_top
    mov   sp, x0
"""


def build_and_run(words: list[int], workdir: str, timeout: float = 60) -> list[int | None]:
    """ESR per word (None: executed with no exception)."""
    regs = "".join(f"    mov   x{r}, x0\n" for r in range(1, 19))
    slots = "".join(SLOT.format(i=i, word=w, regs=regs) for i, w in enumerate(words))
    src = os.path.join(workdir, "probe.s")
    obj = os.path.join(workdir, "probe.o")
    elf = os.path.join(workdir, "probe.elf")
    with open(src, "w") as f:
        f.write(PROGRAM.format(slots=slots, n=len(words)))
    subprocess.run(["aarch64-linux-gnu-as", "-o", obj, src], check=True)
    subprocess.run(["aarch64-linux-gnu-ld", "-Ttext=0x40080000", "-o", elf, obj], check=True)
    r = subprocess.run(["qemu-system-aarch64", "-M", "virt", "-cpu", "max", "-m", "128M",
                        "-nographic", "-net", "none", "-semihosting", "-kernel", elf],
                       capture_output=True, text=True, timeout=timeout)
    lines = [ln.strip() for ln in r.stdout.splitlines() if len(ln.strip()) == 16]
    if len(lines) != len(words):
        raise RuntimeError(f"QEMU printed {len(lines)} results for {len(words)} words: "
                           f"{r.stdout[-300:]!r} {r.stderr[-300:]!r}")
    return [None if int(ln, 16) == 0xFFFFFFFF else int(ln, 16) for ln in lines]


def describe(esr: int | None) -> str:
    if esr is None:
        return "executes"
    ec = esr >> 26
    return f"exception EC=0x{ec:02x} ({EC_NAMES.get(ec, '?')})  ESR=0x{esr:08x}"


def probe(words: list[int], batch: int = 400) -> list[int | None]:
    out: list[int | None] = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(0, len(words), batch):
            out += build_and_run(words[i:i + batch], d)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="+", help="instruction words (hex)")
    a = p.parse_args(argv)
    for tool in ("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld", "qemu-system-aarch64"):
        if shutil.which(tool) is None:
            print(f"qemu_probe: {tool} not found", file=sys.stderr)
            return 2
    try:
        words = [int(w, 16) & 0xFFFFFFFF for w in a.words]
    except ValueError as e:
        print(f"qemu_probe: {e}", file=sys.stderr)
        return 2
    for w, esr in zip(words, probe(words)):
        print(f"{w:08x}  {describe(esr)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
