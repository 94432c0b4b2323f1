"""Exception return (Arm ARM, AArch64.ExceptionReturn and IllegalExceptionReturn).

The engine makes an illegal return set PSTATE.IL but never takes the Illegal Execution state
exception that follows, and it returns to AArch32 where this machine implements none. The
machine decides legality here, before each ERET, and does an illegal return itself.
"""
from __future__ import annotations

from .pseudocode import HCR_TGE

SPSR_M_MASK = 0x1F
PSTATE_IL = 1 << 20
_VALID_AARCH64_M = {0b0000: 0, 0b0100: 1, 0b0101: 1, 0b1000: 2, 0b1001: 2, 0b1100: 3,
                    0b1101: 3}


def IllegalExceptionReturn(spsr: int, current_el: int, have_el2: bool, hcr: int = 0) -> bool:
    """True if an ERET with this SPSR from ``current_el`` is an illegal return: SPSR.M names
    AArch32 (no EL implements it), a reserved mode, an EL above the current one or one that is
    not implemented, or EL1 while HCR_EL2.TGE = 1 sends EL1 to EL2."""
    m = spsr & SPSR_M_MASK
    if m & 0x10:
        return True                                   # AArch32: not implemented at any EL
    target = _VALID_AARCH64_M.get(m)
    if target is None or target > current_el or target == 3:
        return True
    if target == 2 and not have_el2:
        return True
    return bool(target == 1 and have_el2 and hcr & HCR_TGE)


def IllegalReturnPSTATE(spsr: int, pstate: int) -> int:
    """PSTATE after an illegal return: EL, SP and nRW (M[4:0]) unchanged, PSTATE.IL set, the
    other fields from SPSR (PSTATE.TCO, bit 25 of SPSR, is the machine's to restore)."""
    return ((spsr & ~SPSR_M_MASK & ~(1 << 25) & 0xFFFFFFFF) | (pstate & SPSR_M_MASK)
            | PSTATE_IL)
