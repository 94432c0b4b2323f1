"""The tag unit: allocation-tag storage, which pages the engine may map without checks, and the tag
check of every load and store.

Pages. The TLB fill asks ``engine_page``: a page gets the plain RAM mapping (no hook at all)
when no access through that pointer tag can fail a check there (Untagged, unchecked, or every
granule holds the pointer's tag and so do the first 64 bytes of the next page, which an access
near the end may reach); those pages are marked "fast" and any tag change on them (or just
before them) drops the engine's mappings. Every other page goes to the tag alias of the
pointer's logical tag (``memory.alias``), where the check hook sees each access.

Checks. An instruction is checked once, at its first access through an alias: over its whole
footprint, granule by granule (AArch64.CheckTag), before any part of it has effect. The
instruction is the one at the engine's PC, exact in memory hooks because every PC write is
batched (``Engine.set_pc``); its footprint and address come from its encoding and the registers,
which still hold their values from before it. The native hook (``_native/tagcheck.c``) finishes
the checks that pass within one page; ``check`` here does everything else and is the whole
check where the native library is not available.
"""
from __future__ import annotations

import ctypes
from typing import List, Optional

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_MEM_WRITE
from unicorn.unicorn_py3.unicorn import HOOK_MEM_ACCESS_CFUNC
from unicorn import arm64_const as A

from ..semantics.tags import TagStorage
from . import checks, native
from .exceptions import TagFault
from .memory import ALIAS_SHIFT, PAGE, alias
from .mmu import PSTATE_UAO
from .translation import READ, WRITE, Regime, WalkFault

_REGNUM = {A.UC_ARM64_REG_SP: 31, A.UC_ARM64_REG_X29: 29, A.UC_ARM64_REG_X30: 30}
_REGNUM.update({A.UC_ARM64_REG_X0 + i: i for i in range(29)})
_LS_CLASSES = frozenset(("load", "store", "load_pair", "store_pair", "simd"))


FAULT_LOG_LIMIT = 10_000

class TagUnit:
    def __init__(self, eng, core, ram, mmu, events, mte, lib) -> None:
        self.eng = eng
        self.core = core
        self.ram = ram
        self.mmu = mmu
        self.events = events
        self.mte = mte
        self.lib = lib
        self.tags = TagStorage([(ram.base, ram.size)], page_size=PAGE,
                               on_change=self._tags_changed)
        self.faults: List[TagFault] = []     # the latest FAULT_LOG_LIMIT failed checks
        self.faults_dropped = 0
        # one byte per 1 KiB engine page: mapped plain ("fast"); shared with the native hooks
        self._fast = bytearray(ram.size // PAGE)
        self._fast_set: List[int] = []
        self._hook = None
        self._instance = None               # (block count, block, pc) last checked in Python
        self.counter = core                 # the block counter (Machine sets the Python one)
        # checks made here (the native hook counts in the core)
        self.tag_checks = self.checked_granules_read = self.checked_granules_written = 0
        self._keep = []
        self._share_with_core()
        mmu.page_mapper = self.engine_page
        mmu.nta_checked = self.checkable
        mmu.on_invalidate.append(self.forget_fast_pages)

    def _share_with_core(self) -> None:
        core = self.core
        ram = self.ram
        tags = self.tags._ranges[0].tags
        ctags = (ctypes.c_uint8 * len(tags)).from_buffer(tags)
        cfast = (ctypes.c_uint8 * len(self._fast)).from_buffer(self._fast)
        self._keep += [ctags, cfast]
        reg = core.regions[0]
        reg.base, reg.size = ram.base, ram.size
        reg.host = ram.host_ptr
        reg.tags = ctypes.addressof(ctags)
        reg.fast = ctypes.addressof(cfast)
        core.nregions = 1
        self._py_check = native.PY_CHECK(self._native_slow)
        self._py_winfo = native.PY_WINFO(self._word_info)
        core.py_check = self._py_check
        core.py_winfo = self._py_winfo

    # --- pages -------------------------------------------------------------------------------
    def checkable(self, va: int, el: int) -> bool:
        """Can an access through ``va`` at ``el`` be tag-checked at all (AccessIsTagChecked
        without the per-instruction part: TBI, TCMA, tag access, TCF, PSTATE.TCO)?"""
        if self.mte.tco:
            return False
        mmu = self.mmu
        if not mmu._core_valid:
            mmu.ensure_core_state()
        st = mmu.state
        upper = (va >> 55) & 1
        if not st.tbi[el][upper] or not st.tag_access[el] or not st.tcf[el]:
            return False
        if st.tcma[el][upper]:
            top = (va >> 55) & 0x1F
            if top == (0x1F if upper else 0):
                return False
        return True

    def engine_page(self, vaddr: int, el: int, r: Regime, t, page: int) -> Optional[int]:
        """The engine page for a RAM page the fill is mapping (plain or a tag alias); None:
        refuse for now, the check hook is added and the access retried."""
        if not (t.tagged and self.checkable(vaddr, el)):
            return page
        ltag = (vaddr >> 56) & 0xF
        if self.tags.uniform_tag(page, PAGE) == ltag and self._next_page_ok(vaddr, page, ltag,
                                                                            el, r):
            self._mark_fast(page)
            return page
        if self._hook is None:
            self.events.need_check_hook = True
            return None
        return alias(page, ltag)

    def _next_page_ok(self, vaddr, page, ltag, el, r) -> bool:
        """An access starting near the end of this page may run up to 64 bytes into the next:
        the plain mapping is safe only if those granules hold the same tag (or are not checked)."""
        nva = (vaddr & ~(PAGE - 1)) + PAGE
        if nva & 0xFFF:
            npa = page + PAGE
            tagged = True
        else:
            t = self.mmu.stage1.translate(nva, el, READ, r)
            if isinstance(t, WalkFault) or not self.ram.contains(t.pa):
                return True
            npa, tagged = t.pa, t.tagged
        if not tagged or not self.ram.contains(npa, 64):
            return True
        if self.tags.uniform_tag(npa, 64) == ltag:
            self._mark_fast(npa & ~(PAGE - 1))   # its tags decide this page's mapping
            return True
        return False

    def _mark_fast(self, page: int) -> None:
        i = (page - self.ram.base) >> 10
        if not self._fast[i]:
            self._fast[i] = 1
            self._fast_set.append(i)

    def forget_fast_pages(self) -> None:
        if self._fast_set or self.lib is not None:     # the native fill marks pages too
            self._fast[:] = bytes(len(self._fast))
            self._fast_set.clear()

    def _tags_changed(self, page_pa: int) -> None:
        i = (page_pa - self.ram.base) >> 10
        if self._fast[i] or (i > 0 and self._fast[i - 1]):
            self.mmu.invalidate()

    # --- the check hook ------------------------------------------------------------------------
    def ensure_hook(self) -> None:
        """Add the check hook (the first time a page needs it: any memory hook slows every
        access, so programs that never need one run without it)."""
        if self._hook is not None:
            return
        begin, end = self.ram.alias_begin, self.ram.alias_end
        if self.lib is not None:
            self._hook = self.eng.hook_native(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
                                              self.lib.mte_check_access,
                                              ctypes.addressof(self.core), begin, end)
        else:
            self._hook = self.eng.hook_raw(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
                                           HOOK_MEM_ACCESS_CFUNC, self._python_hook, begin, end)
        self.core.check_hooked = 1
        self.eng.uc.ctl_flush_tb()

    def _python_hook(self, handle, access, addr, size, value, ud) -> None:
        try:
            if self.core.in_fault:
                return
            c = self.counter
            key = (c.insns, c.last_addr, self.eng.pc())
            if key == self._instance:
                return                   # a later access of an instruction already checked
            self._instance = key
            self.check(access, addr, size)
        except Exception as e:
            self.events.pending = ("error", e)
            self.eng.emu_stop()

    def _native_slow(self, handle, access, addr, size) -> None:
        """What the native hook hands over: a mismatch, another page, a new encoding."""
        try:
            self.check(access, addr, size)
        except Exception as e:
            self.events.pending = ("error", e)
            self.eng.emu_stop()

    def _word_info(self, word, out) -> int:
        """Fill the native hook's description of a load/store encoding (``WordInfo``)."""
        try:
            info = checks.analyse(word)
            w = out.contents
            if info is None or info.base is None or info.cls not in _LS_CLASSES:
                w.flags = 0
                return 1
            flags = native.WI_VALID
            if info.checked:
                flags |= native.WI_CHECKED
            if info.post:
                flags |= native.WI_POST
            if info.rmw:
                flags |= native.WI_RMW
            if info.index is not None:
                flags |= native.WI_HAS_INDEX
                w.index = _REGNUM.get(info.index, 31)
                if info.index_w:
                    flags |= native.WI_INDEX_W
                if info.index_signed:
                    flags |= native.WI_INDEX_SIGNED
            w.base = _REGNUM[info.base]
            w.shift = info.shift
            w.disp = info.disp
            w.fp = min(info.size, 255)
            w.flags = flags
            return 1
        except Exception:
            return 0

    def check(self, access: int, addr: int, size: int) -> None:
        """The whole check of the instruction at PC, made at its first hooked access."""
        eng = self.eng
        pc = eng.pc()                # exact: see Engine.set_pc
        ltag = (addr >> ALIAS_SHIFT) & 0xF
        write = access == UC_MEM_WRITE
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        el = (ps >> 2) & 3
        info = checks.analyse(self.mmu.fetch_word(pc, el))
        if info is None or info.base is None:
            return                   # not a load/store this check understands
        if info.writes != info.reads:
            # the instruction's own direction: a store-exclusive's engine also reads (its
            # compare-and-swap), an atomic's both
            write = info.writes
        ael = 0 if info.unpriv and not ps & PSTATE_UAO else el
        va = checks.effective_address(info, eng.rd)
        r = self.mmu.regime(ael)
        if not info.checked or not self.checkable(va, ael):
            return
        n = max(info.size, size)
        rmw = info.rmw
        reading = not write or rmw
        self.tag_checks += 1
        g = va & ~0xF
        end = va + n
        while g < end:
            gva = g if g > va else va
            # a read-modify-write translates as a write first: its permission fault comes
            # before any tag check (the engine reads before it writes)
            t = self.mmu.stage1.translate(gva, ael, WRITE if write or rmw else READ, r)
            if isinstance(t, WalkFault):
                break                            # the engine reports that fault itself
            if t.tagged and self.ram.contains(t.pa):
                atag = self.tags.get(t.pa)
                if write and not rmw:
                    self.checked_granules_written += 1
                else:
                    self.checked_granules_read += 1
                if atag != ltag:
                    f = self.check_failed(gva, ltag, atag, write and not rmw, reading,
                                          write or rmw, pc, ael)
                    if f.mode == "sync":
                        self._sync_fault(f, info, va, n, ael)
                        return
                    if f.mode == "async":
                        return
            g += 16

    def check_failed(self, va: int, ltag: int, atag: int, write: bool, reading: bool,
                     rw: bool, pc: int, el: int) -> TagFault:
        """A tag check at ``va`` failed: the failure in the mode EffectiveTCF gives it
        (``checks.fault_mode``: ``reading`` for a read, ``rw`` for a read-modify-write or a
        write), logged, and for an asynchronous one recorded in TFSR. A synchronous one is the
        caller's to deliver (``f.mode == 'sync'``)."""
        mode = checks.fault_mode(self.mmu.state.tcf[el], reading, rw)
        f = TagFault(va, ltag, atag, write, mode, pc, el)
        self.note_fault(f)
        if mode == "async":
            self.record_async(va, el)
        return f

    def note_fault(self, f: TagFault) -> None:
        """Log a failed check; the log keeps the latest FAULT_LOG_LIMIT (an async fault in a
        loop fails on every pass, and the log must not grow with the run)."""
        faults = self.faults
        faults.append(f)
        if len(faults) > 2 * FAULT_LOG_LIMIT:
            drop = len(faults) - FAULT_LOG_LIMIT
            del faults[:drop]
            self.faults_dropped += drop

    def record_async(self, va: int, el: int) -> None:
        """An asynchronous tag-check fault (AArch64.ReportTagCheckFault): TF0 or TF1 by address
        bit 55, in TFSRE0_EL1 for EL0, TFSR_EL1 for EL1, TFSR_EL2 for EL2."""
        bit = 1 << ((va >> 55) & 1)
        if el == 0:
            self.mte.tfsre0_el1 |= bit
        elif el == 1:
            self.mte.tfsr_el1 |= bit
        else:
            self.mte.tfsr_el2 |= bit

    def _sync_fault(self, f: TagFault, info, va: int, n: int, el: int) -> None:
        """Stop before the access has effect: save what the engine may still change."""
        eng = self.eng
        saved_mem = []
        a, end = va, va + n
        r = self.mmu.regime(el)
        while a < end:
            k = min(end - a, (a | (PAGE - 1)) + 1 - a)
            t = self.mmu.stage1.translate(a, el, READ, r)
            if not isinstance(t, WalkFault) and self.ram.contains(t.pa, k):
                saved_mem.append((t.pa, self.ram.read(t.pa, k)))
            a += k
        saved_regs = [(uid, wide, eng.rd128(uid) if wide else eng.rd(uid))
                      for uid, wide in info.written]
        self.core.in_fault = 1
        self.events.pending = ("tagfault", f, saved_mem, saved_regs)
        eng.emu_stop()

    def undo_faulting_access(self, ev) -> TagFault:
        """After the engine stopped: put back what the faulting access changed."""
        _, f, saved_mem, saved_regs = ev
        eng = self.eng
        for pa, data in saved_mem:
            self.ram.write(pa, data)
        for uid, wide, v in saved_regs:
            if wide:
                eng.wr128(uid, v)
            else:
                eng.wr(uid, v)
        eng.set_pc(f.pc)
        self.core.in_fault = 0
        return f
