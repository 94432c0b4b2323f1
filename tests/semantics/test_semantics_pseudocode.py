"""The pseudocode functions against the Arm ARM rules they transcribe."""
import pytest
from hypothesis import given, strategies as st

from aarch64mte.semantics import pseudocode as p

u64 = st.integers(0, (1 << 64) - 1)
tag4 = st.integers(0, 15)
mask16 = st.integers(0, 0xFFFF)


# --- tags in addresses ------------------------------------------------------------------------
def test_tag_from_and_into_address():
    # the Logical Address Tag is bits 59:56
    assert p.AllocationTagFromAddress(0x0A00_0000_4000_0000) == 0xA
    assert p.AllocationTagFromAddress(0xF500_0000_0000_0000) == 0x5   # bits 63:60 ignored
    assert p.AddressWithAllocationTag(0xFF00_0000_1234_5670, 3) == 0xF300_0000_1234_5670


@given(u64, tag4)
def test_address_with_tag_round_trip(addr, tag):
    out = p.AddressWithAllocationTag(addr, tag)
    assert p.AllocationTagFromAddress(out) == tag
    assert out & ~(0xF << 56) == addr & ~(0xF << 56)


# --- ChooseNonExcludedTag ---------------------------------------------------------------------
def test_choose_non_excluded_tag_examples():
    assert p.ChooseNonExcludedTag(0, 0, 0) == 0
    assert p.ChooseNonExcludedTag(0, 0, 0b1) == 1          # offset 0: first allowed at/after tag
    assert p.ChooseNonExcludedTag(15, 1, 0) == 0           # wraps modulo 16
    assert p.ChooseNonExcludedTag(3, 2, 1 << 4) == 6       # 3 -> (4 excluded) 5 -> 6
    assert p.ChooseNonExcludedTag(7, 5, 0xFFFF) == 0       # all excluded: '0000'
    assert p.ChooseNonExcludedTag(9, 3, 0xFFFF ^ (1 << 2)) == 2   # only tag 2 allowed


@given(tag4, tag4, mask16)
def test_choose_non_excluded_tag_never_excluded(tag, offset, exclude):
    r = p.ChooseNonExcludedTag(tag, offset, exclude)
    if exclude == 0xFFFF:
        assert r == 0
    else:
        assert not (exclude >> r) & 1


@given(tag4, tag4)
def test_choose_non_excluded_tag_no_exclusions_is_addition(tag, offset):
    assert p.ChooseNonExcludedTag(tag, offset, 0) == (tag + offset) & 15


@given(tag4, tag4, mask16)
def test_choose_non_excluded_tag_counts_allowed_steps(tag, offset, exclude):
    # the result is the offset-th allowed tag after the start (the start itself when offset 0)
    if exclude == 0xFFFF:
        return
    allowed = [t for t in range(16) if not (exclude >> t) & 1]
    r = p.ChooseNonExcludedTag(tag, offset, exclude)
    if offset == 0:
        expect = next(t & 15 for t in range(tag, tag + 16) if (t & 15) in allowed)
    else:
        after = [(tag + k) & 15 for k in range(1, 17) if ((tag + k) & 15) in allowed]
        expect = (after * 16)[offset - 1]
    assert r == expect


# --- the RGSR_EL1 LFSR -------------------------------------------------------------------------
def test_next_random_tag_bit_by_hand():
    # SEED 0x1234: bits 5,3,2,0 = 1,0,1,0 -> top 0, SEED = 0:lfsr<15:1> = 0x091A
    assert p.NextRandomTagBit(0x1234) == (0, 0x091A)
    # SEED 0x091A: bits 5,3,2,0 = 0,1,0,0 -> top 1, SEED = 1:lfsr<15:1> = 0x848D
    assert p.NextRandomTagBit(0x091A) == (1, 0x848D)


def test_random_tag_first_bit_is_bit0():
    tag, seed = p.RandomTag(0x1234)
    bits, s = [], 0x1234
    for _ in range(4):
        b, s = p.NextRandomTagBit(s)
        bits.append(b)
    assert tag == sum(b << i for i, b in enumerate(bits)) and seed == s


def test_irg_lfsr_known_answer():
    # GCR_EL1 = 0x0001 (exclude tag 0, RRND = 0), RGSR_EL1.SEED = 0x1234, TAG = 0:
    # QEMU 7.2 and 10.0 (oracles/README.md) give e,5,9,b,7,5,5,a.
    rgsr = p.RGSR(0, 0x1234)
    out = []
    for _ in range(8):
        before = rgsr
        tag, rgsr = p.ChooseTagOrZero(0x0001, 0x0001, rgsr, True)
        out.append(tag)
        # RGSR_EL1.TAG = rtag; SEED advanced four LFSR steps
        assert p.RGSR_TAG(rgsr) == tag
        assert p.RGSR_SEED(rgsr) == p.RandomTag(p.RGSR_SEED(before))[1]
    assert out == [0xE, 0x5, 0x9, 0xB, 0x7, 0x5, 0x5, 0xA]


def test_irg_choice_disabled_and_all_excluded():
    rgsr = p.RGSR(3, 0x1234)
    assert p.ChooseTagOrZero(0, 0, rgsr, False) == (0, rgsr)        # disabled: 0, RGSR kept
    tag, new = p.ChooseTagOrZero(0xFFFF, 0, rgsr, True)             # all excluded: 0
    assert tag == 0 and p.RGSR_TAG(new) == 0
    assert p.RGSR_SEED(new) == p.RandomTag(0x1234)[1]              # SEED still advances
    # RRND = 1: the random draw, then the first allowed tag at or after it
    assert p.ChooseTagOrZero(1 << 7, p.GCR_RRND_BIT, rgsr, True, random4=7) == (8, rgsr)
    assert p.ChooseTagOrZero(0xFFFF, p.GCR_RRND_BIT, rgsr, True, random4=7) == (0, rgsr)


# --- AllocationTagAccessIsEnabled ---------------------------------------------------------------
def test_allocation_tag_access_is_enabled():
    ata, ata0 = p.SCTLR_ATA, p.SCTLR_ATA0
    f = p.AllocationTagAccessIsEnabled
    assert f(1, ata) and not f(1, ata0)          # EL1 uses SCTLR_EL1.ATA
    assert f(0, ata0) and not f(0, ata)          # EL0 uses SCTLR_EL1.ATA0
    # EL2 enabled: HCR_EL2.ATA = 0 disables EL0/EL1
    assert not f(1, ata, 0, True)
    assert not f(0, ata0, 0, True)
    assert f(1, ata, p.HCR_ATA, True)
    # HCR_EL2.ATA ignored when EL2 is not enabled
    assert f(1, ata, 0, False)
    # {E2H,TGE} = {1,1}: EL0 is in the EL2&0 regime, SCTLR_EL2.ATA0 decides, HCR_EL2.ATA not
    host = p.HCR_E2H | p.HCR_TGE
    assert f(0, 0, host, True, sctlr_el2=ata0)
    assert not f(0, ata0, host, True, sctlr_el2=0)
    # EL2 uses SCTLR_EL2.ATA, not HCR_EL2.ATA
    assert f(2, 0, 0, True, sctlr_el2=ata) and not f(2, ata, p.HCR_ATA, True, sctlr_el2=0)
    # SCR_EL3.ATA = 0 disables everything below EL3
    assert not f(1, ata, scr_el3=0) and f(1, ata, scr_el3=p.SCR_ATA)


# --- TBI, TCMA, AccessIsTagChecked --------------------------------------------------------------
def test_effective_tbi_and_tcma():
    lo, hi = 0x0000_1000_0000_0000, 0xFF80_0000_0000_0000
    assert p.EffectiveTBI(lo, False, 1, p.TCR_TBI0) == 1
    assert p.EffectiveTBI(hi, False, 1, p.TCR_TBI0) == 0      # bit 55 = 1 selects TBI1
    assert p.EffectiveTBI(hi, False, 0, p.TCR_TBI1) == 1
    assert p.EffectiveTBI(lo, True, 1, p.TCR_TBI0 | p.TCR_TBID0) == 0   # TBID0: not for fetch
    assert p.EffectiveTBI(lo, False, 1, p.TCR_TBI0 | p.TCR_TBID0) == 1
    assert p.EffectiveTBI(lo, False, 2, 0, tcr_el2=p.TCR_EL2_TBI) == 1   # EL2: TCR_EL2.TBI
    assert p.EffectiveTCMA(lo, 1, p.TCR_TCMA0) == 1
    assert p.EffectiveTCMA(hi, 1, p.TCR_TCMA0) == 0
    assert p.EffectiveTCMA(lo, 2, 0, tcr_el2=p.TCR_EL2_TCMA) == 1


def test_access_is_tag_checked():
    f = p.AccessIsTagChecked
    va = 0x0300_0000_4000_0000
    assert f(va, 1, 0, True, 0)
    assert not f(va, 0, 0, True, 0)                          # TBI off
    assert not f(va, 1, 0, False, 0)                         # tag access disabled
    assert not f(va, 1, 0, True, 1)                          # PSTATE.TCO
    assert not f(va, 1, 0, True, 0, instr_tagchecked=False)  # e.g. [SP, #imm]
    assert not f(va, 1, 0, True, 0, tagged=False)            # Untagged memory
    # TCMA: bits 59:55 all 0 or all 1 -> unchecked; anything else still checked
    assert not f(0x0000_0000_4000_0000, 1, 1, True, 0)
    assert not f(0xFF80_0000_0000_0000, 1, 1, True, 0)
    assert not f(0xF780_0000_0000_0000 | (0xF << 56), 1, 1, True, 0)
    assert f(0x0080_0000_0000_0000, 1, 1, True, 0)           # bits 59:55 = 00001
    assert f(va, 1, 1, True, 0)


def test_decode_tag_checked():
    assert p.DecodeTagChecked(1, False)
    assert not p.DecodeTagChecked(31, False)                 # [SP, #imm]
    assert p.DecodeTagChecked(31, True)                      # [SP, #imm]!
    assert p.DecodeTagChecked(31, False, register_offset=True)
    assert not p.DecodeTagChecked(1, False, prefetch=True)


# --- TCF, fault outcome, TFSR -------------------------------------------------------------------
def test_effective_tcf():
    sctlr = (2 << 40) | (1 << 38)                            # TCF = async, TCF0 = sync
    assert p.EffectiveTCF(1, sctlr) == p.TCF_ASYNC
    assert p.EffectiveTCF(0, sctlr) == p.TCF_SYNC
    assert p.EffectiveTCF(2, 0, sctlr_el2=3 << 40) == p.TCF_ASYMM
    host = p.HCR_E2H | p.HCR_TGE                             # EL0 in EL2&0: SCTLR_EL2.TCF0
    assert p.EffectiveTCF(0, sctlr, sctlr_el2=2 << 38, hcr_el2=host, el2_enabled=True) == 2


def test_tag_check_fault_outcome():
    f = p.TagCheckFault
    assert f(0, True, False) == p.TAG_FAULT_IGNORE
    assert f(1, False, True) == p.TAG_FAULT_SYNC
    assert f(2, True, False) == p.TAG_FAULT_ASYNC
    assert f(3, True, False) == p.TAG_FAULT_SYNC             # asymmetric: reads synchronous
    assert f(3, False, True) == p.TAG_FAULT_ASYNC            # writes asynchronous
    assert f(3, True, True) == p.TAG_FAULT_SYNC              # CAS/atomics: read-modify-write
    assert p.TagCheckFail is p.TagCheckFault


def test_report_tag_check_fault():
    assert p.ReportTagCheckFault(1, 0x0000_0000_1000_0000) == ("TFSR_EL1", p.TFSR_TF0)
    assert p.ReportTagCheckFault(1, 0xFF80_0000_0000_0000) == ("TFSR_EL1", p.TFSR_TF1)
    assert p.ReportTagCheckFault(0, 0x0080_0000_0000_0000) == ("TFSRE0_EL1", p.TFSR_TF1)
    assert p.ReportTagCheckFault(2, 0) == ("TFSR_EL2", p.TFSR_TF0)
    assert p.TFSRWriteValue(0xFFFF_FFFF_FFFF_FFFF) == 3
    assert p.GCRWriteValue(0xFFFF_FFFF) == 0x1FFFF
    assert p.RGSRWriteValue(0xFFFF_FFFF) == 0xFFFF0F


# --- blocks and LDGM/STGM packing ----------------------------------------------------------------
def test_block_sizes():
    assert [p.GMIDBlockBytes(bs) for bs in range(2, 7)] == [16, 32, 64, 128, 256]
    assert p.DCZIDBlockBytes(4) == 64
    assert p.DCZIDBlockBytes(0x14) == 64                      # DZP (bit 4) is not part of BS


def test_pack_tags_index_from_address_bits_7_4():
    # BS = 4: 64-byte blocks, the block at 0x...40 holds granules 4..7 of its 256-byte line
    assert p.TagIndex(0x4000_0040) == 4
    assert p.PackTags([1, 2, 3, 4], 0x4000_0040) == 0x4321_0000
    assert p.UnpackTags(0x4321_0000, 0x4000_0040, 4) == [1, 2, 3, 4]
    assert p.PackTags(list(range(16)), 0x4000_0100) == 0xFEDC_BA98_7654_3210


@given(st.integers(2, 6), st.integers(0, 1 << 20), st.lists(tag4, min_size=16, max_size=16))
def test_pack_unpack_round_trip(bs, addr, tags):
    size = p.GMIDBlockBytes(bs)
    block = p.Align(addr, size)
    count = p.BlockGranules(size)
    packed = p.PackTags(tags[:count], block)
    assert p.UnpackTags(packed, block, count) == tags[:count]
    # only the block's nibbles are used
    index = p.TagIndex(block)
    assert packed >> (4 * (index + count)) == 0 and packed & ((1 << (4 * index)) - 1) == 0


# --- SUBP ----------------------------------------------------------------------------------------
def _sext56(v):
    v &= (1 << 56) - 1
    return v - (1 << 56) if v >> 55 else v


@given(u64, u64)
def test_subp_sign_extends_56_bits(a, b):
    result, nzcv = p.SubtractPointers(a, b)
    diff = _sext56(a) - _sext56(b)
    assert result == diff & ((1 << 64) - 1)
    n, z, c, v = (nzcv >> 3) & 1, (nzcv >> 2) & 1, (nzcv >> 1) & 1, nzcv & 1
    assert n == (diff < 0)
    assert z == (diff == 0)
    # C: no borrow in the 64-bit unsigned subtraction of the sign-extended operands
    assert c == ((_sext56(a) & ((1 << 64) - 1)) >= (_sext56(b) & ((1 << 64) - 1)))
    assert v == 0          # a 57-bit difference can never overflow 64 bits


def test_subp_ignores_tag_byte():
    assert p.SubtractPointers(0x0F00_0000_0000_0010, 0x0A00_0000_0000_0000) == (0x10, 0b0010)
    # bit 55 set: negative 56-bit address
    assert p.SubtractPointers(0x0080_0000_0000_0000, 0)[0] == 0xFF80_0000_0000_0000


# --- DC ZVA / DC GVA / DC GZVA traps (HCR_EL2.TDZ, SCTLR_ELx.DZE) ------------------------------
# HCR_EL2.TDZ traps EL0 and EL1 to EL2 when EL2 is enabled; its Effective value is 0 only when
# {E2H, TGE} = {1, 1}. At EL0 SCTLR_EL1.DZE = 0 traps first: to EL1, or to EL2 with TGE = 1; in
# the EL2&0 host it is SCTLR_EL2.DZE.
TGE, E2H, TDZ, DZE = p.HCR_TGE, p.HCR_E2H, p.HCR_TDZ, p.SCTLR_DZE


@pytest.mark.parametrize("el, hcr, el2, sctlr1, sctlr2, target", [
    (0, 0, False, DZE, 0, None),
    (0, 0, False, 0, 0, 1),
    (0, TGE, True, 0, 0, 2),                 # DZE = 0 with TGE: to EL2
    (0, TDZ, True, DZE, 0, 2),
    (0, TGE | TDZ, True, DZE, 0, 2),         # {E2H, TGE} = {0, 1}: TDZ still applies
    (0, E2H | TGE | TDZ, True, DZE, DZE, None),   # the host: TDZ is 0
    (0, E2H | TGE, True, 0, 0, 2),           # the host: SCTLR_EL2.DZE
    (0, E2H | TGE, True, 0, DZE, None),
    (1, TDZ, True, 0, 0, 2),
    (1, TDZ, False, 0, 0, None),             # no EL2: no TDZ
    (1, 0, True, 0, 0, None),                # DZE is EL0's control only
    (2, TDZ, True, 0, 0, None),
])
def test_dc_zero_access_trap(el, hcr, el2, sctlr1, sctlr2, target):
    assert p.DCZeroAccessTrap(el, hcr, el2, sctlr1, sctlr2) == target


def test_dc_zva_system_trap_follows_tdz_with_tge():
    # DC ZVA, X0 at EL0 under {E2H, TGE} = {0, 1} with HCR_EL2.TDZ = 1 and SCTLR_EL1.DZE = 1:
    # trapped to EL2 (EC 0x18), as DC GZVA is
    from aarch64mte.semantics.systraps import system_trap
    t = system_trap(0xD50B7420, 0, TGE | TDZ, DZE, True)
    assert t is not None and t.target_el == 2 and t.ec == 0x18
    assert system_trap(0xD50B7420, 0, E2H | TGE | TDZ, DZE, True, DZE) is None
