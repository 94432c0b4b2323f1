"""Where a trapped system instruction goes: AArch64.SystemAccessTrap and the HCR_EL2 and
SCTLR_ELx controls that send MRS, MSR, SYS, WFI/WFE, HVC and SMC to EL1 or EL2.

The engine stops at such an instruction (it raises its own exception for it, or does not know
it); ``system_trap`` then says what the architecture does: an exception to EL1 or EL2 with
its EC and ISS, or UNDEFINED. The MTE registers and DC G*VA are not here: their traps are in
``execute`` with the rest of their semantics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .pseudocode import HCR_TGE, SCTLR_UCI, DCZeroAccessTrap, ELIsInHost
from .syndrome import EC_HVC64, EC_SMC64, EC_SYSREG, sysreg_iss

EC_WFX = 0x01

HCR_TWI, HCR_TWE = 1 << 13, 1 << 14
HCR_TID3 = 1 << 18
HCR_TSC = 1 << 19
HCR_TACR = 1 << 21
HCR_TSW, HCR_TPCP, HCR_TPU, HCR_TTLB = 1 << 22, 1 << 23, 1 << 24, 1 << 25
HCR_TVM = 1 << 26
HCR_TRVM = 1 << 30
SCTLR_UMA = 1 << 9
SCTLR_UCT = 1 << 15
SCTLR_NTWI, SCTLR_NTWE = 1 << 16, 1 << 18

WFI, WFE = 0xD503207F, 0xD503205F

# The EL1 registers HCR_EL2.TVM traps writes to and HCR_EL2.TRVM reads of: (op0, op1, CRn,
# CRm, op2) of SCTLR_EL1, TTBR0_EL1, TTBR1_EL1, TCR_EL1, ESR_EL1, FAR_EL1, AFSR0_EL1,
# AFSR1_EL1, MAIR_EL1, AMAIR_EL1, CONTEXTIDR_EL1.
VM_REGS = frozenset([(3, 0, 1, 0, 0), (3, 0, 2, 0, 0), (3, 0, 2, 0, 1), (3, 0, 2, 0, 2),
                     (3, 0, 5, 2, 0), (3, 0, 6, 0, 0), (3, 0, 5, 1, 0), (3, 0, 5, 1, 1),
                     (3, 0, 10, 2, 0), (3, 0, 10, 3, 0), (3, 0, 13, 0, 1)])
CTR_EL0 = (3, 3, 0, 0, 1)
DAIF = (3, 3, 4, 2, 1)


@dataclass(frozen=True)
class Trap:
    target_el: int
    ec: int
    iss: int
    kind: str                   # 'sysreg_trap', 'wfx_trap', 'hvc', 'smc'


@dataclass(frozen=True)
class SysInsn:
    """An MRS/MSR (register) or SYS/SYSL word's fields."""
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int
    rt: int
    read: bool

    @property
    def key(self):
        return (self.op0, self.op1, self.crn, self.crm, self.op2)


def decode_sys(word: int) -> Optional[SysInsn]:
    """MRS, MSR (register), SYS, SYSL: 1101010100 L 1 op0[0] op1 CRn CRm op2 Rt (op0 >= 1)."""
    if word & 0xFFC00000 != 0xD5000000 or not (word >> 19) & 3:
        return None
    return SysInsn((word >> 19) & 3, (word >> 16) & 7, (word >> 12) & 15, (word >> 8) & 15,
                   (word >> 5) & 7, word & 31, bool((word >> 21) & 1))


def _sysreg_trap(insn: SysInsn, target: int) -> Trap:
    return Trap(target, EC_SYSREG,
                sysreg_iss(insn.op0, insn.op1, insn.crn, insn.crm, insn.op2, insn.rt,
                           insn.read), "sysreg_trap")


def system_trap(word: int, el: int, hcr: int, sctlr_el1: int, el2_enabled: bool,
                sctlr_el2: int = 0) -> Optional[Trap]:
    """The trap taken by ``word`` at ``el``, or None: UNDEFINED there (EC 0x00)."""
    hcr = hcr if el2_enabled else 0
    host0 = el == 0 and ELIsInHost(0, hcr, el2_enabled)
    el0_sctlr = sctlr_el2 if host0 else sctlr_el1
    el0_target = 2 if (el2_enabled and hcr & HCR_TGE) else 1
    lower = el in (0, 1) and el2_enabled and not (el == 0 and hcr & HCR_TGE)

    if word in (WFI, WFE):
        wfe = word == WFE
        iss = (1 << 24) | (0xE << 20) | (1 if wfe else 0)      # CV, COND = AL, TI
        if el == 0 and not el0_sctlr & (SCTLR_NTWE if wfe else SCTLR_NTWI):
            return Trap(el0_target, EC_WFX, iss, "wfx_trap")
        if lower and hcr & (HCR_TWE if wfe else HCR_TWI):
            return Trap(2, EC_WFX, iss, "wfx_trap")
        return None

    insn = decode_sys(word)
    if insn is None:
        return None
    key = insn.key
    if el == 0:
        # EL0 accesses the EL1 controls let through (SCTLR_EL1.UCT, UCI, DZE, UMA)
        if key == CTR_EL0 and insn.read and not el0_sctlr & SCTLR_UCT:
            return _sysreg_trap(insn, el0_target)
        if key == DAIF and not el0_sctlr & SCTLR_UMA:
            return _sysreg_trap(insn, el0_target)
        if insn.op0 == 1 and insn.op1 == 3 and insn.crn == 7:
            if insn.crm == 4 and insn.op2 == 1:                 # DC ZVA
                target = DCZeroAccessTrap(0, hcr, el2_enabled, sctlr_el1, sctlr_el2)
                return None if target is None else _sysreg_trap(insn, target)
            if insn.crm in (5, 10, 11, 12, 13, 14) and not el0_sctlr & SCTLR_UCI:
                return _sysreg_trap(insn, el0_target)           # IC IVAU, DC CVAU, CVAC, ...
        return None
    if el != 1 or not el2_enabled:
        return None
    # EL1 accesses HCR_EL2 traps to EL2
    if insn.op0 == 3 and insn.op1 == 0 and insn.crn == 0 and 1 <= insn.crm <= 7 \
            and insn.read and hcr & HCR_TID3:
        return _sysreg_trap(insn, 2)                            # ID group 3
    if key in VM_REGS and hcr & (HCR_TRVM if insn.read else HCR_TVM):
        return _sysreg_trap(insn, 2)
    if key == (3, 0, 1, 0, 1) and hcr & HCR_TACR:               # ACTLR_EL1
        return _sysreg_trap(insn, 2)
    if insn.op0 == 1 and insn.crn == 8 and hcr & HCR_TTLB:      # TLBI
        return _sysreg_trap(insn, 2)
    if insn.op0 == 1 and insn.crn == 7:
        if insn.crm == 4 and insn.op1 == 3 and insn.op2 == 1:  # DC ZVA
            target = DCZeroAccessTrap(1, hcr, el2_enabled, sctlr_el1)
            return None if target is None else _sysreg_trap(insn, target)
        if insn.crm in (6, 10, 14) and insn.op2 in (2, 4, 6) and insn.op1 == 0 \
                and hcr & HCR_TSW:
            return _sysreg_trap(insn, 2)                        # DC ISW/CSW/CISW (set/way)
        if insn.crm in (5, 1) and hcr & HCR_TPU:
            return _sysreg_trap(insn, 2)                        # IC
        if insn.crm in (6, 10, 14, 12, 13) and hcr & HCR_TPCP:
            return _sysreg_trap(insn, 2)                        # DC by VA to PoC/PoP
    return None


def hvc_trap(imm16: int, el: int, el2_enabled: bool) -> Optional[Trap]:
    """HVC: to EL2 from EL1 and EL2 when EL2 is enabled (and SCR_EL3.HCE); UNDEFINED at EL0 or
    without EL2. The preferred return is the next instruction."""
    if el == 0 or not el2_enabled:
        return None
    return Trap(2, EC_HVC64, imm16 & 0xFFFF, "hvc")


def smc_trap(imm16: int, el: int, hcr: int, el2_enabled: bool) -> Optional[Trap]:
    """SMC with no EL3: HCR_EL2.TSC traps it from EL1 to EL2 (EC 0x17, preferred return the
    SMC itself); otherwise it is UNDEFINED."""
    if el == 1 and el2_enabled and hcr & HCR_TSC:
        return Trap(2, EC_SMC64, imm16 & 0xFFFF, "smc")
    return None
