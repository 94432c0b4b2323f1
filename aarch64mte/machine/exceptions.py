"""Exception records (what the machine logs for each exception and tag-check failure) and the
vector offsets. Syndrome values come from ``semantics.syndrome``; the entry itself is in
``exception_entry.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# Vector offsets from VBAR_ELx (synchronous; IRQ/FIQ/SError add 0x80/0x100/0x180)
VEC_CUR_SP0, VEC_CUR_SPX, VEC_LOWER_A64, VEC_LOWER_A32 = 0x000, 0x200, 0x400, 0x600


@dataclass
class TagFault:
    va: int                # the tagged address that failed the check
    logical_tag: int
    allocation_tag: int
    write: bool
    mode: str              # 'sync' | 'async'
    pc: int = 0
    el: int = 1
    insns: Optional[int] = None   # instructions run, the faulting one counted (sync faults)


@dataclass
class ExceptionRecord:
    kind: str              # 'svc', 'brk', 'undefined', 'data_abort', 'instruction_abort', ...
    ec: int
    esr: int
    far: Optional[int]
    el: int                # target EL
    from_el: int
    pc: int                # address of the instruction that took it
    tag_fault: Optional[TagFault] = None
    ipa: Optional[int] = None   # the faulting IPA of a stage-2 abort (HPFAR_EL2)


def vector_offset(from_el: int, target_el: int, sp_sel: int) -> int:
    if from_el < target_el:
        return VEC_LOWER_A64
    return VEC_CUR_SPX if sp_sel else VEC_CUR_SP0
