"""System registers: the MTE ones held in Python, the rest in Unicorn, all by name.

Unicorn's MAX CPU has no MTE: GCR_EL1, RGSR_EL1, TFSR_EL1, TFSRE0_EL1, GMID_EL1 and PSTATE.TCO
are UNDEFINED there, so the machine holds them here and emulates the guest's MRS/MSR of them.
ID_AA64PFR1_EL1 reads with MTE = 0b0011 (FEAT_MTE3: asymmetric TCF is offered).
"""
from __future__ import annotations

from unicorn import arm64_const as A

# (op0, op1, CRn, CRm, op2) of the registers the machine knows by name.
ENCODINGS = {
    "GCR_EL1": (3, 0, 1, 0, 6),
    "RGSR_EL1": (3, 0, 1, 0, 5),
    "TFSR_EL1": (3, 0, 5, 6, 0),
    "TFSRE0_EL1": (3, 0, 5, 6, 1),
    "GMID_EL1": (3, 1, 0, 0, 4),
    "TCO": (3, 3, 4, 2, 7),
    "ID_AA64PFR1_EL1": (3, 0, 0, 4, 1),
    "TFSR_EL2": (3, 4, 5, 6, 0),
    "SCTLR_EL1": (3, 0, 1, 0, 0),
    "ACTLR_EL1": (3, 0, 1, 0, 1),
    "CPACR_EL1": (3, 0, 1, 0, 2),
    "TTBR0_EL1": (3, 0, 2, 0, 0),
    "TTBR1_EL1": (3, 0, 2, 0, 1),
    "TCR_EL1": (3, 0, 2, 0, 2),
    "SPSR_EL1": (3, 0, 4, 0, 0),
    "ELR_EL1": (3, 0, 4, 0, 1),
    "SP_EL0": (3, 0, 4, 1, 0),
    "ESR_EL1": (3, 0, 5, 2, 0),
    "FAR_EL1": (3, 0, 6, 0, 0),
    "PAR_EL1": (3, 0, 7, 4, 0),
    "MAIR_EL1": (3, 0, 10, 2, 0),
    "VBAR_EL1": (3, 0, 12, 0, 0),
    "CONTEXTIDR_EL1": (3, 0, 13, 0, 1),
    "TPIDR_EL1": (3, 0, 13, 0, 4),
    "TPIDR_EL0": (3, 3, 13, 0, 2),
    "TPIDRRO_EL0": (3, 3, 13, 0, 3),
    "CNTFRQ_EL0": (3, 3, 14, 0, 0),
    "CNTVCT_EL0": (3, 3, 14, 0, 2),
    "DCZID_EL0": (3, 3, 0, 0, 7),
    "MIDR_EL1": (3, 0, 0, 0, 0),
    "MPIDR_EL1": (3, 0, 0, 0, 5),
    "ID_AA64PFR0_EL1": (3, 0, 0, 4, 0),
    "ID_AA64MMFR0_EL1": (3, 0, 0, 7, 0),
    "ID_AA64ISAR0_EL1": (3, 0, 0, 6, 0),
    "SP_EL1": (3, 4, 4, 1, 0),
    "HCR_EL2": (3, 4, 1, 1, 0),
    "SCTLR_EL2": (3, 4, 1, 0, 0),
    "TCR_EL2": (3, 4, 2, 0, 2),
    "VBAR_EL2": (3, 4, 12, 0, 0),
    "ESR_EL2": (3, 4, 5, 2, 0),
    "FAR_EL2": (3, 4, 6, 0, 0),
    "ELR_EL2": (3, 4, 4, 0, 1),
    "SPSR_EL2": (3, 4, 4, 0, 0),
    "HPFAR_EL2": (3, 4, 6, 0, 4),
    "VTCR_EL2": (3, 4, 2, 1, 2),
    "VTTBR_EL2": (3, 4, 2, 1, 0),
    "TTBR0_EL2": (3, 4, 2, 0, 0),
    "TTBR1_EL2": (3, 4, 2, 0, 1),
    "MAIR_EL2": (3, 4, 10, 2, 0),
    "CPTR_EL2": (3, 4, 1, 1, 2),
    "HSTR_EL2": (3, 4, 1, 1, 3),
    "MDCR_EL2": (3, 4, 1, 1, 1),
    "VPIDR_EL2": (3, 4, 0, 0, 0),
    "VMPIDR_EL2": (3, 4, 0, 0, 5),
    "CNTHCTL_EL2": (3, 4, 14, 1, 0),
    "CNTVOFF_EL2": (3, 4, 14, 0, 3),
    "TPIDR_EL2": (3, 4, 13, 0, 2),
    "CONTEXTIDR_EL2": (3, 4, 13, 0, 1),
    "ACTLR_EL2": (3, 4, 1, 0, 1),
    "AFSR0_EL2": (3, 4, 5, 1, 0),
    "SCTLR_EL12": (3, 5, 1, 0, 0),
    "CPACR_EL12": (3, 5, 1, 0, 2),
    "TTBR0_EL12": (3, 5, 2, 0, 0),
    "TTBR1_EL12": (3, 5, 2, 0, 1),
    "TCR_EL12": (3, 5, 2, 0, 2),
    "SPSR_EL12": (3, 5, 4, 0, 0),
    "ELR_EL12": (3, 5, 4, 0, 1),
    "ESR_EL12": (3, 5, 5, 2, 0),
    "FAR_EL12": (3, 5, 6, 0, 0),
    "MAIR_EL12": (3, 5, 10, 2, 0),
    "VBAR_EL12": (3, 5, 12, 0, 0),
    "CONTEXTIDR_EL12": (3, 5, 13, 0, 1),
    "ID_AA64MMFR1_EL1": (3, 0, 0, 7, 1),
    "ID_AA64MMFR2_EL1": (3, 0, 0, 7, 2),
    "ID_AA64PFR2_EL1": (3, 0, 0, 4, 2),
    "ID_AA64ISAR1_EL1": (3, 0, 0, 6, 1),
    "ID_AA64DFR0_EL1": (3, 0, 0, 5, 0),
    "CTR_EL0": (3, 3, 0, 0, 1),
    "SCR_EL3": (3, 6, 1, 1, 0),
}
BY_ENCODING = {v: k for k, v in ENCODINGS.items()}

# Registers Unicorn exposes directly (faster and exact for SP_ELx/ELR/...).
UC_IDS = {
    "ELR_EL1": A.UC_ARM64_REG_ELR_EL1,
    "ESR_EL1": A.UC_ARM64_REG_ESR_EL1,
    "FAR_EL1": A.UC_ARM64_REG_FAR_EL1,
    "VBAR_EL1": A.UC_ARM64_REG_VBAR_EL1,
    "SP_EL0": A.UC_ARM64_REG_SP_EL0,
    "SP_EL1": A.UC_ARM64_REG_SP_EL1,
    "TTBR0_EL1": A.UC_ARM64_REG_TTBR0_EL1,
    "TTBR1_EL1": A.UC_ARM64_REG_TTBR1_EL1,
    "MAIR_EL1": A.UC_ARM64_REG_MAIR_EL1,
    "TPIDR_EL0": A.UC_ARM64_REG_TPIDR_EL0,
    "TPIDRRO_EL0": A.UC_ARM64_REG_TPIDRRO_EL0,
    "TPIDR_EL1": A.UC_ARM64_REG_TPIDR_EL1,
    "PAR_EL1": A.UC_ARM64_REG_PAR_EL1,
    "ELR_EL2": A.UC_ARM64_REG_ELR_EL2,
    "ESR_EL2": A.UC_ARM64_REG_ESR_EL2,
    "FAR_EL2": A.UC_ARM64_REG_FAR_EL2,
    "VBAR_EL2": A.UC_ARM64_REG_VBAR_EL2,
}

MTE_REGS = ("GCR_EL1", "RGSR_EL1", "TFSR_EL1", "TFSRE0_EL1", "GMID_EL1")
MTE_STATE = MTE_REGS + ("TFSR_EL2", "TCO")

# RES0 masks on write (Arm ARM register descriptions).
GCR_MASK = 0x1FFFF                 # RRND (16), Exclude (15:0)
RGSR_MASK = 0xFFFF0F               # SEED (23:8), TAG (3:0)
TFSR_MASK = 0x3                    # TF1 (1), TF0 (0)


class MteRegs:
    """The MTE system registers, PSTATE.TCO and the seeded random source behind IRG with
    GCR_EL1.RRND = 1, as Python attributes (``CoreMteRegs`` keeps them in the shared core
    instead, where the native MTE trap reads and writes them)."""

    def __init__(self, gmid_bs: int = 4) -> None:
        self.gcr_el1 = self.rgsr_el1 = self.tfsr_el1 = self.tfsre0_el1 = self.tfsr_el2 = 0
        self.tco = 0
        self.rng = 0
        self.gmid_bs = gmid_bs

    @property
    def gmid_el1(self) -> int:
        return self.gmid_bs & 0xF

    def read(self, name: str) -> int:
        if name == "GMID_EL1":
            return self.gmid_el1
        if name == "TCO":
            return self.tco << 25
        return getattr(self, name.lower())

    def write(self, name: str, value: int) -> None:
        if name == "GCR_EL1":
            self.gcr_el1 = value & GCR_MASK
        elif name == "RGSR_EL1":
            self.rgsr_el1 = value & RGSR_MASK
        elif name == "TFSR_EL1":
            self.tfsr_el1 = value & TFSR_MASK
        elif name == "TFSRE0_EL1":
            self.tfsre0_el1 = value & TFSR_MASK
        elif name == "TFSR_EL2":
            self.tfsr_el2 = value & TFSR_MASK
        elif name == "TCO":
            self.tco = (value >> 25) & 1
        elif name == "GMID_EL1":
            pass                   # read-only
        else:
            raise KeyError(name)


def _core_field(name: str):
    return property(lambda s: getattr(s._core, name), lambda s, v: setattr(s._core, name, v))


class CoreMteRegs(MteRegs):
    """MteRegs whose values live in the shared ``native.Core``."""

    def __init__(self, core, gmid_bs: int = 4) -> None:
        self._core = core
        core.gmid_bs = gmid_bs

    gcr_el1 = _core_field("gcr")
    rgsr_el1 = _core_field("rgsr")
    tfsr_el1 = _core_field("tfsr_el1")
    tfsre0_el1 = _core_field("tfsre0_el1")
    tfsr_el2 = _core_field("tfsr_el2")
    tco = _core_field("tco")
    rng = _core_field("rng")
    gmid_bs = property(lambda s: s._core.gmid_bs)


ID_AA64PFR1_MTE3 = 3 << 8

# Writing one of these changes a translation or the tag checks: the machine's caches follow.
TRANSLATION_REGS = {ENCODINGS[n] for n in (
    "SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1",
    "SCTLR_EL2", "TCR_EL2", "TTBR0_EL2", "TTBR1_EL2", "MAIR_EL2", "HCR_EL2", "VTTBR_EL2",
    "VTCR_EL2", "SCTLR_EL12", "TCR_EL12", "TTBR0_EL12", "TTBR1_EL12", "MAIR_EL12")}
