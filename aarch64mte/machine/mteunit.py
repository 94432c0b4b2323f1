"""The MTE unit: MTE instructions and system registers, which Unicorn does not have.

Each MTE word is UNDEFINED to the engine and arrives at the interrupt hook with PC at it. The
native trap (``_native/mtetrap.c``) finishes the common cases; ``execute`` here runs the full
semantics (``semantics.execute``) for everything else, and for everything when the native
library is not there. What the native trap needs to know of the translation regime per EL
(whether tag access is enabled, whether an MTE register access or DC G*VA can trap) is kept in
the shared core by ``refresh``, which runs on the first trap after any translation change.
"""
from __future__ import annotations

from typing import Optional

from .. import isa
from . import native
from ..semantics import faults
from ..semantics.execute import EXECUTE, execute as execute_mte

_DECODED = {}                       # word -> (isa.decode(word), its EXECUTE function)


def decoded(word: int):
    hit = _DECODED.get(word)
    if hit is None:
        if len(_DECODED) >= 1 << 16:
            _DECODED.clear()
        insn = isa.decode(word)
        hit = _DECODED[word] = (insn, None if insn is None else EXECUTE.get(insn.name))
    return hit


class MteUnit:
    def __init__(self, eng, core, mmu, cpu, lib) -> None:
        self.eng = eng
        self.core = core
        self.mmu = mmu
        self.cpu = cpu
        self.lib = lib
        self.watching = False             # a debugger watch needs every instruction in Python
        self._stale = True
        mmu.on_invalidate.append(self.regime_changed)
        self._py_event = core.py_event = native.PY_EVENT(self._native_event)

    def _native_event(self, what: int) -> None:
        if what == native.EVENT_TAGS_OF_FAST_PAGE:
            self.mmu.invalidate()       # a page mapped without the check hook changed tags

    def regime_changed(self) -> None:
        """The derived per-EL state may be out of date: the native trap hands every MTE
        instruction to Python until ``refresh`` has run again."""
        self._stale = True
        self.core.fast_traps = 0

    def refresh(self) -> None:
        r = self.mmu.regime()
        c = self.core
        sctlr = r.sctlr
        c.tag_access[0] = (sctlr >> 42) & 1            # SCTLR_EL1.ATA0
        c.tag_access[1] = (sctlr >> 43) & 1            # SCTLR_EL1.ATA
        c.tag_access[2] = c.tag_access[3] = 0
        # no EL2: EL1 accesses to the MTE registers never trap; EL0 ones are UNDEFINED
        c.sysreg_direct[1] = c.gmid_direct[1] = c.dc_direct[1] = 1
        c.sysreg_direct[0] = c.gmid_direct[0] = 0
        c.dc_direct[0] = (sctlr >> 14) & 1             # SCTLR_EL1.DZE
        for el in (2, 3):
            c.sysreg_direct[el] = c.gmid_direct[el] = c.dc_direct[el] = 0
        c.fast_traps = 1 if (self.lib is not None and not self.watching) else 0
        self._stale = False

    def execute(self, insn, fn, pc: int, el: int) -> Optional[faults.ArchFault]:
        """Run one MTE instruction (registers already in ``Engine.trap_regs``); PC += 4 unless
        it faults, in which case the fault is returned and nothing else has changed."""
        if self._stale:
            self.refresh()
        self.core.mte_insns += 1
        cpu = self.cpu
        cpu.begin(el)
        try:
            if fn is None:
                execute_mte(insn, cpu)              # UnknownInstruction
            else:
                fn(insn, cpu)                       # execute_mte's dispatch, per word
        except faults.ArchFault as f:
            return f
        finally:
            cpu.end()
        self.eng.set_pc(pc + 4)
        return None
