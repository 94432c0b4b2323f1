"""Named guest programs that once broke the emulator: each with what the architecture says,
and the oracle's answer where QEMU 10 has one.

QEMU's answers come from ``-d int`` (its exception log: ESR, FAR, ELR, SPSR of each exception
taken), which needs no handler in the guest, so a program whose vectors cannot be fetched is
still observed (QEMU then loops; the run is cut short).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine
from conftest import NATIVE_PATHS, requires_tool, tool

ROOT = Path(__file__).resolve().parent.parent
PATHS = NATIVE_PATHS

EC_IABT_SAME = 0x21
EC_ILLEGAL_STATE = 0x0E
EC_WFX = 0x01
IL = 1 << 25


def machine(src: str, native: bool, **kw) -> Machine:
    from aarch64mte.machine import native as native_lib
    if native and native_lib.library() is None:
        pytest.skip("the native extension is not built")
    m = Machine(native=native, **kw)
    m.load_image(assemble(src))
    return m


def qemu_exceptions(src: str, tmp_path, seconds: float = 1.5) -> list[dict]:
    """The exceptions QEMU 10 took running ``src`` (an ELF at 0x4008_0000, MMU off at entry),
    from its ``-d int`` log: kind, ESR, FAR, ELR, SPSR."""
    qemu = tool("qemu-system-aarch64")
    elf, log = tmp_path / "prog.elf", tmp_path / "int.log"
    assemble(src).write_elf(str(elf))
    try:
        subprocess.run([qemu, "-M", "virt,mte=on", "-cpu", "max", "-m", "128M", "-nographic",
                        "-net", "none", "-semihosting", "-kernel", str(elf), "-d", "int",
                        "-D", str(log)], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=seconds)
    except subprocess.TimeoutExpired:
        pass                                    # a guest that loops in its vectors
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("Taking exception"):
            out.append({"kind": line.split("[")[1].split("]")[0]})
        elif out and line.startswith("...with ") and " 0x" in line:
            name, value = line[len("...with "):].split(" ", 1)
            out[-1][name] = int(value.split("/")[-1], 16)
    return out


class Watchdog:
    """Stops a run (request_stop) once it has taken more exceptions than ``budget``
    instructions: an exception entry is counted as an instruction, so a run that does that has
    lost count and would go on forever."""

    def __init__(self, m: Machine, budget: int) -> None:
        self.m, self.budget, self.fired = m, budget, False
        self.done = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.done.wait(0.02):
            if self.m.counters.exceptions_taken > self.budget + 16:
                self.fired = True
                self.m.request_stop()
                return


# --- MMU on, TTBR0_EL1 = 0 -----------------------------------------------------------------------
# The next instruction fetch walks from PA 0, where this board has no memory: a synchronous
# External abort on the translation table walk (Arm ARM, D8 "Synchronous External abort on a
# translation table walk"; IFSC 0b0101LL, LL = the level: the snippet map starts at level 1,
# T0SZ = 25), an Instruction Abort from the current EL (EC 0x21), IL = 1.
ESR_WALK_ABORT_L1 = (EC_IABT_SAME << 26) | IL | 0b010101


@pytest.mark.parametrize("native", PATHS)
def test_ttbr0_xzr_with_the_mmu_on_is_an_external_abort_on_the_walk(native):
    m = machine("msr ttbr0_el1, xzr\nisb\nnop\n", native)
    entry = m.reg("pc")
    r = m.run(1000)
    assert r.reason == "exception" and r.exception.esr == ESR_WALK_ABORT_L1
    # which instruction after the MSR is the first fetched through the new TTBR0 is up to the
    # implementation until the ISB; the NOP after it must be
    assert entry + 4 <= r.exception.far <= entry + 8 and r.exception.pc == r.exception.far


MMU_ON = """
        .text
        .globl _start
_start: adr x0, l1table
        msr ttbr0_el1, x0
        mov x1, #0xf0                   // MAIR attr0: Normal Tagged
        msr mair_el1, x1
        movz x1, #0x3519                // T0SZ 25, 4 KiB, WB, inner shareable
        movk x1, #0x80, lsl #16         // EPD1
        movk x1, #0x22, lsl #32         // IPS 40 bits, TBI0
        msr tcr_el1, x1
        isb
        mrs x1, sctlr_el1
        orr x1, x1, #1
        msr sctlr_el1, x1
        isb
{body}
        b .
        .data
        .balign 4096
l1table: .quad 0x0060000000000405       // 0-1 GiB: Device, never executable
        .quad 0x0000000040000701        // 1-2 GiB: RAM, Normal
        .fill 510, 8, 0
"""


# TTBR0_EL1 at 0x10_0000_0000: no memory on either board (QEMU's PA 0 is flash, so xzr there
# walks zeros instead: a translation fault). The TLBI makes the walk certain.
TTBR0_FAR = MMU_ON.format(body="        mov x0, #0x1000000000\n        msr ttbr0_el1, x0\n"
                                "        tlbi vmalle1\n        dsb ish\n        isb\n        nop")


@pytest.fixture(scope="module")
def qemu_ttbr0_far(tmp_path_factory):
    if tool("qemu-system-aarch64") is None:
        pytest.skip("oracle tool missing: qemu-system-aarch64")
    return qemu_exceptions(TTBR0_FAR, tmp_path_factory.mktemp("ttbr0"))[0]


@pytest.mark.parametrize("native", PATHS)
def test_ttbr0_outside_memory_matches_qemu(qemu_ttbr0_far, native):
    q, src = qemu_ttbr0_far, TTBR0_FAR
    m = Machine(profile="virt", native=native)
    img = assemble(src)
    m.load_image(img)
    r = m.run(1000)
    assert q["ESR"] == r.exception.esr == ESR_WALK_ABORT_L1
    msr = q["ELR"] - 16                 # QEMU's ELR is the NOP after the ISB
    assert msr + 4 <= r.exception.far <= q["FAR"] == q["ELR"]


# --- exception loops stop at the instruction limit -----------------------------------------------
ERET_TABLE = """
        adr x0, vectors
        msr vbar_el1, x0
{before}
        .inst 0                         // UDF: its ELR is itself, so each ERET comes back here
        .balign 2048
vectors:
        .rept 16
        eret
        .balign 128
        .endr
"""


def limited(mem: int):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


@pytest.mark.parametrize("native", PATHS)
def test_eret_table_loop_stops_at_the_instruction_limit(tmp_path, native):
    # every UDF enters the vector (an ERET), which returns to the UDF: two instructions a turn,
    # forever; --max-insns ends it, the report says so, and the memory stays bounded (the
    # exception log keeps its last records only)
    src = tmp_path / "loop.S"
    src.write_text(ERET_TABLE.format(before=""))
    env = dict(os.environ, PYTHONPATH=str(ROOT), AARCH64MTE_NATIVE="1" if native else "0")
    p = subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", "run", str(src),
                        "--max-insns", "3000"], capture_output=True, text=True, timeout=300,
                       env=env, preexec_fn=limited(3 << 30))
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "reached the instruction limit" in p.stdout and "3,000 instructions" in p.stdout


@pytest.mark.parametrize("before", [
    "        msr tcr_el1, xzr\n        isb",        # no translation for the vectors either
    "        mov x1, #0x80000000\n        msr vbar_el1, x1\n        isb",     # unmapped VBAR
], ids=["tcr-zero", "vbar-unmapped"])
def test_exception_loop_at_an_unfetchable_vector_stops_at_the_limit(before):
    m = machine(ERET_TABLE.format(before=before), native=False)
    dog = Watchdog(m, 1000)
    try:
        r = m.run(1000)
    finally:
        dog.done.set()
    assert not dog.fired and r.reason == "insn-limit"


# --- illegal exception returns ---------------------------------------------------------------
# AArch64.ExceptionReturn: an SPSR that names an EL that is not implemented, or AArch32 where
# the EL has no AArch32, is an illegal return: PSTATE.IL = 1, EL, SP and nRW unchanged, the
# other fields from the SPSR, PC = ELR. The next instruction then takes an Illegal Execution
# state exception (EC 0x0E) with ELR = that instruction and SPSR.IL = 1.
ILLEGAL_RETURN = """
        adr x0, target
        msr elr_el1, x0
        mov x0, #{mode}
        msr spsr_el1, x0
        eret
target: nop
        nop
"""


def check_illegal_return(m: Machine) -> None:
    r = m.run(1000)
    target = m.symbols["target"]
    assert r.reason == "exception", r
    assert r.exception.esr == (EC_ILLEGAL_STATE << 26) | IL and r.exception.pc == target
    # with no vector table the machine stops at the exception, before entry: PSTATE is what
    # the illegal return left, which QEMU 10 then saves as SPSR 0x100005 (IL, EL1h, DAIF
    # from the SPSR written: clear)
    assert m.reg("pstate") & 0x0010_000F == 0x0010_0005


@requires_tool("qemu-system-aarch64")
def test_qemu_takes_an_illegal_return_to_el2_without_el2(tmp_path):
    # the oracle for the test below (QEMU virt without virtualization=on has no EL2)
    src = ("        .text\n        .globl _start\n_start:\n"
           + ILLEGAL_RETURN.format(mode=0b01001) + "        b .\n")
    q = qemu_exceptions(src, tmp_path)[0]
    target = 0x4008_0014
    assert (q["ESR"], q["ELR"], q["SPSR"]) == ((EC_ILLEGAL_STATE << 26) | IL, target, 0x100005)


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("mode", [0b01001, 0b01101], ids=["el2h", "el3h"])
def test_eret_to_a_missing_el_is_an_illegal_return(native, mode):
    check_illegal_return(machine(ILLEGAL_RETURN.format(mode=mode), native))


@pytest.mark.parametrize("native", PATHS)
def test_eret_to_aarch32_is_an_illegal_return(native):
    # the machine runs A64 only: ID_AA64PFR0_EL1.EL0 and .EL1 must read 0b0001 (AArch64 only),
    # and then SPSR.M[4] = 1 (AArch32 User) is an illegal return
    m = machine(ILLEGAL_RETURN.format(mode=0b10000), native)
    pfr0 = m.reg("id_aa64pfr0_el1")
    assert pfr0 & 0xF == 1 and (pfr0 >> 4) & 0xF == 1
    check_illegal_return(m)


# --- WFI and WFE never wait --------------------------------------------------------------------
# Nothing can wake a waiting PE on this board (no interrupts, no events but its own), and the
# architecture lets WFI/WFE complete at once. At EL0, SCTLR_EL1.nTWI = 0 (the reset value this
# board keeps) traps WFI to EL1: EC 0x01, CV = 1, COND = 0b1110, TI = 0b00 (WFI).
ESR_WFI_TRAPPED = (EC_WFX << 26) | IL | (1 << 24) | (0xE << 20)


@pytest.mark.parametrize("native", PATHS)
def test_wfi_and_wfe_at_el1_complete(native):
    m = machine("wfi\nwfe\nsevl\nwfe\nwfi\nnop\n", native)
    r = m.run(1000)
    assert r.reason == "end" and m.counters.insns == 6


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("el, insn", [(1, "wfi"), (1, "wfe"), (0, "wfe")])
def test_wfi_and_wfe_loops_stop_at_the_instruction_limit(native, el, insn):
    m = machine(f"1: {insn}\n   b 1b\n", native, el=el)
    r = m.run(5000)
    assert r.reason == "insn-limit" and m.counters.insns == 5000


@pytest.mark.parametrize("native", PATHS)
def test_wfi_at_el0_traps_to_el1(native):
    m = machine("wfi\nnop\n", native, el=0)
    r = m.run(1000)
    assert r.reason == "exception" and r.exception.esr == ESR_WFI_TRAPPED
    assert r.exception.el == 1 and r.exception.from_el == 0


# --- a tag-faulting loop keeps its memory bounded ---------------------------------------------
ASYNC_LOOP = """
        adr x1, buf
        orr x1, x1, #(3 << 56)          // logical tag 3; buf's allocation tag is 0
1:      str x2, [x1]
        b 1b
        .data
        .balign 16
buf:    .quad 0, 0
"""


def test_a_tag_faulting_loop_keeps_a_bounded_fault_log():
    # 50,000 asynchronous tag-check failures: TFSR_EL1.TF0 is set (the architecture's record)
    # and the run goes on; the machine's own list keeps the latest ones only (it is trimmed to
    # FAULT_LOG_LIMIT when it reaches twice that) and counts what it let go
    from aarch64mte.machine.tagunit import FAULT_LOG_LIMIT
    m = machine(ASYNC_LOOP, native=False, tcf="async")
    r = m.run(100_000)
    assert r.reason == "insn-limit" and m.reg("tfsr_el1") == 1
    assert len(m.tag_faults) <= 2 * FAULT_LOG_LIMIT
    assert len(m.tag_faults) + m.tagunit.faults_dropped == 49_999


# --- what the instruction an exception return lands on raises first ---------------------------
# The synchronous exception priority order (Arm ARM D1.3, "Prioritization of synchronous
# exceptions"): a PC alignment fault, then an Instruction Abort on the fetch, come before the
# Illegal Execution state exception. PSTATE.IL = 1 comes from an illegal return or from a legal
# one whose SPSR has IL = 1 (AArch64.ExceptionReturn copies SPSR.IL); either way the instruction
# at ELR takes the first of them, and counts as one instruction, as any faulting one does.
IL_RETURN = """
        ldr x7, ={spsr:#x}
        msr spsr_el1, x7
        ldr x7, ={elr}
        msr elr_el1, x7
        eret
target: nop
        nop
        .ltorg
"""
SPSR_LEGAL_IL = 0x0010_0005          # EL1h, IL
SPSR_ILLEGAL = 0b01001               # EL2h on a board without EL2: an illegal return


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("spsr", [SPSR_LEGAL_IL, SPSR_ILLEGAL], ids=["legal-il", "illegal"])
@pytest.mark.parametrize("elr, kind, ec", [
    ("target", "illegal_state", EC_ILLEGAL_STATE),
    ("target + 2", "pc_alignment", 0x22),
    ("0xfffffffffffffffc", "instruction_abort", EC_IABT_SAME),    # no translation
], ids=["fetchable", "misaligned", "unfetchable"])
def test_the_instruction_after_an_il_return_takes_its_first_exception(native, spsr, elr, kind,
                                                                      ec):
    m = machine(IL_RETURN.format(spsr=spsr, elr=elr), native)
    r = m.run(1000)
    assert r.reason == "exception" and r.exception.kind == kind and r.exception.ec == ec
    assert m.counters.insns == 6                  # four setup, the ERET, the faulting one
    assert m.reg("pstate") >> 20 & 1 == 1         # PSTATE.IL: saved to SPSR by the entry


@requires_tool("qemu-system-aarch64")
@pytest.mark.parametrize("spsr", [SPSR_LEGAL_IL, SPSR_ILLEGAL], ids=["legal-il", "illegal"])
def test_qemu_takes_the_pc_alignment_fault_before_the_illegal_state(tmp_path, spsr):
    src = ("        .text\n        .globl _start\n_start:\n"
           + IL_RETURN.format(spsr=spsr, elr="target + 2") + "        b .\n")
    q = qemu_exceptions(src, tmp_path)[0]
    assert q["ESR"] == 0x22 << 26 | IL          # PC alignment fault, ISS 0
    assert q["FAR"] == q["ELR"] == 0x4008_0016


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("budget", [10, 11, 400, 401])
def test_an_abort_loop_after_eret_stops_exactly_at_the_budget(native, budget):
    # ERET to EL0 at address 0 (SPSR and ELR reset to 0), whose fetch aborts to a vector that
    # ERETs again: two instructions per round. The run ends at the budget exactly, whichever
    # of the two it falls on, and going on later counts on from there.
    src = """
        adr x6, vt
        msr vbar_el1, x6
        isb
        eret
        .balign 2048
vt:     .rept 16
        eret
        .balign 128
        .endr
"""
    m = machine(src, native)
    r = m.run(budget)
    assert r.reason == "insn-limit" and m.counters.insns == budget
    r = m.run(7)
    assert r.reason == "insn-limit" and m.counters.insns == budget + 7


@pytest.mark.parametrize("native", PATHS)
def test_a_32_bit_register_reads_without_stale_upper_bits(native):
    # PSTATE and NZCV are 32 bits in the engine: a read must not carry the upper half of the
    # register read before it
    m = machine("nop\n", native)
    m.set_reg("x0", (1 << 64) - 1)
    assert m.reg("x0") == (1 << 64) - 1
    assert m.reg("pstate") < 1 << 32 and m.reg("nzcv") < 1 << 32
