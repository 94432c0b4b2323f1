"""Exception syndromes (ESR_ELx), vector offsets and SPSR packing, as pure functions.

ESR_ELx layout: EC 31:26, IL 25, ISS 24:0. The ISS encodings follow the Arm ARM register
description of ESR_ELx (D19/D23 "ISS encoding for an exception from ...").
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from ..isa import DC_OPS, SYSREG_BY_NAME
from . import faults

# --- exception classes -----------------------------------------------------------------------
EC_UNKNOWN = 0x00
EC_ILLEGAL_STATE = 0x0E
EC_SVC64 = 0x15
EC_HVC64 = 0x16
EC_SMC64 = 0x17
EC_SYSREG = 0x18
EC_IABT_LOWER = 0x20
EC_IABT_SAME = 0x21
EC_PC_ALIGN = 0x22
EC_DABT_LOWER = 0x24
EC_DABT_SAME = 0x25
EC_SP_ALIGN = 0x26
EC_SERROR = 0x2F
EC_BRK64 = 0x3C

# --- data/instruction fault status codes (DFSC/IFSC) ---------------------------------------
FSC_ADDRESS_SIZE = 0b000000      # + level
FSC_TRANSLATION = 0b000100       # + level
FSC_ACCESS_FLAG = 0b001000       # + level
FSC_PERMISSION = 0b001100        # + level
FSC_SYNC_EXTERNAL = 0b010000
FSC_TAG_CHECK = 0b010001
FSC_ALIGNMENT = 0b100001

IL_BIT = 1 << 25

# --- data abort ISS fields --------------------------------------------------------------------
ISS_ISV = 1 << 24
ISS_SAS_SHIFT = 22
ISS_SSE = 1 << 21
ISS_SRT_SHIFT = 16
ISS_SF = 1 << 15
ISS_AR = 1 << 14
ISS_VNCR = 1 << 13
ISS_FNV = 1 << 10
ISS_EA = 1 << 9
ISS_CM = 1 << 8
ISS_S1PTW = 1 << 7
ISS_WNR = 1 << 6

# --- system registers and instructions (op0, op1, CRn, CRm, op2), for EC 0x18 ISS ------------
def sysreg_encoding(name: str) -> Tuple[int, int, int, int, int]:
    """(op0, op1, CRn, CRm, op2) of an MTE system register ('GCR_EL1', 'TCO', ...) or DC
    operation ('DC GVA', ...), from the isa table. DC operations are SYS instructions:
    op0 = 1, CRn = 7."""
    if name.startswith("DC "):
        op = name[3:]
        for dc_name, op1, crm, op2, _feature in DC_OPS:
            if dc_name == op:
                return (1, op1, 7, crm, op2)
        raise KeyError(name)
    return SYSREG_BY_NAME[name].key


def esr(ec: int, iss: int = 0, il: int = 1) -> int:
    """ESR_ELx = EC:IL:ISS."""
    return ((ec & 0x3F) << 26) | ((il & 1) << 25) | (iss & 0x1FFFFFF)


def esr_fields(value: int) -> Tuple[int, int, int]:
    """(EC, IL, ISS) of an ESR value."""
    return (value >> 26) & 0x3F, (value >> 25) & 1, value & 0x1FFFFFF


# --- aborts ----------------------------------------------------------------------------------
ESR_ISS2_TAGACCESS = 1 << 41        # ISS2.TagAccess (FEAT_MTE_PERM), ESR_ELx bit 41


def data_abort_iss(dfsc: int, write: bool, isv: bool = False, sas: int = 0, sse: bool = False,
                   srt: int = 0, sf: bool = False, ar: bool = False, fnv: bool = False,
                   ea: bool = False, cm: bool = False, s1ptw: bool = False) -> int:
    """ISS of a Data Abort. SAS/SSE/SRT/SF/AR are meaningful only with ISV = 1; WnR is 1 for a
    write (and for cache maintenance, CM = 1, it reads as 1)."""
    iss = dfsc & 0x3F
    if write or cm:
        iss |= ISS_WNR
    if s1ptw:
        iss |= ISS_S1PTW
    if cm:
        iss |= ISS_CM
    if ea:
        iss |= ISS_EA
    if fnv:
        iss |= ISS_FNV
    if isv:
        iss |= ISS_ISV | ((sas & 3) << ISS_SAS_SHIFT) | ((srt & 31) << ISS_SRT_SHIFT)
        if sse:
            iss |= ISS_SSE
        if sf:
            iss |= ISS_SF
        if ar:
            iss |= ISS_AR
    return iss


def data_abort_esr(dfsc: int, write: bool, same_el: bool, **iss_fields) -> int:
    """ESR for a Data Abort: EC 0x25 when taken to the EL it came from, 0x24 from a lower EL."""
    return esr(EC_DABT_SAME if same_el else EC_DABT_LOWER,
               data_abort_iss(dfsc, write, **iss_fields))


def instruction_abort_esr(ifsc: int, same_el: bool, fnv: bool = False, ea: bool = False,
                          s1ptw: bool = False) -> int:
    """ESR for an Instruction Abort: EC 0x21 same EL, 0x20 lower EL."""
    iss = (ifsc & 0x3F) | (ISS_FNV if fnv else 0) | (ISS_EA if ea else 0) \
        | (ISS_S1PTW if s1ptw else 0)
    return esr(EC_IABT_SAME if same_el else EC_IABT_LOWER, iss)


def alignment_fault_esr(write: bool, same_el: bool) -> int:
    """Data Abort with DFSC 0b100001 (alignment), ISV = 0."""
    return data_abort_esr(FSC_ALIGNMENT, write, same_el)


def tag_check_fault_esr(write: bool, same_el: bool) -> int:
    """Synchronous Tag Check Fault: Data Abort, DFSC 0b010001, ISV = 0, WnR for writes."""
    return data_abort_esr(FSC_TAG_CHECK, write, same_el)


def translation_fault_dfsc(kind: str, level: int) -> int:
    """DFSC for 'translation', 'access_flag', 'permission' or 'address_size' at ``level`` 0..3."""
    base = {"address_size": FSC_ADDRESS_SIZE, "translation": FSC_TRANSLATION,
            "access_flag": FSC_ACCESS_FLAG, "permission": FSC_PERMISSION}[kind]
    return base | (level & 3)


# --- exception-generating instructions and the rest ------------------------------------------
def svc_esr(imm16: int) -> int:
    """SVC #imm16: EC 0x15, ISS = imm16."""
    return esr(EC_SVC64, imm16 & 0xFFFF)


def hvc_esr(imm16: int) -> int:
    """HVC #imm16: EC 0x16, ISS = imm16."""
    return esr(EC_HVC64, imm16 & 0xFFFF)


def smc_esr(imm16: int) -> int:
    """SMC #imm16: EC 0x17, ISS = imm16."""
    return esr(EC_SMC64, imm16 & 0xFFFF)


def brk_esr(imm16: int) -> int:
    """BRK #imm16: EC 0x3C, ISS = imm16 (the comment field)."""
    return esr(EC_BRK64, imm16 & 0xFFFF)


def undefined_esr() -> int:
    """UNDEFINED instruction: EC 0x00, IL = 1, ISS 0 (0x02000000). HLT when Halting debug is
    not allowed is UNDEFINED, so it uses this syndrome too."""
    return esr(EC_UNKNOWN, 0)


def sp_alignment_esr() -> int:
    """SP alignment fault: EC 0x26, ISS 0."""
    return esr(EC_SP_ALIGN, 0)


def pc_alignment_esr() -> int:
    """PC alignment fault: EC 0x22, ISS 0."""
    return esr(EC_PC_ALIGN, 0)


def sysreg_iss(op0: int, op1: int, crn: int, crm: int, op2: int, rt: int, read: bool) -> int:
    """ISS for EC 0x18 (trapped MSR, MRS or System instruction): Op0 21:20, Op2 19:17,
    Op1 16:14, CRn 13:10, Rt 9:5, CRm 4:1, Direction 0 (1 = read, MRS; 0 = write, MSR/SYS)."""
    return (((op0 & 3) << 20) | ((op2 & 7) << 17) | ((op1 & 7) << 14) | ((crn & 15) << 10)
            | ((rt & 31) << 5) | ((crm & 15) << 1) | (1 if read else 0))


def sysreg_iss_by_name(name: str, rt: int, read: bool) -> int:
    """sysreg_iss() for an MTE register or DC operation, by name (see sysreg_encoding)."""
    op0, op1, crn, crm, op2 = sysreg_encoding(name)
    return sysreg_iss(op0, op1, crn, crm, op2, rt, read)


def sysreg_trap_esr(iss: int) -> int:
    """ESR for a trapped MSR/MRS/System instruction: EC 0x18."""
    return esr(EC_SYSREG, iss)


# --- from a semantics fault to (ESR, FAR) -----------------------------------------------------
def syndrome_for(fault: faults.ArchFault, from_el: int, target_el: int) -> Tuple[int, Optional[int]]:
    """(ESR, FAR) for a fault raised by the semantics, taken from ``from_el`` to
    ``target_el``. FAR is None where the exception does not set it."""
    same = from_el == target_el
    if isinstance(fault, faults.TagCheckFault):
        return tag_check_fault_esr(fault.write, same), fault.va
    if isinstance(fault, faults.AlignmentFault):
        return alignment_fault_esr(fault.write, same), fault.va
    if isinstance(fault, faults.TranslationFault):
        if fault.stage2:
            # stage-2 faults are taken to EL2 from EL0/EL1: always "lower EL"
            same = False
        return data_abort_esr(fault.dfsc, fault.write, same), fault.va
    if isinstance(fault, faults.SysRegTrap):
        return sysreg_trap_esr(fault.iss), None
    if isinstance(fault, faults.SPAlignmentFault):
        return sp_alignment_esr(), None
    if isinstance(fault, faults.Undefined):
        return undefined_esr(), None
    raise TypeError("no syndrome for %r" % (fault,))


# --- vectors -----------------------------------------------------------------------------------
VECTOR_KIND_OFFSET = {"sync": 0x000, "irq": 0x080, "fiq": 0x100, "serror": 0x180}


def vector_offset(kind: str, target_el: int, from_el: int, sp_sel: int,
                  lower_aarch32: bool = False) -> int:
    """Offset from VBAR_ELx: 0x000 current EL with SP_EL0, 0x200 current EL with SP_ELx,
    0x400 lower EL using AArch64, 0x600 lower EL using AArch32; plus 0x000 synchronous,
    0x080 IRQ, 0x100 FIQ, 0x180 SError. ``sp_sel`` is PSTATE.SP at the time of the exception."""
    if from_el == target_el:
        base = 0x200 if sp_sel else 0x000
    else:
        base = 0x600 if lower_aarch32 else 0x400
    return base + VECTOR_KIND_OFFSET[kind]


# --- SPSR --------------------------------------------------------------------------------------
SPSR_N = 1 << 31
SPSR_Z = 1 << 30
SPSR_C = 1 << 29
SPSR_V = 1 << 28
SPSR_TCO = 1 << 25
SPSR_DIT = 1 << 24
SPSR_UAO = 1 << 23
SPSR_PAN = 1 << 22
SPSR_SS = 1 << 21
SPSR_IL = 1 << 20
SPSR_SSBS = 1 << 12
SPSR_D = 1 << 9
SPSR_A = 1 << 8
SPSR_I = 1 << 7
SPSR_F = 1 << 6


def pack_spsr(nzcv: int, el: int, sp_sel: int, daif: int = 0xF, tco: int = 0, pan: int = 0,
              uao: int = 0, dit: int = 0, ssbs: int = 0, ss: int = 0, il: int = 0,
              btype: int = 0) -> int:
    """SPSR_ELx for an exception taken from AArch64 (GetPSRFromPSTATE).

    ``nzcv`` is the NZCV register format (N in bit 31 ... V in bit 28); ``daif`` is D:A:I:F as a
    4-bit value (D in bit 3); M[3:0] = EL:SP (M[4] = 0 for AArch64); TCO is bit 25.
    """
    value = nzcv & 0xF0000000
    value |= ((daif & 0xF) << 6)
    value |= ((el & 3) << 2) | (sp_sel & 1)
    value |= (btype & 3) << 10
    if tco:
        value |= SPSR_TCO
    if dit:
        value |= SPSR_DIT
    if uao:
        value |= SPSR_UAO
    if pan:
        value |= SPSR_PAN
    if ss:
        value |= SPSR_SS
    if il:
        value |= SPSR_IL
    if ssbs:
        value |= SPSR_SSBS
    return value


def unpack_spsr(value: int) -> Dict[str, int]:
    """The PSTATE fields ERET restores from an AArch64 SPSR (M[4] = 0)."""
    return {
        "nzcv": value & 0xF0000000,
        "el": (value >> 2) & 3,
        "sp_sel": value & 1,
        "daif": (value >> 6) & 0xF,
        "tco": (value >> 25) & 1,
        "dit": (value >> 24) & 1,
        "uao": (value >> 23) & 1,
        "pan": (value >> 22) & 1,
        "ss": (value >> 21) & 1,
        "il": (value >> 20) & 1,
        "ssbs": (value >> 12) & 1,
        "btype": (value >> 10) & 3,
    }
