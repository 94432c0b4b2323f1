"""Alignment checking of data accesses (Arm ARM, AArch64.CheckAlignment with FEAT_LSE2).

The engine checks alignment only for exclusives and atomics, and always as if FEAT_LSE2 were
absent; it checks neither load-acquire/store-release nor SCTLR_ELx.A. The machine asks these
functions instead, so that the rule lives in one place:

- SCTLR_ELx.A = 1 (alignment enforced): every unaligned access faults;
- otherwise, with FEAT_LSE2, an unaligned atomic or exclusive access faults only if its bytes
  are not all in one aligned 16-byte quantity; an unaligned ordered access (LDAR, STLR, LDAPR,
  LDAPUR, STLUR, ...) likewise, and not at all when SCTLR_ELx.nAA = 1;
- ordinary accesses never fault.

``alignment`` is the size the access is checked against: the register size, for a pair or a
vector access the element size, and for a 128-bit exclusive or CASP pair the whole 16 bytes.
"""
from __future__ import annotations

NORMAL, ORDERED, ATOMIC = "normal", "ordered", "atomic"
SCTLR_A = 1 << 1
SCTLR_NAA = 1 << 6


def IsAligned(address: int, size: int) -> bool:
    return address % size == 0


def AllInAlignedQuantity(address: int, size: int, quantity: int) -> bool:
    """All ``size`` bytes from ``address`` lie in one naturally aligned ``quantity``."""
    return (address % quantity) + size <= quantity


def CheckAlignment(address: int, alignment: int, acctype: str, sctlr: int,
                   lse2: bool = True) -> bool:
    """True if the access takes an Alignment fault (AArch64.CheckAlignment). ``acctype`` is
    NORMAL, ORDERED (acquire/release) or ATOMIC (read-modify-write and exclusive)."""
    if IsAligned(address, alignment):
        return False
    if sctlr & SCTLR_A:
        return True
    if acctype == NORMAL:
        return False
    if not lse2:
        return True
    if AllInAlignedQuantity(address, alignment, 16):
        return False
    return acctype == ATOMIC or not sctlr & SCTLR_NAA
