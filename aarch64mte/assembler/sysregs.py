"""System register, PSTATE field and system instruction names Keystone 0.9.2 does not know,
that a hypervisor or kernel uses: the FEAT_VHE registers (TTBR1_EL2, CONTEXTIDR_EL2, the EL2
virtual timer) and their *_EL12 / *_EL02 aliases, the pointer-authentication keys, PAN/UAO/DIT/
SSBS, and the FEAT_PAN2 and FEAT_TLBIOS operations. MTE registers are in the isa table.
Encodings (op0, op1, CRn, CRm, op2) from the Arm ARM's register descriptions; the tests check
each against GNU as.
"""
from __future__ import annotations

import re

from .extra import ExtraError

SYSREGS: dict[str, tuple[int, int, int, int, int]] = {
    # FEAT_VHE: EL2 registers and the EL1/EL0 registers reached from EL2 with E2H=1
    "ttbr1_el2": (3, 4, 2, 0, 1), "contextidr_el2": (3, 4, 13, 0, 1),
    "cnthv_tval_el2": (3, 4, 14, 3, 0), "cnthv_ctl_el2": (3, 4, 14, 3, 1),
    "cnthv_cval_el2": (3, 4, 14, 3, 2),
    "sctlr_el12": (3, 5, 1, 0, 0), "cpacr_el12": (3, 5, 1, 0, 2),
    "ttbr0_el12": (3, 5, 2, 0, 0), "ttbr1_el12": (3, 5, 2, 0, 1), "tcr_el12": (3, 5, 2, 0, 2),
    "spsr_el12": (3, 5, 4, 0, 0), "elr_el12": (3, 5, 4, 0, 1),
    "afsr0_el12": (3, 5, 5, 1, 0), "afsr1_el12": (3, 5, 5, 1, 1), "esr_el12": (3, 5, 5, 2, 0),
    "far_el12": (3, 5, 6, 0, 0), "mair_el12": (3, 5, 10, 2, 0), "amair_el12": (3, 5, 10, 3, 0),
    "vbar_el12": (3, 5, 12, 0, 0), "contextidr_el12": (3, 5, 13, 0, 1),
    "cntkctl_el12": (3, 5, 14, 1, 0),
    "cntp_tval_el02": (3, 5, 14, 2, 0), "cntp_ctl_el02": (3, 5, 14, 2, 1),
    "cntp_cval_el02": (3, 5, 14, 2, 2),
    "cntv_tval_el02": (3, 5, 14, 3, 0), "cntv_ctl_el02": (3, 5, 14, 3, 1),
    "cntv_cval_el02": (3, 5, 14, 3, 2),
    # FEAT_RAS, FEAT_NV2, FEAT_SEL2, FEAT_CSV2 registers of EL2
    "vsesr_el2": (3, 4, 5, 2, 3), "vdisr_el2": (3, 4, 12, 1, 1), "vncr_el2": (3, 4, 2, 2, 0),
    "vsttbr_el2": (3, 4, 2, 6, 0), "vstcr_el2": (3, 4, 2, 6, 2),
    "scxtnum_el2": (3, 4, 13, 0, 7), "scxtnum_el12": (3, 5, 13, 0, 7),
    # FEAT_TRF trace filter controls; the GIC's list-register status (read-only: GNU as only
    # warns about a write, and so encodes it)
    "trfcr_el2": (3, 4, 1, 2, 1), "trfcr_el12": (3, 5, 1, 2, 1),
    "ich_elrsr_el2": (3, 4, 12, 11, 5),
    # FEAT_PAuth keys
    "apiakeylo_el1": (3, 0, 2, 1, 0), "apiakeyhi_el1": (3, 0, 2, 1, 1),
    "apibkeylo_el1": (3, 0, 2, 1, 2), "apibkeyhi_el1": (3, 0, 2, 1, 3),
    "apdakeylo_el1": (3, 0, 2, 2, 0), "apdakeyhi_el1": (3, 0, 2, 2, 1),
    "apdbkeylo_el1": (3, 0, 2, 2, 2), "apdbkeyhi_el1": (3, 0, 2, 2, 3),
    "apgakeylo_el1": (3, 0, 2, 3, 0), "apgakeyhi_el1": (3, 0, 2, 3, 1),
    # PSTATE fields as registers
    "pan": (3, 0, 4, 2, 3), "uao": (3, 0, 4, 2, 4), "dit": (3, 3, 4, 2, 5),
    "ssbs": (3, 3, 4, 2, 6),
}
# MSR <pstatefield>, #imm: 0xD500401F | op1<<16 | imm<<8 | op2<<5
PSTATE_FIELDS: dict[str, tuple[int, int]] = {"uao": (0, 3), "pan": (0, 4), "ssbs": (3, 1),
                                             "dit": (3, 2)}
# SYS aliases: AT and TLBI operations (op1, CRn, CRm, op2) and whether they take Xt
SYS_OPS: dict[tuple[str, str], tuple[int, int, int, int, bool]] = {
    ("at", "s1e1rp"): (0, 7, 9, 0, True), ("at", "s1e1wp"): (0, 7, 9, 1, True),
    ("tlbi", "vmalle1os"): (0, 8, 1, 0, False), ("tlbi", "vae1os"): (0, 8, 1, 1, True),
    ("tlbi", "aside1os"): (0, 8, 1, 2, True), ("tlbi", "vaae1os"): (0, 8, 1, 3, True),
    ("tlbi", "vale1os"): (0, 8, 1, 5, True), ("tlbi", "vaale1os"): (0, 8, 1, 7, True),
    ("tlbi", "ipas2e1os"): (4, 8, 4, 0, True), ("tlbi", "ipas2le1os"): (4, 8, 4, 4, True),
    ("tlbi", "alle2os"): (4, 8, 1, 0, False), ("tlbi", "vae2os"): (4, 8, 1, 1, True),
    ("tlbi", "alle1os"): (4, 8, 1, 4, False), ("tlbi", "vale2os"): (4, 8, 1, 5, True),
    ("tlbi", "vmalls12e1os"): (4, 8, 1, 6, False),
}
MNEMONICS = frozenset({"mrs", "msr", "at", "tlbi"})

_XT = re.compile(r"(?i)x([0-9]|[12][0-9]|30)|(xzr)")


def _xt(mn: str, text: str) -> int:
    m = _XT.fullmatch(text.strip())
    if not m:
        raise ExtraError(f"{mn}: '{text.strip()}' is not a general register (x0-x30 or xzr)")
    return 31 if m.group(2) else int(m.group(1))


def _fields(key: tuple[int, int, int, int, int]) -> int:
    op0, op1, crn, crm, op2 = key
    return (op0 - 2) << 19 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5


def encode(mnemonic: str, ops: str, evaluate) -> int | None:
    """The word for MRS/MSR/AT/TLBI naming one of the registers or operations above; None when
    the operands name something else (Keystone's business)."""
    mn = mnemonic.lower()
    parts = [p.strip() for p in ops.split(",")]
    if mn == "mrs" and len(parts) == 2 and parts[1].lower() in SYSREGS:
        return 0xD5300000 | _fields(SYSREGS[parts[1].lower()]) | _xt(mn, parts[0])
    if mn == "msr" and len(parts) == 2:
        name = parts[0].lower()
        if name in PSTATE_FIELDS and parts[1].startswith("#"):
            imm = evaluate(parts[1][1:])
            if not isinstance(imm, int) or not 0 <= imm <= 1:
                raise ExtraError(f"msr {name}: immediate {parts[1][1:]} is out of range 0..1")
            op1, op2 = PSTATE_FIELDS[name]
            return 0xD500401F | op1 << 16 | imm << 8 | op2 << 5
        if name in SYSREGS:
            return 0xD5100000 | _fields(SYSREGS[name]) | _xt(mn, parts[1])
    if mn in ("at", "tlbi") and parts and (mn, parts[0].lower()) in SYS_OPS:
        op1, crn, crm, op2, has_xt = SYS_OPS[(mn, parts[0].lower())]
        if len(parts) != (2 if has_xt else 1):
            raise ExtraError(f"{mn} {parts[0]} " + ("needs a register" if has_xt else
                                                      "takes no register"))
        rt = _xt(mn, parts[1]) if has_xt else 31
        return 0xD5080000 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5 | rt
    return None
