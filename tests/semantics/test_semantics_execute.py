"""Each MTE instruction's Operation, run against the in-memory FakeCpu.

Expected values come from the instruction pages of the Arm ARM (cited per test), not from
running the code under test.
"""
import pytest
from hypothesis import given, settings, strategies as st

from aarch64mte.semantics import faults, pseudocode as p
from aarch64mte.semantics.execute import UnknownInstruction, execute
from aarch64mte.semantics.syndrome import sysreg_iss_by_name

from semfake import BASE, BulkFakeCpu, FakeCpu, Insn

T = lambda addr, tag: p.AddressWithAllocationTag(addr, tag)   # noqa: E731
A = BASE + 0x1000


def cpu_with(**kw):
    c = FakeCpu(**kw)
    return c


# --- IRG ---------------------------------------------------------------------------------------
def test_irg_lfsr_sequence_via_instruction():
    # GCR_EL1 = 0x0001, RGSR_EL1.SEED = 0x1234: e,5,9,b,7,5,5,a (QEMU oracle)
    c = cpu_with(GCR_EL1=0x0001, RGSR_EL1=0x1234 << 8)
    c.xregs[1] = T(A, 0xC)
    got = []
    for _ in range(8):
        execute(Insn("IRG", d=0, n=1, m=31), c)
        got.append(p.AllocationTagFromAddress(c.x(0)))
        assert c.x(0) & ~(0xF << 56) == A                      # address bits kept
        assert p.RGSR_TAG(c.sysreg("RGSR_EL1")) == got[-1]     # RGSR_EL1.TAG = rtag
    assert got == [0xE, 0x5, 0x9, 0xB, 0x7, 0x5, 0x5, 0xA]


def test_irg_xm_adds_to_gcr_exclusion_and_sp_operands():
    c = cpu_with(GCR_EL1=0x00FF, RGSR_EL1=0x1234 << 8)
    c.xregs[2] = 0xFF00 ^ (1 << 0xC)                 # with GCR: only tag 0xC allowed
    c.sp_value = A
    execute(Insn("IRG", d=31, n=31, m=2), c)         # IRG SP, SP, X2
    assert c.sp_value == T(A, 0xC)


def test_irg_disabled_gives_zero_and_keeps_rgsr():
    c = cpu_with(SCTLR_EL1=0, RGSR_EL1=0x1234 << 8)
    c.xregs[1] = T(A, 5)
    execute(Insn("IRG", d=0, n=1, m=31), c)
    assert c.x(0) == A and c.sysreg("RGSR_EL1") == 0x1234 << 8


def test_irg_hcr_ata_zero_disables():
    c = cpu_with(el2=True, HCR_EL2=0, GCR_EL1=0, RGSR_EL1=0x1234 << 8)
    c.xregs[1] = T(A, 5)
    execute(Insn("IRG", d=0, n=1, m=31), c)
    assert c.x(0) == A


def test_irg_rrnd_uses_random_source_and_all_excluded():
    c = cpu_with(GCR_EL1=p.GCR_RRND_BIT | (1 << 9), RGSR_EL1=0x77)
    c.random_tags = [9]
    c.xregs[1] = A
    execute(Insn("IRG", d=0, n=1, m=31), c)
    assert p.AllocationTagFromAddress(c.x(0)) == 10   # 9 excluded -> next allowed
    c.xregs[3] = 0xFFFF
    c.random_tags = [4]
    execute(Insn("IRG", d=0, n=1, m=3), c)
    assert p.AllocationTagFromAddress(c.x(0)) == 0


# --- GMI, ADDG, SUBG ---------------------------------------------------------------------------
def test_gmi():
    c = cpu_with()
    c.xregs[1] = T(A, 7)
    c.xregs[2] = 0x8001
    execute(Insn("GMI", d=0, n=1, m=2), c)
    assert c.x(0) == 0x8081


@given(st.integers(0, 15), st.integers(0, 15), st.integers(0, 63),
       st.integers(0, (1 << 56) - 1), st.integers(0, 0xFFFF))
@settings(max_examples=200)
def test_addg_subg_tag_arithmetic(start, uimm4, uimm6, addr, exclude):
    for name, sign in (("ADDG", 1), ("SUBG", -1)):
        c = cpu_with(GCR_EL1=exclude)
        c.xregs[1] = T(addr, start)
        execute(Insn(name, d=0, n=1, offset=16 * uimm6, tag_offset=uimm4), c)
        out = c.x(0)
        # address: Xn + / - offset (64-bit), then bits 59:56 replaced
        assert out & ~(0xF << 56) == (T(addr, start) + sign * 16 * uimm6) & ~(0xF << 56) \
            & ((1 << 64) - 1)
        tag = p.AllocationTagFromAddress(out)
        if exclude == 0:
            assert tag == (start + uimm4) & 15                  # plain modular addition
        elif exclude == 0xFFFF:
            assert tag == 0
        else:
            assert not (exclude >> tag) & 1                     # never an excluded tag


def test_addg_ignores_xm_style_exclusion_and_disabled_gives_zero():
    c = cpu_with(SCTLR_EL1=0)
    c.sp_value = T(A, 3)
    execute(Insn("ADDG", d=31, n=31, offset=32, tag_offset=1), c)
    assert c.sp_value == A + 32                                  # tag '0000' when disabled


# --- SUBP, SUBPS, CMPP -------------------------------------------------------------------------
def test_subp_and_subps_flags():
    c = cpu_with()
    c.xregs[1] = T(A + 0x40, 3)
    c.xregs[2] = T(A, 9)
    execute(Insn("SUBP", d=0, n=1, m=2), c)
    assert c.x(0) == 0x40 and c.nzcv() == 0                      # SUBP leaves NZCV alone
    execute(Insn("SUBPS", d=0, n=2, m=1), c)
    assert c.x(0) == (-0x40) & ((1 << 64) - 1)
    assert c.nzcv() == 0x8000_0000                               # N, borrow so C = 0
    c.sp_value = A
    c.xregs[3] = T(A, 0xF)
    execute(Insn("SUBPS", d=31, n=31, m=3), c)                   # CMPP SP, X3
    assert c.nzcv() == 0x6000_0000                               # Z and C


# --- LDG -----------------------------------------------------------------------------------------
def test_ldg_aligns_down_and_merges_tag():
    c = cpu_with()
    c.set_tag(A + 0x20, 0xB)
    c.xregs[1] = A + 0x10
    c.xregs[0] = 0xFFFF_FFFF_FFFF_FFFF
    execute(Insn("LDG", t=0, n=1, offset=0x1F - 0xF), c)        # A + 0x20 exactly
    assert c.x(0) == T(0xFFFF_FFFF_FFFF_FFFF, 0xB)
    c.xregs[1] = A + 0x2F                                        # unaligned: Align(addr, 16)
    execute(Insn("LDG", t=0, n=1, offset=0), c)
    assert p.AllocationTagFromAddress(c.x(0)) == 0xB


def test_ldg_untagged_disabled_and_xzr():
    c = cpu_with()
    c.set_tag(A, 4)
    c.untagged_pages.add(A)
    c.xregs[1] = A
    c.xregs[0] = T(A, 0xF)
    execute(Insn("LDG", t=0, n=1, offset=0), c)
    assert c.x(0) == A                                           # Untagged reads 0
    c.untagged_pages.clear()
    c.sysregs["SCTLR_EL1"] = 0
    execute(Insn("LDG", t=0, n=1, offset=0), c)
    assert c.x(0) == A                                           # disabled reads 0
    execute(Insn("LDG", t=31, n=1, offset=0), c)                 # XZR: result discarded


def test_ldg_sp_alignment_check():
    c = cpu_with(SCTLR_EL1=p.SCTLR_ATA | p.SCTLR_SA)
    c.sp_value = A + 8
    with pytest.raises(faults.SPAlignmentFault):
        execute(Insn("LDG", t=0, n=31, offset=8), c)
    c.sysregs["SCTLR_EL1"] = p.SCTLR_ATA
    execute(Insn("LDG", t=0, n=31, offset=8), c)                 # SA = 0: no check


# --- STG family --------------------------------------------------------------------------------
@pytest.mark.parametrize("form,expect_base", [("offset", A), ("pre", A + 32), ("post", A + 32)])
def test_stg_forms(form, expect_base):
    c = cpu_with()
    c.xregs[0] = T(0, 6)
    c.xregs[1] = A
    execute(Insn("STG", form=form, t=0, n=1, offset=32), c)
    target = A if form == "post" else A + 32
    assert c.tag_at(target) == 6 and len(c.tags) == 1
    assert c.x(1) == expect_base


def test_stg_alignment_fault_changes_nothing():
    c = cpu_with()
    c.xregs[0] = T(0, 6)
    c.xregs[1] = A + 8
    with pytest.raises(faults.AlignmentFault) as e:
        execute(Insn("STG", form="pre", t=0, n=1, offset=16), c)
    assert e.value.va == A + 24 and e.value.write
    assert c.x(1) == A + 8 and not c.tags
    # post-index checks the base itself
    c.xregs[1] = A + 8
    with pytest.raises(faults.AlignmentFault):
        execute(Insn("STG", form="post", t=0, n=1, offset=8), c)


def test_stg_translation_fault_no_writeback():
    c = cpu_with()
    c.unmapped_pages.add(A)
    c.xregs[1] = A
    with pytest.raises(faults.TranslationFault):
        execute(Insn("STG", form="post", t=0, n=1, offset=16), c)
    assert c.x(1) == A


def test_stg_tag_from_sp_and_disabled():
    c = cpu_with()
    c.sp_value = T(0x1000, 0xD)
    c.xregs[1] = T(A, 2)
    execute(Insn("STG", form="offset", t=31, n=1, offset=0), c)   # STG SP, [X1]
    assert c.tag_at(A) == 0xD
    c.sysregs["SCTLR_EL1"] = 0
    c.xregs[0] = T(0, 1)
    execute(Insn("STG", form="offset", t=0, n=1, offset=0), c)    # disabled: no tag stored
    assert c.tag_at(A) == 0xD


def test_stzg_st2g_stz2g():
    c = cpu_with()
    c.mem[:] = b"\xAA" * len(c.mem)
    c.xregs[0] = T(0, 3)
    c.xregs[1] = A + 0x10
    execute(Insn("ST2G", form="offset", t=0, n=1, offset=0), c)
    assert [c.tag_at(A + i * 16) for i in range(4)] == [0, 3, 3, 0]
    assert c.read(A + 0x10, 32) == b"\xAA" * 32                  # ST2G leaves data
    execute(Insn("STZG", form="offset", t=0, n=1, offset=0x40), c)
    assert c.read(A + 0x50, 16) == bytes(16) and c.read(A + 0x60, 1) == b"\xAA"
    c.sysregs["SCTLR_EL1"] = 0                                   # zeroing even when disabled
    execute(Insn("STZ2G", form="pre", t=0, n=1, offset=0x80), c)
    assert c.read(A + 0x90, 32) == bytes(32) and c.read(A + 0xB0, 1) == b"\xAA"
    assert c.tag_at(A + 0x90) == 0 and c.x(1) == A + 0x90


def test_stz2g_across_a_page_boundary_faults_before_any_effect():
    """A faulting instruction has no effect (Arm ARM D1.3: a synchronous exception is taken
    before the instruction changes state): STZ2G whose second granule is on an unmapped page
    leaves the first granule's data and tag and the base register as they were."""
    c = cpu_with()
    c.mem[:] = b"\xAA" * len(c.mem)
    page = A + 0x1000
    c.unmapped_pages.add(page)
    c.xregs[0] = T(0, 5)
    c.xregs[1] = page - 16
    with pytest.raises(faults.TranslationFault) as exc:
        execute(Insn("STZ2G", form="pre", t=0, n=1, offset=0), c)
    assert exc.value.va == page and exc.value.write
    assert c.read(page - 16, 16) == b"\xAA" * 16 and c.tag_at(page - 16) == 0
    assert c.x(1) == page - 16


def test_stgp_stores_pair_and_tag_from_address():
    c = cpu_with()
    c.xregs[2] = 0x1122334455667788
    c.xregs[3] = 0x99AABBCCDDEEFF00
    c.xregs[1] = T(A, 0xE)
    execute(Insn("STGP", form="post", t=2, t2=3, n=1, offset=-64), c)
    assert c.read(A, 16) == bytes.fromhex("8877665544332211" "00ffeeddccbbaa99")
    assert c.tag_at(A) == 0xE                                    # tag from the address
    assert c.x(1) == T(A, 0xE) - 64
    c.xregs[1] = A + 8
    with pytest.raises(faults.AlignmentFault):
        execute(Insn("STGP", form="offset", t=2, t2=3, n=1, offset=0), c)


# --- LDGM, STGM, STZGM -------------------------------------------------------------------------
@given(st.integers(2, 6), st.integers(0, 0xF00 // 16), st.integers(0, (1 << 64) - 1),
       st.booleans())
@settings(max_examples=100)
def test_ldgm_stgm_round_trip_every_bs(bs, granule, value, bulk):
    c = (BulkFakeCpu if bulk else FakeCpu)(GMID_EL1=bs)
    size = 4 << bs
    addr = A + 16 * granule
    block = addr & ~(size - 1)
    count = size // 16
    index = (block >> 4) & 0xF
    field = ((1 << (4 * count)) - 1) << (4 * index)
    c.xregs[0] = value
    c.xregs[1] = T(addr, 0x5)                                    # pointer tag is irrelevant
    execute(Insn("STGM", t=0, n=1), c)
    # the tag for the granule at G is Xt<4*G<7:4>+3 : 4*G<7:4>>
    for i in range(count):
        g = block + 16 * i
        assert c.tag_at(g) == (value >> (4 * ((g >> 4) & 0xF))) & 0xF
    assert len(c.tags) <= count
    execute(Insn("LDGM", t=2, n=1), c)
    assert c.x(2) == value & field                               # bits outside are 0


def test_ldgm_stgm_undefined_at_el0_and_disabled():
    c = cpu_with(el=0)
    c.xregs[1] = A
    for name in ("LDGM", "STGM", "STZGM"):
        with pytest.raises(faults.Undefined):
            execute(Insn(name, t=0, n=1), c)
    c = cpu_with(SCTLR_EL1=0, GMID_EL1=6)
    c.set_tag(A, 9)
    c.xregs[0] = 0x1111_1111_1111_1111
    c.xregs[1] = A
    execute(Insn("LDGM", t=2, n=1), c)
    assert c.x(2) == 0
    execute(Insn("STGM", t=0, n=1), c)
    assert c.tag_at(A) == 9 and c.tag_at(A + 16) == 0


def test_stzgm_uses_dczid_block_and_low_tag_bits():
    c = cpu_with(GMID_EL1=6, DCZID_EL0=4)                      # 64-byte DC ZVA block
    c.mem[:] = b"\x55" * len(c.mem)
    c.xregs[0] = T(0xA, 0x3)                                     # tag = Xt<3:0> = 0xA
    c.xregs[1] = A + 0x4C
    execute(Insn("STZGM", t=0, n=1), c)
    assert c.read(A + 0x40, 64) == bytes(64)
    assert c.read(A + 0x3F, 1) == b"\x55" and c.read(A + 0x80, 1) == b"\x55"
    assert [c.tag_at(A + 0x40 + 16 * i) for i in range(4)] == [0xA] * 4
    assert c.tag_at(A + 0x80) == 0


# --- DC GVA, DC GZVA, tag maintenance -----------------------------------------------------------
def test_dc_gva_gzva():
    c = cpu_with(DCZID_EL0=4)
    c.mem[:] = b"\x55" * len(c.mem)
    c.xregs[0] = T(A + 0x47, 0x6)
    execute(Insn("DC GVA", t=0), c)
    assert [c.tag_at(A + 0x40 + 16 * i) for i in range(4)] == [6] * 4
    assert c.read(A + 0x40, 1) == b"\x55"
    c.xregs[0] = T(A + 0x80, 0x7)
    execute(Insn("DC GZVA", t=0), c)
    assert c.read(A + 0x80, 64) == bytes(64) and c.tag_at(A + 0xB0) == 7


def test_dc_gva_traps():
    c = cpu_with(el=0, SCTLR_EL1=p.SCTLR_ATA0)                    # DZE = 0
    c.xregs[0] = A
    with pytest.raises(faults.SysRegTrap) as e:
        execute(Insn("DC GZVA", t=0), c)
    assert e.value.target_el == 1
    assert e.value.iss == sysreg_iss_by_name("DC GZVA", 0, False)
    c.sysregs["SCTLR_EL1"] |= p.SCTLR_DZE
    execute(Insn("DC GZVA", t=0), c)
    c = cpu_with(el=1, el2=True, HCR_EL2=p.HCR_ATA | p.HCR_TDZ)
    with pytest.raises(faults.SysRegTrap) as e:
        execute(Insn("DC GVA", t=0), c)
    assert e.value.target_el == 2


def test_dc_tag_maintenance():
    c = cpu_with(el=1)
    for name in ("DC CGVAC", "DC CIGDVAC", "DC IGVAC", "DC CGSW"):
        execute(Insn(name, t=0), c)                               # no caches: no effect
    assert not c.tags
    c = cpu_with(el=0)
    with pytest.raises(faults.Undefined):
        execute(Insn("DC IGVAC", t=0), c)
    with pytest.raises(faults.SysRegTrap) as e:
        execute(Insn("DC CGVAC", t=4), c)                         # SCTLR_EL1.UCI = 0
    assert e.value.target_el == 1 and (e.value.iss >> 5) & 31 == 4
    c.sysregs["SCTLR_EL1"] |= p.SCTLR_UCI
    execute(Insn("DC CGVAC", t=4), c)


# --- TCO and the system registers --------------------------------------------------------------
def test_tco():
    c = cpu_with(el=0)
    execute(Insn("MSR TCO imm", imm=1), c)
    assert c.tco == 1
    execute(Insn("MRS", t=0, reg="TCO"), c)
    assert c.x(0) == 1 << 25
    c.xregs[1] = ~(1 << 25) & ((1 << 64) - 1)
    execute(Insn("MSR", t=1, reg="TCO"), c)                       # TCO = Xt<25>
    assert c.tco == 0


def test_mte_registers_el0_undefined():
    c = cpu_with(el=0)
    for reg in ("GCR_EL1", "RGSR_EL1", "TFSR_EL1", "TFSRE0_EL1", "GMID_EL1", "TFSR_EL2"):
        with pytest.raises(faults.Undefined):
            execute(Insn("MRS", t=0, reg=reg), c)


def test_mte_registers_res0_masking():
    c = cpu_with()
    c.xregs[0] = (1 << 64) - 1
    for reg, kept in (("GCR_EL1", 0x1FFFF), ("RGSR_EL1", 0xFFFF0F), ("TFSR_EL1", 3),
                      ("TFSRE0_EL1", 3)):
        execute(Insn("MSR", t=0, reg=reg), c)
        execute(Insn("MRS", t=1, reg=reg), c)
        assert c.x(1) == kept, reg
    with pytest.raises(faults.Undefined):
        execute(Insn("MSR", t=0, reg="GMID_EL1"), c)             # read-only
    execute(Insn("MRS", t=2, reg="GMID_EL1"), c)
    assert c.x(2) == 4


def test_hcr_ata_traps_el1_registers_to_el2():
    c = cpu_with(el2=True, HCR_EL2=0)
    for reg in ("GCR_EL1", "RGSR_EL1", "TFSR_EL1", "TFSRE0_EL1"):
        for name, read in (("MRS", True), ("MSR", False)):
            with pytest.raises(faults.SysRegTrap) as e:
                execute(Insn(name, t=5, reg=reg), c)
            assert e.value.target_el == 2
            assert e.value.iss == sysreg_iss_by_name(reg, 5, read)
    execute(Insn("MRS", t=0, reg="GMID_EL1"), c)                 # not gated by ATA
    execute(Insn("MRS", t=0, reg="TCO"), c)
    c.sysregs["HCR_EL2"] = p.HCR_TID5 | p.HCR_ATA
    with pytest.raises(faults.SysRegTrap):
        execute(Insn("MRS", t=0, reg="GMID_EL1"), c)
    execute(Insn("MRS", t=0, reg="GCR_EL1"), c)


def test_el2_registers_and_e2h_redirection():
    c = cpu_with(el=2, el2=True, HCR_EL2=p.HCR_E2H, TFSR_EL1=1, TFSR_EL2=2)
    execute(Insn("MRS", t=0, reg="TFSR_EL1"), c)                 # E2H: TFSR_EL1 is TFSR_EL2
    assert c.x(0) == 2
    execute(Insn("MRS", t=0, reg="TFSR_EL12"), c)                # ... and EL12 is TFSR_EL1
    assert c.x(0) == 1
    c.sysregs["HCR_EL2"] = 0
    execute(Insn("MRS", t=0, reg="TFSR_EL1"), c)
    assert c.x(0) == 1
    with pytest.raises(faults.Undefined):
        execute(Insn("MRS", t=0, reg="TFSR_EL12"), c)
    with pytest.raises(faults.Undefined):
        execute(Insn("MRS", t=0, reg="TFSR_EL2"), cpu_with(el=1))


def test_unknown_instruction():
    with pytest.raises(UnknownInstruction):
        execute(Insn("LDR"), cpu_with())
