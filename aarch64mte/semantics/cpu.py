"""The processor state the MTE semantics read and change.

The functions in ``execute.py`` touch the processor only through this protocol, so they run the
same against the emulator (``machine``) and against the small in-memory fakes the unit tests use.
Every method mirrors an Arm ARM pseudocode accessor; the docstrings name it.
"""
from __future__ import annotations

from typing import Protocol


class Cpu(Protocol):
    # --- registers -------------------------------------------------------------------------
    def x(self, n: int) -> int:
        """X[n]: register n, with 31 reading as zero (XZR)."""

    def set_x(self, n: int, value: int) -> None:
        """X[n] = value; a write to 31 (XZR) is discarded."""

    def sp(self) -> int:
        """SP[]: the stack pointer of the current EL and SPSel."""

    def set_sp(self, value: int) -> None:
        """SP[] = value."""

    def x_or_sp(self, n: int) -> int:
        """X[n] for n < 31, else SP[] (operands the encoding names <Xn|SP>)."""

    def set_x_or_sp(self, n: int, value: int) -> None:
        """Write X[n] for n < 31, else SP[]."""

    def nzcv(self) -> int:
        """PSTATE.NZCV in the NZCV register format: N bit 31, Z bit 30, C bit 29, V bit 28."""

    def set_nzcv(self, value: int) -> None:
        """PSTATE.NZCV = value<31:28> (SUBPS/CMPP); other bits are ignored."""

    @property
    def el(self) -> int:
        """PSTATE.EL."""

    @property
    def tco(self) -> int:
        """PSTATE.TCO."""

    def set_tco(self, value: int) -> None:
        """PSTATE.TCO = value (MSR TCO): changes which later accesses are checked."""

    def sysreg(self, name: str) -> int:
        """Current value of a system register by its upper-case name ('GCR_EL1', 'SCTLR_EL1')."""

    def set_sysreg(self, name: str, value: int) -> None:
        """Write a system register held by the machine (MTE registers, after RES0 masking)."""

    def el2_enabled(self) -> bool:
        """EL2Enabled(): EL2 implemented and enabled in the current Security state."""

    # --- tags and memory ------------------------------------------------------------------
    def tag_access_enabled(self, el: int) -> bool:
        """AllocationTagAccessIsEnabled(el) for the current configuration."""

    def mem_tag_read(self, va: int) -> int:
        """AArch64.MemTag[va] read: translates (may raise a fault), returns the allocation tag of
        the granule holding va, or 0 when tag access is disabled or the memory is Untagged."""

    def mem_tag_write(self, va: int, tag: int) -> None:
        """AArch64.MemTag[va] = tag: translates (may raise a fault as a write); stores the tag only
        when tag access is enabled and the memory is Tagged."""

    def mem_write_unchecked(self, va: int, data: bytes) -> None:
        """Mem[va, len(data)] = data as a tag-unchecked store (STGP, STZG, DC GZVA):
        translates as a write and may raise a fault; never tag-checked."""

    # Optional bulk forms. The semantics use them when the CPU has them and otherwise fall
    # back to one mem_tag_read / mem_tag_write per granule, with the same result.
    def mem_tags_read(self, va: int, count: int) -> "list[int]":
        """[AArch64.MemTag[va + 16*i] for i in range(count)], va 16-byte aligned and the
        range inside one translation page (LDGM)."""

    def mem_tags_write(self, va: int, tags: "list[int]") -> None:
        """AArch64.MemTag[va + 16*i] = tags[i] for each i, same conditions (STGM, STZGM,
        DC GVA/GZVA)."""

    def random_tag(self) -> int:
        """A random 4-bit tag (IRG when GCR_EL1.RRND = 1); seeded, so runs repeat."""

    def probe_write(self, va: int) -> None:
        """Optional. Translate va as a write (raising its fault) without any effect; used so a
        multi-granule tag store faults before it changes anything."""
