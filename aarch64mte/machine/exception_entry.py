"""The exception unit: synchronous exception entry (AArch64.TakeException, done in Python: Unicorn
never vectors) and return (ERET runs natively; a code hook on each ERET restores PSTATE.TCO from
SPSR_EL1 bit 25).

The ERETs are found in the segments at load and, for code that appears at run time, in each page
an instruction fetch fills into the TLB (``Mmu.on_code_page``): the page is scanned once per
(VA page, PA page) until the next TLB flush, an IC instruction or a ``write_mem`` to it.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from unicorn import UC_HOOK_CODE
from unicorn import arm64_const as A

from ..semantics import syndrome
from . import checks
from .exceptions import ExceptionRecord, TagFault, vector_offset
from .memory import PAGE
from .results import RunResult, _Stop
from .sysregs import ENCODINGS
from .translation import FETCH, WRITE

ERET_WORDS = (0xD69F03E0, 0xD69F0BFF, 0xD69F0FFF)     # ERET, ERETAA, ERETAB
NO_VECTORS = 0                      # reset VBAR_EL1: "no guest vectors: stop and report"
DC_ZVA_MASK, DC_ZVA = 0xFFFFFFE0, 0xD50B7420


class ExceptionUnit:
    def __init__(self, eng, regs, mmu, events, counters, mte) -> None:
        self.eng = eng
        self.regs = regs
        self.mmu = mmu
        self.events = events
        self.counters = counters
        self.mte = mte
        self.log: List[ExceptionRecord] = []
        self.stop_on_exception = False      # stop at the entry of every synchronous exception
        self._eret_hooks: Dict[int, int] = {}   # hooked ERET address -> hook
        self._scanned = set()               # (VA page, PA page) fetched from, scanned for ERETs
        self._scanned_pa = set()            # their PA pages
        mmu.on_code_page = self.code_page_fetched
        mmu.on_invalidate.append(self.forget_scans)

    def has_vectors(self) -> bool:
        return self.eng.rd(A.UC_ARM64_REG_VBAR_EL1) != NO_VECTORS

    def take(self, kind: str, esr: int, far: Optional[int], preferred_return: int,
             insn_pc: int, code: Optional[int] = None, target_el: int = 1,
             tag_fault: Optional[TagFault] = None) -> None:
        """Take a synchronous exception to EL1, or stop the run (raises ``_Stop``) when there
        are no vectors to take it to."""
        eng = self.eng
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        from_el = (ps >> 2) & 3
        rec = ExceptionRecord(kind, (esr >> 26) & 0x3F, esr, far, max(target_el, from_el, 1),
                              from_el, insn_pc, tag_fault)
        self.log.append(rec)
        if target_el > 1 or not self.has_vectors():
            if kind == "brk":
                res = RunResult("brk", code, rec, preferred_return)
            else:
                res = RunResult("exception", None, rec, preferred_return)
            eng.set_pc(preferred_return)
            self.events.pending = ("stop", res)
            raise _Stop
        self.counters.exceptions_taken += 1
        spsr = (ps & 0xFFFFFFFF & ~(1 << 25)) | (self.mte.tco << 25)
        eng.wr(A.UC_ARM64_REG_ELR_EL1, preferred_return)
        eng.cp_write(*ENCODINGS["SPSR_EL1"], spsr)
        eng.wr(A.UC_ARM64_REG_ESR_EL1, esr)
        if far is not None:
            eng.wr(A.UC_ARM64_REG_FAR_EL1, far)
        new = (ps & 0xF0000000) | (0xF << 6) | 0x5       # EL1h, DAIF masked, NZCV kept
        self.mte.tco = 1
        self.regs.switch_pstate(ps, new)
        vector = eng.rd(A.UC_ARM64_REG_VBAR_EL1) + vector_offset(from_el, 1, ps & 1)
        eng.set_pc(vector)
        if self.stop_on_exception:
            # stop at the vector: resuming runs the guest's handler
            self.events.pending = ("stop", RunResult("exception", None, rec, vector))
            raise _Stop

    def take_fill_fault(self, pc: int) -> None:
        """Deliver the translation fault a refused TLB fill left (``Events.fill_fault``)."""
        vaddr, acc, dfsc, el = self.events.fill_fault
        self.events.fill_fault = None
        cur = self.regs.el
        try:
            if acc == FETCH:
                esr = syndrome.instruction_abort_esr(dfsc, cur == 1)
                self.take("instruction_abort", esr, pc if vaddr >> 10 == pc >> 10 else vaddr,
                          pc, pc)
            else:
                esr = syndrome.data_abort_esr(dfsc, acc == WRITE, cur == 1)
                self.take("data_abort", esr, self._fault_address(pc, vaddr, cur), pc, pc)
        except _Stop:
            pass

    def _fault_address(self, pc: int, vaddr: int, el: int) -> int:
        """FAR of a data abort: the address the instruction accessed (with its tag), not the
        page the engine was filling."""
        word = self.mmu.fetch_word(pc, el)
        if word & DC_ZVA_MASK == DC_ZVA:                # DC ZVA, Xt: the register's value
            return self.regs.reg(f"x{word & 31}") if word & 31 != 31 else 0
        info = checks.analyse(word)
        if info is not None and info.base is not None:
            va = checks.effective_address(info, self.eng.rd)
            if (va ^ vaddr) & ~(PAGE - 1) == 0:
                return va
        return vaddr

    # --- ERET and PSTATE.TCO --------------------------------------------------------------------
    def _on_eret(self, uc, addr, size, ud) -> None:
        """Before an ERET at EL1: PSTATE.TCO comes back from SPSR_EL1 bit 25."""
        try:
            el = self.regs.el
            if el == 0 or self.mmu.fetch_word(addr, el) not in ERET_WORDS:
                return                          # (a hooked word the code no longer holds)
            spsr = self.eng.cp_read(*ENCODINGS["SPSR_EL1"])
            self.counters.exception_returns += 1
            self.mte.tco = (spsr >> 25) & 1
            self.mmu.invalidate()               # the EL (and TCO) may change
        except Exception as e:
            self.events.pending = ("error", e)
            self.eng.emu_stop()

    def hook_erets(self, addr: int, data: bytes) -> None:
        for off in range(0, len(data) - 3, 4):
            w = int.from_bytes(data[off:off + 4], "little")
            if w in ERET_WORDS:
                self._hook_eret(addr + off)

    def _hook_eret(self, a: int) -> None:
        if a not in self._eret_hooks:
            self._eret_hooks[a] = self.eng.uc.hook_add(UC_HOOK_CODE, self._on_eret,
                                                       begin=a, end=a)

    def code_page_fetched(self, vpage: int, ppage: int) -> None:
        if (vpage, ppage) not in self._scanned:
            self._scan(vpage, ppage)

    def _scan(self, vpage: int, ppage: int) -> None:
        """Hook the ERETs in one page an instruction fetch reaches: VA page ``vpage`` mapped
        to PA page ``ppage``. All three encodings end in the bytes 9F D6."""
        self._scanned.add((vpage, ppage))
        self._scanned_pa.add(ppage)
        ram = self.mmu.ram
        if not ram.contains(ppage, PAGE):
            return
        buf, o = ram.buf, ppage - ram.base
        end = o + PAGE
        i = buf.find(b"\x9f\xd6", o + 2, end)
        while i >= 0:
            w = i - 2
            if not w & 3 and int.from_bytes(buf[w:w + 4], "little") in ERET_WORDS:
                self._hook_eret(vpage + (w - o))
            i = buf.find(b"\x9f\xd6", i + 1, end)

    def forget_scans(self) -> None:
        self._scanned.clear()           # a fetch refills: its page is scanned again
        self._scanned_pa.clear()

    def code_written(self, ppages=None) -> None:
        """Code may have changed (IC, ``write_mem``): scan again the pages fetched from (those
        in ``ppages`` only, if given): their TLB entries may stay and refill nothing."""
        for vp, pp in list(self._scanned):
            if ppages is None or pp in ppages:
                self._scan(vp, pp)

    @property
    def scanned_pages(self):
        return self._scanned_pa
