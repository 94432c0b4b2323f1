"""Stage-1 translation of the EL1&0 regime from the guest's own tables (VMSAv8-64, 4 KiB granule).

``Stage1.translate(va, el, access)`` returns a ``Translation`` (physical address, permissions
for that EL, the MAIR attribute, whether the page is Tagged) or a ``WalkFault`` naming the fault
and its level, which the machine reports as an instruction or data abort. Top-byte-ignore is
applied here: the engine's fill hook sees the full pointer.

A later stage 2 composes without changing this walk: pass ``stage2``, a callable
``stage2(ipa, access, s1: Translation) -> Translation | WalkFault`` that maps the stage-1 output
(and each table address, through ``read_table``) to a host physical address with its own
permissions and attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

PROT_R, PROT_W, PROT_X = 1, 2, 4
READ, WRITE, FETCH = "r", "w", "x"

MAIR_NORMAL_TAGGED = 0xF0
OA_MASK = 0x0000_FFFF_FFFF_F000


@dataclass
class Translation:
    pa: int               # physical address of va (not page aligned)
    perms: int            # PROT_* the current EL has
    attr: int             # MAIR attribute byte of the leaf (0x00: Device-nGnRnE)
    tagged: bool          # Normal Tagged memory (attribute 0xF0, and stage 2 agreeing)
    level: int            # level of the leaf descriptor (-1: MMU off)
    size: int             # size of the block or page the leaf maps
    ipa: Optional[int] = None   # behind stage 2: the intermediate physical address
    nta: bool = False     # stage 2 says NoTagAccess (FEAT_MTE_PERM)
    s2_level: int = -1    # behind stage 2: the level of its leaf descriptor
    stage1: Optional["Translation"] = None  # behind stage 2: stage 1's own result (pa = ipa)
    s2_memattr: int = -1  # behind stage 2: its leaf's MemAttr[3:0]
    s2_perms: int = 0     # behind stage 2: PROT_* its S2AP and XN give
    s2_size: int = 0      # behind stage 2: the size of its block or page



@dataclass
class WalkFault:
    kind: str             # 'translation' | 'permission' | 'access_flag' | 'address_size'
                          # | 'external' (no memory there: a synchronous external abort)
    level: int
    stage: int = 1
    ipa: int = 0          # stage 2: the IPA that faulted
    s1ptw: bool = False   # stage 2: on a stage-1 table walk's read
    tagaccess: bool = False  # a NoTagAccess Permission fault (FEAT_MTE_PERM)

    @property
    def dfsc(self) -> int:
        """Fault status code (Arm ARM, ESR_ELx.ISS.DFSC/IFSC) for this fault and level."""
        if self.kind == "external":
            return 0b010000
        if self.kind == "external_walk":          # on a translation table walk, level LL
            return 0b010100 | (self.level & 3)
        base = {"address_size": 0b000000, "translation": 0b000100,
                "access_flag": 0b001000, "permission": 0b001100}[self.kind]
        return base | (self.level & 3)


@dataclass
class Regime:
    """The registers a stage-1 walk reads (cached by the machine between writes).

    ``kind`` is the translation regime: 'EL10' (EL1&0), 'EL20' (EL2&0, FEAT_VHE) or 'EL2'.
    ``tcr`` is always in the EL1&0 layout: the EL2 regime's TCR_EL2 (one VA range, TBI at bit
    20, TCMA at bit 30) is converted by ``el2_tcr`` so the walk and the tag checks read every
    regime the same way.
    """

    sctlr: int
    tcr: int
    ttbr0: int
    ttbr1: int
    mair: int
    kind: str = "EL10"
    stage2: Optional[Callable] = None     # the EL1&0 regime behind stage 2 (Stage2.translate)
    s1_off_attr: int = 0x00               # stage 1 disabled: Device-nGnRnE, or with
                                          # HCR_EL2.DC Normal WB (0xFF; 0xF0 Tagged with DCT)


def el2_tcr(tcr_el2: int) -> int:
    """TCR_EL2 with E2H = 0 in the EL1&0 layout: T0SZ as is, no upper range (EPD1), TBI (20)
    as TBI0 and TBI1, TBID (29) as TBID0/1, TCMA (30) as TCMA0 and TCMA1."""
    tcr = (tcr_el2 & 0x3F) | (1 << 23) | (16 << 16)
    if (tcr_el2 >> 20) & 1:
        tcr |= (1 << 37) | (1 << 38)
    if (tcr_el2 >> 29) & 1:
        tcr |= (1 << 51) | (1 << 52)
    if (tcr_el2 >> 30) & 1:
        tcr |= (1 << 57) | (1 << 58)
    return tcr


def tbi_applies(va: int, tcr: int) -> bool:
    """EffectiveTBI for the EL1&0 regime: TBI0 (bit 37) or TBI1 (bit 38) by VA bit 55."""
    return bool((tcr >> (38 if (va >> 55) & 1 else 37)) & 1)


def strip_tag(va: int, tcr: int) -> int:
    """The address after top-byte-ignore: bits 63:56 replaced by copies of bit 55."""
    if tbi_applies(va, tcr):
        if (va >> 55) & 1:
            return va | 0xFF00_0000_0000_0000
        return va & 0x00FF_FFFF_FFFF_FFFF
    return va


class Stage1:
    """The stage-1 walker. ``read64(pa)`` reads a descriptor from physical memory. A regime
    with ``stage2`` set translates its output, and each table address the walk reads, through
    it (``stage2(ipa, access, s1)``, ``s1`` None for a table read)."""

    def __init__(self, read64: Callable[[int], Optional[int]]) -> None:
        self.read64 = read64                  # None where there is no memory

    def read_table(self, ipa: int, r: Regime, level: int = 0) -> Union[int, WalkFault]:
        if r.stage2 is not None:
            t = r.stage2(ipa, READ, None)
            if isinstance(t, WalkFault):
                return t
            ipa = t.pa
        d = self.read64(ipa)
        if d is None:                         # a synchronous external abort on the walk
            return WalkFault("external_walk", level)
        return d

    def translate(self, va: int, el: int, access: str, r: Regime) -> Union[Translation, WalkFault]:
        t = self._stage1(va, el, access, r)
        if r.stage2 is not None and isinstance(t, Translation):
            return r.stage2(t.pa, access, t)
        return t

    def leaves(self, r: Regime):
        """Every valid leaf of the EL1&0 tables, in VA order: (va, size, pa, tagged), where
        pa is stage 1's output (an IPA behind stage 2, whose tables are read through it).
        Nothing with the MMU off (flat and Untagged)."""
        if not (r.sctlr & 1) or r.s1_off_attr:
            return
        tcr = r.tcr
        for upper in (0, 1):
            if (tcr >> (23 if upper else 7)) & 1:          # EPD1 / EPD0
                continue
            tsz = min(max((tcr >> 16) & 0x3F if upper else tcr & 0x3F, 16), 39)
            inputsize = 64 - tsz
            levels = (inputsize - 12 + 8) // 9
            level = 4 - levels
            first_bits = inputsize - (12 + 9 * (3 - level))
            table = (r.ttbr1 if upper else r.ttbr0) & 0x0000_FFFF_FFFF_FFFE
            table &= ~((8 << first_bits) - 1)
            base = ((1 << 64) - (1 << inputsize)) if upper else 0
            yield from self._walk_leaves(table, level, first_bits, base, r)

    def _walk_leaves(self, table: int, level: int, nbits: int, va0: int, r: Regime):
        shift = 12 + 9 * (3 - level)
        for idx in range(1 << nbits):
            desc = self.read_table(table + idx * 8, r, level)
            if isinstance(desc, WalkFault) or not desc & 1:
                continue
            va = va0 + (idx << shift)
            if level < 3 and desc & 2:
                yield from self._walk_leaves(desc & OA_MASK, level + 1, 9, va, r)
            elif (level == 3) == bool(desc & 2) and level > 0 and (desc >> 10) & 1:
                size = 1 << shift
                attr = (r.mair >> (8 * ((desc >> 2) & 7))) & 0xFF
                yield va, size, desc & OA_MASK & ~(size - 1), attr == MAIR_NORMAL_TAGGED

    def _stage1(self, va: int, el: int, access: str, r: Regime) -> Union[Translation, WalkFault]:
        tcr = r.tcr
        upper = (va >> 55) & 1
        tbi = (tcr >> (38 if upper else 37)) & 1
        if not (r.sctlr & 1) or r.s1_off_attr:
            # MMU off (or HCR_EL2.DC): flat; bits above the PA range give an address size
            # fault. Untagged, unless HCR_EL2.DC with DCT makes it Tagged (S1DisabledOutput).
            a = va & 0x00FF_FFFF_FFFF_FFFF if tbi else va
            if a >> 48:
                return WalkFault("address_size", 0)
            attr = r.s1_off_attr
            return Translation(a, PROT_R | PROT_W | PROT_X, attr, attr == MAIR_NORMAL_TAGGED,
                               -1, 1 << 12)
        tsz = (tcr >> 16) & 0x3F if upper else tcr & 0x3F
        tsz = min(max(tsz, 16), 39)
        inputsize = 64 - tsz
        # Every bit above the input range must equal bit 55 (bits 63:56 are ignored under TBI).
        top = 56 if tbi else 64
        hi = (va >> inputsize) & ((1 << (top - inputsize)) - 1)
        if hi != (((1 << (top - inputsize)) - 1) if upper else 0):
            return WalkFault("translation", 0)
        if (tcr >> (23 if upper else 7)) & 1:          # EPD1 / EPD0
            return WalkFault("translation", 0)
        ttbr = r.ttbr1 if upper else r.ttbr0
        levels = (inputsize - 12 + 8) // 9
        level = 4 - levels
        table = ttbr & 0x0000_FFFF_FFFF_FFFE
        first_bits = inputsize - (12 + 9 * (3 - level))
        table &= ~((8 << first_bits) - 1)                  # the table is aligned to its size
        ap_table_no_el0 = ap_table_ro = uxn_table = pxn_table = 0
        while True:
            shift = 12 + 9 * (3 - level)
            nbits = first_bits if level == 4 - levels else 9
            idx = (va >> shift) & ((1 << nbits) - 1)
            desc = self.read_table(table + idx * 8, r, level)
            if isinstance(desc, WalkFault):
                return desc
            if not desc & 1:
                return WalkFault("translation", level)
            if level < 3 and desc & 2:                     # table descriptor
                ap_table_no_el0 |= (desc >> 61) & 1
                ap_table_ro |= (desc >> 62) & 1
                uxn_table |= (desc >> 60) & 1
                pxn_table |= (desc >> 59) & 1
                table = desc & OA_MASK
                level += 1
                continue
            if level == 3 and not desc & 2:                # reserved at level 3
                return WalkFault("translation", level)
            if level == 0:                                 # no level-0 blocks with 4 KiB
                return WalkFault("translation", level)
            break
        size = 1 << shift
        oa = (desc & OA_MASK & ~(size - 1)) | (va & (size - 1))
        if not (desc >> 10) & 1:
            return WalkFault("access_flag", level)
        ap = (desc >> 6) & 3
        el0_access = bool(ap & 1) and not ap_table_no_el0
        writable = not (ap & 2) and not ap_table_ro
        pxn = (desc >> 53) & 1 or pxn_table
        uxn = (desc >> 54) & 1 or uxn_table
        if r.kind == "EL2":
            # one privilege level: AP[1] is ignored, bit 54 is XN (APTable[0], PXNTable RES0)
            perms = PROT_R | (PROT_W if writable else 0) | (0 if uxn else PROT_X)
        elif el == 0:
            # AArch64.S1DirectBasePermissions: AP[1] (and APTable) govern EL0 data access
            # only; EL0 execution is UXN alone, so AP[2:1] = 00 with UXN = 0 is execute-only.
            perms = 0 if uxn else PROT_X
            if el0_access:
                perms |= PROT_R | (PROT_W if writable else 0)
        else:
            # EL1 (EL2 in EL2&0) cannot execute memory EL0 can write
            # (AArch64.S1DirectBasePermissions).
            el0_writable = el0_access and writable
            x = not pxn and not el0_writable
            perms = PROT_R | (PROT_W if writable else 0) | (PROT_X if x else 0)
        if (r.sctlr >> 19) & 1 and perms & PROT_W:        # WXN
            perms &= ~PROT_X
        attr = (r.mair >> (8 * ((desc >> 2) & 7))) & 0xFF
        t = Translation(oa, perms, attr, attr == MAIR_NORMAL_TAGGED, level, size)
        need = PROT_W if access == WRITE else PROT_X if access == FETCH else PROT_R
        if not perms & need:
            return WalkFault("permission", level)
        return t
