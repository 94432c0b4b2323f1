#!/usr/bin/env python3
"""Run short guest programs that might crash or hang Unicorn at run time, each in its own child
process, and say what happened: the run ended normally, Unicorn returned an error, an interrupt
(exception) reached the hook, or the process died (signal) or hung (killed after a few seconds).

    tools/engine_words/runtime_probe.py            # every probe
    tools/engine_words/runtime_probe.py wfi eret   # probes whose name contains a word

The engine is set up as in ``harness.py`` (the machine's state: MAX CPU, virtual TLB with an
identity fill hook, SCR_EL3 = 0x401, HCR_EL2.RW, CPACR_EL1.FPEN = 3) plus an MMIO page at
0x0900_0000 like the machine's UART. Code is at 0x4000_0000, X1 and SP point into RAM at
0x8000_0000, X2 points at the MMIO page. Each run is limited to 1000 instructions.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

HANG_SECONDS = 10
MMIO_BASE = 0x0900_0000


@dataclass(frozen=True)
class Probe:
    name: str
    asm: str
    el: int = 1
    regs: dict = field(default_factory=dict)     # register name -> value, after the defaults
    sctlr_or: int = 0                             # bits to set in SCTLR_EL1
    start: int | None = None                      # start address (default: the code)
    count: int = 1000                             # instructions emu_start may run
    scr: int | None = None                        # SCR_EL3 instead of the machine's 0x401


SMC = """adr x3, 1f
    bl 1f                        // run the code at 1: once (its page is fetched)
    ldr w4, =0x4e562dba
    str w4, [x3]                 // store an aborting word over it
    dc cvau, x3
    dsb ish
    ic ivau, x3
    dsb ish
    isb
    bl 1f
    brk #1
    .balign 4096
1:  nop
    ret
"""
# ERET to ELR (the code puts BRK #2 at 0x4000_0100: a legal return stops there with intno 7)
ERET = ("ldr x3, ={spsr:#x}\nmsr spsr_el1, x3\nldr x3, ={elr:#x}\nmsr elr_el1, x3\neret\n"
        ".ltorg\n.balign 256\nbrk #2")


def _probes() -> list[Probe]:
    p = []
    for el in (1, 0):
        s = f"-el{el}"
        p += [
            Probe("wfi" + s, "wfi\nnop\nbrk #1", el),
            Probe("wfe" + s, "wfe\nnop\nbrk #1", el),
            Probe("yield-sev-sevl" + s, "yield\nsev\nsevl\nbrk #1", el),
            Probe("hvc" + s, "hvc #0\nbrk #1", el),
            Probe("smc" + s, "smc #0\nbrk #1", el),
            Probe("svc" + s, "svc #0\nbrk #1", el),
            Probe("hlt-semihost" + s, "hlt #0xf000\nbrk #1", el),
            Probe("hlt-0" + s, "hlt #0\nbrk #1", el),
            Probe("brk" + s, "brk #0", el),
            Probe("udf" + s, ".inst 0x00000000", el),
            Probe("pc-misaligned" + s, "add x3, x1, #2\nbr x3", el, regs={"x1": 0x4000_0100}),
            Probe("branch-unmapped" + s, "br x3", el, regs={"x3": 0x1234_0000}),
            Probe("exec-mmio" + s, "br x2", el),
            Probe("ldr-mmio" + s, "ldr x0, [x2]\nldp x4, x5, [x2]\nldr q0, [x2]\nbrk #1", el),
            Probe("ld1-mmio" + s, "ld1 {v0.16b-v3.16b}, [x2]\nbrk #1", el),
            Probe("str-mmio" + s, "str x0, [x2]\nstp x0, x1, [x2]\nstr q0, [x2]\nbrk #1", el),
            Probe("dczva-mmio" + s, "dc zva, x2\nbrk #1", el),
            Probe("exclusive-mmio" + s, "ldxr x0, [x2]\nstxr w4, x0, [x2]\nbrk #1", el),
            Probe("ldadd-mmio" + s, "ldadd x0, x4, [x2]\nbrk #1", el),
            Probe("cas-mmio" + s, "cas x0, x4, [x2]\nbrk #1", el),
            Probe("casp-mmio" + s, "casp x4, x5, x6, x7, [x2]\nbrk #1", el),
            Probe("exclusive-pair" + s, "ldaxp x4, x5, [x1]\nstlxp w6, x4, x5, [x1]\n"
                  "stxr w6, x4, [x1]\nclrex\nbrk #1", el),
            Probe("exclusive-unaligned" + s, "add x3, x1, #1\nldxr x0, [x3]\nbrk #1", el),
            Probe("unaligned-access" + s, "add x3, x1, #1\nldr x0, [x3]\nstr x0, [x3]\n"
                  "ldp x4, x5, [x3]\nbrk #1", el),
            Probe("cross-page-unmapped" + s, "ldr x0, [x3]\nbrk #1", el,
                  regs={"x3": 0x8010_0000 - 4}),
            Probe("top-of-address-space" + s, "ldr x0, [x3]\nbrk #1", el,
                  regs={"x3": 0xFFFF_FFFF_FFFF_FFFC}),
            Probe("sp-misaligned-sa" + s, "add x3, x1, #4\nmov sp, x3\nldr x0, [sp]\n"
                  "str x0, [sp, #8]\nbrk #1", el, sctlr_or=(1 << 3) | (1 << 4)),
            Probe("eret" + s, "eret", el),
            Probe("dc-ic-ops" + s, "dc civac, x1\ndc cvau, x1\nic ivau, x1\nic iallu\n"
                  "dc zva, x1\nbrk #1", el),
            Probe("self-modifying" + s, "adr x3, 1f\nldr w4, =0xd4200040\nstr w4, [x3]\n"
                  "1: nop\nbrk #1", el),
            Probe("msr-pstate-fields" + s, "msr spsel, #0\nmsr daifclr, #0xf\n"
                  ".inst 0xd500419f\n.inst 0xd500417f\n.inst 0xd503415f\n.inst 0xd503413f\n"
                  "brk #1", el),                 # PAN, UAO, DIT, SSBS #1
            Probe("mrs-counters" + s, "mrs x0, cntvct_el0\nmrs x0, cntpct_el0\n"
                  "mrs x0, cntfrq_el0\nmrs x0, pmccntr_el0\nbrk #1", el),
            Probe("rndr" + s, "mrs x0, s3_3_c2_c4_0\nmrs x0, s3_3_c2_c4_1\nbrk #1", el),
            Probe("infinite-loop" + s, "b .", el),
        ]
    p += [
        Probe("hvc-hce-el1", "hvc #0\nbrk #1", 1, scr=0x501),       # SCR_EL3.HCE = 1
        Probe("hvc-hce-el0", "hvc #0\nbrk #1", 0, scr=0x501),
        Probe("smc-smd-el1", "smc #0\nbrk #1", 1, scr=0x481),       # SCR_EL3.SMD = 1
        Probe("eret-to-el1-el1", ERET.format(elr=0x4000_0100, spsr=0x3C5), 1),
        Probe("eret-to-el0-el1", ERET.format(elr=0x4000_0100, spsr=0x0), 1),
        Probe("eret-to-el2-el1", ERET.format(elr=0x4000_0100, spsr=0x3C9), 1),
        Probe("eret-to-el3-el1", ERET.format(elr=0x4000_0100, spsr=0x3CD), 1),
        Probe("eret-to-aarch32-el1", ERET.format(elr=0x4000_0100, spsr=0x10), 1),
        Probe("eret-illegal-bit-el1", ERET.format(elr=0x4000_0100, spsr=0x3C5 | 1 << 20), 1),
        Probe("eret-misaligned-elr-el1", ERET.format(elr=0x4000_0102, spsr=0x3C5), 1),
        Probe("eret-unmapped-elr-el1", ERET.format(elr=0x1234_0000, spsr=0x3C5), 1),
        Probe("at-s1e1r-el1", "at s1e1r, x1\nat s1e1w, x1\nat s1e0r, x1\nmrs x0, par_el1\n"
              "brk #1", 1),
        Probe("at-s12e1r-el1", "at s12e1r, x1\nbrk #1", 1),
        Probe("tlbi-el1", "tlbi vmalle1\ntlbi vae1, x1\ntlbi vmalle1is\ntlbi aside1, x1\n"
              "dsb sy\nisb\nbrk #1", 1),
        Probe("msr-sctlr-mmu-on-el1", "mrs x0, sctlr_el1\norr x0, x0, #1\nmsr sctlr_el1, x0\n"
              "isb\nnop\nbrk #1", 1),
        Probe("msr-ttbr-tcr-el1", "msr ttbr0_el1, x1\nmsr tcr_el1, xzr\nisb\nbrk #1", 1),
        Probe("msr-zcr-el1", "mov x0, #15\nmsr s3_0_c1_c2_0, x0\nbrk #1", 1),
        Probe("msr-cpacr-zen-el1", "mov x0, #(3 << 20) | (3 << 16)\nmsr cpacr_el1, x0\n"
              "isb\n.inst 0x04bf5020\nbrk #1", 1),       # RDVL X0, #1
        Probe("msr-cpacr-off-fp-el1", "msr cpacr_el1, xzr\nisb\nfmov d0, d1\nbrk #1", 1),
        Probe("msr-vbar-el1", "msr vbar_el1, x1\nbrk #1", 1),
        Probe("msr-spsel-el1-sp-el0", "msr spsel, #0\nmov sp, x1\nmsr spsel, #1\nbrk #1", 1),
        Probe("msr-daif-wfi-el1", "msr daifclr, #0xf\nwfi\nbrk #1", 1),
        Probe("msr-osdlr-oslar-el1", "msr osdlr_el1, xzr\nmsr oslar_el1, xzr\nbrk #1", 1),
        Probe("msr-mdscr-ss-el1", "mov x0, #1\nmsr mdscr_el1, x0\nisb\nnop\nbrk #1", 1),
        Probe("msr-cntv-el1", "mov x0, #1\nmsr cntv_ctl_el0, x0\nmsr cntv_cval_el0, xzr\n"
              "msr cntp_ctl_el0, x0\nmsr cntp_tval_el0, xzr\nisb\nnop\nnop\nbrk #1", 1),
        Probe("msr-icc-el1", "mrs x0, s3_0_c12_c12_0\nmsr s3_0_c4_c6_0, x0\nbrk #1", 1),
        Probe("msr-pmu-el1", "mov x0, #1\nmsr pmcr_el0, x0\nmsr pmcntenset_el0, x0\n"
              "mrs x0, pmevcntr0_el0\nbrk #1", 1),
        Probe("msr-hcr-el2-from-el1", "msr hcr_el2, xzr\nbrk #1", 1),
        Probe("sys-dc-isw-el1", "dc isw, x1\ndc cisw, x1\ndc csw, x1\nbrk #1", 1),
        # a word that aborts: stored over code that already ran (the page is not fetched
        # again: no TLB fill sees the new word), as data after the end of a block, and as the
        # second word of a block whose first instruction is all that is asked to run
        Probe("smc-aborting-word-el1", SMC, 1),
        Probe("literal-aborting-word-el1", "ldr w0, 1f\nbrk #1\n1: .inst 0x4e562dba", 1),
        Probe("fallthrough-aborting-word-el1", "nop\n.inst 0x4e562dba\nbrk #1", 1, count=1),
        Probe("pstate-el2-start", "nop\nbrk #1", 2),
        Probe("pstate-el3-start", "nop\nbrk #1", 3),
    ]
    return p


PROBES = _probes()


def _setup(probe: Probe):
    from harness import CHUNK, DATA_BASE, DATA_SIZE, STATES, Harness, A  # noqa: F401
    from aarch64mte.assembler import assemble
    from aarch64mte.machine.sysregs import ENCODINGS
    state = STATES["el1" if probe.el else "el0"]
    h = Harness(state)
    uc, eng = h.uc, h.eng
    uc.mmio_map(MMIO_BASE, 0x1000, lambda u, off, size, ud: 0x41, None,
                lambda u, off, size, val, ud: None, None)
    image = assemble(probe.asm + "\n", base=0x4000_0000)
    for seg in image.segments:
        uc.mem_write(seg.addr, bytes(seg.data))
    if probe.scr is not None:
        eng.cp_write(*ENCODINGS["SCR_EL3"], probe.scr)
        tcr = ENCODINGS["TCR_EL1"]
        eng.cp_write(*tcr, eng.cp_read(*tcr))
    if probe.sctlr_or:
        reg = ENCODINGS["SCTLR_EL1"]
        eng.cp_write(*reg, eng.cp_read(*reg) | probe.sctlr_or)
    mid = DATA_BASE + DATA_SIZE // 2
    for r in range(29):
        eng.wr(A.UC_ARM64_REG_X0 + r, 0)
    eng.wr(A.UC_ARM64_REG_X1, mid)
    eng.wr(A.UC_ARM64_REG_X2, MMIO_BASE)
    eng.wr(A.UC_ARM64_REG_SP_EL0, mid - 0x1000)
    eng.wr(A.UC_ARM64_REG_SP_EL1, mid - 0x2000)
    if probe.el >= 2:
        eng.wr(A.UC_ARM64_REG_PSTATE, 0x3C1 | probe.el << 2)
        tcr = ENCODINGS["TCR_EL1"]
        eng.cp_write(*tcr, eng.cp_read(*tcr))
    for name, value in probe.regs.items():
        eng.wr(getattr(A, "UC_ARM64_REG_" + name.upper()), value)
    return h


def _child(probe: Probe, wfd: int) -> None:
    from unicorn import UcError
    from harness import A
    signal.alarm(HANG_SECONDS)
    h = _setup(probe)
    intr = []
    h.eng.hook_intr(lambda handle, intno, ud: (intr.append(intno), h.eng.emu_stop()))
    err = None
    try:
        h.uc.emu_start(probe.start or 0x4000_0000, 0, 0, probe.count)
    except UcError as e:
        err = str(e)
    pc = h.eng.rd(A.UC_ARM64_REG_PC)
    pstate = h.eng.rd(A.UC_ARM64_REG_PSTATE)
    what = f"error {err}" if err else "ran"
    if intr:
        what += f", interrupt {intr[0]}"
    il = " IL" if pstate >> 20 & 1 else ""
    os.write(wfd, f"{what}; PC=0x{pc:x} EL{(pstate >> 2) & 3}{il}".encode())


def run_probe(probe: Probe) -> str:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        faulthandler.disable()
        code = 0
        try:
            _child(probe, w)
        except BaseException as e:
            os.write(w, f"python error {e!r}".encode())
            code = 3
        os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    out = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        out += chunk
    os.close(r)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGALRM:
            return f"HANG (no return after {HANG_SECONDS} s)"
        return f"CRASH {signal.Signals(sig).name}"
    return out.decode(errors="replace")


def main(argv=None) -> int:
    words = (argv if argv is not None else sys.argv[1:])
    chosen = [p for p in PROBES if not words or any(w in p.name for w in words)]
    if not chosen:
        print("runtime_probe: no probe matches", file=sys.stderr)
        return 2
    for p in chosen:
        print(f"{p.name:28s} {run_probe(p)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
