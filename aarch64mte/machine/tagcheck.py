"""The tag-check memory hook (tag-alias ranges only): finds the accessing instruction from the
block cursor, checks its whole footprint granule by granule, records asynchronous faults, and
for a synchronous fault saves what the engine may still change so the access has no effect."""
from __future__ import annotations

from unicorn import UC_MEM_WRITE
from unicorn import arm64_const as A

from ..semantics import syndrome
from . import checks
from .exceptions import TagFault
from .memory import ALIAS_MASK, ALIAS_SHIFT, PAGE
from .results import _Stop
from .tlb import PSTATE_UAO
from .translation import READ, WRITE, WalkFault


class TagCheck:
    """Part of ``Machine`` (see ``machine.py``)."""

    def _on_tagged_access(self, uc, access, addr, size, value, ud) -> None:
        try:
            self._tag_check(access, addr, size)
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()

    def _tag_check(self, access, addr, size) -> None:
        if self._in_fault:
            return
        eng = self.eng
        pc = eng.pc()                # exact: see Engine.set_pc
        c = eng.counter
        key = (c.insns, c.last_addr, pc)
        if key == self._instance:
            return                   # a later access of an instruction already checked
        self._instance = key
        pa = addr & ALIAS_MASK
        ltag = (addr >> ALIAS_SHIFT) & 0xF
        write = access == UC_MEM_WRITE
        info = checks.analyse(self._fetch_word(pc))
        if info is None or info.base is None:
            return                   # not a load/store the engine makes: nothing to check
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        el = (ps >> 2) & 3
        ael = 0 if info.unpriv and not ps & PSTATE_UAO else el
        # the registers still hold their values from before the instruction
        va = checks.effective_address(info, eng.rd)
        r = self._regs()
        if not info.checked or not self._checkable(va, ael, r):
            return
        n = max(info.size, size)
        rmw = info.rmw
        reading = not write or rmw
        c = self.counters
        # granule by granule over the whole footprint, before any of it has effect
        g = va & ~0xF
        end = va + n
        c.tag_checks += 1
        while g < end:
            gva = g if g > va else va
            t = self.stage1.translate(gva, ael, WRITE if write and not rmw else READ, r)
            if isinstance(t, WalkFault):
                break                            # the engine reports that fault itself
            if t.tagged and self.ram.contains(t.pa):
                atag = self.tags.get(t.pa)
                if write and not rmw:
                    c.checked_granules_written += 1
                else:
                    c.checked_granules_read += 1
                if atag != ltag:
                    tcf = (r.sctlr >> (38 if ael == 0 else 40)) & 3
                    mode = checks.fault_mode(tcf, reading, write or rmw)
                    f = TagFault(gva, ltag, atag, write and not rmw, mode, pc, ael)
                    self.tag_faults.append(f)
                    if mode == "sync":
                        self._sync_tag_fault(f, info, va, n, ael)
                        return
                    if mode == "async":
                        bit = 1 << ((gva >> 55) & 1)
                        if ael == 0:
                            self.mte.tfsre0_el1 |= bit
                        else:
                            self.mte.tfsr_el1 |= bit
                        return
            g += 16

    def _sync_tag_fault(self, f: TagFault, info, va: int, n: int, el: int) -> None:
        """Stop before the access has effect: save what the engine may still change."""
        eng = self.eng
        saved_mem = []
        a, end = va, va + n
        r = self._regs()
        while a < end:
            k = min(end - a, (a | (PAGE - 1)) + 1 - a)
            t = self.stage1.translate(a, el, READ, r)
            if not isinstance(t, WalkFault) and self.ram.contains(t.pa, k):
                saved_mem.append((t.pa, self.ram.read(t.pa, k)))
            a += k
        saved_regs = [(uid, wide, eng.rd128(uid) if wide else eng.rd(uid))
                      for uid, wide in info.written]
        self._in_fault = True
        self._pending = ("tagfault", f, saved_mem, saved_regs)
        eng.emu_stop()

    def _deliver_tag_fault(self, ev, pc: int) -> None:
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
        self._in_fault = False
        self._fix_count(f.pc, True, completed=False)
        el = self.el
        esr = syndrome.data_abort_esr(syndrome.FSC_TAG_CHECK, f.write, el == 1)
        try:
            self._exception("data_abort", esr, f.va, f.pc, f.pc, tag_fault=f)
        except _Stop:
            pass
