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

    def random_tag(self) -> int:
        """A random 4-bit tag (IRG when GCR_EL1.RRND = 1); seeded, so runs repeat."""
