"""Exceptions the semantics raise; the machine turns each into the architectural exception.

They carry what the syndrome needs, so that one place (the machine's exception entry) builds
ESR, FAR and the target EL.
"""
from __future__ import annotations

from dataclasses import dataclass


class ArchFault(Exception):
    """Base class: an instruction could not complete and must raise an exception."""


@dataclass
class Undefined(ArchFault):
    """The encoding is UNDEFINED here (EC 0x00)."""

    reason: str = ""


@dataclass
class AlignmentFault(ArchFault):
    """Data abort, DFSC 0b100001."""

    va: int
    write: bool


@dataclass
class TranslationFault(ArchFault):
    """Data abort from translation: DFSC names the kind and level (translation 0b0001LL,
    permission 0b0011LL, access flag 0b0010LL, address size 0b0000LL)."""

    va: int
    write: bool
    dfsc: int
    stage2: bool = False
    ipa: int = 0
    s1ptw: bool = False       # stage 2, on a stage-1 table walk's read
    level: int = 0
    tagaccess: bool = False   # FEAT_MTE_PERM NoTagAccess: ESR_EL2.ISS2.TagAccess


@dataclass
class TagCheckFault(ArchFault):
    """Synchronous tag-check fault: data abort, DFSC 0b010001, FAR = the tagged address."""

    va: int
    write: bool


@dataclass
class SysRegTrap(ArchFault):
    """A system-register access trapped to a higher EL (EC 0x18), with its ISS."""

    target_el: int
    iss: int


@dataclass
class SPAlignmentFault(ArchFault):
    """SP alignment fault (EC 0x26): an SP-based load/store with SP not 16-byte aligned while
    SCTLR_ELx.SA (or SA0 at EL0) is 1 (CheckSPAlignment())."""

    sp: int


@dataclass
class IllegalState(ArchFault):
    """Illegal Execution state (EC 0x0E): PSTATE.IL was set by an illegal exception return."""


@dataclass
class PCAlignmentFault(ArchFault):
    """PC alignment fault (EC 0x22): a branch or return to an address with bits [1:0] set."""

    pc: int
