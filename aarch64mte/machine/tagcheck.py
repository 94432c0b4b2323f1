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
        pa = addr & ALIAS_MASK
        ltag = (addr >> ALIAS_SHIFT) & 0xF
        write = access == UC_MEM_WRITE
        c = self.counters
        found = self._locate_access(pa, ltag, size, write)
        if found is None:
            return                                   # a later access of a checked instruction
        pc, info, va = found
        if info.rmw and write:
            return                                   # checked at its read
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        el = (ps >> 2) & 3
        ael = 0 if info.unpriv and not ps & PSTATE_UAO else el
        r = self._regs()
        if not info.checked or not self._checkable(va, ael, r):
            return
        n = max(info.size, size)
        reading = not write or info.rmw
        # granule by granule over the whole footprint
        g = va & ~0xF
        end = va + n
        c.tag_checks += 1
        while g < end:
            gva = g if g > va else va
            if (gva ^ va) & ~(PAGE - 1) == 0:
                gpa = (pa & ~(PAGE - 1)) | (gva & (PAGE - 1))
                tagged = True
            else:
                t = self.stage1.translate(gva, ael, WRITE if write else READ, r)
                if isinstance(t, WalkFault):
                    break                            # the engine reports that fault itself
                gpa, tagged = t.pa, t.tagged and self.ram.contains(t.pa)
            if tagged:
                atag = self.tags.get(gpa)
                if write:
                    c.checked_granules_written += 1
                else:
                    c.checked_granules_read += 1
                if atag != ltag:
                    tcf = (r.sctlr >> (38 if ael == 0 else 40)) & 3
                    mode = checks.fault_mode(tcf, reading, write or info.rmw)
                    f = TagFault(gva, ltag, atag, write or info.rmw, mode, pc, ael)
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

    def _locate_access(self, pa: int, ltag: int, size: int, write: bool):
        """Which instruction of the current block makes this access (PC is not kept up to date
        inside memory hooks). Registers hold the state just before that instruction, so the
        first memory instruction from the block cursor whose effective address reaches this
        access, and that makes accesses of this kind, is it. Returns (pc, info, va) at the
        first access of an instruction, None for its later accesses."""
        c = self.eng.counter
        blk, n = c.last_addr, c.last_size >> 2
        cur = self._cursor
        if cur[0] != c.insns or cur[1] != blk:
            cur = self._cursor = [c.insns, blk, 0, -1, 0, 0]
        i = cur[2]
        rd = self.eng.rd
        off = pa & (PAGE - 1)
        while i < n:
            pc = blk + 4 * i
            info = checks.analyse(self._fetch_word(pc))
            if info is not None and info.base is not None and info.cls != "system" and \
                    (info.writes if write else info.reads):
                fp = max(info.size, size)
                if i == cur[2] and cur[3] >= 0:
                    # the instruction at the cursor: more of its accesses still to come?
                    if cur[3] < cur[4] and ((off - cur[5]) & (PAGE - 1)) < fp:
                        cur[3] += size
                        return None
                else:
                    va = checks.effective_address(info, rd)
                    if ((va >> 56) & 0xF) == ltag and ((off - va) & (PAGE - 1)) < fp:
                        self._cursor = [c.insns, blk, i, size, fp * (2 if info.rmw else 1), va]
                        return pc, info, va
            i += 1
        return None

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
        eng.wr(A.UC_ARM64_REG_PC, f.pc)
        self._in_fault = False
        self._fix_count(f.pc, True, completed=False)
        el = self.el
        esr = syndrome.data_abort_esr(syndrome.FSC_TAG_CHECK, f.write, el == 1)
        try:
            self._exception("data_abort", esr, f.va, f.pc, f.pc, tag_fault=f)
        except _Stop:
            pass
