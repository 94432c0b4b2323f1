"""Instructions the engine gets wrong, stopped before they run and finished in Python.

``codescan`` finds them in the code; the hooks here fire before each runs and stop the engine
with an ``("insn", pc, why)`` event, which the run loop hands to ``finish``:

- ``check``: a load-acquire/store-release (always) or any load/store (while SCTLR_ELx.A = 1
  in some regime) whose alignment the engine does not check: AArch64.CheckAlignment decides
  here, and the instruction either takes its Alignment fault or runs in the engine as it is;
- ``emulate``: LDSMAX/LDSMIN of bytes, halfwords and words, which the engine compares
  unsigned: ``atomics.perform`` runs them;
- ``exclusive``: a store-exclusive the engine would get wrong (``exclusives``);
- ``illegal-return``: an illegal exception return (``ExceptionUnit.illegal_return``), then the
  Illegal Execution state exception of the instruction it returns to;
- ``engine-align``: the engine's own Alignment fault (interrupt 4) on an exclusive or atomic.
  It applies the rule without FEAT_LSE2; ``atomics`` and ``exclusives`` apply it with.

Stopping (rather than taking the exception inside the hook) lets the run loop correct the
block's instruction count, as it does for every other fault in the middle of a block.
"""
from __future__ import annotations

from typing import Optional

from ..semantics import alignment, faults
from . import atomics, checks, exclusives
from .codescan import CLREX, is_load_exclusive


class SlowPath:
    def __init__(self, machine) -> None:
        self.m = machine
        self.pass_pc = None             # a checked instruction allowed to run once
        self.monitor = exclusives.Monitor()

    # --- hooks (engine context: record, stop, return) ------------------------------------------
    def on_check(self, uc, addr, size, ud) -> None:
        m = self.m
        if self.pass_pc == addr:
            self.pass_pc = None
            return
        try:
            el = m.regs.el
            word = m.mmu.fetch_word(addr, el)
            if word & 0xFFFFF0FF == CLREX or is_load_exclusive(word):
                # the engine's exclusive load arms the engine's monitor; an unaligned one
                # comes back as the engine's Alignment fault and arms this one again
                self.monitor.clear()
            elif exclusives.needs_python(m, word, self.monitor):
                m.events.pending = ("insn", addr, "exclusive")
                m.eng.emu_stop()
            elif self._alignment_fault(word, el) is not None:
                m.events.pending = ("insn", addr, "check")
                m.eng.emu_stop()
        except Exception as e:
            m.events.pending = ("error", e)
            m.eng.emu_stop()

    def on_emulate(self, uc, addr, size, ud) -> None:
        m = self.m
        try:
            if atomics.decode(m.mmu.fetch_word(addr, m.regs.el)) is not None:
                m.events.pending = ("insn", addr, "emulate")
                m.eng.emu_stop()
        except Exception as e:
            m.events.pending = ("error", e)
            m.eng.emu_stop()

    def on_engine_alignment(self, pc: int) -> None:
        """Interrupt 4 (called from the interrupt hook)."""
        self.m.events.pending = ("insn", pc, "engine-align")
        self.m.eng.emu_stop()

    # --- the run loop's side ---------------------------------------------------------------------
    def finish(self, pc: int, why: str) -> Optional[faults.ArchFault]:
        """Complete the instruction at ``pc``: None if it has run (PC moved on, or it is to run
        in the engine now), else the fault to take."""
        m = self.m
        if why == "illegal-return":
            m.exc.illegal_return()
            return faults.IllegalState()       # taken by the instruction at ELR
        el = m.regs.el
        word = m.mmu.fetch_word(pc, el)
        if why == "check":
            f = self._alignment_fault(word, el)
            if f is None:
                self.pass_pc = pc       # the word changed under the hook: let it run
            return f
        if atomics.decode(word) is not None:
            return atomics.perform(m, word, pc)
        if exclusives.decode(word) is not None:
            if why == "exclusive" and not exclusives.needs_python(m, word, self.monitor):
                self.pass_pc = pc
                return None
            return exclusives.perform(m, word, pc, self.monitor)
        info = checks.analyse(word)
        if info is None or info.base is None:
            return faults.Undefined("engine alignment fault on a word that is no access")
        va = checks.effective_address(info, m.eng.rd)
        return faults.AlignmentFault(va, info.writes and not info.rmw)

    def _alignment_fault(self, word: int, el: int) -> Optional[faults.AlignmentFault]:
        """The Alignment fault the load/store ``word`` at ``el`` takes now, or None."""
        m = self.m
        info = checks.analyse(word)
        if info is None or not info.align or info.base is None:
            return None
        sctlr = m.mmu.regime(el).sctlr
        if info.acctype == alignment.NORMAL and not sctlr & alignment.SCTLR_A:
            return None
        va = checks.effective_address(info, m.eng.rd)
        if alignment.CheckAlignment(va, info.align, info.acctype, sctlr):
            return faults.AlignmentFault(va, info.writes and not info.rmw)
        return None
