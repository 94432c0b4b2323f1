"""``CpuView``: the ``Cpu`` protocol of ``semantics/cpu.py`` over the machine, which the MTE
instruction semantics run against in Python (registers, allocation tags through the current
translation, stores that are not tag-checked, the random tag source).

While an instruction runs (``begin``/``end``), register reads come from the copy of X0-X30 and
SP the trap read in one call (``Engine.trap_regs``), and EL is fixed; every write goes to the
engine and to that copy. Tag accesses translate through the soft TLB the native trap uses too
(``Core.stlb``): what Python fills here, the native path finds.
"""
from __future__ import annotations

from functools import partial
from typing import Optional

from unicorn import arm64_const as A

from ..semantics import faults
from . import native
from .registers import MASK64, X_REGS
from .translation import tbi_applies

_SP = A.UC_ARM64_REG_SP
X_OR_SP = X_REGS + [_SP]          # register number 31 as SP
_PAGE_MASK = MASK64 & ~0xFFF
_PAGE_NO_TOP = 0x00FF_FFFF_FFFF_F000
_TAGGED, _RAM = native.STLB_TAGGED, native.STLB_RAM


class CpuView:
    def __init__(self, eng, core, regs, mmu, ram, tagunit, on_data_write) -> None:
        self.eng = eng
        self.core = core
        self.regs = regs
        self.mmu = mmu
        self.ram = ram
        self.tagunit = tagunit
        self.tags = tagunit.tags
        self.on_data_write = on_data_write    # (pa, n): a watch may be hit
        self.sysreg = regs.sysreg             # (name) -> value
        self.set_sysreg = regs.set_sysreg     # (name, value)
        rd, wr, h, p = eng._reg_read, eng._reg_write, eng.handle, eng._pu64
        self._u64 = eng._u64
        self._snap = eng.trap_regs
        self._xrd = [partial(rd, h, r, p) for r in X_OR_SP]      # 31: SP
        self._xwr = [partial(wr, h, r, p) for r in X_OR_SP]
        # the EL of the MTE instruction running (MteUnit sets it): while set, the registers
        # come from Engine.trap_regs
        self._el: Optional[int] = None
        # counted here on the Python path (the native trap counts in the core)
        self.tag_granules_read = self.tag_granules_written = self.insn_bytes_written = 0
        self._stlb = [None, None]             # last entry used, per access kind
        self.provenance = None                # provenance.Provenance: tag writes recorded there
        self.writer = (0, "")                 # (PC, name) of the MTE instruction running
        mmu.on_invalidate.append(self.forget_translations)

    @property
    def el(self) -> int:
        el = self._el
        return el if el is not None else self.regs.el

    # --- registers -----------------------------------------------------------------------------
    def x(self, n: int) -> int:
        if n == 31:
            return 0
        if self._el is not None:
            return self._snap[n]
        self._xrd[n]()
        return self._u64.value

    def set_x(self, n: int, value: int) -> None:
        if n != 31:
            value &= MASK64
            self._u64.value = value
            self._xwr[n]()
            self._snap[n] = value

    def sp(self) -> int:
        if self._el is not None:
            return self._snap[31]
        self._xrd[31]()
        return self._u64.value

    def set_sp(self, value: int) -> None:
        self.set_x_or_sp(31, value)

    def x_or_sp(self, n: int) -> int:
        if self._el is not None:
            return self._snap[n]
        self._xrd[n]()
        return self._u64.value

    def set_x_or_sp(self, n: int, value: int) -> None:
        value &= MASK64
        self._u64.value = value
        self._xwr[n]()
        self._snap[n] = value

    def set_nzcv(self, value: int) -> None:
        self.eng.wr(A.UC_ARM64_REG_NZCV, value)


    @property
    def tco(self) -> int:
        return self.regs.mte.tco

    def set_tco(self, value: int) -> None:
        self.regs.set_tco(value)

    def el2_enabled(self) -> bool:
        return self.mmu.el2          # implemented, and with no EL3 always enabled

    def tag_access_enabled(self, el: int) -> bool:
        return self.mmu.tag_access[el]

    # --- tags and data through the translation ---------------------------------------------------
    def forget_translations(self) -> None:
        self._stlb[0] = self._stlb[1] = None
        native.invalidate_all(self.core.stlb)

    def _entry(self, va: int, write: bool):
        """The soft-TLB entry for ``va`` (filling it from a walk; raises the walk's fault):
        (mask, key, el, pa page, flags)."""
        el = self.el
        ent = self._stlb[write]
        if ent is not None and va & ent[0] == ent[1] and ent[2] == el:
            return ent
        t = self.mmu.data_translate(va, write, el)
        if t.nta and self.mmu.tag_access[el]:
            # an allocation-tag access to NoTagAccess memory (AArch64.S2CheckPermissions):
            # a stage-2 Permission fault, WnR = the tag access's direction
            raise faults.TranslationFault(va, write, 0b001100 | (t.s2_level & 3), stage2=True,
                                          ipa=t.ipa or 0, level=t.s2_level, tagaccess=True)
        pa = t.pa & ~0xFFF
        ram = self.ram.contains(pa)
        # RAM and the UART are mapped in whole 4 KiB pages: the entry holds for the page
        flags = native.STLB_RAM if ram else 0
        if ram and t.tagged and self.mmu.tag_access[el]:
            flags |= native.STLB_TAGGED
        # the entry serves the same 4 KiB VA page; the top byte is ignored when TBI applies
        # to this half (bit 55 is compared, so an address that matches has the same TBI)
        mask = _PAGE_NO_TOP if tbi_applies(va, self.mmu.regime(el).tcr) else _PAGE_MASK
        ent = (mask, va & mask, el, pa, flags)
        self._stlb[write] = ent
        c = self.core.stlb[1 if write else 0][(va >> 12) & (native.STLB_N - 1)]
        c.mask, c.key, c.el, c.pa, c.flags = ent
        return ent

    def _tag_pa(self, va: int, write: bool) -> int:
        """PA of ``va``'s allocation tag, or -1 where it has none (Untagged, not RAM, or tag
        access disabled)."""
        ent = self._entry(va, write)
        if not ent[4] & _TAGGED:
            return -1
        return ent[3] | (va & 0xFFF)

    def probe_write(self, va: int) -> None:
        self._entry(va, True)

    def mem_tag_read(self, va: int) -> int:
        pa = self._tag_pa(va, False)
        if pa < 0:
            return 0
        self.tag_granules_read += 1
        return self.tags.get(pa)

    def mem_tag_write(self, va: int, tag: int) -> None:
        pa = self._tag_pa(va, True)
        if pa >= 0:
            self.tag_granules_written += 1
            if self.provenance is not None:
                self.provenance.record_insn(pa, (tag,), self)
            self.tags.set(pa, tag)

    def mem_tags_read(self, va: int, count: int):
        return [self.mem_tag_read(va + 16 * i) for i in range(count)]

    def mem_tags_write(self, va: int, tags) -> None:
        # one translation per page, then the tags in bulk
        i, n = 0, len(tags)
        while i < n:
            a = va + 16 * i
            pa = self._tag_pa(a, True)
            k = min(n - i, ((a | 0xFFF) + 1 - a + 15) // 16)
            if pa >= 0:
                self.tag_granules_written += k
                if self.provenance is not None:
                    self.provenance.record_insn(pa, tags[i:i + k], self)
                self.tags.set_range(pa, tags[i:i + k])
            i += k

    def mem_write_unchecked(self, va: int, data: bytes) -> None:
        n, off = len(data), 0
        self.insn_bytes_written += n          # STGP, STZG, STZGM, DC GZVA
        while off < n:
            a = va + off
            k = min(n - off, (a | 0xFFF) + 1 - a)
            ent = self._entry(a, True)
            pa = ent[3] | (a & 0xFFF)
            self.on_data_write(pa, k)
            if ent[4] & native.STLB_RAM:
                self.ram.write(pa, data[off:off + k])
            else:
                self.eng.mem_write(pa, data[off:off + k])
            off += k

    def random_tag(self) -> int:
        # xorshift64: deterministic for a given seed (the native trap runs the same sequence)
        mte = self.regs.mte
        x = mte.rng
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        mte.rng = x
        return x & 0xF
