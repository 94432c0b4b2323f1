"""Load-exclusive and store-exclusive where the engine's rule is not FEAT_LSE2's.

The engine takes an Alignment fault on every unaligned exclusive load; FEAT_LSE2 performs one
whose bytes stay in one aligned 16-byte quantity. And the engine's store-exclusive compares
its monitor before it checks alignment, so an unaligned one never faults, where
AArch64.ExclusiveMonitorsPass checks alignment first.

So an unaligned exclusive load that may proceed is performed here, and it arms this module's
``Monitor`` (the engine's own monitor cannot be set from outside). Every store-exclusive
passes a code hook (``slowpath``); it comes here when it is unaligned or this monitor is
armed, and otherwise runs in the engine against the engine's monitor. Exclusive pairs always
come here, loads and stores: the engine's STXP checks its tags in a helper whose fault stops
the engine only after the next instruction. CLREX clears this monitor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..semantics import alignment, faults
from .atomics import access, base_address, read_x, write_x


@dataclass
class Monitor:
    """The local exclusive monitor, while an exclusive load performed here holds it."""
    va: int = 0
    size: int = 0
    armed: bool = False

    def clear(self) -> None:
        self.armed = False


def decode(word: int):
    """(store, size of one register, pair, Rs, Rt2, Rn, Rt) of an exclusive load or store, or
    None."""
    rs, rt2, rn, rt = (word >> 16) & 31, (word >> 10) & 31, (word >> 5) & 31, word & 31
    if (word & 0x3FFF7C00) == 0x085F7C00:                  # LDXR, LDAXR (B, H, W, X)
        return False, 1 << (word >> 30), False, 31, 31, rn, rt
    if (word & 0xBFFF0000) == 0x887F0000:                  # LDXP, LDAXP
        return False, 4 << ((word >> 30) & 1), True, 31, rt2, rn, rt
    if (word & 0x3FE07C00) == 0x08007C00:                  # STXR, STLXR
        return True, 1 << (word >> 30), False, rs, 31, rn, rt
    if (word & 0xBFE00000) == 0x88200000:                  # STXP, STLXP
        return True, 4 << ((word >> 30) & 1), True, rs, rt2, rn, rt
    return None


def needs_python(m, word: int, monitor: Monitor) -> bool:
    """An exclusive the engine would get wrong: any pair (the engine's STXP takes a failed tag
    check only after the next instruction has run), or a store that is unaligned or faces this
    monitor."""
    d = decode(word)
    if d is None:
        return False
    store, size, pair, _, _, rn, _ = d
    if pair:
        return True
    return store and (monitor.armed or base_address(m, rn) % size != 0)


def perform(m, word: int, pc: int, monitor: Monitor) -> Optional[faults.ArchFault]:
    """Run the exclusive at ``pc``: the fault to take, or None (done; PC = pc + 4)."""
    d = decode(word)
    if d is None:
        return faults.Undefined("not an exclusive")
    store, size, pair, rs, rt2, rn, rt = d
    total = 2 * size if pair else size
    va = base_address(m, rn)
    checked = rn != 31
    mask = (1 << (8 * size)) - 1
    if not store:
        pa = access(m, va, total, pc, checked=checked)
        if isinstance(pa, faults.ArchFault):
            return pa
        raw = int.from_bytes(m.ram.read(pa, total), "little")
        write_x(m, rt, raw & mask)
        if pair:
            write_x(m, rt2, raw >> (8 * size))
        monitor.va, monitor.size, monitor.armed = va, total, True
    else:
        if alignment.CheckAlignment(va, total, alignment.ATOMIC, m.mmu.regime(m.el).sctlr):
            return faults.AlignmentFault(va, True)
        passed = monitor.armed and monitor.va == va and monitor.size == total
        if passed:
            pa = access(m, va, total, pc, write=True, checked=checked)
            if isinstance(pa, faults.ArchFault):
                return pa
            value = read_x(m, rt) & mask
            if pair:
                value |= (read_x(m, rt2) & mask) << (8 * size)
            m.ram.write(pa, value.to_bytes(total, "little"))
            m.debugging.note_data_write(pa, total)
        monitor.clear()
        write_x(m, rs, 0 if passed else 1)
    m.eng.set_pc(pc + 4)
    return None

