"""A test: its setup (exception level, MTE controls, registers, memory, tags) and its body (a
straight line of instructions). Tests round-trip through JSON so runs can resume and
reproducers can be re-run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import layout


@dataclass(frozen=True)
class Insn:
    """One body instruction. `text` is what GNU as assembles (PAuth loads are `.inst` words
    with the mnemonic in a comment); `op` names the instruction for signatures ("ldsminb",
    "dc zva", "ldr"); `writes` lists the X registers it writes (31 = SP)."""
    text: str
    op: str
    writes: tuple = ()

    def to_json(self):
        return [self.text, self.op, list(self.writes)]

    @staticmethod
    def from_json(v):
        return Insn(v[0], v[1], tuple(v[2]))


@dataclass
class Test:
    id: int
    el: int = 1
    tcf: int = 1             # SCTLR_EL1.TCF (EL1)
    tcf0: int = 1            # SCTLR_EL1.TCF0 (EL0)
    ata: int = 1
    ata0: int = 1
    align: int = 0           # SCTLR_EL1.A
    tbi0: int = 1
    tcma0: int = 0
    tco: int = 0             # PSTATE.TCO on entry
    nzcv: int = 0
    gcr: int = 0
    rgsr: int = 0
    seed: int = 1            # xorshift64 seed of the area's data
    x: list = field(default_factory=lambda: [0] * 31)
    sp: int = layout.AREA + 0x800
    pokes: list = field(default_factory=list)       # [(offset in area, 64-bit value)], <= 4
    tags: list = field(default_factory=lambda: [0] * layout.GRANULES)
    body: list = field(default_factory=list)        # [Insn]

    @property
    def el_tcf(self) -> int:
        """The TCF that governs the body's own accesses."""
        return self.tcf if self.el else self.tcf0

    def sctlr(self) -> int:
        return layout.sctlr(self.tcf, self.tcf0, self.ata, self.ata0, self.align)

    def tcr(self) -> int:
        return layout.tcr(self.tbi0, self.tcma0)

    def spsr(self) -> int:
        return layout.spsr(self.el, self.nzcv, self.tco)

    def replace(self, **kw) -> "Test":
        t = dataclasses.replace(self, **kw)
        t.x = list(t.x)
        t.tags = list(t.tags)
        t.pokes = list(t.pokes)
        t.body = list(t.body)
        return t

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["body"] = [i.to_json() for i in self.body]
        d["x"] = [hex(v) for v in self.x]
        d["sp"] = hex(self.sp)
        d["tags"] = "".join("%x" % t for t in self.tags)
        d["pokes"] = [[o, hex(v)] for o, v in self.pokes]
        return d

    @staticmethod
    def from_json(d: dict) -> "Test":
        d = dict(d)
        d["body"] = [Insn.from_json(v) for v in d["body"]]
        d["x"] = [int(v, 16) for v in d["x"]]
        d["sp"] = int(d["sp"], 16)
        d["tags"] = [int(c, 16) for c in d["tags"]]
        d["pokes"] = [(o, int(v, 16)) for o, v in d["pokes"]]
        return Test(**d)

    def describe(self) -> str:
        """The setup in one line, as a reader of a report needs it."""
        tcf = layout.TCF_NAMES
        return (f"EL{self.el} TCF={tcf[self.tcf]} TCF0={tcf[self.tcf0]} ATA={self.ata} "
                f"ATA0={self.ata0} A={self.align} TBI0={self.tbi0} TCMA0={self.tcma0} "
                f"TCO={self.tco} NZCV={self.nzcv:x} GCR={self.gcr:#x} RGSR={self.rgsr:#x}")
