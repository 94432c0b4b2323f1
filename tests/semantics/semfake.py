"""An in-memory CPU implementing aarch64mte.semantics.cpu.Cpu, for the semantics tests.

Flat physical memory at BASE, identity translation of the address with its top byte ignored
(TBI), one tag per granule in a dict. Pages can be marked Untagged or unmapped (a translation
fault). Registers are plain Python values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from aarch64mte.semantics import faults
from aarch64mte.semantics.pseudocode import (
    AllocationTagAccessIsEnabled, HCR_ATA, SCTLR_ATA, SCTLR_ATA0,
)

BASE = 0x4000_0000
SIZE = 0x10000
PAGE = 0x1000
VA_MASK = (1 << 56) - 1


@dataclass(frozen=True)
class Insn:
    """Stand-in with the field names of aarch64mte.isa.Insn."""

    name: str
    form: Optional[str] = None
    d: Optional[int] = None
    n: Optional[int] = None
    m: Optional[int] = None
    t: Optional[int] = None
    t2: Optional[int] = None
    offset: Optional[int] = None
    tag_offset: Optional[int] = None
    imm: Optional[int] = None
    reg: Optional[str] = None


class FakeCpu:
    def __init__(self, el: int = 1, el2: bool = False, **sysregs):
        self.xregs = [0] * 31
        self.sp_value = 0
        self._el = el
        self._tco = 0
        self._nzcv = 0
        self.el2 = el2
        self.sysregs = {
            "SCTLR_EL1": SCTLR_ATA | SCTLR_ATA0,
            "SCTLR_EL2": SCTLR_ATA | SCTLR_ATA0,
            "HCR_EL2": HCR_ATA,
            "GCR_EL1": 0,
            "RGSR_EL1": 0,
            "TFSR_EL1": 0,
            "TFSRE0_EL1": 0,
            "TFSR_EL2": 0,
            "GMID_EL1": 4,
            "DCZID_EL0": 4,
        }
        self.sysregs.update(sysregs)
        self.mem = bytearray(SIZE)
        self.tags = {}
        self.untagged_pages = set()
        self.unmapped_pages = set()
        self.random_tags = []
        self.tag_reads = 0
        self.tag_writes = 0

    # --- registers ------------------------------------------------------------------------
    def x(self, n):
        return 0 if n == 31 else self.xregs[n]

    def set_x(self, n, value):
        if n != 31:
            self.xregs[n] = value & (1 << 64) - 1

    def sp(self):
        return self.sp_value

    def set_sp(self, value):
        self.sp_value = value & (1 << 64) - 1

    def x_or_sp(self, n):
        return self.sp_value if n == 31 else self.xregs[n]

    def set_x_or_sp(self, n, value):
        if n == 31:
            self.set_sp(value)
        else:
            self.set_x(n, value)

    def nzcv(self):
        return self._nzcv

    def set_nzcv(self, value):
        self._nzcv = value & 0xF0000000

    @property
    def el(self):
        return self._el

    @property
    def tco(self):
        return self._tco

    def set_tco(self, value):
        self._tco = value & 1

    def sysreg(self, name):
        return self.sysregs.get(name, 0)

    def set_sysreg(self, name, value):
        self.sysregs[name] = value

    def el2_enabled(self):
        return self.el2

    # --- tags and memory ------------------------------------------------------------------
    def tag_access_enabled(self, el):
        return AllocationTagAccessIsEnabled(el, self.sysreg("SCTLR_EL1"), self.sysreg("HCR_EL2"),
                                            self.el2, self.sysreg("SCTLR_EL2"))

    def _translate(self, va, write):
        pa = va & VA_MASK
        if not BASE <= pa < BASE + SIZE or (pa & ~(PAGE - 1)) in self.unmapped_pages:
            raise faults.TranslationFault(va, write, 0b000111)
        return pa

    def _tagged(self, pa):
        return (pa & ~(PAGE - 1)) not in self.untagged_pages

    def mem_tag_read(self, va):
        pa = self._translate(va, False)
        self.tag_reads += 1
        if not self.tag_access_enabled(self._el) or not self._tagged(pa):
            return 0
        return self.tags.get(pa >> 4, 0)

    def mem_tag_write(self, va, tag):
        pa = self._translate(va, True)
        self.tag_writes += 1
        if self.tag_access_enabled(self._el) and self._tagged(pa):
            self.tags[pa >> 4] = tag & 0xF

    def probe_write(self, va):
        self._translate(va, True)

    def mem_write_unchecked(self, va, data):
        for i in range(len(data)):
            self._translate(va + i, True)
        pa = self._translate(va, True)
        self.mem[pa - BASE:pa - BASE + len(data)] = data

    def random_tag(self):
        return self.random_tags.pop(0)

    # --- test conveniences ----------------------------------------------------------------
    def tag_at(self, pa):
        return self.tags.get((pa & VA_MASK) >> 4, 0)

    def set_tag(self, pa, tag):
        self.tags[(pa & VA_MASK) >> 4] = tag

    def read(self, pa, n):
        return bytes(self.mem[pa - BASE:pa - BASE + n])


class BulkFakeCpu(FakeCpu):
    """The same CPU with the optional bulk tag methods."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.bulk_calls = 0

    def mem_tags_read(self, va, count):
        self.bulk_calls += 1
        return [FakeCpu.mem_tag_read(self, va + 16 * i) for i in range(count)]

    def mem_tags_write(self, va, tags):
        self.bulk_calls += 1
        for i, t in enumerate(tags):
            FakeCpu.mem_tag_write(self, va + 16 * i, t)
