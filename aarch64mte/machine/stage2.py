"""Stage 2 of the EL1&0 regime: the walk of VTTBR_EL2/VTCR_EL2 (VMSAv8-64, 4 KiB granule) and
the combination of the two stages' memory attributes, which decides whether memory is Tagged.

Follows the Arm ARM pseudocode (DDI 0487): AArch64.S2Translate's order of checks
(AArch64.S2TxSZFaults, AArch64.S2InvalidSL / AArch64.S2InconsistentSL, AArch64.IPAIsOutOfRange,
AArch64.S2Walk, the access flag, AArch64.S2CheckPermissions), AArch64.S2DecodeMemAttrs and
AArch64.S2ApplyFWBMemAttrs for the attributes, AArch64.S2CombineS1MemAttrs for combining them,
and AArch64.S2MemTagType for Tagged: stage 1 Tagged (MAIR 0xF0) and the combined attributes
Normal Inner and Outer Write-Back. FEAT_MTE_PERM's NoTagAccess (MemAttr 0b0100 with FWB = 0,
MemAttr<3:1> = 0b111 with FWB = 1) is reported on the translation (``nta``); the tag unit and
the MTE unit turn a tag access to such memory into a stage-2 Permission fault
(AArch64.S2CheckPermissions, ``fault.tagaccess``).
"""
from __future__ import annotations

from typing import Callable, Optional, Union

from .translation import FETCH, OA_MASK, PROT_R, PROT_W, PROT_X, WRITE, Translation, \
    WalkFault

HCR_VM, HCR_DC, HCR_CD, HCR_FWB = 1 << 0, 1 << 12, 1 << 32, 1 << 46
PA_BITS = 48                          # PAMax of this CPU (ID_AA64MMFR0_EL1.PARange 5)
_PS_BITS = (32, 36, 40, 42, 44, 48, 52, 56)


def _normal(attr: int) -> bool:
    return attr & 0xF0 != 0


def cacheability(attr: int):
    """(outer, inner) cacheability of a Normal MAIR attribute: 'nc', 'wt' or 'wb'.
    0xF0 (Tagged) is Inner and Outer Write-Back."""
    if attr == 0xF0:
        return "wb", "wb"

    def one(n: int) -> str:
        if n == 0b0100:
            return "nc"
        return "wb" if n & 0b0100 else "wt"
    return one(attr >> 4), one(attr & 0xF)


def _mair(outer: str, inner: str) -> int:
    code = {"nc": 0x4, "wt": 0xB, "wb": 0xF}
    return (code[outer] << 4) | code[inner]


def s2_cacheability(memattr: int):
    """FWB = 0: (outer, inner) of a Normal stage-2 MemAttr, None for Device."""
    hi, lo = memattr >> 2, memattr & 3
    if hi == 0:
        return None
    names = {1: "nc", 2: "wt", 3: "wb"}
    if lo == 0:
        # 0b0100 is NoTagAccess Normal WB (FEAT_MTE_PERM); 0b1000 and 0b1100 are reserved,
        # taken here as Non-cacheable (one of the attributes they may behave as)
        return ("wb", "wb") if memattr == 0b0100 else ("nc", "nc")
    return names[hi], names[lo]


def combine(s1_attr: int, memattr: int, hcr: int, fetch: bool = False):
    """(combined MAIR-format attribute, tagged, notagaccess) of a stage-1 attribute and a
    stage-2 MemAttr under HCR_EL2.FWB and CD."""
    fwb = bool(hcr & HCR_FWB)
    s1_tagged = s1_attr == 0xF0
    if fwb:
        nta = (memattr >> 1) == 0b111
        a = memattr & 0b111
        if not a & 0b100:                                   # Device of stage 2's type
            dev = (a & 3) << 2
            out = min(dev, s1_attr) if not _normal(s1_attr) else dev
        elif a in (0b100, 0b101):                           # Normal Non-cacheable
            out = s1_attr if not _normal(s1_attr) else 0x44
        elif a == 0b110:                                    # force Normal Write-Back
            out = 0xFF
        else:                                               # use stage 1's
            out = s1_attr
    else:
        nta = memattr == 0b0100
        n2 = s2_cacheability(memattr)
        if n2 is None:                                      # stage-2 Device
            dev = (memattr & 3) << 2
            out = min(dev, s1_attr) if not _normal(s1_attr) else dev
        elif not _normal(s1_attr):                          # stage-1 Device wins
            out = s1_attr
        else:
            o1, i1 = cacheability(s1_attr)
            o2, i2 = n2
            rank = {"nc": 0, "wt": 1, "wb": 2}
            out = _mair(min(o1, o2, key=rank.get), min(i1, i2, key=rank.get))
    if hcr & HCR_CD and not fetch and _normal(out):
        out = 0x44                                          # data caching disabled: NC
    wb = _normal(out) and cacheability(out) == ("wb", "wb")
    tagged = s1_tagged and wb
    return (0xF0 if tagged else out), tagged, nta and s1_tagged and not hcr & HCR_CD


class Stage2:
    """The stage-2 walker. ``read64(pa)`` reads a descriptor, ``cp_read(encoding)`` a system
    register. ``for_regime`` returns the translate function of one regime (the registers it
    reads are fixed until the machine's next invalidation)."""

    def __init__(self, read64: Callable[[int], int], sysreg: Callable[[str], int]) -> None:
        self.read64 = read64
        self.sysreg = sysreg

    def for_regime(self, hcr: int):
        vtcr = self.sysreg("VTCR_EL2")
        vttbr = self.sysreg("VTTBR_EL2")
        params = self._params(vtcr, vttbr)

        def translate(ipa: int, access: str,
                      s1: Optional[Translation]) -> Union[Translation, WalkFault]:
            return self.translate(ipa, access, s1, hcr, params)
        return translate

    @staticmethod
    def _params(vtcr: int, vttbr: int):
        """The walk's start: (start level, bits resolved there, table base, PS bits), or a
        level-0 Translation fault / Address size fault for a configuration the pseudocode
        rejects (AArch64.S2TxSZFaults, S2InvalidSL, S2InconsistentSL, S2Walk)."""
        t0sz = vtcr & 0x3F
        sl0 = (vtcr >> 6) & 3
        ps = min(_PS_BITS[(vtcr >> 16) & 7], PA_BITS)
        # TG0 is not read: this CPU implements the 4 KiB granule only, which a reserved or
        # unimplemented TG0 selects (AArch64.S2DecodeTG0)
        if t0sz < 64 - PA_BITS or t0sz > 39:
            return WalkFault("translation", 0, stage=2)
        iasize = 64 - t0sz
        start = {0: 2, 1: 1, 2: 0}.get(sl0)
        if start is None or (start == 0 and PA_BITS < 44):
            return WalkFault("translation", 0, stage=2)      # S2InvalidSL (no FEAT_TTST)
        levels = 3 - start
        sl_min = levels * 9 + 12 + 1
        if not sl_min <= iasize <= sl_min + 8 + 4:
            return WalkFault("translation", 0, stage=2)      # S2InconsistentSL
        first_bits = iasize - (12 + 9 * levels)              # up to 13: concatenated tables
        base = vttbr & 0x0000_FFFF_FFFF_FFFE
        base &= ~((8 << first_bits) - 1)                     # aligned to the start tables
        if base >> ps:
            return WalkFault("address_size", 0, stage=2)
        return start, first_bits, base, ps, iasize

    def translate(self, ipa: int, access: str, s1: Optional[Translation], hcr: int,
                  params) -> Union[Translation, WalkFault]:
        """``s1`` is the stage-1 result whose output ``ipa`` is, or None for a stage-1 table
        address (S1PTW: the walk reads it; the fault's WnR is the access's, set where the
        syndrome is made)."""
        s1ptw = s1 is None

        def fault(kind: str, level: int) -> WalkFault:
            return WalkFault(kind, level, stage=2, ipa=ipa, s1ptw=s1ptw)

        if isinstance(params, WalkFault):
            return fault(params.kind, params.level)
        start, first_bits, table, ps, iasize = params
        if ipa >> iasize:
            return fault("translation", 0)                   # AArch64.IPAIsOutOfRange
        level = start
        nbits = first_bits
        while True:
            shift = 12 + 9 * (3 - level)
            idx = (ipa >> shift) & ((1 << nbits) - 1)
            desc = self.read64(table + 8 * idx)
            if desc is None:                                 # no memory: external abort
                return WalkFault("external_walk", level, stage=2, ipa=ipa, s1ptw=s1ptw)
            if not desc & 1:
                return fault("translation", level)
            if level < 3 and desc & 2:                       # table
                table = desc & OA_MASK
                if table >> ps:
                    return fault("address_size", level)
                level += 1
                nbits = 9
                continue
            if level == 3 and not desc & 2:
                return fault("translation", level)           # reserved at level 3
            if level == 0:
                return fault("translation", level)           # no level-0 blocks with 4K
            break
        size = 1 << shift
        oa = desc & OA_MASK & ~(size - 1)
        if oa >> ps:
            return fault("address_size", level)
        if not (desc >> 10) & 1:
            return fault("access_flag", level)
        s2ap = (desc >> 6) & 3
        perms = (PROT_R if s2ap & 1 else 0) | (PROT_W if s2ap & 2 else 0)
        xn = (desc >> 54) & 1
        if not xn:
            perms |= PROT_X
        memattr = (desc >> 2) & 0xF
        pa = oa | (ipa & (size - 1))
        if s1ptw:
            # the walk needs read permission; HCR_EL2.PTW with Device is not modelled
            if not perms & PROT_R:
                return fault("permission", level)
            return Translation(pa, perms, 0xFF, False, level, size)
        need = PROT_W if access == WRITE else PROT_X if access == FETCH else PROT_R
        if not perms & need:
            return fault("permission", level)
        attr, tagged, nta = combine(s1.attr, memattr, hcr, access == FETCH)
        t = Translation(pa, s1.perms & perms, attr, tagged, s1.level, min(s1.size, size))
        t.ipa = ipa
        t.nta = nta
        t.s2_level = level
        t.stage1 = s1
        t.s2_memattr = memattr
        t.s2_perms = perms
        t.s2_size = size
        return t
