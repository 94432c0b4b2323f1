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

from ..semantics import faults
from . import checks, native, regime_state
from .memory import PAGE, UART_BASE, UART_SIZE

HCR_DCT = 1 << 57
HCR_MASK = (1 << 59) - 1
from .stage2 import HCR_DC, HCR_VM
from .sysregs import ENCODINGS
from ..semantics.pseudocode import TranslationRegime
from .translation import (FETCH, PROT_W, PROT_X, READ, WRITE, Regime, Stage1, Translation, WalkFault,
                          el2_tcr, strip_tag)

PSTATE_UAO = 1 << 23                # LDTR/STTR at EL1 behave as ordinary accesses


class Mmu:
    def __init__(self, eng, core, ram, events, lib, el2: bool = False) -> None:
        self.eng = eng
        self.core = core
        self.ram = ram
        self.events = events
        self.lib = lib
        self.el2 = el2                      # EL2 is implemented (and, with no EL3, enabled)
        self.stage2 = None                  # Stage2 walker (set by the machine with EL2)
        self.watching = False               # a debugger watch: every fill and trap in Python
        self._core_valid = False            # mirrors core.regime_valid (only Python sets it)
        self.state = None                   # regime_state.RegimeState
        self._py_fetch = core.py_fetch = native.PY_FETCH(self._native_fetch)
        self._py_fill = core.py_fill = native.PY_FILL(self._fill)
        if lib is not None:
            eng.hook_native(UC_HOOK_TLB_FILL, lib.mte_tlb_fill, eng.core_ptr)
        else:
            h = uc_hook_h()
            uclib.uc_hook_add(eng.handle, ctypes.byref(h), UC_HOOK_TLB_FILL,
                              ctypes.cast(self._py_fill, ctypes.c_void_p), None,
                              ctypes.c_uint64(1), ctypes.c_uint64(0))
        self.stage1 = Stage1(ram.read_descriptor)
        self._regimes = {}                  # EL -> Regime
        # HCR_EL2 as the program wrote it: the engine keeps only the bits it knows (none of
        # FEAT_MTE's: ATA, DCT, TID5), and traps on those itself
        self.hcr_value = 0
        self._code_pa: Dict[int, int] = {}  # VA page -> PA page for instruction fetches
        self.on_invalidate: List[Callable[[], None]] = []
        self.page_mapper = None
        self.watch_filter = None
        self.on_code_page = None
        self.nta_checked = lambda va, el: False   # the tag unit: could va be tag checked
        self.nta_pass = False               # one unchecked access to NoTagAccess memory
        self.code_pages = set()             # PA pages code was fetched from (the scanner's)
        self.code_write_pass = False        # one instruction may write to them
        self._data_filled = set()           # 4 KiB PA pages a data fill mapped since a flush

    # --- the regime ------------------------------------------------------------------------
    def hcr(self) -> int:
        """HCR_EL2 as it applies (0 without EL2)."""
        return self.hcr_value if self.el2 else 0

    def set_hcr(self, value: int, engine: bool = True) -> None:
        """HCR_EL2 := value (bits 58:0; TWEDEn and TWEDEL are RES0 without FEAT_TWED). The
        engine gets its copy too unless the program's own MSR is about to write it."""
        self.hcr_value = value & HCR_MASK
        if engine:
            self.eng.cp_write(*ENCODINGS["HCR_EL2"], self.hcr_value)
        self.invalidate()

    def regime(self, el: Optional[int] = None) -> Regime:
        """The stage-1 regime that translates an access made at ``el`` (the current EL if
        None): TranslationRegime(el) from HCR_EL2.{E2H, TGE}, with stage 2 behind EL1&0 when
        HCR_EL2.VM or HCR_EL2.DC is set."""
        if el is None:
            el = self.regs_el()
        r = self._regimes.get(el)
        if r is None:
            cp = self.eng.cp_read
            hcr = self.hcr()
            kind = TranslationRegime(el, hcr, self.el2)
            if kind == "EL10":
                r = Regime(cp(*ENCODINGS["SCTLR_EL1"]), cp(*ENCODINGS["TCR_EL1"]),
                           cp(*ENCODINGS["TTBR0_EL1"]), cp(*ENCODINGS["TTBR1_EL1"]),
                           cp(*ENCODINGS["MAIR_EL1"]), "EL10")
                if self.stage2 is not None and hcr & (HCR_VM | HCR_DC):
                    r.stage2 = self.stage2.for_regime(hcr)
                if self.stage2 is not None and hcr & HCR_DC:
                    # stage 1 treated as off, its output Normal WB (Tagged with HCR_EL2.DCT)
                    r.s1_off_attr = 0xF0 if hcr & HCR_DCT else 0xFF
            elif kind == "EL20":
                r = Regime(cp(*ENCODINGS["SCTLR_EL2"]), cp(*ENCODINGS["TCR_EL2"]),
                           cp(*ENCODINGS["TTBR0_EL2"]), cp(*ENCODINGS["TTBR1_EL2"]),
                           cp(*ENCODINGS["MAIR_EL2"]), "EL20")
            else:
                r = Regime(cp(*ENCODINGS["SCTLR_EL2"]), el2_tcr(cp(*ENCODINGS["TCR_EL2"])),
                           cp(*ENCODINGS["TTBR0_EL2"]), 0, cp(*ENCODINGS["MAIR_EL2"]), "EL2")
            self._regimes[el] = r
        return r

    def invalidate(self, flush: bool = True) -> None:
        """Forget everything derived from the translation (and the engine's TLB, unless the
        guest's own TLBI is flushing it)."""
        self._regimes.clear()
        self._code_pa.clear()
        self._data_filled.clear()
        core = self.core
        core.regime_valid = 0
        self._core_valid = False
        native.invalidate_all(core.ctlb)
        native.invalidate_all(core.tcache)
        for cb in self.on_invalidate:
            cb()
        if flush:
            self.eng.flush_tlb()

    def ensure_core_state(self) -> None:
        """Bring the regime state the native hooks read up to date (``regime_state``)."""
        if not self._core_valid:
            self.state = regime_state.refresh(self.core, self, self.lib is not None,
                                              self.watching)
            self._core_valid = True

    @property
    def tag_access(self) -> tuple:
        """AllocationTagAccessIsEnabled(el) for EL0..EL3."""
        self.ensure_core_state()
        return self.state.tag_access

    # --- translation -----------------------------------------------------------------------
    def translate(self, va: int, el: int, access: str):
        return self.stage1.translate(va, el, access, self.regime(el))

    def data_translate(self, va: int, write: bool, el: int) -> Translation:
        """The translation a data access of an MTE instruction gets; raises the fault."""
        t = self.stage1.translate(va, el, WRITE if write else READ, self.regime(el))
        if isinstance(t, WalkFault):
            raise faults.TranslationFault(va, write, t.dfsc, stage2=t.stage == 2, ipa=t.ipa,
                                          s1ptw=t.s1ptw, level=t.level)
        if not (self.ram.contains(t.pa) or UART_BASE <= t.pa < UART_BASE + UART_SIZE):
            raise faults.TranslationFault(va, write, 0b010000)   # synchronous external abort
        return t

    def debug_translate(self, va: int, el: Optional[int] = None):
        """The translation of ``va`` for the debugger's accesses: the regime of ``el`` (the
        current EL, at least EL1) with its privileged permissions, the pointer's tag bits
        ignored whatever TBI says."""
        if el is None:
            el = max(1, self.regs_el())
        r = self.regime(el)
        return self.stage1.translate(strip_tag(va, r.tcr | (3 << 37)), el, READ, r)

    def fetchable(self, pc: int, el: int) -> bool:
        """Can an instruction be fetched at ``pc`` (translation and memory both there)?"""
        t = self.stage1.translate(pc, el, FETCH, self.regime(el))
        if isinstance(t, WalkFault):
            return False
        if self.ram.contains(t.pa, 4):
            return True
        try:
            self.eng.mem_read(t.pa, 4)
        except Exception:
            return False
        return True

    def fetch_word(self, pc: int, el: int) -> int:
        """The instruction word at ``pc`` (0, UDF, where it cannot be fetched)."""
        vp = pc & ~0xFFF
        pp = self._code_pa.get(vp)
        if pp is None:
            t = self.stage1.translate(pc, el, FETCH, self.regime(el))
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
            r = self.regime(el)
            t = self.stage1.translate(vaddr, el, acc, r)
            if isinstance(t, WalkFault):
                events.fill_fault = (vaddr, acc, t, el)
                return False
            if t.nta and acc != FETCH and not self.nta_pass and self.nta_checked(vaddr, el):
                # a tag-checked access to NoTagAccess memory faults at stage 2 (the run loop
                # lets an instruction that is not tag checked through: ``nta_pass``)
                events.fill_fault = (vaddr, acc, WalkFault("permission", t.s2_level, stage=2,
                                                           ipa=t.ipa or 0, tagaccess=True), el)
                return False
            pa = t.pa
            page = pa & ~(PAGE - 1)
            code = page in self.code_pages
            if acc == WRITE and code and not self.code_write_pass:
                # a write to fetched code: the run loop runs it alone, then the code is
                # scanned again (Unicorn retranslates written code on its own, without a fill)
                events.code_write = vaddr
                return False
            if acc == FETCH:
                self._code_page(vaddr, pa)
                if self.on_code_page is not None:
                    self.on_code_page(vaddr & ~(PAGE - 1), page)
                code = True
            else:
                self._data_filled.add(pa & ~0xFFF)
            if self.ram.contains(pa):
                page = self.page_mapper(vaddr, el, r, t, page)
                if page is None:
                    return False                 # refused: retried once the hook exists
            elif not (UART_BASE <= pa < UART_BASE + UART_SIZE):
                events.fill_fault = (vaddr, acc, WalkFault("external", 0), el)
                return False
            perms = t.perms
            if not code:
                perms &= ~PROT_X                 # a fetch from it comes to this fill: scanned
            if code and not self.code_write_pass:
                perms &= ~PROT_W                 # writes to code come back to this fill
            elif acc != FETCH and el == self.regs_el() and not t.nta:
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
        e.perms = t.perms & ~PROT_X               # data only: fetches come to the Python fill
        e.flags = ((native.TC_RAM if self.ram.contains(t.pa & ~0xFFF, 0x1000) else 0)
                   | (native.TC_TAGGED if t.tagged else 0))

    def became_code(self, vpage: int, ppage: int) -> None:
        """``ppage`` (scanned now) holds fetched code: writes to it must come back to the fill
        (``code_pages``). The native fill's cached translations of that 4 KiB VA page go; if a
        data fill may have mapped it writable since the last flush, the run loop flushes the
        engine's TLB at its next stop."""
        key = (vpage & ~0xFFF) | 1
        for kind in self.core.tcache:
            e = kind[(vpage >> 12) & (native.TC_N - 1)]
            if e.key == key:
                e.key = 0
        if (ppage & ~0xFFF) in self._data_filled:
            self.events.flush_tlb = True
            self.eng.emu_stop()

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
            t = self.stage1.translate(pc, el, FETCH, self.regime(el))
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
