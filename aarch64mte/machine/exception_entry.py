"""The exception unit: synchronous exception entry (AArch64.TakeException, done in Python: Unicorn
never vectors) and return (ERET runs natively; ``on_eret``, a code hook ``codescan`` puts on
each ERET, restores PSTATE.TCO from SPSR_ELx bit 25).
"""
from __future__ import annotations

from typing import List, Optional

from unicorn import arm64_const as A

from ..semantics import syndrome
from ..semantics.exception_return import (HCR_TGE, PSTATE_IL, IllegalExceptionReturn,
                                          IllegalReturnPSTATE)
from . import checks
from .codescan import ERET_WORDS
from .exceptions import ExceptionRecord, TagFault, vector_offset
from .memory import PAGE
from .registers import TRANSLATION_PSTATE
from .results import RunResult, _Stop
from .sysregs import ENCODINGS
from .translation import FETCH, READ, WRITE, WalkFault

NO_VECTORS = 0                      # reset VBAR_EL1: "no guest vectors: stop and report"
DC_ZVA_MASK, DC_ZVA = 0xFFFFFFE0, 0xD50B7420


_ELR = {1: A.UC_ARM64_REG_ELR_EL1, 2: A.UC_ARM64_REG_ELR_EL2}
_ESR = {1: A.UC_ARM64_REG_ESR_EL1, 2: A.UC_ARM64_REG_ESR_EL2}
_FAR = {1: A.UC_ARM64_REG_FAR_EL1, 2: A.UC_ARM64_REG_FAR_EL2}
_VBAR = {1: A.UC_ARM64_REG_VBAR_EL1, 2: A.UC_ARM64_REG_VBAR_EL2}
_SPSR = {1: ENCODINGS["SPSR_EL1"], 2: ENCODINGS["SPSR_EL2"]}
LOG_LIMIT = 10_000                  # exception records kept (the oldest go first)


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
        self.to_el2 = None                  # the EL2 shim: takes every exception aimed at EL2
        self.monitor = None                 # the slow path's exclusive monitor: entry and
                                            # return clear it

    def has_vectors(self, el: int = 1) -> bool:
        return self.eng.rd(_VBAR[el]) != NO_VECTORS

    def route(self, from_el: int) -> int:
        """The EL a synchronous exception from ``from_el`` goes to when nothing sends it to
        EL2 itself: EL2 from EL2, and from EL0 when HCR_EL2.TGE = 1; EL1 otherwise
        (AArch64.TakeException's target for the exception classes routed by EL)."""
        if self.mmu.el2 and (from_el == 2 or (from_el == 0 and self.mmu.hcr() & HCR_TGE)):
            return 2
        return max(from_el, 1)

    def _record(self, rec: ExceptionRecord) -> None:
        log = self.log
        log.append(rec)
        if len(log) > LOG_LIMIT:
            del log[:len(log) - LOG_LIMIT]

    def take(self, kind: str, esr, far: Optional[int], preferred_return: int,
             insn_pc: int, code: Optional[int] = None, target_el: Optional[int] = None,
             tag_fault: Optional[TagFault] = None, ipa: Optional[int] = None) -> None:
        """Take a synchronous exception (AArch64.TakeException), or stop the run (raises
        ``_Stop``) when there are no vectors to take it to. ``esr`` is the syndrome, or a
        function of whether the exception stays at its EL (``same_el -> ESR``) for the classes
        whose EC says so; ``target_el`` None routes by ``route``; ``ipa`` sets HPFAR_EL2."""
        eng = self.eng
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        from_el = (ps >> 2) & 3
        target = self.route(from_el) if target_el is None else max(target_el, from_el, 1)
        if callable(esr):
            esr = esr(from_el == target)
        rec = ExceptionRecord(kind, (esr >> 26) & 0x3F, esr, far, target, from_el, insn_pc,
                              tag_fault)
        rec.ipa = ipa
        self._record(rec)
        if target == 2 and self.to_el2 is not None:
            self.to_el2(rec, preferred_return)          # the shim decides (may raise _Stop)
            return
        if target > 2 or (target == 2 and not self.mmu.el2) or not self.has_vectors(target):
            if kind == "brk":
                res = RunResult("brk", code, rec, preferred_return)
            else:
                res = RunResult("exception", None, rec, preferred_return)
            eng.set_pc(preferred_return)
            self.events.pending = ("stop", res)
            raise _Stop
        self.enter(target, esr, far, preferred_return, ps, ipa)
        if self.stop_on_exception:
            # stop at the vector: resuming runs the guest's handler
            self.events.pending = ("stop", RunResult("exception", None, rec, eng.pc()))
            raise _Stop

    def enter(self, target: int, esr: int, far: Optional[int], preferred_return: int,
              ps: Optional[int] = None, ipa: Optional[int] = None) -> None:
        """The register effects of taking an exception to ``target`` (EL1 or EL2)."""
        eng = self.eng
        if ps is None:
            ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        from_el = (ps >> 2) & 3
        self.counters.exceptions_taken += 1
        spsr = (ps & 0xFFFFFFFF & ~(1 << 25)) | (self.mte.tco << 25)
        eng.wr(_ELR[target], preferred_return)
        eng.cp_write(*_SPSR[target], spsr)
        eng.wr(_ESR[target], esr)
        if far is not None:
            eng.wr(_FAR[target], far)
        if ipa is not None:
            # HPFAR_EL2.FIPA (bits 43:4) = IPA[51:12]
            eng.cp_write(*ENCODINGS["HPFAR_EL2"], ((ipa >> 12) << 4) & 0xFFFF_FFFF_FFF0)
        # ELxh, DAIF masked, NZCV kept; PSTATE.TCO is set on exception entry
        new = (ps & 0xF0000000) | (0xF << 6) | (target << 2) | 1
        tco_set = not self.mte.tco
        self.mte.tco = 1
        self.regs.switch_pstate(ps, new, tco_changed=tco_set)
        vector = eng.rd(_VBAR[target]) + vector_offset(from_el, target, ps & 1)
        eng.set_pc(vector)

    def take_fill_fault(self, pc: int) -> None:
        """Deliver the fault a refused TLB fill left (``Events.fill_fault``): a stage-1 fault
        to EL1 (or as routed), a stage-2 fault to EL2 with HPFAR_EL2."""
        vaddr, acc, wf, el = self.events.fill_fault
        self.events.fill_fault = None
        cur = self.regs.el
        fetch = acc == FETCH
        try:
            if fetch:
                far = pc if vaddr >> 10 == pc >> 10 else vaddr
                if wf.stage == 2:
                    esr = syndrome.esr(syndrome.EC_IABT_LOWER, wf.dfsc
                                       | (syndrome.ISS_S1PTW if wf.s1ptw else 0))
                    self.take("instruction_abort", esr, far, pc, pc, target_el=2, ipa=wf.ipa)
                else:
                    self.take("instruction_abort",
                              lambda same: syndrome.instruction_abort_esr(wf.dfsc, same),
                              far, pc, pc)
                return
            far = self._fault_address(pc, vaddr, cur)
            write = acc == WRITE
            if self._rmw(pc, cur):
                # ISS.WnR of an atomic read-modify-write: 0 if a read of the address would
                # have generated the fault, else 1
                write = wf.kind != "external" and not isinstance(
                    self.mmu.translate(vaddr, cur, READ), WalkFault)
            if wf.tagaccess:
                # a tag-checked access to NoTagAccess memory: fault.write is
                # accdesc.tagaccess && accdesc.write, so WnR = 0 (it is no tag access)
                iss = self._stage2_data_iss(pc, cur, wf, False)
                esr = syndrome.esr(syndrome.EC_DABT_LOWER, iss) | syndrome.ESR_ISS2_TAGACCESS
                self.take("data_abort", esr, far, pc, pc, target_el=2, ipa=wf.ipa)
            elif wf.stage == 2:
                iss = self._stage2_data_iss(pc, cur, wf, write)
                self.take("data_abort", syndrome.esr(syndrome.EC_DABT_LOWER, iss), far, pc, pc,
                          target_el=2, ipa=wf.ipa)
            else:
                self.take("data_abort",
                          lambda same: syndrome.data_abort_esr(wf.dfsc, write, same),
                          far, pc, pc)
        except _Stop:
            pass

    def _stage2_data_iss(self, pc: int, el: int, wf, write: bool) -> int:
        """ISS of a stage-2 data abort: DFSC, WnR, S1PTW, and the instruction syndrome (ISV,
        SAS, SSE, SRT, SF, AR) for the single-register loads and stores that have one."""
        if wf.s1ptw:
            # on a stage-1 table walk: no instruction syndrome; WnR is the direction of the
            # access whose walk it was (AArch64.S1Walk passes its fault record to S2Translate)
            return syndrome.data_abort_iss(wf.dfsc, write, s1ptw=True)
        word = self.mmu.fetch_word(pc, el)
        info = checks.instruction_syndrome(word)
        if info is None:
            return syndrome.data_abort_iss(wf.dfsc, write)
        sas, sse, srt, sf, ar = info
        return syndrome.data_abort_iss(wf.dfsc, write, isv=True, sas=sas, sse=sse, srt=srt,
                                       sf=sf, ar=ar)

    def _rmw(self, pc: int, el: int) -> bool:
        """An atomic read-modify-write (the engine reads first, and may refuse the write's
        fill after the read's succeeded or the other way round)."""
        info = checks.analyse(self.mmu.fetch_word(pc, el))
        return info is not None and info.rmw

    def _returned(self, spsr: int) -> None:
        """What every exception return does here: the exclusive monitor is cleared, the return
        counted, and PSTATE.TCO restored from SPSR bit 25."""
        if self.monitor is not None:
            self.monitor.clear()
        self.counters.exception_returns += 1
        self.mte.tco = (spsr >> 25) & 1

    def illegal_return(self) -> None:
        """An illegal exception return (``semantics.exception_return``): PSTATE.EL, SP and nRW
        stay, the other fields come from SPSR, PSTATE.IL is set and PC = ELR; the next
        instruction then takes the Illegal Execution state exception (the run loop takes it).
        The engine would return to AArch32, or set IL and go on: ``on_eret`` stops before the
        ERET and the run loop calls this."""
        eng = self.eng
        el = self.regs.el
        spsr = eng.cp_read(*_SPSR[min(el, 2)])
        self._returned(spsr)
        new = IllegalReturnPSTATE(spsr, eng.rd(A.UC_ARM64_REG_PSTATE))
        elr = eng.rd(_ELR[min(el, 2)])
        eng.wr(A.UC_ARM64_REG_PSTATE, new)
        eng.set_pc(elr)
        self.mmu.invalidate()

    def return_with_il(self) -> None:
        """A legal exception return whose SPSR has IL = 1 (AArch64.ExceptionReturn): PSTATE
        from SPSR_ELx, IL included, and PC = ELR_ELx. Done here because the engine drops
        PSTATE.IL; the run loop then takes what the instruction at ELR raises first."""
        eng = self.eng
        el = self.regs.el
        spsr = eng.cp_read(*_SPSR[min(el, 2)])
        elr = eng.rd(_ELR[min(el, 2)])
        self._returned(spsr)
        self.regs.switch_pstate(eng.rd(A.UC_ARM64_REG_PSTATE), spsr & 0xFFFF_FFFF & ~(1 << 25),
                                tco_changed=True)           # one invalidation, whatever changed
        eng.set_pc(elr)

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
    def on_eret(self, uc, addr, size, ud) -> None:
        """Before an ERET at EL1 or EL2: PSTATE.TCO comes back from SPSR_ELx bit 25."""
        try:
            el = self.regs.el
            if el == 0 or self.mmu.fetch_word(addr, el) not in ERET_WORDS:
                return                          # (a hooked word the code no longer holds)
            spsr = self.eng.cp_read(*_SPSR[min(el, 2)])
            if IllegalExceptionReturn(spsr, el, self.mmu.el2, self.mmu.hcr()):
                # done by the run loop (illegal_return)
                self.events.pending = ("insn", addr, "illegal-return")
                self.eng.emu_stop()
                return
            if spsr & PSTATE_IL:
                # a legal return that restores PSTATE.IL = 1: the engine returns, and the run
                # loop takes the Illegal Execution state exception that follows
                self.events.pending = ("insn", addr, "eret-il")
                self.eng.emu_stop()
                return
            tco = self.mte.tco
            self._returned(spsr)
            if tco != self.mte.tco or (spsr ^ self.eng.rd(A.UC_ARM64_REG_PSTATE)) \
                    & TRANSLATION_PSTATE:
                self.mmu.invalidate()           # the EL or TCO changes
        except Exception as e:
            self.events.pending = ("error", e)
            self.eng.emu_stop()
