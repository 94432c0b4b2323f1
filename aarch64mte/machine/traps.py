"""What the engine hands to Python: the interrupt hook (UNDEFINED words, among them every MTE
instruction, semihosting's HLT and trapped WFI; SVC; BRK) and the system-instruction hooks (MRS of
ID_AA64PFR1_EL1, MSR of translation registers, DC ZVA, TLBI, IC).

With the native library the engine's interrupt hook is the native MTE trap, which calls
``on_intr`` for whatever it does not finish; without it ``on_intr`` is the hook itself.

System-instruction hooks run inside a translated block: they never write PC. They either let
the instruction run (return 0), or do its work and skip it (return 1); a DC ZVA that must fault
is made to fault by the engine itself (its TLB fill is refused), so that the fault is precise.
"""
from __future__ import annotations

from unicorn import UC_HOOK_INSN, UC_HOOK_INTR
from unicorn import arm64_const as A

from ..semantics import faults, syndrome
from . import checks
from .board import HLT_SEMIHOST, SemihostExit
from .exceptions import TagFault
from .mteunit import _DECODED, decoded
from .results import RunResult, _Stop
from .sysregs import BY_ENCODING, ENCODINGS, TRANSLATION_REGS
from .translation import WalkFault, WRITE

DC_ZVA = (1, 3, 7, 4, 1)
WFI = 0xD503207F
EC_WFX = 0x01                       # trapped WFI/WFE


class Traps:
    def __init__(self, eng, core, regs, mmu, tagunit, mteunit, exc, board, events, debugging,
                 lib, count_classes: bool) -> None:
        self.eng = eng
        self.core = core
        self.regs = regs
        self.mmu = mmu
        self.tagunit = tagunit
        self.mteunit = mteunit
        self.exc = exc
        self.board = board
        self.events = events
        self.debugging = debugging
        self.count_classes = count_classes
        self.host_inputs = None             # hostinputs.HostInputs: MRS of host-read registers
        uc = eng.uc
        if lib is not None:
            self._py_intr = core.py_intr = type(core.py_intr)(self.on_intr)
            eng.hook_native(UC_HOOK_INTR, lib.mte_intr, eng.core_ptr)
        else:
            eng.hook_intr(self.on_intr)
        uc.hook_add(UC_HOOK_INSN, self._on_mrs, aux1=A.UC_ARM64_INS_MRS)
        uc.hook_add(UC_HOOK_INSN, self._on_msr, aux1=A.UC_ARM64_INS_MSR)
        uc.hook_add(UC_HOOK_INSN, self._on_sys, aux1=A.UC_ARM64_INS_SYS)

    # --- the interrupt hook ----------------------------------------------------------------------
    def on_intr(self, handle, intno, ud) -> None:
        # called by ctypes (directly or from the native trap): nothing may escape
        eng = self.eng
        try:
            if intno == 1:                          # UNDEFINED in Unicorn: MTE comes first
                # X0-X30, SP, PC, PSTATE in one call, for the semantics (Engine.read_trap_regs)
                eng._read_batch(eng.handle, eng._trap_ids, eng._trap_ptrs, eng._trap_n)
                regs = eng.trap_regs
                pc = regs[32]
                el = (regs[33] >> 2) & 3
                word = self.mmu.fetch_word(pc, el)
                hit = _DECODED.get(word)
                insn, fn = hit if hit is not None else decoded(word)
                if insn is not None:
                    f = self.mteunit.execute(insn, fn, pc, el)
                    if f is not None:
                        self.arch_fault(f, pc)
                    elif self.debugging.watches:
                        self.debugging.check_after(pc)
                    return
                self._undefined(pc, el, word)
            elif intno == 2:                        # SVC: PC is already past it
                pc = eng.pc()
                imm = (self.mmu.fetch_word(pc - 4, self.regs.el) >> 5) & 0xFFFF
                self.exc.take("svc", syndrome.esr(syndrome.EC_SVC64, imm), None, pc, pc - 4)
            elif intno == 7:                        # BRK
                pc = eng.pc()
                imm = (self.mmu.fetch_word(pc, self.regs.el) >> 5) & 0xFFFF
                self.exc.take("brk", syndrome.esr(syndrome.EC_BRK64, imm), None, pc, pc,
                              code=imm)
            else:
                pc = eng.pc()
                self.events.pending = ("stop", RunResult("exception", None, None, pc))
                raise _Stop
        except _Stop:
            eng.emu_stop()
        except Exception as e:
            self.events.pending = ("error", e)
            eng.emu_stop()
        except BaseException as e:                  # KeyboardInterrupt: emu_start raises it
            if eng.uc._hook_exception is None:
                eng.uc._hook_exception = e
            eng.emu_stop()

    def _undefined(self, pc: int, el: int, word: int) -> None:
        if word == HLT_SEMIHOST:
            self._semihost(pc)
            return
        if word == WFI:
            # trapped at EL0 by SCTLR_EL1.nTWI = 0: EC 0x01, CV = 1, COND = 0b1110, TI = 0
            # (the engine runs WFE as a yield, which the architecture allows: it traps only
            # a WFE that would wait)
            self.exc.take("wfx_trap", syndrome.esr(EC_WFX, (1 << 24) | (0xE << 20)), None,
                          pc, pc)
            return
        self.exc.take("undefined", syndrome.esr(syndrome.EC_UNKNOWN, 0), None, pc, pc)

    def arch_fault(self, f, pc: int) -> None:
        """Take the exception for a fault the semantics raised at ``pc``."""
        el = self.regs.el
        take = self.exc.take
        if isinstance(f, faults.Undefined):
            take("undefined", syndrome.esr(syndrome.EC_UNKNOWN, 0), None, pc, pc)
        elif isinstance(f, faults.AlignmentFault):
            take("data_abort", syndrome.data_abort_esr(syndrome.FSC_ALIGNMENT, f.write, el == 1),
                 f.va, pc, pc)
        elif isinstance(f, faults.TranslationFault):
            take("data_abort", syndrome.data_abort_esr(f.dfsc, f.write, el == 1), f.va, pc, pc)
        elif isinstance(f, faults.TagCheckFault):
            take("data_abort", syndrome.data_abort_esr(syndrome.FSC_TAG_CHECK, f.write, el == 1),
                 f.va, pc, pc)
        elif isinstance(f, faults.SysRegTrap):
            take("sysreg_trap", syndrome.esr(syndrome.EC_SYSREG, f.iss), None, pc, pc,
                 target_el=f.target_el)
        elif isinstance(f, faults.SPAlignmentFault):
            take("sp_alignment", syndrome.esr(syndrome.EC_SP_ALIGN, 0), None, pc, pc)
        else:
            take("undefined", syndrome.esr(syndrome.EC_UNKNOWN, 0), None, pc, pc)

    def _semihost(self, pc: int) -> None:
        eng = self.eng
        op = eng.rd(A.UC_ARM64_REG_X0) & 0xFFFFFFFF
        arg = eng.rd(A.UC_ARM64_REG_X1)
        try:
            ret = self.board.semihost(op, arg)
        except SemihostExit as e:
            eng.set_pc(pc + 4)
            self.events.pending = ("stop", RunResult("semihost-exit", e.code, None, pc + 4))
            raise _Stop
        eng.wr(A.UC_ARM64_REG_X0, ret)
        eng.set_pc(pc + 4)

    # --- system instructions (inside a block: no PC writes) -------------------------------------
    def _on_mrs(self, uc, reg, cp, ud) -> int:
        try:
            key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
            if self.host_inputs is not None and self.host_inputs.mrs(key, self.regs.el, reg):
                return 1
            name = BY_ENCODING.get(key)
            if name == "ID_AA64PFR1_EL1":
                el = self.regs.el
                if el == 0:
                    return 0                       # UNDEFINED at EL0 (Unicorn says so)
                rt = self.mmu.fetch_word(self.eng.pc(), el) & 31
                if rt != 31:
                    self.regs.set_reg(f"x{rt}", self.regs.sysreg(name))
                return 1
        except Exception as e:
            self.events.pending = ("error", e)
            self.eng.emu_stop()
        return 0

    def _on_msr(self, uc, reg, cp, ud) -> int:
        if (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2) in TRANSLATION_REGS:
            self.mmu.invalidate()
        return 0

    def _on_sys(self, uc, reg, cp, ud) -> int:
        try:
            key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
            if key == DC_ZVA:
                self._dc_zva(cp.val)
            elif cp.op0 == 1 and cp.crn == 8:        # TLBI: our caches follow the guest's
                self.mmu.invalidate(flush=False)
            elif cp.op0 == 1 and cp.crn == 7 and cp.crm in (1, 5):   # IC: code may be new
                self.exc.code_written()
        except Exception as e:
            self.events.pending = ("error", e)
            self.eng.emu_stop()
        return 0

    def _dc_zva(self, va: int) -> None:
        """DC ZVA is a tag-checked write of the DCZID_EL0 block holding ``va``. The engine
        zeroes the block itself once this hook returns; a translation fault is the engine's
        own (its TLB fill is refused); a synchronous tag-check fault refuses that fill too."""
        eng = self.eng
        el = self.regs.el
        r = self.mmu.regime()
        if el == 0 and not (r.sctlr >> 14) & 1:     # SCTLR_EL1.DZE: the engine traps it
            return
        size = 4 << (eng.cp_read(*ENCODINGS["DCZID_EL0"]) & 0xF)
        base = va & ~(size - 1)
        t = self.mmu.translate(base, el, WRITE)
        if isinstance(t, WalkFault) or not self.mmu.ram.contains(t.pa, size):
            return                                   # the engine's fill reports the fault
        tu = self.tagunit
        if t.tagged and tu.checkable(va, el, r):
            ltag = (va >> 56) & 0xF
            tu.tag_checks += 1
            tags = tu.tags
            for i in range(size // 16):
                atag = tags.get(t.pa + 16 * i)
                tu.checked_granules_written += 1
                if atag != ltag:
                    pc = eng.pc()
                    tcf = (r.sctlr >> (38 if el == 0 else 40)) & 3
                    mode = checks.fault_mode(tcf, False, True)
                    f = TagFault(va, ltag, atag, True, mode, pc, el)
                    self.tagunit.faults.append(f)
                    if mode == "sync":
                        # no effect: the engine's fill for the block is refused
                        self.events.pending = ("tagfault", f, [], [])
                        self.core.refuse_fills = 1
                        self.eng.flush_tlb()
                        return
                    if mode == "async":
                        self.tagunit.record_async(va, el)
                    break
        if self.count_classes:
            self.mteunit.cpu.insn_bytes_written += size
        self.debugging.note_data_write(t.pa, size)
