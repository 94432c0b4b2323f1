"""Exception records and the syndrome values the machine writes on exception entry.

Unicorn never vectors an exception into the guest; the machine does the entry itself
(AArch64.TakeException): ESR_EL1, FAR_EL1 for aborts, ELR_EL1 = the preferred return address,
SPSR_EL1 = PSTATE (PSTATE.TCO in bit 25), then PSTATE.{EL=1, SP=1, DAIF=1111, TCO=1} and
PC = VBAR_EL1 + the vector offset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# Exception classes (ESR_ELx.EC)
EC_UNKNOWN = 0x00
EC_SVC64 = 0x15
EC_SYSREG = 0x18
EC_IABT_LOWER, EC_IABT_CUR = 0x20, 0x21
EC_PC_ALIGN = 0x22
EC_DABT_LOWER, EC_DABT_CUR = 0x24, 0x25
EC_SP_ALIGN = 0x26
EC_BRK = 0x3C

DFSC_TAG_CHECK = 0x11
DFSC_ALIGNMENT = 0x21
DFSC_SYNC_EXTERNAL = 0x10

IL = 1 << 25
ISS_WNR = 1 << 6

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


def data_abort_esr(same_el: bool, dfsc: int, write: bool) -> int:
    ec = EC_DABT_CUR if same_el else EC_DABT_LOWER
    return (ec << 26) | IL | (ISS_WNR if write else 0) | dfsc


def insn_abort_esr(same_el: bool, ifsc: int) -> int:
    ec = EC_IABT_CUR if same_el else EC_IABT_LOWER
    return (ec << 26) | IL | ifsc


def vector_offset(from_el: int, target_el: int, sp_sel: int) -> int:
    if from_el < target_el:
        return VEC_LOWER_A64
    return VEC_CUR_SPX if sp_sel else VEC_CUR_SP0
