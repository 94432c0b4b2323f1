"""Registers by name: X/W, SP (banked by PSTATE.SP and EL), PC, PSTATE fields, SIMD/FP and every
system register (the MTE ones in the shared core, the rest in the engine).

``RegisterFile`` owns no state of its own beyond what the engine and ``MteRegs`` hold; it calls
``on_translation_change`` whenever a write may change how addresses translate or are checked
(the MMU drops what it derived from the old values).
"""
from __future__ import annotations

from typing import Callable

from unicorn import arm64_const as A

from .sysregs import (ENCODINGS, GCR_MASK, MTE_STATE, RGSR_MASK, TFSR_MASK,
                      TRANSLATION_REGS, UC_IDS, MteRegs)

MASK64 = (1 << 64) - 1
# The PSTATE fields a translation or a tag check depends on: EL, nRW (M[4:2]) and UAO (LDTR/STTR
# at EL1). A PSTATE write that keeps them (an exception taken to the EL it came from) keeps every
# translation; PSTATE.TCO is MteRegs.tco (``set_tco``).
TRANSLATION_PSTATE = 0x1C | (1 << 23)
_MTE_FIELDS = {"GCR_EL1": "gcr_el1", "RGSR_EL1": "rgsr_el1", "TFSR_EL1": "tfsr_el1",
               "TFSRE0_EL1": "tfsre0_el1", "TFSR_EL2": "tfsr_el2"}
_MTE_WRITES = {"GCR_EL1": ("gcr_el1", GCR_MASK), "RGSR_EL1": ("rgsr_el1", RGSR_MASK),
               "TFSR_EL1": ("tfsr_el1", TFSR_MASK), "TFSRE0_EL1": ("tfsre0_el1", TFSR_MASK),
               "TFSR_EL2": ("tfsr_el2", TFSR_MASK)}
X_REGS = [A.UC_ARM64_REG_X0 + i for i in range(29)] + [A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30]
_PLAIN = {"sp": A.UC_ARM64_REG_SP, "nzcv": A.UC_ARM64_REG_NZCV, "fpsr": A.UC_ARM64_REG_FPSR,
          "fpcr": A.UC_ARM64_REG_FPCR, "lr": A.UC_ARM64_REG_X30, "fp": A.UC_ARM64_REG_X29}
_SP_BANKS = {"sp_el0": A.UC_ARM64_REG_SP_EL0, "sp_el1": A.UC_ARM64_REG_SP_EL1,
             "sp_el2": A.UC_ARM64_REG_SP_EL2}


class RegisterFile:
    def __init__(self, eng, mte: MteRegs, on_translation_change: Callable[[], None],
                 id_values=None, mmu=None) -> None:
        self.eng = eng
        self.mte = mte
        self.on_translation_change = on_translation_change
        self.mmu = mmu                      # holds HCR_EL2 as the program wrote it
        # ID registers whose value the machine gives (what it implements), by name
        self.id_values = dict(id_values or {})

    # --- PSTATE ----------------------------------------------------------------------------
    def pstate(self) -> int:
        return self.eng.rd(A.UC_ARM64_REG_PSTATE)

    def set_pstate(self, value: int) -> None:
        eng = self.eng
        eng.wr(A.UC_ARM64_REG_PSTATE, value)
        tcr = ENCODINGS["TCR_EL1"]
        eng.cp_write(*tcr, eng.cp_read(*tcr))      # makes Unicorn rebuild its cached flags

    @property
    def el(self) -> int:
        return (self.eng.rd(A.UC_ARM64_REG_PSTATE) >> 2) & 3

    @staticmethod
    def sp_bank(pstate: int) -> int:
        """Unicorn id of the SP_ELx that holds the current SP for a PSTATE value."""
        if pstate & 1:
            return (A.UC_ARM64_REG_SP_EL0, A.UC_ARM64_REG_SP_EL1, A.UC_ARM64_REG_SP_EL2,
                    A.UC_ARM64_REG_SP_EL3)[(pstate >> 2) & 3]
        return A.UC_ARM64_REG_SP_EL0

    def switch_pstate(self, old: int, new: int, tco_changed: bool = False) -> None:
        """Write PSTATE with SP banking as an exception entry/return does (``tco_changed``:
        the caller changed PSTATE.TCO with it)."""
        eng = self.eng
        ob, nb = self.sp_bank(old), self.sp_bank(new)
        if ob != nb:
            eng.wr(ob, eng.rd(A.UC_ARM64_REG_SP))
            sp = eng.rd(nb)
            self.set_pstate(new)
            eng.wr(A.UC_ARM64_REG_SP, sp)
        else:
            self.set_pstate(new)
        if tco_changed or (old ^ new) & TRANSLATION_PSTATE:
            self.on_translation_change()

    def set_tco(self, value: int) -> None:
        if self.mte.tco != value:
            self.mte.tco = value
            self.on_translation_change()      # which pages need the check hook changes

    # --- by name ---------------------------------------------------------------------------
    def reg(self, name: str) -> int:
        n = name.lower()
        eng = self.eng
        if n[0] == "x" and n[1:].isdigit():
            return eng.rd(X_REGS[int(n[1:])])
        if n[0] == "w" and n[1:].isdigit():
            return eng.rd(X_REGS[int(n[1:])]) & 0xFFFFFFFF
        if n == "pc":
            return eng.pc()
        if n in _PLAIN:
            return eng.rd(_PLAIN[n])
        if n == "el":
            return self.el
        if n == "tco":
            return self.mte.tco
        if n == "pstate":
            return self.pstate() | (self.mte.tco << 25)
        if n == "spsel":
            return self.pstate() & 1
        if n in _SP_BANKS:
            uid = _SP_BANKS[n]
            if self.sp_bank(self.pstate()) == uid:
                return eng.rd(A.UC_ARM64_REG_SP)
            return eng.rd(uid)
        if n[0] in "vq" and n[1:].isdigit():
            return eng.rd128(A.UC_ARM64_REG_Q0 + int(n[1:]))
        return self.sysreg(name.upper())

    def set_reg(self, name: str, value: int) -> None:
        n = name.lower()
        eng = self.eng
        if n[0] == "x" and n[1:].isdigit():
            eng.wr(X_REGS[int(n[1:])], value)
        elif n == "pc":
            eng.set_pc(value)
        elif n in _PLAIN:
            eng.wr(_PLAIN[n], value)
        elif n == "el":
            ps = self.pstate()
            self.switch_pstate(ps, (ps & ~0xF) | ((value & 3) << 2) | (1 if value else 0))
        elif n == "tco":
            self.set_tco(value & 1)
        elif n == "spsel":
            ps = self.pstate()
            if ps & 0xC:                    # EL0 has only SP_EL0
                self.switch_pstate(ps, (ps & ~1) | (value & 1))
        elif n in _SP_BANKS:
            uid = _SP_BANKS[n]
            if self.sp_bank(self.pstate()) == uid:
                eng.wr(A.UC_ARM64_REG_SP, value)
            else:
                eng.wr(uid, value)
        elif n[0] in "vq" and n[1:].isdigit():
            eng.wr128(A.UC_ARM64_REG_Q0 + int(n[1:]), value)
        else:
            self.set_sysreg(name.upper(), value)

    def sysreg(self, name: str) -> int:
        attr = _MTE_FIELDS.get(name)
        if attr is not None:                # the MTE registers the semantics read most
            return getattr(self.mte, attr)
        name = name.upper()
        if name in MTE_STATE:
            return self.mte.read(name)
        if name in self.id_values:
            return self.id_values[name]
        if name == "HCR_EL2" and self.mmu is not None and self.mmu.el2:
            return self.mmu.hcr_value
        if name in UC_IDS:
            if name in ("SP_EL0", "SP_EL1"):
                return self.reg(name)
            return self.eng.rd(UC_IDS[name])
        if name in ENCODINGS:
            return self.eng.cp_read(*ENCODINGS[name])
        raise KeyError(f"unknown system register {name}")

    def set_sysreg(self, name: str, value: int) -> None:
        f = _MTE_WRITES.get(name)
        if f is not None:                   # as MteRegs.write: the field, RES0 bits cleared
            setattr(self.mte, f[0], value & f[1])
            return
        name = name.upper()
        if name == "TCO":
            self.set_tco((value >> 25) & 1)
            return
        if name in MTE_STATE:
            self.mte.write(name, value)
            return
        if name == "HCR_EL2" and self.mmu is not None and self.mmu.el2:
            self.mmu.set_hcr(value)
            return
        if name in ("SP_EL0", "SP_EL1"):
            self.set_reg(name, value)
        elif name in UC_IDS:
            self.eng.wr(UC_IDS[name], value)
        elif name in ENCODINGS:
            self.eng.cp_write(*ENCODINGS[name], value)
        else:
            raise KeyError(f"unknown system register {name}")
        if ENCODINGS.get(name) in TRANSLATION_REGS or name == "HCR_EL2":
            self.on_translation_change()
