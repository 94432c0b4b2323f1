"""Instructions the engine cannot run: MTE instructions (UNDEFINED in Unicorn, run by
``semantics.execute``), MTE system registers, ID_AA64PFR1_EL1, DC ZVA (tag-checked), semihosting
``HLT #0xF000``, BRK and SVC."""
from __future__ import annotations

import struct
from typing import Optional

from unicorn import arm64_const as A

from .. import isa
from ..semantics import faults, syndrome
from ..semantics.execute import EXECUTE, execute as execute_mte
from . import checks
from .board import HLT_SEMIHOST, SemihostExit
from .exceptions import TagFault
from .results import RunResult, _Stop
from .sysregs import BY_ENCODING, ENCODINGS, TRANSLATION_REGS

DC_ZVA = (1, 3, 7, 4, 1)
WFI = 0xD503207F
_PC = A.UC_ARM64_REG_PC
_DECODED = {}                       # word -> (isa.decode(word), its EXECUTE function)
_WORD = struct.Struct("<I")
EC_WFX = 0x01                       # trapped WFI/WFE


class Traps:
    """Part of ``Machine`` (see ``machine.py``)."""

    def _on_intr(self, handle, intno, ud) -> None:
        # called by ctypes directly (Engine.hook_intr): nothing may escape
        try:
            if intno == 1:                          # UNDEFINED in Unicorn: MTE comes first
                eng = self.eng
                # read_trap_regs: X0-X30, SP, PC, PSTATE, which the semantics then read
                # from that copy (CpuProtocol.x)
                eng._read_batch(eng.handle, eng._trap_ids, eng._trap_ptrs, eng._trap_n)
                regs = eng.trap_regs
                pc = regs[32]
                pp = self._code_pa.get(pc & ~0xFFF)     # _fetch_word, its RAM case inline
                ram = self.ram
                if pp is not None and ram.base <= pp < ram.end:
                    word = _WORD.unpack_from(ram.buf, pp - ram.base + (pc & 0xFFF))[0]
                else:
                    word = self._fetch_word(pc)
                hit = _DECODED.get(word)
                if hit is None:
                    if len(_DECODED) >= 1 << 16:
                        _DECODED.clear()
                    insn = isa.decode(word)
                    hit = _DECODED[word] = (insn, None if insn is None else
                                            EXECUTE.get(insn.name))
                if hit[0] is not None:
                    self._run_mte(hit[0], hit[1], pc, (regs[33] >> 2) & 3)
                    return
            self._intr(intno)
        except _Stop:
            self.eng.emu_stop()
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()
        except BaseException as e:                  # KeyboardInterrupt: emu_start raises it
            if self.uc._hook_exception is None:
                self.uc._hook_exception = e
            self.eng.emu_stop()

    def _intr(self, intno: int) -> None:
        """Everything but an MTE instruction (those are run by ``_on_intr``)."""
        eng = self.eng
        pc = eng.rd(_PC)
        if intno == 1:                              # UNDEFINED in Unicorn
            word = self._fetch_word(pc)
            if word == HLT_SEMIHOST:
                self._semihost(pc)
                return
            if word == WFI:
                # trapped at EL0 by SCTLR_EL1.nTWI = 0: EC 0x01, CV = 1, COND = 0b1110, TI = 0
                # (the engine runs WFE as a yield, which the architecture allows: it traps
                # only a WFE that would wait)
                self._exception("wfx_trap", syndrome.esr(EC_WFX, (1 << 24) | (0xE << 20)),
                                None, pc, pc)
                return
            self._exception("undefined", syndrome.esr(syndrome.EC_UNKNOWN, 0), None, pc, pc)
        elif intno == 2:                            # SVC: PC is already past it
            word = self._fetch_word(pc - 4)
            imm = (word >> 5) & 0xFFFF
            self._exception("svc", syndrome.esr(syndrome.EC_SVC64, imm), None, pc, pc - 4)
        elif intno == 7:                            # BRK
            word = self._fetch_word(pc)
            imm = (word >> 5) & 0xFFFF
            self._exception("brk", syndrome.esr(syndrome.EC_BRK64, imm), None, pc, pc, code=imm)
        else:
            self._pending = ("stop", RunResult("exception", None, None, pc))
            raise _Stop

    def _run_mte(self, insn, fn, pc: int, el: int) -> None:
        counters = self.counters
        counters.mte_insns += 1
        tags = self.tags
        r0, w0 = tags.granules_read, tags.granules_written
        # PSTATE cannot change while the semantics run: EL is read once for the instruction,
        # and the X registers and SP come from the copy _on_intr read (writes go to both)
        eng = self.eng
        self._trap_el = el
        try:
            if fn is None:
                execute_mte(insn, self)             # UnknownInstruction
            else:
                fn(insn, self)                      # execute_mte's dispatch, per word
        except faults.ArchFault as f:
            self._trap_el = None
            # allocation-tag storage traffic of the instruction (tag checks count apart)
            counters.tag_granules_read += tags.granules_read - r0
            counters.tag_granules_written += tags.granules_written - w0
            self._arch_fault(f, pc)
            return
        except BaseException:
            self._trap_el = None
            counters.tag_granules_read += tags.granules_read - r0
            counters.tag_granules_written += tags.granules_written - w0
            raise
        self._trap_el = None
        counters.tag_granules_read += tags.granules_read - r0
        counters.tag_granules_written += tags.granules_written - w0
        eng.set_pc(pc + 4)
        if self._watches and self._pending is None:
            self._check_watches_after(pc)

    def _arch_fault(self, f, pc: int) -> None:
        el = self.el
        if isinstance(f, faults.Undefined):
            self._exception("undefined", syndrome.esr(syndrome.EC_UNKNOWN, 0), None, pc, pc)
        elif isinstance(f, faults.AlignmentFault):
            self._exception("data_abort", syndrome.data_abort_esr(syndrome.FSC_ALIGNMENT, f.write,
                            el == 1), f.va, pc, pc)
        elif isinstance(f, faults.TranslationFault):
            self._exception("data_abort", syndrome.data_abort_esr(f.dfsc, f.write, el == 1),
                            f.va, pc, pc)
        elif isinstance(f, faults.TagCheckFault):
            self._exception("data_abort", syndrome.data_abort_esr(syndrome.FSC_TAG_CHECK, f.write,
                            el == 1), f.va, pc, pc)
        elif isinstance(f, faults.SysRegTrap):
            self._exception("sysreg_trap", syndrome.esr(syndrome.EC_SYSREG, f.iss), None, pc, pc,
                            target_el=f.target_el)
        elif isinstance(f, getattr(faults, "SPAlignmentFault", ())):
            self._exception("sp_alignment", syndrome.esr(syndrome.EC_SP_ALIGN, 0), None, pc, pc)
        else:
            self._exception("undefined", syndrome.esr(syndrome.EC_UNKNOWN, 0), None, pc, pc)

    def _semihost(self, pc: int) -> None:
        eng = self.eng
        op = eng.rd(A.UC_ARM64_REG_X0) & 0xFFFFFFFF
        arg = eng.rd(A.UC_ARM64_REG_X1)
        try:
            ret = self.board.semihost(op, arg)
        except SemihostExit as e:
            eng.set_pc(pc + 4)
            self._pending = ("stop", RunResult("semihost-exit", e.code, None, pc + 4))
            raise _Stop
        eng.wr(A.UC_ARM64_REG_X0, ret)
        self._advance(pc)

    def _advance(self, pc: int) -> None:
        """PC = pc + 4 from a hook (the end-of-text code hook still stops there)."""
        self.eng.set_pc(pc + 4)

    def _mte_sysreg_name(self, cp) -> Optional[str]:
        return BY_ENCODING.get((cp.op0, cp.op1, cp.crn, cp.crm, cp.op2))

    def _on_mrs(self, uc, reg, cp, ud) -> int:
        try:
            name = self._mte_sysreg_name(cp)
            if name == "ID_AA64PFR1_EL1":
                if self.el == 0:
                    return 0                       # UNDEFINED at EL0 (Unicorn says so)
                pc = self.eng.rd(A.UC_ARM64_REG_PC)
                rt = self._fetch_word(pc) & 31
                self.set_x(rt, self.sysreg(name))
                self._advance(pc)
                return 1
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()
        return 0

    def _on_msr(self, uc, reg, cp, ud) -> int:
        key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if key in TRANSLATION_REGS:
            self._invalidate()
        return 0

    def _on_sys(self, uc, reg, cp, ud) -> int:
        try:
            key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
            if key == DC_ZVA:
                return self._dc_zva(cp.val)
            if cp.op0 == 1 and cp.crn == 8:          # TLBI: our caches follow the guest's
                self._invalidate(flush=False)
            elif cp.op0 == 1 and cp.crn == 7 and cp.crm in (1, 5):   # IC: code may be new
                self._rescan_erets()
        except _Stop:
            self.eng.emu_stop()
            return 1
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()
            return 1
        return 0

    def _dc_zva(self, va: int) -> int:
        """DC ZVA: a tag-checked write of the DCZID_EL0 block holding ``va``."""
        eng = self.eng
        pc = eng.rd(A.UC_ARM64_REG_PC)
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        el = (ps >> 2) & 3
        size = 4 << (eng.cp_read(*ENCODINGS["DCZID_EL0"]) & 0xF)
        if el == 0 and not (self._regs().sctlr >> 14) & 1:      # SCTLR_EL1.DZE
            return 0                                            # Unicorn raises the trap
        base = va & ~(size - 1)
        r = self._regs()
        try:
            t0 = self._data_translate(base, True, el)
        except faults.ArchFault as f:
            self._arch_fault(faults.TranslationFault(va, True, f.dfsc), pc)
            return 1
        if t0.tagged and self._checkable(va, el, r):
            ltag = (va >> 56) & 0xF
            self.counters.tag_checks += 1
            for i in range(size // 16):
                gpa = t0.pa + 16 * i
                if self.ram.contains(gpa):
                    atag = self.tags.get(gpa)
                    self.counters.checked_granules_written += 1
                    if atag != ltag:
                        tcf = (r.sctlr >> (38 if el == 0 else 40)) & 3
                        mode = checks.fault_mode(tcf, False, True)
                        f = TagFault(va, ltag, atag, True, mode, pc, el)
                        self.tag_faults.append(f)
                        if mode == "sync":
                            self._exception("data_abort", syndrome.data_abort_esr(
                                syndrome.FSC_TAG_CHECK, True, el == 1), va, pc, pc, tag_fault=f)
                            return 1
                        bit = 1 << ((va >> 55) & 1)
                        if el == 0:
                            self.mte.tfsre0_el1 |= bit
                        else:
                            self.mte.tfsr_el1 |= bit
                        break
        if self._watch_pages:
            self._note_data_write(t0.pa, size)
        if self.ram.contains(t0.pa, size):
            self.ram.zero(t0.pa, size)
        else:
            eng.mem_write(t0.pa, bytes(size))
        if self.count_classes:
            self.counters.data_bytes_written += size
        self._advance(pc)
        if self._watches and self._pending is None:
            self._check_watches_after(pc)
        return 1
