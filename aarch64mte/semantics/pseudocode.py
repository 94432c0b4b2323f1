"""Arm ARM shared pseudocode for the Memory Tagging Extension, as pure functions.

Each function carries the name of the pseudocode function it transcribes (``AArch64.`` prefix
dropped) and takes plain ints: register values where the pseudocode reads a register, so a
reviewer can hold it beside the specification. Nothing here keeps state or touches a CPU;
where the pseudocode updates a register (the IRG LFSR in RGSR_EL1) the new value is returned.

References are to the Arm Architecture Reference Manual for A-profile (DDI 0487), shared
pseudocode ``aarch64/functions/memory`` / ``.../mte`` and the register descriptions in D19/D23.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

MASK64 = (1 << 64) - 1
LOG2_TAG_GRANULE = 4
TAG_GRANULE = 1 << LOG2_TAG_GRANULE

# --- register fields (bit positions from the register descriptions) --------------------------
# SCTLR_EL1 / SCTLR_EL2
SCTLR_SA = 1 << 3
SCTLR_SA0 = 1 << 4
SCTLR_DZE = 1 << 14
SCTLR_UCI = 1 << 26
SCTLR_ITFSB = 1 << 37
SCTLR_TCF0_SHIFT = 38
SCTLR_TCF_SHIFT = 40
SCTLR_ATA0 = 1 << 42
SCTLR_ATA = 1 << 43
# HCR_EL2
HCR_TGE = 1 << 27
HCR_TDZ = 1 << 28
HCR_E2H = 1 << 34
HCR_ATA = 1 << 56
HCR_TID5 = 1 << 58
# SCR_EL3
SCR_ATA = 1 << 26
# TCR_EL1 (and TCR_EL2 when HCR_EL2.E2H = 1)
TCR_TBI0 = 1 << 37
TCR_TBI1 = 1 << 38
TCR_TBID0 = 1 << 51
TCR_TBID1 = 1 << 52
TCR_TCMA0 = 1 << 57
TCR_TCMA1 = 1 << 58
# TCR_EL2 when HCR_EL2.E2H = 0 (and TCR_EL3)
TCR_EL2_TBI = 1 << 20
TCR_EL2_TBID = 1 << 29
TCR_EL2_TCMA = 1 << 30
# GCR_EL1: Exclude 15:0, RRND 16
GCR_EXCLUDE_MASK = 0xFFFF
GCR_RRND_BIT = 1 << 16
GCR_MASK = 0x1FFFF
# RGSR_EL1: TAG 3:0, SEED 23:8
RGSR_TAG_MASK = 0xF
RGSR_SEED_SHIFT = 8
RGSR_MASK = 0xFFFF0F
# TFSR_ELx / TFSRE0_EL1: TF0 0, TF1 1; everything else RES0
TFSR_TF0 = 1 << 0
TFSR_TF1 = 1 << 1
TFSR_MASK = TFSR_TF0 | TFSR_TF1
# PSTATE.TCO as seen by MRS/MSR TCO and in SPSR_ELx
PSTATE_TCO_BIT = 25
# GMID_EL1.BS 3:0, DCZID_EL0.BS 3:0, DCZID_EL0.DZP 4
BS_MASK = 0xF
DCZID_DZP = 1 << 4

# --- SCTLR_ELx.TCF / TCF0 values --------------------------------------------------------------
TCF_NONE = 0
TCF_SYNC = 1
TCF_ASYNC = 2
TCF_ASYMM = 3

# --- outcomes of AArch64.TagCheckFault --------------------------------------------------------
TAG_FAULT_IGNORE = "none"
TAG_FAULT_SYNC = "sync"
TAG_FAULT_ASYNC = "async"


# ============================================================================================
# Bit helpers from the pseudocode library
# ============================================================================================
def SignExtend(value: int, bits: int) -> int:
    """SignExtend(x, 64) of a ``bits``-wide field, as a 64-bit unsigned value."""
    value &= (1 << bits) - 1
    if value >> (bits - 1):
        value |= MASK64 ^ ((1 << bits) - 1)
    return value


def Align(address: int, size: int) -> int:
    """Align(x, size): round down to a multiple of ``size`` (a power of two)."""
    return address & ~(size - 1) & MASK64


def AddWithCarry(x: int, y: int, carry_in: int) -> Tuple[int, int]:
    """AddWithCarry(x, y, carry_in) on 64-bit values: returns (result, nzcv) with
    nzcv a 4-bit value N:Z:C:V (N in bit 3)."""
    x &= MASK64
    y &= MASK64
    unsigned_sum = x + y + carry_in
    result = unsigned_sum & MASK64
    sx = x - (1 << 64) if x >> 63 else x
    sy = y - (1 << 64) if y >> 63 else y
    signed_sum = sx + sy + carry_in
    sresult = result - (1 << 64) if result >> 63 else result
    n = result >> 63
    z = 1 if result == 0 else 0
    c = 1 if result != unsigned_sum else 0
    v = 1 if sresult != signed_sum else 0
    return result, (n << 3) | (z << 2) | (c << 1) | v


# ============================================================================================
# Tags in addresses
# ============================================================================================
def AllocationTagFromAddress(address: int) -> int:
    """AArch64.AllocationTagFromAddress(): the Logical Address Tag, address<59:56>."""
    return (address >> 56) & 0xF


def AddressWithAllocationTag(address: int, allocation_tag: int) -> int:
    """AArch64.AddressWithAllocationTag(): address with bits 59:56 replaced by the tag.

    (Pre-2021 versions also zeroed the tag when tag access was disabled; every caller in the
    current pseudocode passes '0000' itself in that case, as the instruction semantics here do.)
    """
    return (address & ~(0xF << 56) & MASK64) | ((allocation_tag & 0xF) << 56)


# ============================================================================================
# Tag generation: ChooseNonExcludedTag, the RGSR_EL1 LFSR, IRG's choice
# ============================================================================================
def ChooseNonExcludedTag(tag: int, offset: int, exclude: int) -> int:
    """AArch64.ChooseNonExcludedTag(tag, offset, exclude).

    All 16 tags excluded: '0000'. Offset 0: the first non-excluded tag at or after ``tag``.
    Otherwise step forward ``offset`` times, each step landing on a non-excluded tag.
    """
    tag &= 0xF
    offset &= 0xF
    exclude &= 0xFFFF
    if exclude == 0xFFFF:
        return 0
    if offset == 0:
        while (exclude >> tag) & 1:
            tag = (tag + 1) & 0xF
    while offset:
        offset -= 1
        tag = (tag + 1) & 0xF
        while (exclude >> tag) & 1:
            tag = (tag + 1) & 0xF
    return tag


def NextRandomTagBit(seed: int) -> Tuple[int, int]:
    """NextRandomTagBit(): one step of the 16-bit LFSR held in RGSR_EL1.SEED.

    top = lfsr<5> EOR lfsr<3> EOR lfsr<2> EOR lfsr<0>; SEED = top:lfsr<15:1>; returns top.
    Pure form: takes SEED, returns (bit, new SEED).
    """
    seed &= 0xFFFF
    top = ((seed >> 5) ^ (seed >> 3) ^ (seed >> 2) ^ seed) & 1
    return top, (top << 15) | (seed >> 1)


def RandomTag(seed: int) -> Tuple[int, int]:
    """AArch64.RandomTag(): four NextRandomTagBit() results, the first in bit 0.

    Pure form: takes RGSR_EL1.SEED, returns (tag, new SEED).
    """
    tag = 0
    for i in range(4):
        bit, seed = NextRandomTagBit(seed)
        tag |= bit << i
    return tag, seed


def ChooseRandomNonExcludedTag(exclude: int, random4: int) -> int:
    """ChooseRandomNonExcludedTag(exclude): the IMPLEMENTATION DEFINED choice used when
    GCR_EL1.RRND = 1. This implementation draws a 4-bit ``random4`` (seeded, so runs repeat)
    and takes the first non-excluded tag at or after it; '0000' when all are excluded."""
    if exclude & 0xFFFF == 0xFFFF:
        return 0
    return ChooseNonExcludedTag(random4, 0, exclude)


def ChooseTagOrZero(exclude: int, gcr: int, rgsr: int, tag_access_enabled: bool,
                    random4: int = 0) -> Tuple[int, int]:
    """IRG's tag choice (the Operation of IRG; AArch64.ChooseTagOrZero() in later manuals).

    ``exclude`` is Xm<15:0> OR GCR_EL1.Exclude. Returns (rtag, new RGSR_EL1):
      * tag access disabled: '0000', RGSR unchanged;
      * GCR_EL1.RRND = 1: ChooseRandomNonExcludedTag(exclude) ('0000' if all excluded);
        RGSR_EL1 becomes UNKNOWN -- this implementation leaves it unchanged;
      * GCR_EL1.RRND = 0: start = RGSR_EL1.TAG, offset = RandomTag() (advancing SEED four
        steps), rtag = ChooseNonExcludedTag(start, offset, exclude), RGSR_EL1.TAG = rtag.
        The SEED advances even when every tag is excluded (rtag is then '0000').
    """
    rgsr &= RGSR_MASK
    if not tag_access_enabled:
        return 0, rgsr
    if gcr & GCR_RRND_BIT:
        return ChooseRandomNonExcludedTag(exclude, random4), rgsr
    start = rgsr & RGSR_TAG_MASK
    offset, seed = RandomTag(rgsr >> RGSR_SEED_SHIFT)
    rtag = ChooseNonExcludedTag(start, offset, exclude)
    return rtag, (seed << RGSR_SEED_SHIFT) | rtag


def RGSR(tag: int, seed: int) -> int:
    """An RGSR_EL1 value from its fields TAG (3:0) and SEED (23:8)."""
    return ((seed & 0xFFFF) << RGSR_SEED_SHIFT) | (tag & 0xF)


def RGSR_TAG(rgsr: int) -> int:
    """RGSR_EL1.TAG."""
    return rgsr & RGSR_TAG_MASK


def RGSR_SEED(rgsr: int) -> int:
    """RGSR_EL1.SEED."""
    return (rgsr >> RGSR_SEED_SHIFT) & 0xFFFF


def GCR_Exclude(gcr: int) -> int:
    """GCR_EL1.Exclude."""
    return gcr & GCR_EXCLUDE_MASK


def GCR_RRND(gcr: int) -> int:
    """GCR_EL1.RRND."""
    return (gcr >> 16) & 1


# ============================================================================================
# Regimes and enables
# ============================================================================================
def ELIsInHost(el: int, hcr_el2: int, el2_enabled: bool = True) -> bool:
    """ELIsInHost(el): EL2 with HCR_EL2.E2H = 1, or EL0 with {E2H, TGE} = {1, 1}
    (FEAT_VHE, EL2 using AArch64 and enabled)."""
    if not el2_enabled or not (hcr_el2 & HCR_E2H):
        return False
    if el == 2:
        return True
    return el == 0 and bool(hcr_el2 & HCR_TGE)


def DCZeroAccessTrap(el: int, hcr_el2: int, el2_enabled: bool, sctlr_el1: int,
                     sctlr_el2: int = 0) -> Optional[int]:
    """The EL a DC ZVA, DC GVA or DC GZVA at ``el`` traps to, or None. At EL0 SCTLR_EL1.DZE = 0
    traps to EL1 (to EL2 when HCR_EL2.TGE = 1), or in the EL2&0 host SCTLR_EL2.DZE = 0 to EL2;
    then HCR_EL2.TDZ traps EL0 and EL1 to EL2, its Effective value 0 only when {E2H, TGE} =
    {1, 1} (HCR_EL2.TDZ; the instructions' access checks). ``sctlr_el2`` is read only in the
    host."""
    if el > 1:
        return None
    hcr = hcr_el2 if el2_enabled else 0
    if el == 0:
        if ELIsInHost(0, hcr, el2_enabled):
            return None if sctlr_el2 & SCTLR_DZE else 2
        if not sctlr_el1 & SCTLR_DZE:
            return 2 if el2_enabled and hcr & HCR_TGE else 1
    if el2_enabled and hcr & HCR_TDZ:
        return 2
    return None


def TranslationRegime(el: int, hcr_el2: int = 0, el2_enabled: bool = False) -> str:
    """TranslationRegime(el): 'EL3', 'EL2', 'EL20' or 'EL10'."""
    if el == 3:
        return "EL3"
    if el == 2:
        return "EL20" if ELIsInHost(2, hcr_el2, el2_enabled) else "EL2"
    if el == 0 and ELIsInHost(0, hcr_el2, el2_enabled):
        return "EL20"
    return "EL10"


def AllocationTagAccessIsEnabled(el: int, sctlr_el1: int, hcr_el2: int = 0,
                                 el2_enabled: bool = False, sctlr_el2: int = 0,
                                 scr_el3: Optional[int] = None, sctlr_el3: int = 0) -> bool:
    """AArch64.AllocationTagAccessIsEnabled(el).

    * SCR_EL3.ATA = 0 disables it below EL3 (``scr_el3=None``: no EL3, treated as ATA = 1);
    * HCR_EL2.ATA = 0 disables it for EL0/EL1 when EL2 is enabled and {E2H,TGE} != {1,1};
    * then, by regime: EL1&0 -- SCTLR_EL1.ATA (EL1) / SCTLR_EL1.ATA0 (EL0); EL2&0 --
      SCTLR_EL2.ATA / ATA0; EL2 -- SCTLR_EL2.ATA; EL3 -- SCTLR_EL3.ATA.
    """
    if scr_el3 is not None and el != 3 and not (scr_el3 & SCR_ATA):
        return False
    if (el in (0, 1) and el2_enabled and not (hcr_el2 & HCR_ATA)
            and (hcr_el2 & (HCR_E2H | HCR_TGE)) != (HCR_E2H | HCR_TGE)):
        return False
    regime = TranslationRegime(el, hcr_el2, el2_enabled)
    if regime == "EL10":
        return bool(sctlr_el1 & (SCTLR_ATA0 if el == 0 else SCTLR_ATA))
    if regime == "EL20":
        return bool(sctlr_el2 & (SCTLR_ATA0 if el == 0 else SCTLR_ATA))
    if regime == "EL2":
        return bool(sctlr_el2 & SCTLR_ATA)
    return bool(sctlr_el3 & SCTLR_ATA)


def EffectiveTBI(address: int, is_instr: bool, el: int, tcr_el1: int, tcr_el2: int = 0,
                 hcr_el2: int = 0, el2_enabled: bool = False, have_pac: bool = True) -> int:
    """EffectiveTBI(address, IsInstr, el): 1 if the top byte of ``address`` is ignored.

    EL1&0 (and EL2&0): TCR.TBI1/TBI0 chosen by address<55>, with TBID1/TBID0 turning it off
    for instruction addresses (FEAT_PAuth). EL2 without E2H: TCR_EL2.TBI / TBID.
    """
    regime = TranslationRegime(el, hcr_el2, el2_enabled)
    if regime == "EL10" or regime == "EL20":
        tcr = tcr_el1 if regime == "EL10" else tcr_el2
        hi = (address >> 55) & 1
        tbi = bool(tcr & (TCR_TBI1 if hi else TCR_TBI0))
        tbid = bool(tcr & (TCR_TBID1 if hi else TCR_TBID0))
    else:
        tbi = bool(tcr_el2 & TCR_EL2_TBI)
        tbid = bool(tcr_el2 & TCR_EL2_TBID)
    return 1 if tbi and (not have_pac or not tbid or not is_instr) else 0


def EffectiveTCMA(address: int, el: int, tcr_el1: int, tcr_el2: int = 0, hcr_el2: int = 0,
                  el2_enabled: bool = False) -> int:
    """EffectiveTCMA(address, el): TCR.TCMA1/TCMA0 chosen by address<55> for EL1&0 and EL2&0,
    TCR_EL2.TCMA for EL2."""
    regime = TranslationRegime(el, hcr_el2, el2_enabled)
    if regime == "EL10" or regime == "EL20":
        tcr = tcr_el1 if regime == "EL10" else tcr_el2
        return 1 if tcr & (TCR_TCMA1 if (address >> 55) & 1 else TCR_TCMA0) else 0
    return 1 if tcr_el2 & TCR_EL2_TCMA else 0


def DecodeTagChecked(n: int, wback: bool, register_offset: bool = False,
                     prefetch: bool = False) -> bool:
    """The ``tagchecked`` value that load/store decode passes to SetTagCheckedInstruction():
    immediate-offset forms ``wback || n != 31`` (an SP base with an immediate offset and no
    writeback is unchecked); register-offset forms are checked; prefetches never are."""
    if prefetch:
        return False
    if register_offset:
        return True
    return bool(wback) or n != 31


def AccessIsTagChecked(vaddr: int, tbi: int, tcma: int, tag_access_enabled: bool, tco: int,
                       instr_tagchecked: bool = True, tagged: bool = True) -> bool:
    """AArch64.AccessIsTagChecked(vaddr, accdesc), with the memory-type test of
    AArch64.CheckTag folded in. Unchecked when:
      * EffectiveTBI(vaddr) = 0;
      * EffectiveTCMA(vaddr) = 1 and vaddr<59:55> is all zeros or all ones;
      * allocation tag access is disabled for the access's EL;
      * PSTATE.TCO = 1;
      * the instruction is not a tag-checked one (``instr_tagchecked`` -- see
        DecodeTagChecked; tag instructions, DC G*VA, cache maintenance, translation-table
        walks and prefetches pass False);
      * the memory is not Tagged (``tagged`` -- stage 1 attribute 0xF0, etc.).
    """
    if not tbi:
        return False
    if tcma:
        top = (vaddr >> 55) & 0x1F
        if top == 0 or top == 0x1F:
            return False
    if not tag_access_enabled or tco or not instr_tagchecked or not tagged:
        return False
    return True


# ============================================================================================
# Tag check failure: TCF, the outcome, TFSR
# ============================================================================================
def EffectiveTCF(el: int, sctlr_el1: int, sctlr_el2: int = 0, hcr_el2: int = 0,
                 el2_enabled: bool = False, sctlr_el3: int = 0) -> int:
    """AArch64.EffectiveTCF(el): SCTLR_EL1.TCF (41:40) for EL1, SCTLR_EL1.TCF0 (39:38) for
    EL0 in the EL1&0 regime; SCTLR_EL2.TCF / TCF0 for the EL2&0 regime; SCTLR_EL2.TCF for EL2.
    0 none, 1 synchronous, 2 asynchronous, 3 asymmetric (FEAT_MTE_ASYM_FAULT).

    ``el`` is the EL the access is made for (AccessUsesEL: EL0 for unprivileged LDTR/STTR at
    EL1 when PSTATE.UAO = 0).
    """
    regime = TranslationRegime(el, hcr_el2, el2_enabled)
    if regime == "EL10":
        reg = sctlr_el1
    elif regime == "EL3":
        reg = sctlr_el3
    else:
        reg = sctlr_el2
    shift = SCTLR_TCF0_SHIFT if (el == 0 and regime in ("EL10", "EL20")) else SCTLR_TCF_SHIFT
    return (reg >> shift) & 3


def TagCheckFault(tcf: int, read: bool, write: bool) -> str:
    """AArch64.TagCheckFault(va, accdesc): what a failed tag check does.

    TCF 0: nothing; 1: synchronous Data Abort (AArch64.RaiseTagCheckFault); 2: asynchronous,
    recorded in TFSR (AArch64.ReportTagCheckFault); 3 (asymmetric): synchronous if the access
    reads -- including a read-modify-write (atomics, CAS/CASP, SWP) -- asynchronous if it only
    writes. Returns TAG_FAULT_IGNORE, TAG_FAULT_SYNC or TAG_FAULT_ASYNC.
    """
    tcf &= 3
    if tcf == TCF_NONE:
        return TAG_FAULT_IGNORE
    if tcf == TCF_SYNC:
        return TAG_FAULT_SYNC
    if tcf == TCF_ASYNC:
        return TAG_FAULT_ASYNC
    return TAG_FAULT_SYNC if read else TAG_FAULT_ASYNC


TagCheckFail = TagCheckFault  # the outcome-selection name used in the project's docs


def ReportTagCheckFault(el: int, va: int) -> Tuple[str, int]:
    """AArch64.ReportTagCheckFault(el, ttbr = va<55>): the register and bit an asynchronous
    fault sets. EL0 -> TFSRE0_EL1, EL1 -> TFSR_EL1, EL2 -> TFSR_EL2, EL3 -> TFSR_EL3; bit TF0
    when va<55> = 0, TF1 when va<55> = 1 (TFSR_EL3 has only TF0)."""
    reg = {0: "TFSRE0_EL1", 1: "TFSR_EL1", 2: "TFSR_EL2", 3: "TFSR_EL3"}[el]
    if el == 3:
        return reg, TFSR_TF0
    return reg, TFSR_TF1 if (va >> 55) & 1 else TFSR_TF0


def TFSRWriteValue(value: int) -> int:
    """What an MSR to TFSR_ELx / TFSRE0_EL1 stores: TF0 and TF1; every other bit is RES0."""
    return value & TFSR_MASK


def GCRWriteValue(value: int) -> int:
    """What an MSR to GCR_EL1 stores: Exclude (15:0) and RRND (16); other bits RES0."""
    return value & GCR_MASK


def RGSRWriteValue(value: int) -> int:
    """What an MSR to RGSR_EL1 stores: TAG (3:0) and SEED (23:8); other bits RES0."""
    return value & RGSR_MASK


# ============================================================================================
# Block sizes and LDGM/STGM packing
# ============================================================================================
def GMIDBlockBytes(gmid: int) -> int:
    """LDGM/STGM block size in bytes: 4 * 2^GMID_EL1.BS (BS is log2 of the size in words;
    architecturally 2..6, i.e. 16..256 bytes, 1..16 granules)."""
    return 4 << (gmid & BS_MASK)


def DCZIDBlockBytes(dczid: int) -> int:
    """DC ZVA / DC GVA / DC GZVA / STZGM block size in bytes: 4 * 2^DCZID_EL0.BS."""
    return 4 << (dczid & BS_MASK)


def BlockGranules(size: int) -> int:
    """Tag granules in a block: size >> LOG2_TAG_GRANULE."""
    return size >> LOG2_TAG_GRANULE


def TagIndex(address: int) -> int:
    """The nibble of an LDGM/STGM register that holds the tag of the granule at ``address``:
    UInt(address<LOG2_TAG_GRANULE+3:LOG2_TAG_GRANULE>) = address<7:4>."""
    return (address >> LOG2_TAG_GRANULE) & 0xF


def PackTags(tags: Sequence[int], block_address: int) -> int:
    """LDGM's result: the block's tags placed in Elem[data, index, 4], index starting at
    TagIndex(block_address) and counting up; all other bits 0."""
    data = 0
    index = TagIndex(block_address)
    for tag in tags:
        data |= (tag & 0xF) << (4 * index)
        index += 1
    return data & MASK64


def UnpackTags(data: int, block_address: int, count: int) -> List[int]:
    """STGM's view: the ``count`` tags Elem[data, index, 4] for the block's granules, index
    starting at TagIndex(block_address)."""
    index = TagIndex(block_address)
    return [(data >> (4 * (index + i))) & 0xF for i in range(count)]


# ============================================================================================
# SUBP / SUBPS
# ============================================================================================
def SubtractPointers(operand1: int, operand2: int) -> Tuple[int, int]:
    """SUBP/SUBPS: SignExtend(op1<55:0>) + NOT(SignExtend(op2<55:0>)) + 1 via AddWithCarry.
    Returns (result, nzcv) with nzcv N:Z:C:V in bits 3:0 (SUBPS sets PSTATE.NZCV from it)."""
    a = SignExtend(operand1, 56)
    b = SignExtend(operand2, 56) ^ MASK64
    return AddWithCarry(a, b, 1)
