"""Synchronous exception entry (AArch64.TakeException, done in Python: Unicorn never vectors)
and return (ERET runs natively; a code hook on each ERET restores PSTATE.TCO from SPSR_EL1).

The ERETs are found in the segments at load and, for code that appears at run time, in each page
an instruction fetch fills into the TLB (``Tlb._on_fill``): the page is scanned once per
(VA page, PA page) until the next TLB flush, an IC instruction or a ``write_mem`` to it."""
from __future__ import annotations

from typing import Optional

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


class ExceptionEntry:
    """Part of ``Machine`` (see ``machine.py``)."""

    def _has_vectors(self) -> bool:
        return self.eng.rd(A.UC_ARM64_REG_VBAR_EL1) != NO_VECTORS

    def _exception(self, kind: str, esr: int, far: Optional[int], preferred_return: int,
                   insn_pc: int, code: Optional[int] = None, target_el: int = 1,
                   tag_fault: Optional[TagFault] = None) -> None:
        """Take a synchronous exception to EL1 (or stop the run if there are no vectors)."""
        eng = self.eng
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        from_el = (ps >> 2) & 3
        rec = ExceptionRecord(kind, (esr >> 26) & 0x3F, esr, far, max(target_el, from_el, 1),
                              from_el, insn_pc, tag_fault)
        self.exception_log.append(rec)
        if target_el > 1 or not self._has_vectors():
            if kind == "brk":
                res = RunResult("brk", code, rec, preferred_return)
            else:
                res = RunResult("exception", None, rec, preferred_return)
            eng.set_pc(preferred_return)
            self._pending = ("stop", res)
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
        self._switch_pstate(ps, new)
        vbar = eng.rd(A.UC_ARM64_REG_VBAR_EL1)
        vector = vbar + vector_offset(from_el, 1, ps & 1)
        eng.set_pc(vector)
        if self.stop_on_exception:
            # stop at the vector: resuming runs the guest's handler
            self._pending = ("stop", RunResult("exception", None, rec, vector))
            raise _Stop

    def _on_eret(self, uc, addr, size, ud) -> None:
        """Before an ERET at EL1: PSTATE.TCO comes back from SPSR_EL1 bit 25."""
        try:
            el = self.el
            if el == 0 or self._fetch_word(addr) not in ERET_WORDS:
                return                          # (a hooked word the code no longer holds)
            spsr = self.eng.cp_read(*ENCODINGS["SPSR_EL1"])
            self.counters.exception_returns += 1
            self.mte.tco = (spsr >> 25) & 1
            self._invalidate()                  # the EL (and TCO) may change
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()

    def _hook_erets(self, addr: int, data: bytes) -> None:
        for off in range(0, len(data) - 3, 4):
            w = int.from_bytes(data[off:off + 4], "little")
            if w in ERET_WORDS and addr + off not in self._eret_hooks:
                a = addr + off
                self._eret_hooks[a] = self.uc.hook_add(UC_HOOK_CODE, self._on_eret, begin=a, end=a)

    def _scan_erets(self, vpage: int, ppage: int) -> None:
        """Hook the ERETs in one page an instruction fetch reaches: VA page ``vpage`` mapped
        to PA page ``ppage``. All three encodings end in the bytes 9F D6."""
        self._eret_scanned.add((vpage, ppage))
        self._eret_scanned_pa.add(ppage)
        ram = self.ram
        if not ram.contains(ppage, PAGE):
            return
        buf, o = ram.buf, ppage - ram.base
        end = o + PAGE
        i = buf.find(b"\x9f\xd6", o + 2, end)
        while i >= 0:
            w = i - 2
            if not w & 3 and int.from_bytes(buf[w:w + 4], "little") in ERET_WORDS:
                a = vpage + (w - o)
                if a not in self._eret_hooks:
                    self._eret_hooks[a] = self.uc.hook_add(UC_HOOK_CODE, self._on_eret,
                                                           begin=a, end=a)
            i = buf.find(b"\x9f\xd6", i + 1, end)

    def _rescan_erets(self, ppages=None) -> None:
        """Code may have changed (IC, ``write_mem``): scan again the pages fetched from
        (those in ``ppages`` only, if given): their TLB entries may stay and refill nothing."""
        for vp, pp in list(self._eret_scanned):
            if ppages is None or pp in ppages:
                self._scan_erets(vp, pp)

    def _deliver_fill_fault(self, pc: int) -> None:
        vaddr, acc, dfsc, el = self._fill_fault
        self._fill_fault = None
        cur = self.el
        try:
            if acc == FETCH:
                esr = syndrome.instruction_abort_esr(dfsc, cur == 1)
                self._exception("instruction_abort", esr, pc if vaddr >> 10 == pc >> 10 else vaddr,
                                pc, pc)
            else:
                far = vaddr
                info = checks.analyse(self._fetch_word(pc))
                if info is not None and info.base is not None:
                    va = checks.effective_address(info, self.eng.rd)
                    if (va ^ vaddr) & ~(PAGE - 1) == 0:
                        far = va
                esr = syndrome.data_abort_esr(dfsc, acc == WRITE, cur == 1)
                self._exception("data_abort", esr, far, pc, pc)
        except _Stop:
            pass
