"""Where an instruction is about to read and write memory, predicted from its encoding and the
registers as they are before it runs (for watchpoints that stop before the access).

Two kinds of instruction move data: those the engine executes (loads, stores, atomics, SIMD
structure loads/stores: ``checks.analyse`` and ``checks.effective_address``; DC ZVA, which
zeroes its DCZID_EL0 block), and the MTE instructions the machine executes itself, whose data
writes never pass through the engine's memory path (STGP, STZG, STZ2G, STZGM, DC GZVA). Each
prediction is a list of ``Access(va, length, reads, writes)`` with the address as the
instruction forms it (tag bits included), or None where the encoding is not understood.
"""
from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional

from unicorn import arm64_const as A

from . import checks
from .registers import X_REGS

DC_ZVA_MASK, DC_ZVA = 0xFFFFFFE0, 0xD50B7420
_SP = A.UC_ARM64_REG_SP


class Access(NamedTuple):
    va: int
    length: int
    reads: bool
    writes: bool


def engine_footprint(word: int, read_reg: Callable[[int], int],
                     dczid_bytes: int) -> Optional[List[Access]]:
    """An instruction the engine runs; ``read_reg`` takes a Unicorn register id."""
    if word & DC_ZVA_MASK == DC_ZVA:
        t = word & 31
        value = read_reg(X_REGS[t]) if t != 31 else 0
        return [Access(value & ~(dczid_bytes - 1), dczid_bytes, False, True)]
    info = checks.analyse(word)
    if info is None or info.base is None or not info.size:
        return None
    va = checks.effective_address(info, read_reg)
    return [Access(va, info.size, info.reads or info.rmw, info.writes)]


def mte_footprint(insn, x_or_sp: Callable[[int], int], dczid_bytes: int) -> List[Access]:
    """The data an MTE instruction (an ``isa.Insn``) writes; ``x_or_sp(n)`` reads X<n>, or SP
    for n = 31. Tag-only instructions write no data."""
    name = insn.name
    if name in ("STGP", "STZG", "STZ2G"):
        base = x_or_sp(insn.n)
        va = base if insn.form == "post" else base + insn.offset
        return [Access(va, 32 if name == "STZ2G" else 16, False, True)]
    if name == "STZGM":
        return [Access(x_or_sp(insn.n) & ~(dczid_bytes - 1), dczid_bytes, False, True)]
    if name == "DC GZVA":
        value = x_or_sp(insn.t) if insn.t != 31 else 0
        return [Access(value & ~(dczid_bytes - 1), dczid_bytes, False, True)]
    return []
