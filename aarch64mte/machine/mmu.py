"""The MMU: the translation regime, the stage-1 walk of the guest's tables, the engine's TLB fill
hook, and every cache derived from the translation.

Unicorn runs in virtual-TLB mode: it asks ``on_fill`` for each (page, access) it has not cached,
and the answer says where the page is in the engine's physical space. The MMU walks the tables
and lets the other parts shape the answer:

- ``page_mapper(vaddr, el, regime, translation, pa_page)``: the tag unit picks the plain RAM
  mapping or a tag alias (returns the engine page, or None to refuse until its hook exists);
- ``watch_filter(pa_page, access)``: debugging refuses writes to watched pages;
- ``on_code_page(va_page, pa_page)``: the exception unit scans code fetched from a page.

Anything derived from the translation registers is dropped by ``invalidate()``; parts that keep
such state register a callback in ``on_invalidate``.
"""
from __future__ import annotations

import struct
from typing import Callable, Dict, List, Optional

import ctypes

from unicorn import UC_HOOK_TLB_FILL, UC_MEM_FETCH, UC_MEM_WRITE
from unicorn import arm64_const as A
from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib

from ..semantics import faults, syndrome
from . import checks, native, regime_state
from .memory import PAGE, UART_BASE, UART_SIZE
from .sysregs import ENCODINGS
from .translation import (FETCH, PROT_W, READ, WRITE, Regime, Stage1, Translation, WalkFault,
                          strip_tag)

PSTATE_UAO = 1 << 23                # LDTR/STTR at EL1 behave as ordinary accesses


class Mmu:
    def __init__(self, eng, core, ram, events, lib) -> None:
        self.eng = eng
        self.core = core
        self.ram = ram
        self.events = events
        self.lib = lib
        self.watching = False               # a debugger watch: every fill and trap in Python
        self._core_valid = False            # mirrors core.regime_valid (only Python sets it)
        self._tag_access = (False,) * 4
        self._py_fetch = core.py_fetch = native.PY_FETCH(self._native_fetch)
        self._py_fill = core.py_fill = native.PY_FILL(self._fill)
        if lib is not None:
            eng.hook_native(UC_HOOK_TLB_FILL, lib.mte_tlb_fill, eng.core_ptr)
        else:
            h = uc_hook_h()
            uclib.uc_hook_add(eng.handle, ctypes.byref(h), UC_HOOK_TLB_FILL,
                              ctypes.cast(self._py_fill, ctypes.c_void_p), None,
                              ctypes.c_uint64(1), ctypes.c_uint64(0))
        self.stage1 = Stage1(ram.read64)
        self._regime: Optional[Regime] = None
        self._code_pa: Dict[int, int] = {}  # VA page -> PA page for instruction fetches
        self.on_invalidate: List[Callable[[], None]] = []
        self.page_mapper = None
        self.watch_filter = None
        self.on_code_page = None

    # --- the regime ------------------------------------------------------------------------
    def regime(self) -> Regime:
        r = self._regime
        if r is None:
            cp = self.eng.cp_read
            r = self._regime = Regime(cp(*ENCODINGS["SCTLR_EL1"]), cp(*ENCODINGS["TCR_EL1"]),
                                      cp(*ENCODINGS["TTBR0_EL1"]), cp(*ENCODINGS["TTBR1_EL1"]),
                                      cp(*ENCODINGS["MAIR_EL1"]))
        return r

    def invalidate(self, flush: bool = True) -> None:
        """Forget everything derived from the translation (and the engine's TLB, unless the
        guest's own TLBI is flushing it)."""
        self._regime = None
        self._code_pa.clear()
        core = self.core
        core.regime_valid = 0
        self._core_valid = False
        for e in core.ctlb:
            e.key = 0
        for kind in core.tcache:
            for e in kind:
                e.key = 0
        for cb in self.on_invalidate:
            cb()
        if flush:
            self.eng.flush_tlb()

    def ensure_core_state(self) -> None:
        """Bring the regime state the native hooks read up to date (``regime_state``)."""
        if not self._core_valid:
            self._tag_access = regime_state.refresh(self.core, self.regime(),
                                                    self.lib is not None, self.watching)
            self._core_valid = True

    @property
    def tag_access(self) -> tuple:
        """AllocationTagAccessIsEnabled(el) for EL0..EL3."""
        self.ensure_core_state()
        return self._tag_access

    # --- translation -----------------------------------------------------------------------
    def translate(self, va: int, el: int, access: str):
        return self.stage1.translate(va, el, access, self.regime())

    def data_translate(self, va: int, write: bool, el: int) -> Translation:
        """The translation a data access of an MTE instruction gets; raises the fault."""
        t = self.stage1.translate(va, el, WRITE if write else READ, self.regime())
        if isinstance(t, WalkFault):
            raise faults.TranslationFault(va, write, t.dfsc)
        if not (self.ram.contains(t.pa) or UART_BASE <= t.pa < UART_BASE + UART_SIZE):
            raise faults.TranslationFault(va, write, syndrome.FSC_SYNC_EXTERNAL)
        return t

    def debug_translate(self, va: int):
        """The translation of ``va`` for the debugger's accesses: EL1 permissions, the pointer's
        tag bits ignored whatever TBI says."""
        r = self.regime()
        return self.stage1.translate(strip_tag(va, r.tcr | (3 << 37)), 1, READ, r)

    def fetch_word(self, pc: int, el: int) -> int:
        """The instruction word at ``pc`` (0, UDF, where it cannot be fetched)."""
        vp = pc & ~0xFFF
        pp = self._code_pa.get(vp)
        if pp is None:
            t = self.stage1.translate(pc, el, FETCH, self.regime())
            if isinstance(t, WalkFault):
                return 0
            pp = self._code_pa[vp] = t.pa & ~0xFFF
        pa = pp | (pc & 0xFFF)
        ram = self.ram
        if ram.contains(pa, 4):
            return struct.unpack_from("<I", ram.buf, pa - ram.base)[0]
        try:
            return int.from_bytes(self.eng.mem_read(pa, 4), "little")
        except Exception:
            return 0

    # --- the engine's TLB fill ---------------------------------------------------------------
    def _fill(self, handle, vaddr, access, entry, ud) -> bool:
        """The fill hook (or what the native fill hands over): entry is a uc_tlb_entry."""
        if self.core.refuse_fills:
            return False                         # the instruction faults (see Traps._dc_zva)
        return self.on_fill(vaddr, access, entry.contents)

    def on_fill(self, vaddr, access, entry) -> bool:
        events = self.events
        try:
            self.ensure_core_state()
            ps = self.eng.rd(A.UC_ARM64_REG_PSTATE)
            el = (ps >> 2) & 3
            acc = FETCH if access == UC_MEM_FETCH else WRITE if access == UC_MEM_WRITE else READ
            if el == 1 and acc != FETCH and not ps & PSTATE_UAO and self._unprivileged_at_pc(el):
                el = 0          # LDTR/STTR: EL0 permissions and EL0 tag-check rules
            r = self.regime()
            t = self.stage1.translate(vaddr, el, acc, r)
            if isinstance(t, WalkFault):
                events.fill_fault = (vaddr, acc, t.dfsc, el)
                return False
            pa = t.pa
            page = pa & ~(PAGE - 1)
            if acc == FETCH:
                self._code_page(vaddr, pa)
                if self.on_code_page is not None:
                    self.on_code_page(vaddr & ~(PAGE - 1), page)
            if self.ram.contains(pa):
                page = self.page_mapper(vaddr, el, r, t, page)
                if page is None:
                    return False                 # refused: retried once the hook exists
            elif not (UART_BASE <= pa < UART_BASE + UART_SIZE):
                events.fill_fault = (vaddr, acc, syndrome.FSC_SYNC_EXTERNAL, el)
                return False
            perms = t.perms
            if acc != FETCH and el == self.regs_el():
                self._cache_translation(vaddr, el, acc == WRITE, t, r)
            if self.watch_filter is not None:
                verdict = self.watch_filter(pa & ~(PAGE - 1), acc, vaddr)
                if verdict is None:
                    return False                 # a write to a watched page: run it alone
                if verdict:
                    perms &= ~PROT_W
            entry.paddr = page
            entry.perms = perms
            return True
        except Exception as e:                   # never let a bug look like a fault
            events.pending = ("error", e)
            return False

    def _cache_translation(self, va: int, el: int, write: bool, t, r) -> None:
        """Keep the walk's result for the native fill (the same page through other tags)."""
        v = strip_tag(va, r.tcr)
        e = self.core.tcache[1 if write else 0][(v >> 12) & (native.TC_N - 1)]
        e.key = (v & ~0xFFF) | 1
        e.el = el
        e.pa = t.pa & ~0xFFF
        e.perms = t.perms
        e.flags = ((native.TC_RAM if self.ram.contains(t.pa & ~0xFFF, 0x1000) else 0)
                   | (native.TC_TAGGED if t.tagged else 0))

    def _code_page(self, va: int, pa: int) -> None:
        """Tell the native tag check where the code of this 4 KiB page is."""
        ram = self.ram
        if ram.contains(pa & ~0xFFF, 0x1000):
            e = self.core.ctlb[(va >> 12) & (native.CTLB_N - 1)]
            e.key = (va & ~0xFFF) | 1
            e.host = ram.host_ptr + (pa & ~0xFFF) - ram.base

    def _native_fetch(self, pc: int) -> int:
        try:
            el = self.regs_el()
            t = self.stage1.translate(pc, el, FETCH, self.regime())
            if isinstance(t, WalkFault):
                return -1
            self._code_page(pc, t.pa)
            return self.fetch_word(pc, el)
        except Exception:
            return -1

    def regs_el(self) -> int:
        return (self.eng.rd(A.UC_ARM64_REG_PSTATE) >> 2) & 3

    def _unprivileged_at_pc(self, el: int) -> bool:
        """Is the data access being filled made by an LDTR/STTR-family instruction? The engine
        fills those into the EL0 TLB (they use the EL0 translation index), so their entries
        never serve the EL1 accesses; the hook has no index argument but PC is at the accessing
        instruction."""
        info = checks.analyse(self.fetch_word(self.eng.pc(), el))
        return info is not None and info.unpriv
