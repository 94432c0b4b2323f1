"""ESR values, vector offsets and SPSR packing (ESR_ELx / VBAR_ELx / SPSR_ELx descriptions)."""
from aarch64mte.semantics import faults, syndrome as s


def test_tag_check_fault_esr_matches_hardware():
    # QEMU virt, sync tag check fault on a load at EL1: ESR_EL1 = 0x96000011
    assert s.tag_check_fault_esr(False, True) == 0x96000011
    assert s.tag_check_fault_esr(True, True) == 0x96000051      # WnR (bit 6)
    assert s.tag_check_fault_esr(False, False) == 0x92000011    # from EL0: EC 0x24


def test_other_data_aborts():
    assert s.alignment_fault_esr(True, True) == 0x96000061
    dfsc = s.translation_fault_dfsc("translation", 3)
    assert dfsc == 0b000111
    assert s.data_abort_esr(dfsc, False, True) == 0x96000007
    # ISV = 1 with SAS = 3 (doubleword), SRT = 5, SF = 1
    v = s.data_abort_esr(dfsc, True, True, isv=True, sas=3, srt=5, sf=True)
    assert v == 0x96000000 | (1 << 24) | (3 << 22) | (5 << 16) | (1 << 15) | (1 << 6) | 7
    assert s.data_abort_esr(0x10, False, True, fnv=True, ea=True) & 0x600 == 0x600
    assert s.instruction_abort_esr(0b001111, False) == 0x8200000F


def test_exception_generating_instructions():
    assert s.svc_esr(0) == 0x56000000
    assert s.svc_esr(0x1234) == 0x56001234
    assert s.hvc_esr(1) == 0x5A000001
    assert s.brk_esr(0xF000) == 0xF200F000
    assert s.undefined_esr() == 0x02000000
    assert s.sp_alignment_esr() == 0x9A000000
    assert s.esr_fields(0x96000051) == (0x25, 1, 0x51)


def test_sysreg_trap_iss():
    # MRS x3, GCR_EL1: op0 3, op1 0, CRn 1, CRm 0, op2 6, Rt 3, direction 1 (read)
    iss = s.sysreg_iss_by_name("GCR_EL1", 3, True)
    assert iss == (3 << 20) | (6 << 17) | (0 << 14) | (1 << 10) | (3 << 5) | (0 << 1) | 1
    assert s.sysreg_trap_esr(iss) == 0x62000000 | iss
    # MSR TFSR_EL1, x0: op0 3, op1 0, CRn 5, CRm 6, op2 0, write
    assert s.sysreg_iss_by_name("TFSR_EL1", 0, False) == (3 << 20) | (5 << 10) | (6 << 1)
    # DC GVA, x2: SYS op0 1, op1 3, CRn 7, CRm 4, op2 3
    assert s.sysreg_encoding("DC GVA") == (1, 3, 7, 4, 3)
    assert s.sysreg_iss_by_name("DC GVA", 2, False) == \
        (1 << 20) | (3 << 17) | (3 << 14) | (7 << 10) | (2 << 5) | (4 << 1)


def test_syndrome_for_faults():
    assert s.syndrome_for(faults.TagCheckFault(0x0A00_0000_4000_0000, False), 1, 1) == \
        (0x96000011, 0x0A00_0000_4000_0000)
    assert s.syndrome_for(faults.AlignmentFault(0x4000_0008, True), 0, 1) == \
        (0x92000061, 0x4000_0008)
    assert s.syndrome_for(faults.Undefined(), 0, 1) == (0x02000000, None)
    assert s.syndrome_for(faults.SysRegTrap(2, 0x3C0401), 1, 2) == (0x623C0401, None)
    assert s.syndrome_for(faults.SPAlignmentFault(0x8), 1, 1) == (0x9A000000, None)
    tf = faults.TranslationFault(0x1000, True, 0b000101, stage2=True, ipa=0x1000)
    assert s.syndrome_for(tf, 2, 2)[0] >> 26 == 0x24          # stage 2: always "lower EL"


def test_vector_offsets():
    assert s.vector_offset("sync", 1, 1, 0) == 0x000
    assert s.vector_offset("irq", 1, 1, 0) == 0x080
    assert s.vector_offset("sync", 1, 1, 1) == 0x200
    assert s.vector_offset("serror", 1, 1, 1) == 0x380
    assert s.vector_offset("sync", 1, 0, 0) == 0x400
    assert s.vector_offset("fiq", 2, 1, 1) == 0x500
    assert s.vector_offset("sync", 2, 1, 1, lower_aarch32=True) == 0x600


def test_spsr_pack_unpack():
    v = s.pack_spsr(0x6000_0000, 1, 1, daif=0xF, tco=1)
    assert v == 0x6000_0000 | (1 << 25) | 0x3C0 | 0b0101
    f = s.unpack_spsr(v)
    assert (f["nzcv"], f["el"], f["sp_sel"], f["daif"], f["tco"]) == (0x6000_0000, 1, 1, 0xF, 1)
    assert s.pack_spsr(0, 0, 0, daif=0) == 0                   # EL0t
