"""A small in-memory machine with the `machine` contract's debugging surface, and tests of the
session logic (breakpoints, conditions, step, next, interrupt) against it.

The fake executes a handful of real A64 encodings: NOP, ADD (immediate), B, BL, RET,
LDR Xt, [Xn] (tag-checked against its 16-byte granule tags), HLT (exit with X0) and BRK.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace


from aarch64mte.debug.session import SIGINT, SIGSEGV, SIGTRAP, Session

BASE = 0x4008_0000
RAM = 0x4000_0000
RAM_SIZE = 0x10_0000

NOP = 0xD503201F
RET = 0xD65F03C0
HLT = 0xD4400000
BRK = 0xD4200000


def ADD(d, n, imm):
    return 0x91000000 | imm << 10 | n << 5 | d


def LDR(t, n):
    return 0xF9400000 | n << 5 | t


def B(offset):
    return 0x14000000 | ((offset >> 2) & 0x3FFFFFF)


def BL(offset):
    return 0x94000000 | ((offset >> 2) & 0x3FFFFFF)


@dataclass
class TagFault:
    va: int
    logical_tag: int
    allocation_tag: int
    write: bool
    mode: str


@dataclass
class ExceptionRecord:
    kind: str
    ec: int
    esr: int
    far: int
    el: int
    from_el: int
    pc: int
    tag_fault: object = None


@dataclass
class RunResult:
    reason: str
    code: object
    exception: object
    pc: int


class FakeMachine:
    def __init__(self, program, symbols=None, tagged=(RAM, RAM + 0x2_0000)):
        self.mem = bytearray(RAM_SIZE)
        self.tags = bytearray(RAM_SIZE // 16)
        self.ram = SimpleNamespace(base=RAM, size=RAM_SIZE)
        self.tagged = tagged
        self.regs = {f"x{i}": 0 for i in range(31)}
        self.regs.update(sp=RAM + 0x8_0000, pc=BASE, nzcv=0, el=1, tco=0, fpsr=0, fpcr=0,
                         sctlr_el1=1 << 40 | 1 << 43, gcr_el1=0x10000 | 1, rgsr_el1=0,
                         tfsr_el1=0, tfsre0_el1=0, gmid_el1=4, esr_el1=0, far_el1=0)
        for i in range(32):
            self.regs[f"v{i}"] = 0
        for i, word in enumerate(program):
            self.write_mem(BASE + 4 * i, word.to_bytes(4, "little"))
        self.symbols = dict(symbols or {})
        self.bps: set[int] = set()
        self.watches = []
        self.exception_log = []
        self.tag_faults = []
        self.console = ""
        self.counters = {"insns": 0}
        self._stop = threading.Event()

    # registers
    def reg(self, name):
        if name not in self.regs:
            raise KeyError(name)
        return self.regs[name]

    def set_reg(self, name, value):
        if name not in self.regs:
            raise KeyError(name)
        self.regs[name] = value & ((1 << 128) - 1 if name.startswith("v") else (1 << 64) - 1)

    # memory and tags
    def _pa(self, va, n=1):
        pa = va & ((1 << 56) - 1)
        if not (RAM <= pa and pa + n <= RAM + RAM_SIZE):
            raise ValueError(f"unmapped address 0x{va:x}")
        return pa - RAM

    def read_mem(self, va, n, physical=False):
        o = self._pa(va, n)
        return bytes(self.mem[o:o + n])

    def write_mem(self, va, data, physical=False):
        o = self._pa(va, len(data))
        self.mem[o:o + len(data)] = data

    def is_tagged(self, va):
        pa = va & ((1 << 56) - 1)
        return self.tagged[0] <= pa < self.tagged[1]

    def read_tags(self, va, length):
        first = va & ~15 & ((1 << 56) - 1)
        end = (va & ((1 << 56) - 1)) + max(length, 1)
        out = []
        for g in range(first, end, 16):
            self._pa(g)
            out.append(self.tags[(g - RAM) // 16] if self.is_tagged(g) else 0)
        return out

    def write_tags(self, va, tags):
        g = va & ~15 & ((1 << 56) - 1)
        for t in tags:
            self._pa(g)
            if self.is_tagged(g):
                self.tags[(g - RAM) // 16] = t & 0xF
            g += 16

    def translate(self, va):
        try:
            return RAM + self._pa(va)
        except ValueError:
            return None

    def symbolize(self, addr):
        best = None
        for name, a in self.symbols.items():
            if a <= addr and (best is None or a > best[1]):
                best = (name, a)
        if best is None:
            return None
        return best[0] if addr == best[1] else f"{best[0]}+0x{addr - best[1]:x}"

    # debugging
    def add_breakpoint(self, addr):
        self.bps.add(addr)

    def remove_breakpoint(self, addr):
        self.bps.discard(addr)

    def add_watch(self, va, length, kind="tag"):
        self.watches.append((va, length, kind))

    def remove_watch(self, va, length=None, kind=None):
        self.watches = [w for w in self.watches if w[0] != va]

    def request_stop(self):
        self._stop.set()

    # execution
    def _exec_one(self):
        """Execute one instruction; returns a RunResult when it ends the run, else None."""
        r = self.regs
        pc = r["pc"]
        w = int.from_bytes(self.read_mem(pc, 4), "little")
        self.counters["insns"] += 1
        nxt = pc + 4
        if w == NOP:
            pass
        elif w & 0xFF800000 == 0x91000000:
            d, n, imm = w & 31, (w >> 5) & 31, (w >> 10) & 0xFFF
            src = r["sp"] if n == 31 else r[f"x{n}"]
            value = (src + imm) & ((1 << 64) - 1)
            if d == 31:
                r["sp"] = value
            else:
                r[f"x{d}"] = value
        elif w & 0xFC000000 in (0x14000000, 0x94000000):
            off = (w & 0x3FFFFFF) << 2
            if off & (1 << 27):
                off -= 1 << 28
            if w & 0x80000000:
                r["x30"] = pc + 4
            nxt = (pc + off) & ((1 << 64) - 1)
        elif w == RET:
            nxt = r["x30"]
        elif w & 0xFFC00000 == 0xF9400000:
            t, n = w & 31, (w >> 5) & 31
            va = r["sp"] if n == 31 else r[f"x{n}"]
            if self.is_tagged(va):
                ltag = (va >> 56) & 0xF
                atag = self.read_tags(va, 1)[0]
                if ltag != atag:
                    tf = TagFault(va, ltag, atag, False, "sync")
                    rec = ExceptionRecord("sync", 0x25, 0x96000011, va, 1, 1, pc, tf)
                    self.exception_log.append(rec)
                    self.tag_faults.append(tf)
                    return RunResult("exception", None, rec, pc)
            r[f"x{t}"] = int.from_bytes(self.read_mem(va, 8), "little")
        elif w & 0xFFE0001F == HLT:
            r["pc"] = nxt
            return RunResult("semihost-exit", r["x0"] & 0xFF, None, nxt)
        elif w & 0xFFE0001F == BRK:
            return RunResult("brk", (w >> 5) & 0xFFFF, None, pc)
        else:
            rec = ExceptionRecord("sync", 0, 0x02000000, 0, 1, 1, pc)
            self.exception_log.append(rec)
            return RunResult("exception", None, rec, pc)
        r["pc"] = nxt
        return None

    def run(self, max_insns=10_000_000):
        self._stop.clear()
        for _ in range(max_insns):
            if self._stop.is_set():
                self._stop.clear()
                return RunResult("interrupt", None, None, self.regs["pc"])
            if self.regs["pc"] in self.bps:
                return RunResult("breakpoint", None, None, self.regs["pc"])
            res = self._exec_one()
            if res is not None:
                return res
        return RunResult("insn-limit", None, None, self.regs["pc"])

    def step(self, n=1):
        for _ in range(n):
            res = self._exec_one()
            if res is not None:
                return res
        return RunResult("step", None, None, self.regs["pc"])


# A program: main calls inc three times in a loop-free way, then loads through x2 and exits.
#   0  _start: mov x0, #0 (add x0, xzr... use add x0, x0, #0)
PROGRAM = [
    ADD(0, 0, 0),          # 0x00 _start
    BL(0x14),              # 0x04 -> inc (0x18)
    BL(0x10),              # 0x08 -> inc
    ADD(3, 3, 7),          # 0x0c
    LDR(1, 2),             # 0x10 load through x2
    HLT | 0xF000 << 5,     # 0x14 exit(x0)
    ADD(0, 0, 1),          # 0x18 inc
    RET,                   # 0x1c
    B(0),                  # 0x20 spin: b .
]
SYMBOLS = {"_start": BASE, "inc": BASE + 0x18, "spin": BASE + 0x20, "buf": RAM + 0x1000}


def make():
    m = FakeMachine(PROGRAM, SYMBOLS)
    m.regs["x2"] = SYMBOLS["buf"]
    return m


def test_step_and_next_over_call():
    s = Session(make())
    assert s.step().pc == BASE + 4
    stop = s.next()                     # over BL inc
    assert stop.pc == BASE + 8 and s.machine.reg("x0") == 1
    stop = s.step()                     # into inc
    assert stop.pc == BASE + 0x18


def test_breakpoint_condition_and_continue_from_breakpoint():
    s = Session(make())
    s.condition_eval = lambda text: s.machine.reg("x0") == 1
    bp = s.add_breakpoint(BASE + 0x18, condition="x0 == 1")
    stop = s.cont()
    assert stop.reason == "breakpoint" and stop.breakpoint is bp
    assert s.machine.reg("x0") == 1      # second entry to inc: x0 was already incremented once
    stop = s.cont()
    assert stop.exited and stop.exit_code == 2


def test_tag_fault_stop():
    m = make()
    m.regs["x2"] = (3 << 56) | (RAM + 0x1000)
    m.write_tags(RAM + 0x1000, [5])
    stop = Session(m).cont()
    assert stop.signal == SIGSEGV and stop.tag_fault.allocation_tag == 5
    assert stop.fault_addr == (3 << 56) | (RAM + 0x1000)


def test_interrupt_from_another_thread():
    m = make()
    m.regs["pc"] = BASE + 0x20
    s = Session(m)
    threading.Timer(0.1, s.request_stop).start()
    t0 = time.monotonic()
    stop = s.cont()
    assert stop.signal == SIGINT and time.monotonic() - t0 < 5


def test_temporary_breakpoint_is_removed():
    s = Session(make())
    s.run_to(BASE + 0xC)
    assert s.pc() == BASE + 0xC and not s.breakpoints and not s.machine.bps
    assert s.step().signal == SIGTRAP
