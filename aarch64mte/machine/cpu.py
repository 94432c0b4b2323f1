"""The ``Cpu`` protocol of ``semantics/cpu.py`` over the engine: what the MTE instruction
semantics read and change (registers, allocation tags through the current translation, stores
that are not tag-checked, the random tag source)."""
from __future__ import annotations

from functools import partial
from typing import Optional

from unicorn import arm64_const as A

from ..semantics import faults, syndrome
from .memory import UART_BASE, UART_SIZE
from .registers import MASK64, X_REGS
from .translation import READ, WRITE, Translation, WalkFault, tbi_applies

_SP = A.UC_ARM64_REG_SP
X_OR_SP = X_REGS + [_SP]          # register number 31 as SP
_PAGE_MASK = MASK64 & ~0xFFF
_PAGE_NO_TOP = 0x00FF_FFFF_FFFF_F000


class CpuProtocol:
    """Part of ``Machine`` (see ``machine.py``)."""

    # Register access: one prepared ctypes call per register (Machine._setup_fast_regs),
    # the value passing through the engine's c_uint64. While an MTE instruction runs
    # (``_trap_el`` set) reads come from the copy of X0-X30 and SP the trap read in one call
    # (``Engine.trap_regs``); every write goes to the engine and to that copy.
    def _setup_fast_regs(self) -> None:
        eng = self.eng
        rd, wr, h, p = eng._reg_read, eng._reg_write, eng.handle, eng._pu64
        self._u64 = eng._u64
        self._snap = eng.trap_regs
        self._xrd = [partial(rd, h, r, p) for r in X_OR_SP]      # 31: SP
        self._xwr = [partial(wr, h, r, p) for r in X_OR_SP]

    def x(self, n: int) -> int:
        if n == 31:
            return 0
        if self._trap_el is not None:
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
        if self._trap_el is not None:
            return self._snap[31]
        self._xrd[31]()
        return self._u64.value

    def set_sp(self, value: int) -> None:
        value &= MASK64
        self._u64.value = value
        self._xwr[31]()
        self._snap[31] = value

    def x_or_sp(self, n: int) -> int:
        if self._trap_el is not None:
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
        return self.mte.tco

    def set_tco(self, value: int) -> None:
        if self.mte.tco != value:
            self.mte.tco = value
            self._invalidate()

    def el2_enabled(self) -> bool:
        return False                 # the virt board without virtualization: no EL2

    def tag_access_enabled(self, el: int) -> bool:
        r = self._regime
        sctlr = (r if r is not None else self._regs()).sctlr
        return bool((sctlr >> (42 if el == 0 else 43)) & 1)

    def _data_translate(self, va: int, write: bool, el: Optional[int] = None) -> Translation:
        t = self.stage1.translate(va, self.el if el is None else el, WRITE if write else READ,
                                  self._regs())
        if isinstance(t, WalkFault):
            raise faults.TranslationFault(va, write, t.dfsc)
        if not (self.ram.contains(t.pa) or UART_BASE <= t.pa < UART_BASE + UART_SIZE):
            raise faults.TranslationFault(va, write, syndrome.FSC_SYNC_EXTERNAL)
        return t

    def _tag_page(self, va: int, write: bool) -> int:
        """The RAM page (PA) holding the allocation tags for ``va``, or -1 when ``va`` has none
        (Untagged, not RAM, or tag access disabled); raises the fault ``_data_translate``
        raises. A one-entry software TLB per access kind keeps the last page; it is dropped
        with everything else derived from the translation (``Tlb._invalidate``)."""
        el = self.el
        ent = self._stlb_w if write else self._stlb_r
        if ent is not None and va & ent[0] == ent[1] and ent[2] == el:
            return ent[3]
        t = self._data_translate(va, write, el)
        pa = t.pa & ~0xFFF
        # RAM and the UART are mapped in whole 4 KiB pages: the checks hold for the page
        page = pa if t.tagged and self.ram.contains(pa) and self.tag_access_enabled(el) else -1
        # the entry serves the same 4 KiB VA page; the top byte is ignored when TBI applies
        # to this half (bit 55 is compared, so an address that matches has the same TBI)
        mask = _PAGE_NO_TOP if tbi_applies(va, self._regs().tcr) else _PAGE_MASK
        ent = (mask, va & mask, el, page)
        if write:
            self._stlb_w = ent
        else:
            self._stlb_r = ent
        return page

    def mem_tag_read(self, va: int) -> int:
        page = self._tag_page(va, False)
        if page < 0:
            return 0
        return self.tags.get(page | (va & 0xFFF))

    def mem_tag_write(self, va: int, tag: int) -> None:
        page = self._tag_page(va, True)
        if page >= 0:
            self.tags.set(page | (va & 0xFFF), tag)

    def mem_tags_read(self, va: int, count: int):
        return [self.mem_tag_read(va + 16 * i) for i in range(count)]

    def mem_tags_write(self, va: int, tags) -> None:
        # one translation per page, then the tags in bulk
        i, n = 0, len(tags)
        while i < n:
            a = va + 16 * i
            page = self._tag_page(a, True)
            k = min(n - i, ((a | 0xFFF) + 1 - a + 15) // 16)
            if page >= 0:
                self.tags.set_range(page | (a & 0xFFF), tags[i:i + k])
            i += k

    def mem_write_unchecked(self, va: int, data: bytes) -> None:
        n, off = len(data), 0
        if self.count_classes:
            self.counters.data_bytes_written += n      # STGP, STZG, STZGM, DC GZVA
        while off < n:
            a = va + off
            k = min(n - off, (a | 0xFFF) + 1 - a)
            t = self._data_translate(a, True)
            if self._watch_pages:
                self._note_data_write(t.pa, k)
            if self.ram.contains(t.pa, k):
                self.ram.write(t.pa, data[off:off + k])
            else:
                self.eng.mem_write(t.pa, data[off:off + k])
            off += k

    def random_tag(self) -> int:
        # xorshift64: deterministic for a given seed
        x = self._rng_state
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        self._rng_state = x
        return x & 0xF
