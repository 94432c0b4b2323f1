"""Running a conformance body: real assembly on the emulator, and the same body under QEMU.

Two ways to run a body, both with the short-form setup of every conformance test: memory
tagged 3, ``x0`` = P with logical tag 3 (matching), ``x2`` = P with logical tag 5
(mismatching), TCF = sync, where P is 256 bytes into a 64-byte aligned, two-page buffer.

``run_body`` (the emulator, through the Machine API): the snippet profile (EL1h, MMU on with an
identity map of RAM as Normal Tagged) with guest exception vectors that log every exception
the body takes (ESR, FAR, ELR, SPSR, and PSTATE.TCO and TFSR_EL1 as the handler saw them) and
resume the body at the next instruction, as an operating system's fixup would. ``x25``-``x28``
belong to the handler; bodies use ``x0``-``x24``.

``Harness`` (the emulator and QEMU on one ELF): the differential tester's bare-metal harness
(tools/qemu_diff), which runs each body at EL1t with the same setup in its test area and
prints what the body did. The same ELF runs under
``qemu-system-aarch64 -M virt,mte=on -cpu max -semihosting`` and in-process on the emulator,
so each side can be held against the architectural value.
"""
from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine
from conftest import NATIVE_PATHS, examples, native_built  # noqa: F401 (examples: cs.examples())

# --- ESR values (Arm ARM D24.2.49 ESR_EL1; ISS encoding for a Data Abort) ---------------------
EC_UNKNOWN, EC_ILLEGAL_STATE, EC_PC_ALIGN = 0x00, 0x0E, 0x22
EC_DABT_LOWER, EC_DABT_SAME = 0x24, 0x25
IL = 1 << 25                 # 32-bit instruction
WNR = 1 << 6                 # ISS.WnR: "caused by an instruction writing to a memory location"
CM = 1 << 8                  # ISS.CM: cache maintenance
DFSC_TAG = 0b010001          # Synchronous Tag Check Fault
DFSC_ALIGN = 0b100001        # Alignment fault
DFSC_EXT = 0b010000          # Synchronous External abort


def dabt(dfsc: int, wnr: bool, same_el: bool = True) -> int:
    """ESR of a Data Abort with ISV = 0 (no syndrome), IL = 1."""
    ec = EC_DABT_SAME if same_el else EC_DABT_LOWER
    return (ec << 26) | IL | (WNR if wnr else 0) | dfsc


def translation(level: int) -> int:
    return 0b000100 | level          # Translation fault, level 0..3


def permission(level: int) -> int:
    return 0b001100 | level          # Permission fault, level 1..3


TAG_READ = dabt(DFSC_TAG, False)     # 0x96000011
TAG_WRITE = dabt(DFSC_TAG, True)     # 0x96000051
ALIGN_READ = dabt(DFSC_ALIGN, False)  # 0x96000021
ALIGN_WRITE = dabt(DFSC_ALIGN, True)  # 0x96000061
UNDEFINED = (EC_UNKNOWN << 26) | IL   # 0x02000000
ILLEGAL_STATE = (EC_ILLEGAL_STATE << 26) | IL
PC_ALIGN = (EC_PC_ALIGN << 26) | IL

SPSR_IL = 1 << 20
SPSR_TCO = 1 << 25
TFSR_TF0, TFSR_TF1 = 1, 2


def tagged(addr: int, tag: int) -> int:
    return (tag & 0xF) << 56 | addr


def xorshift_words(seed: int, n: int) -> List[int]:
    out, x, m = [], seed, (1 << 64) - 1
    for _ in range(n):
        x ^= (x << 13) & m
        x ^= x >> 7
        x ^= (x << 17) & m
        out.append(x)
    return out


# --- the emulator: run_body ------------------------------------------------------------------
PROLOGUE = """
_start:
    adr   x28, exc_log
    adr   x27, vectors
    msr   vbar_el1, x27
    isb
    b     body

    .balign 2048
vectors:
    .rept 16
    b     record
    .balign 0x80
    .endr

// Log one exception (ESR, FAR, ELR, SPSR, TCO, TFSR_EL1) and resume at the next instruction:
// ELR rounded down to a word (a PC alignment fault's ELR is the misaligned PC) plus 4, with
// SPSR.IL cleared so that the body goes on in a legal state.
record:
    mrs   x25, esr_el1
    mrs   x26, far_el1
    stp   x25, x26, [x28], #16
    mrs   x25, elr_el1
    mrs   x26, spsr_el1
    stp   x25, x26, [x28], #16
    mrs   x25, tco
    mrs   x26, tfsr_el1
    stp   x25, x26, [x28], #16
    mrs   x25, elr_el1
    and   x25, x25, #~3
    add   x25, x25, #4
    msr   elr_el1, x25
    mrs   x26, spsr_el1
    bic   x26, x26, #(1 << 20)
    msr   spsr_el1, x26
    eret

body:
"""

DATA = """
    .data
    .balign 4096
buf:     .skip 8192
    .balign 16
exc_log: .skip 2048
"""

BUF_SIZE = 8192
P_OFFSET = 0x100
SEED = 0x1234567


@dataclass
class Exc:
    """One exception as the guest's handler saw it."""
    esr: int
    far: int
    elr: int
    spsr: int
    tco: int           # PSTATE.TCO in the handler (MRS TCO: bit 25)
    tfsr: int          # TFSR_EL1 in the handler


@dataclass
class Run:
    m: Machine
    result: object                     # RunResult
    buf: int                           # the buffer's untagged address
    P: int                             # buf + 0x100
    initial: bytes                     # the buffer's contents before the run
    log: List[Exc] = field(default_factory=list)

    def reg(self, name: str) -> int:
        return self.m.reg(name)

    def sym(self, name: str) -> int:
        return self.m.symbols[name]

    def mem(self, va: int, n: int) -> bytes:
        return self.m.read_mem(va & ((1 << 56) - 1), n)

    def u64(self, va: int) -> int:
        return int.from_bytes(self.mem(va, 8), "little")

    def initial_at(self, va: int, n: int) -> bytes:
        off = (va & ((1 << 56) - 1)) - self.buf
        return self.initial[off:off + n]

    def changed(self) -> Dict[int, tuple]:
        """{offset in buf: (old 8 bytes, new 8 bytes)} for every 8-byte word that changed."""
        now = self.m.read_mem(self.buf, BUF_SIZE)
        return {o: (self.initial[o:o + 8], now[o:o + 8]) for o in range(0, BUF_SIZE, 8)
                if now[o:o + 8] != self.initial[o:o + 8]}


def run_body(body: str, native: bool, *, tcf: str = "sync", el: int = 1, tags=3,
             regs: Optional[dict] = None, data: str = "", max_insns: int = 20_000,
             machine_kw: Optional[dict] = None, setup=None) -> Run:
    """Assemble ``body`` after the logging vectors (EL1) or alone (EL0: no guest vectors; an
    exception stops the run), set up the buffer and registers, and run to the end of the text.
    ``tags``: one tag for the whole buffer, or a list of one per granule. ``setup(m, buf)``
    runs after the standard setup, before the run."""
    src = (PROLOGUE + body if el == 1 else "_start:\n" + body) + "\n" + DATA + data
    m = Machine(tcf=tcf, el=el, native=native, **(machine_kw or {}))
    m.load_image(assemble(src))
    buf = m.symbols["buf"]
    P = buf + P_OFFSET
    words = xorshift_words(SEED, BUF_SIZE // 8)
    initial = struct.pack(f"<{len(words)}Q", *words)
    m.write_mem(buf, initial)
    granules = BUF_SIZE // 16
    m.write_tags(buf, [tags] * granules if isinstance(tags, int) else list(tags))
    m.set_reg("x0", tagged(P, 3))
    m.set_reg("x2", tagged(P, 5))
    for k, v in (regs or {}).items():
        m.set_reg(k, v(P) if callable(v) else v)
    if setup is not None:
        setup(m, buf)
        initial = m.read_mem(buf, BUF_SIZE)
    r = m.run(max_insns)
    run = Run(m, r, buf, P, initial)
    if el == 1:
        base = m.symbols["exc_log"]
        n = (m.reg("x28") - base) // 48
        for i in range(n):
            run.log.append(Exc(*struct.unpack("<6Q", m.read_mem(base + 48 * i, 48))))
    return run


def ended(run: Run) -> None:
    """The body ran to the end of its text (nothing stopped the emulator)."""
    r = run.result
    assert r.reason == "end", (r.reason, r.exception, getattr(r.exception, "error", None))


# --- the harness: the same body on QEMU and on the emulator ------------------------------------
QEMU = "qemu-system-aarch64"


def harness_missing() -> List[str]:
    from tools.qemu_diff.program import missing_tools
    missing = list(missing_tools())
    if shutil.which(QEMU) is None:
        missing.append(QEMU)
    return missing


class Harness:
    """Every registered body in one harness ELF; results per side ('qemu', 'native',
    'python'), each run at most once per session."""

    def __init__(self, workdir: Optional[Path] = None) -> None:
        self.workdir = workdir
        self.cases: Dict[str, object] = {}
        self._elf: Optional[Path] = None
        self._results: Dict[str, dict] = {}

    def add(self, name: str, body: List[str], **kw) -> None:
        from tools.qemu_diff import layout
        from tools.qemu_diff.model import Insn, Test
        P = layout.AREA + P_OFFSET
        t = Test(id=len(self.cases) + 1, seed=SEED, rgsr=0x1234 << 8)
        t.tags = [3] * layout.GRANULES
        t.x[0], t.x[2] = tagged(P, 3), tagged(P, 5)
        for k, v in kw.items():
            if k[0] == "x" and k[1:].isdigit():
                t.x[int(k[1:])] = v(P) if callable(v) else v
            elif k == "sp":
                t.sp = v(P) if callable(v) else v
            else:
                setattr(t, k, v)
        t.body = [Insn(s, s.split()[0]) for s in body]
        self.cases[name] = t

    @property
    def P(self) -> int:
        from tools.qemu_diff import layout
        return layout.AREA + P_OFFSET

    def _build(self) -> Path:
        if self._elf is None:
            from tools.qemu_diff import program
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._elf = program.build(list(self.cases.values()), self.workdir / "conf.elf",
                                      self.workdir / "cache")
        return self._elf

    def results(self, side: str) -> dict:
        if side not in self._results:
            from tools.qemu_diff import runner
            elf = self._build()
            if side == "qemu":
                text, why, _ = runner.run_qemu(elf, 120)
                assert why is None, f"QEMU did not finish the harness: {why}"
            else:
                m = Machine(profile="virt", gmid_bs=6, native=side == "native")
                m.load(str(elf))
                r = m.run(200_000_000)
                assert r.reason == "semihost-exit", (r.reason, r.exception)
                text = m.console
            got = runner.parse_console(text)
            self._results[side] = {name: got.get(t.id) for name, t in self.cases.items()}
        return self._results[side]

    def result(self, side: str, name: str):
        r = self.results(side)[name]
        assert r is not None, f"{side}: the harness printed no line for {name}"
        return r

    def initial_word(self, off: int) -> int:
        """The area's initial 64-bit word at byte offset ``off`` (before the body ran)."""
        from tools.qemu_diff import layout
        return layout.area_words(SEED)[off // 8]


REGISTRY = Harness()          # test modules add their bodies at import
SIDES = ("qemu", "native", "python")


def qemu_departs(side: str, departed: bool, rule: str, what: str) -> None:
    """On QEMU, where QEMU 10 is known to do ``what`` (rule ``rule`` in
    tools/qemu_diff/rules.py) instead of the architecture: xfail when it still does, so a QEMU
    that follows the architecture shows up as XPASS without failing the suite."""
    if side == "qemu" and departed:
        pytest.xfail(f"documents QEMU 10 ({rule}): {what}")


# --- extra mappings for the snippet profile's level-1 table ------------------------------------
ALIAS_VA = 0x8000_0000        # GiB 2: an alias of RAM's first GiB (set up by ``alias_block``)
UNMAPPED_VA = 0x2_0000_0000   # GiB 8: no descriptor (a level-1 Translation fault)
ATTR_UNTAGGED = 2             # the snippet's MAIR_EL1 attribute 2: Normal write-back, Untagged
AP_RO = 1 << 7                # AP[2] = 1: read-only at EL1


def alias_block(m: Machine, *, read_only: bool = False, untagged: bool = False) -> None:
    """Give GiB 2 (VA 0x8000_0000) a level-1 block descriptor for RAM's first GiB, like the
    snippet map's own but read-only (AP[2] = 1) and/or Normal Untagged (AttrIndx = 2)."""
    from aarch64mte.machine import profiles
    from aarch64mte.machine.memory import RAM_BASE
    table = RAM_BASE + m.ram.size - profiles.TABLES_SIZE
    d = table + 8 * (RAM_BASE >> 30)
    desc = int.from_bytes(m.read_mem(d, 8, physical=True), "little")
    if read_only:
        desc |= AP_RO
    if untagged:
        desc = (desc & ~(7 << 2)) | (ATTR_UNTAGGED << 2)
    m.write_mem(d + 8, desc.to_bytes(8, "little"), physical=True)


def alias(va: int) -> int:
    """The GiB-2 alias of a RAM address (its tag bits kept)."""
    from aarch64mte.machine.memory import RAM_BASE
    tag = va & ~((1 << 56) - 1)
    return tag | ((va & ((1 << 56) - 1)) - RAM_BASE + ALIAS_VA)


def warn_if_qemu_architectural(side: str, what: str) -> None:
    """QEMU now does what the architecture says where it used to depart: say so."""
    if side == "qemu":
        import warnings
        warnings.warn(f"QEMU now follows the architecture: {what}; its departure rule in "
                      "tools/qemu_diff/rules.py may be retired", UserWarning)


# --- fixtures (imported by each test module: a conftest.py here would shadow tests/conftest.py,
# which other suites import by name) ---------------------------------------------------------------
PATHS = NATIVE_PATHS


@pytest.fixture(params=PATHS)
def native(request) -> bool:
    """True for the native hooks, False for the pure-Python ones (AARCH64MTE_NATIVE=0's)."""
    return request.param


@pytest.fixture(params=SIDES)
def side(request) -> str:
    """Where a harness body runs: 'qemu' (the oracle), 'native' or 'python' (the emulator)."""
    s = request.param
    missing = harness_missing()
    if s == "qemu" and missing:
        pytest.skip("needs " + ", ".join(missing))
    if s != "qemu" and [t for t in missing if t != QEMU]:
        pytest.skip("building the harness needs " + ", ".join(missing))
    if s == "native" and not native_built():
        pytest.skip("the native extension is not built here")
    return s


@pytest.fixture(scope="session")
def harness(tmp_path_factory) -> Harness:
    if REGISTRY.workdir is None:
        REGISTRY.workdir = tmp_path_factory.mktemp("conformance_harness")
    return REGISTRY
