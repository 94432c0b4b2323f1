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

import ctypes

from unicorn import UC_HOOK_INSN, UC_HOOK_INTR
from unicorn import arm64_const as A

from ..semantics import faults, syndrome, systraps
from ..semantics.exception_return import PSTATE_IL
from .adapter import CpReg
from .board import HLT_SEMIHOST, SemihostExit
from .mteunit import _DECODED, decoded
from .results import RunResult, _Stop
from .sysregs import BY_ENCODING, ENCODINGS, TRANSLATION_REGS
from .translation import WalkFault, WRITE

DC_ZVA = (1, 3, 7, 4, 1)
HCR_EL2 = ENCODINGS["HCR_EL2"]
SCTLRS = {ENCODINGS[n] for n in ("SCTLR_EL1", "SCTLR_EL2", "SCTLR_EL12")}
SCTLR_A = 1 << 1
PY_SYS = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(CpReg))


class SysHook(ctypes.Structure):
    """syshook.c's sys_hook_t: the user data of the native SYS hook."""
    _fields_ = [("py_sys", PY_SYS)]


EXCP_DATA_ABORT = 4
EXCP_HVC, EXCP_HYP_TRAP, EXCP_SMC = 11, 12, 13


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
        self.code = None                # the CodeScanner and SlowPath (set by the machine)
        self.slowpath = None
        self.host_inputs = None         # hostinputs.HostInputs: MRS of host-read registers
        uc = eng.uc
        if lib is not None:
            self._py_intr = core.py_intr = type(core.py_intr)(self.on_intr)
            eng.hook_native(UC_HOOK_INTR, lib.mte_intr, eng.core_ptr)
        else:
            eng.hook_intr(self.on_intr)
        uc.hook_add(UC_HOOK_INSN, self._on_mrs, aux1=A.UC_ARM64_INS_MRS)
        uc.hook_add(UC_HOOK_INSN, self._on_msr, aux1=A.UC_ARM64_INS_MSR)
        if lib is not None:
            # only DC ZVA, TLBI and IC come to Python (syshook.c)
            self._py_sys = PY_SYS(lambda h, reg, cp: self._on_sys(None, reg, cp.contents, None))
            self._sys_user = SysHook(self._py_sys)
            eng.hook_native_insn(A.UC_ARM64_INS_SYS, lib.mte_sys,
                                 ctypes.addressof(self._sys_user))
        else:
            uc.hook_add(UC_HOOK_INSN, self._on_sys, aux1=A.UC_ARM64_INS_SYS)

    # --- the interrupt hook ----------------------------------------------------------------------
    def on_intr(self, handle, intno, ud) -> None:
        # called by ctypes (directly or from the native trap): nothing may escape
        eng = self.eng
        try:
            if intno == 1:                          # UNDEFINED in Unicorn: MTE comes first
                eng.read_trap_regs()                # for the semantics, in one call
                regs = eng.trap_regs
                pc = regs[32]
                el = (regs[33] >> 2) & 3
                if regs[33] & PSTATE_IL:             # after an illegal exception return
                    self.arch_fault(faults.IllegalState(), pc)
                    return
                if pc & 3:                           # PC alignment fault: FAR = PC
                    self.arch_fault(faults.PCAlignmentFault(pc), pc)
                    return
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
            elif intno == EXCP_DATA_ABORT:         # the engine's Alignment fault (exclusive, atomic)
                self.slowpath.on_engine_alignment(eng.pc())
            elif intno == 7:                        # BRK
                pc = eng.pc()
                imm = (self.mmu.fetch_word(pc, self.regs.el) >> 5) & 0xFFFF
                self.exc.take("brk", syndrome.esr(syndrome.EC_BRK64, imm), None, pc, pc,
                              code=imm)
            elif intno == EXCP_HVC:                 # PC is already past it
                pc = eng.pc()
                el = self.regs.el
                imm = (self.mmu.fetch_word(pc - 4, el) >> 5) & 0xFFFF
                t = systraps.hvc_trap(imm, el, self.mmu.el2)
                if t is None:
                    self._take_undefined(pc - 4)
                else:
                    self.exc.take("hvc", syndrome.esr(t.ec, t.iss), None, pc, pc - 4,
                                  target_el=2)
            elif intno in (EXCP_SMC, EXCP_HYP_TRAP):   # SMC (PC past it), or HCR_EL2.TSC
                pc = eng.pc()
                at = pc - 4 if intno == EXCP_SMC else pc
                el = self.regs.el
                imm = (self.mmu.fetch_word(at, el) >> 5) & 0xFFFF
                t = systraps.smc_trap(imm, el, self.mmu.hcr(), self.mmu.el2)
                if t is None:                       # no EL3: UNDEFINED
                    self._take_undefined(at)
                else:
                    self.exc.take("smc", syndrome.esr(t.ec, t.iss), None, at, at, target_el=2)
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
        """An instruction the engine would not run: semihosting, a system instruction the
        engine trapped (its own checks of HCR_EL2 and SCTLR_ELx stopped it; the architecture
        decides where it goes), or UNDEFINED."""
        if word == HLT_SEMIHOST:
            self._semihost(pc)
            return
        mmu = self.mmu
        eng = self.eng
        t = systraps.system_trap(word, el, mmu.hcr(), eng.cp_read(*ENCODINGS["SCTLR_EL1"]),
                                 mmu.el2, eng.cp_read(*ENCODINGS["SCTLR_EL2"]) if mmu.el2
                                 else 0)
        if t is not None:
            # (the engine runs WFE as a yield, which the architecture allows: it traps only
            # a WFE that would wait)
            self.exc.take(t.kind, syndrome.esr(t.ec, t.iss), None, pc, pc,
                          target_el=t.target_el)
            return
        self._take_undefined(pc)

    def _take_undefined(self, pc: int) -> None:
        self.exc.take("undefined", syndrome.esr(syndrome.EC_UNKNOWN, 0), None, pc, pc)

    def arch_fault(self, f, pc: int) -> None:
        """Take the exception for a fault the semantics raised at ``pc``."""
        take = self.exc.take
        if isinstance(f, faults.Undefined):
            take("undefined", syndrome.esr(syndrome.EC_UNKNOWN, 0), None, pc, pc)
        elif isinstance(f, faults.AlignmentFault):
            take("data_abort", lambda same: syndrome.data_abort_esr(syndrome.FSC_ALIGNMENT,
                                                                    f.write, same), f.va, pc, pc)
        elif isinstance(f, faults.TranslationFault) and f.stage2:
            # a tag access (LDG, STG, ...): no instruction syndrome (ISV = 0)
            iss = syndrome.data_abort_iss(f.dfsc, f.write, s1ptw=f.s1ptw)
            esr = syndrome.esr(syndrome.EC_DABT_LOWER, iss)
            if f.tagaccess:
                esr |= syndrome.ESR_ISS2_TAGACCESS
            take("data_abort", esr, f.va, pc, pc, target_el=2, ipa=f.ipa)
        elif isinstance(f, faults.TranslationFault):
            take("data_abort", lambda same: syndrome.data_abort_esr(f.dfsc, f.write, same),
                 f.va, pc, pc)
        elif isinstance(f, faults.TagCheckFault):
            take("data_abort", lambda same: syndrome.tag_check_fault_esr(f.write, same),
                 f.va, pc, pc)
        elif isinstance(f, faults.SysRegTrap):
            take("sysreg_trap", syndrome.esr(syndrome.EC_SYSREG, f.iss), None, pc, pc,
                 target_el=f.target_el)
        elif isinstance(f, faults.PCAlignmentFault):
            take("pc_alignment", syndrome.esr(syndrome.EC_PC_ALIGN, 0), f.pc, pc, pc)
        elif isinstance(f, faults.IllegalState):
            take("illegal_state", syndrome.esr(syndrome.EC_ILLEGAL_STATE, 0), None, pc, pc)
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
            if key == HCR_EL2 and self.mmu.el2 and self.regs.el == 2:
                rt = self.mmu.fetch_word(self.eng.pc(), 2) & 31
                if rt != 31:                       # the bits the engine does not keep too
                    self.regs.set_reg(f"x{rt}", self.mmu.hcr_value)
                return 1
            if name in self.regs.id_values:
                el = self.regs.el
                if el == 0:
                    return 0                       # UNDEFINED at EL0 (Unicorn says so)
                if el == 1 and self.mmu.el2 and self.mmu.hcr() & systraps.HCR_TID3:
                    return 0                       # the engine traps it (HCR_EL2.TID3)
                rt = self.mmu.fetch_word(self.eng.pc(), el) & 31
                if rt != 31:
                    self.regs.set_reg(f"x{rt}", self.regs.sysreg(name))
                return 1
        except Exception as e:
            self.events.pending = ("error", e)
            self.eng.emu_stop()
        return 0

    def _on_msr(self, uc, reg, cp, ud) -> int:
        key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if key == HCR_EL2 and self.mmu.el2 and self.regs.el == 2:
            self.mmu.set_hcr(cp.val, engine=False)    # the MSR itself writes the engine's
        elif key in TRANSLATION_REGS:
            if key in SCTLRS and (cp.val & SCTLR_A or self.code.strict_now):
                # alignment checking may change: the run loop follows (``CodeScanner.refresh``)
                self.events.pending = ("retranslate",)
                self.eng.emu_stop()
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
                self.code.code_written()
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
        r = self.mmu.regime(el)
        if el == 0 and not (r.sctlr >> 14) & 1:     # SCTLR_ELx.DZE: the engine traps it
            return
        size = self.core.dczid_bytes                # the DCZID_EL0 block (read-only)
        base = va & ~(size - 1)
        t = self.mmu.translate(base, el, WRITE)
        if isinstance(t, WalkFault) or not self.mmu.ram.contains(t.pa, size):
            return                                   # the engine's fill reports the fault
        tu = self.tagunit
        if t.tagged and tu.checkable(va, el):
            ltag = (va >> 56) & 0xF
            tu.tag_checks += 1
            tags = tu.tags
            for i in range(size // 16):
                atag = tags.get(t.pa + 16 * i)
                tu.checked_granules_written += 1
                if atag != ltag:
                    f = tu.check_failed(va, ltag, atag, True, False, True, eng.pc(), el)
                    if f.mode == "sync":
                        # no effect: the engine's fill for the block is refused
                        self.events.pending = ("tagfault", f, [], [])
                        self.core.refuse_fills = 1
                        self.eng.flush_tlb()
                        return
                    break
        if self.count_classes:
            self.mteunit.cpu.insn_bytes_written += size
        self.debugging.note_data_write(t.pa, size)
