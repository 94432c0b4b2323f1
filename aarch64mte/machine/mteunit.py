"""The MTE unit: MTE instructions and system registers, which Unicorn does not have.

Each MTE word is UNDEFINED to the engine and arrives at the interrupt hook with PC at it. The
native trap (``_native/mtetrap.c``) finishes the common cases; ``execute`` here runs the full
semantics (``semantics.execute``) for everything else, and for everything when the native
library is not there. What the native trap needs to know of the translation regime per EL is
kept in the shared core (``regime_state``).
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
        self.mte_insns = 0                # executed here (the native trap counts in the core)
        self._py_event = core.py_event = native.PY_EVENT(self._native_event)
        # (insn, x_or_sp, pc, el) -> True to stop before the instruction (Debugging.mte_before)
        self.before_check = None
        self._x_or_sp = eng.trap_regs.__getitem__

    def _native_event(self, what: int) -> None:
        if what == native.EVENT_TAGS_OF_FAST_PAGE:
            self.mmu.invalidate()       # a page mapped without the check hook changed tags

    def execute(self, insn, fn, pc: int, el: int) -> Optional[faults.ArchFault]:
        """Run one MTE instruction (registers already in ``Engine.trap_regs``); PC += 4 unless
        it faults, in which case the fault is returned and nothing else has changed."""
        if not self.mmu._core_valid:
            self.mmu.ensure_core_state()
        if self.before_check is not None and self.before_check(insn, self._x_or_sp, pc, el):
            return None                           # a watch stops the run before it
        self.mte_insns += 1
        cpu = self.cpu
        cpu._el = el                              # the instruction runs (CpuView._el)
        cpu.writer = (pc, insn.name)
        try:
            if fn is None:
                execute_mte(insn, cpu)              # UnknownInstruction
            else:
                fn(insn, cpu)                       # execute_mte's dispatch, per word
        except faults.ArchFault as f:
            return f
        finally:
            cpu._el = None
        self.eng.set_pc(pc + 4)
        return None
