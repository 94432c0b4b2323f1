"""The one table of MTE encodings (FEAT_MTE and FEAT_MTE2).

Every bit position of every MTE instruction and system register in the project is written
here and nowhere else. Each form is a fixed pattern (`fixed` under `mask`) plus operand fields.
A field says where its bits live, whether they are signed, the scale applied to them, and for a
register field what register number 31 means (`'sp'` or `'xzr'`, as the pseudocode says).
`syntax` is the GNU-as spelling, written in a small template language read by `isa.syntax`:

    <d:sp>  register field d, number 31 spelled "sp"       <d:zr>  ... spelled "xzr"
    #<offset>  immediate printed in decimal                #<offset:x>  ... in hex
    <reg>   system register name (from SYSREGS)            {...}  optional part; omitted when
                                                                  its fields have their default
Encodings follow the Arm Architecture Reference Manual (DDI 0487), checked against
`aarch64-linux-gnu-as -march=armv8.5-a+memtag` and `llvm-mc -mattr=+mte`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """One operand field: `width` bits starting at bit `lo`."""

    name: str                 # Insn attribute: d, n, m, t, t2, offset, tag_offset, imm, reg
    lo: int
    width: int
    kind: str = "imm"         # 'reg' (general register), 'imm' (immediate), 'sysreg'
    signed: bool = False
    scale: int = 1            # value = raw * scale (offsets are in bytes, granules of 16)
    reg31: str | None = None  # for 'reg': 'sp' or 'xzr'
    default: int | None = None  # value when the operand is omitted in assembly

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lo

    @property
    def lo_value(self) -> int:
        if self.kind != "imm":
            return 0
        return (-(1 << (self.width - 1)) if self.signed else 0) * self.scale

    @property
    def hi_value(self) -> int:
        if self.kind != "imm":
            return (1 << self.width) - 1
        top = (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1
        return top * self.scale


@dataclass(frozen=True)
class Form:
    """One encoding form of one instruction."""

    name: str                 # Insn.name, e.g. 'STG', 'DC GVA', 'MSR TCO imm', 'MRS'
    form: str | None          # 'offset' | 'pre' | 'post' for the STG family and STGP
    fixed: int                # value of the bits under `mask`
    mask: int                 # bits fixed by the form (everything that is not an operand)
    fields: tuple[Field, ...]
    syntax: str               # GNU-as template (see module docstring)
    feature: str              # 'FEAT_MTE' (EL0-usable instructions) or 'FEAT_MTE2'
    mnemonic: str = ""        # lower-case mnemonic in assembly (derived from syntax)
    alias_of: str | None = None  # for pure assembler aliases (CMPP) -- decode never yields it
    fixed_fields: tuple[tuple[str, int], ...] = ()  # alias field values, e.g. (('d', 31),)

    def __post_init__(self):
        if not self.mnemonic:
            object.__setattr__(self, "mnemonic", self.syntax.split()[0])
        used = self.mask
        for f in self.fields:
            assert not (used & f.mask), (self.name, self.form, f.name)
            used |= f.mask
        assert used == 0xFFFFFFFF, (self.name, self.form, hex(used))
        assert self.fixed & ~self.mask == 0, (self.name, self.form)

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True)
class SysReg:
    """An MTE system register (or the TCO PSTATE field as a register)."""

    name: str
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int
    readable: bool = True
    writable: bool = True
    feature: str = "FEAT_MTE2"

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        return (self.op0, self.op1, self.crn, self.crm, self.op2)

    @property
    def field15(self) -> int:
        """The 15-bit o0:op1:CRn:CRm:op2 value of MRS/MSR bits 19:5 (op0 = 2 + o0)."""
        return ((self.op0 - 2) << 14) | (self.op1 << 11) | (self.crn << 7) | (self.crm << 3) | self.op2


SYSREGS: tuple[SysReg, ...] = (
    SysReg("TCO", 3, 3, 4, 2, 7, feature="FEAT_MTE"),
    SysReg("GCR_EL1", 3, 0, 1, 0, 6),
    SysReg("RGSR_EL1", 3, 0, 1, 0, 5),
    SysReg("TFSR_EL1", 3, 0, 5, 6, 0),
    SysReg("TFSRE0_EL1", 3, 0, 5, 6, 1),
    SysReg("TFSR_EL2", 3, 4, 5, 6, 0),
    SysReg("TFSR_EL12", 3, 5, 5, 6, 0),
    SysReg("TFSR_EL3", 3, 6, 5, 6, 0),
    SysReg("GMID_EL1", 3, 1, 0, 0, 4, writable=False),
)
SYSREG_BY_NAME: dict[str, SysReg] = {r.name: r for r in SYSREGS}
SYSREG_BY_KEY: dict[tuple[int, int, int, int, int], SysReg] = {r.key: r for r in SYSREGS}
SYSREG_BY_FIELD15: dict[int, SysReg] = {r.field15: r for r in SYSREGS}


def sysreg_name(op0: int, op1: int, crn: int, crm: int, op2: int) -> str | None:
    """(op0, op1, CRn, CRm, op2) -> MTE system register name, or None."""
    r = SYSREG_BY_KEY.get((op0, op1, crn, crm, op2))
    return r.name if r else None


# --- field shorthands -------------------------------------------------------------------

def _rd(lo=0, reg31="sp", name="d", default=None):
    return Field(name, lo, 5, "reg", reg31=reg31, default=default)


RD_SP, RD_ZR = _rd(0, "sp", "d"), _rd(0, "xzr", "d")
RN_SP = _rd(5, "sp", "n")
RM_SP, RM_ZR = _rd(16, "sp", "m"), _rd(16, "xzr", "m")
RT_SP, RT_ZR = _rd(0, "sp", "t"), _rd(0, "xzr", "t")
RT2_ZR = _rd(10, "xzr", "t2")
SIMM9_16 = Field("offset", 12, 9, signed=True, scale=16, default=0)
SIMM7_16 = Field("offset", 15, 7, signed=True, scale=16, default=0)
UIMM6_16 = Field("offset", 16, 6, scale=16)
UIMM4 = Field("tag_offset", 10, 4)
SYSREG15 = Field("reg", 5, 15, "sysreg")

_FULL = 0xFFFFFFFF


def _mask_without(*fields: Field) -> int:
    m = _FULL
    for f in fields:
        m &= ~f.mask
    return m


def _form(name, form, fixed, fields, syntax, feature="FEAT_MTE", **kw) -> Form:
    return Form(name, form, fixed, _mask_without(*fields), tuple(fields), syntax, feature, **kw)


_forms: list[Form] = [
    # Data processing: IRG, GMI, SUBP, SUBPS (register), ADDG, SUBG (immediate)
    _form("IRG", None, 0x9AC01000, (RD_SP, RN_SP, Field("m", 16, 5, "reg", reg31="xzr", default=31)),
          "irg <d:sp>, <n:sp>{, <m:zr>}"),
    _form("GMI", None, 0x9AC01400, (RD_ZR, RN_SP, RM_ZR), "gmi <d:zr>, <n:sp>, <m:zr>"),
    _form("SUBP", None, 0x9AC00000, (RD_ZR, RN_SP, RM_SP), "subp <d:zr>, <n:sp>, <m:sp>"),
    _form("SUBPS", None, 0xBAC00000, (RD_ZR, RN_SP, RM_SP), "subps <d:zr>, <n:sp>, <m:sp>"),
    _form("ADDG", None, 0x91800000, (RD_SP, RN_SP, UIMM6_16, UIMM4),
          "addg <d:sp>, <n:sp>, #<offset:x>, #<tag_offset:x>"),
    _form("SUBG", None, 0xD1800000, (RD_SP, RN_SP, UIMM6_16, UIMM4),
          "subg <d:sp>, <n:sp>, #<offset:x>, #<tag_offset:x>"),
    # Tag loads and stores: 11011001 opc(2) 1 imm9 op2(2) Rn Rt
    _form("STG", "post", 0xD9200400, (RT_SP, RN_SP, SIMM9_16), "stg <t:sp>, [<n:sp>], #<offset>"),
    _form("STG", "pre", 0xD9200C00, (RT_SP, RN_SP, SIMM9_16), "stg <t:sp>, [<n:sp>, #<offset>]!"),
    _form("STG", "offset", 0xD9200800, (RT_SP, RN_SP, SIMM9_16), "stg <t:sp>, [<n:sp>{, #<offset>}]"),
    _form("STZG", "post", 0xD9600400, (RT_SP, RN_SP, SIMM9_16), "stzg <t:sp>, [<n:sp>], #<offset>"),
    _form("STZG", "pre", 0xD9600C00, (RT_SP, RN_SP, SIMM9_16), "stzg <t:sp>, [<n:sp>, #<offset>]!"),
    _form("STZG", "offset", 0xD9600800, (RT_SP, RN_SP, SIMM9_16), "stzg <t:sp>, [<n:sp>{, #<offset>}]"),
    _form("ST2G", "post", 0xD9A00400, (RT_SP, RN_SP, SIMM9_16), "st2g <t:sp>, [<n:sp>], #<offset>"),
    _form("ST2G", "pre", 0xD9A00C00, (RT_SP, RN_SP, SIMM9_16), "st2g <t:sp>, [<n:sp>, #<offset>]!"),
    _form("ST2G", "offset", 0xD9A00800, (RT_SP, RN_SP, SIMM9_16), "st2g <t:sp>, [<n:sp>{, #<offset>}]"),
    _form("STZ2G", "post", 0xD9E00400, (RT_SP, RN_SP, SIMM9_16), "stz2g <t:sp>, [<n:sp>], #<offset>"),
    _form("STZ2G", "pre", 0xD9E00C00, (RT_SP, RN_SP, SIMM9_16), "stz2g <t:sp>, [<n:sp>, #<offset>]!"),
    _form("STZ2G", "offset", 0xD9E00800, (RT_SP, RN_SP, SIMM9_16), "stz2g <t:sp>, [<n:sp>{, #<offset>}]"),
    _form("LDG", "offset", 0xD9600000, (RT_ZR, RN_SP, SIMM9_16), "ldg <t:zr>, [<n:sp>{, #<offset>}]"),
    # op2 = 00 with imm9 = 0: the bulk forms (imm9 != 0 is unallocated)
    _form("STZGM", None, 0xD9200000, (RT_ZR, RN_SP), "stzgm <t:zr>, [<n:sp>]", "FEAT_MTE2"),
    _form("STGM", None, 0xD9A00000, (RT_ZR, RN_SP), "stgm <t:zr>, [<n:sp>]", "FEAT_MTE2"),
    _form("LDGM", None, 0xD9E00000, (RT_ZR, RN_SP), "ldgm <t:zr>, [<n:sp>]", "FEAT_MTE2"),
    # STGP: 0110100 idx(3) L=0 simm7 Rt2 Rn Rt; idx 001 post, 011 pre, 010 offset
    _form("STGP", "post", 0x68800000, (RT_ZR, RT2_ZR, RN_SP, SIMM7_16),
          "stgp <t:zr>, <t2:zr>, [<n:sp>], #<offset>"),
    _form("STGP", "pre", 0x69800000, (RT_ZR, RT2_ZR, RN_SP, SIMM7_16),
          "stgp <t:zr>, <t2:zr>, [<n:sp>, #<offset>]!"),
    _form("STGP", "offset", 0x69000000, (RT_ZR, RT2_ZR, RN_SP, SIMM7_16),
          "stgp <t:zr>, <t2:zr>, [<n:sp>{, #<offset>}]"),
    # PSTATE.TCO: MSR (immediate), op1=011 CRn=0100 CRm=000:imm op2=100 Rt=11111
    _form("MSR TCO imm", None, 0xD503409F, (Field("imm", 8, 1),), "msr tco, #<imm:x>"),
    # MRS/MSR (register): 1101010100 L 1 o0 op1 CRn CRm op2 Rt -- the MTE registers only
    _form("MRS", None, 0xD5300000, (RT_ZR, SYSREG15), "mrs <t:zr>, <reg>", "FEAT_MTE2"),
    _form("MSR", None, 0xD5100000, (RT_ZR, SYSREG15), "msr <reg>, <t:zr>", "FEAT_MTE2"),
]

# Cache and tag maintenance: SYS #op1, C7, CRm, #op2, Xt (DC <op>, <Xt>)
DC_OPS: tuple[tuple[str, int, int, int, str], ...] = (
    # name, op1, CRm, op2, feature
    ("GVA", 3, 4, 3, "FEAT_MTE2"),
    ("GZVA", 3, 4, 4, "FEAT_MTE2"),
    ("CGVAC", 3, 10, 3, "FEAT_MTE2"),
    ("CGDVAC", 3, 10, 5, "FEAT_MTE2"),
    ("CGVAP", 3, 12, 3, "FEAT_MTE2"),
    ("CGDVAP", 3, 12, 5, "FEAT_MTE2"),
    ("CGVADP", 3, 13, 3, "FEAT_MTE2"),
    ("CGDVADP", 3, 13, 5, "FEAT_MTE2"),
    ("CIGVAC", 3, 14, 3, "FEAT_MTE2"),
    ("CIGDVAC", 3, 14, 5, "FEAT_MTE2"),
    ("IGVAC", 0, 6, 3, "FEAT_MTE2"),
    ("IGDVAC", 0, 6, 5, "FEAT_MTE2"),
    ("IGSW", 0, 6, 4, "FEAT_MTE2"),
    ("IGDSW", 0, 6, 6, "FEAT_MTE2"),
    ("CGSW", 0, 10, 4, "FEAT_MTE2"),
    ("CGDSW", 0, 10, 6, "FEAT_MTE2"),
    ("CIGSW", 0, 14, 4, "FEAT_MTE2"),
    ("CIGDSW", 0, 14, 6, "FEAT_MTE2"),
)
_SYS_BASE = 0xD5087000  # SYS, L=0, op0=01, CRn=0111
for _op, _op1, _crm, _op2, _feat in DC_OPS:
    _forms.append(_form(f"DC {_op}", None, _SYS_BASE | (_op1 << 16) | (_crm << 8) | (_op2 << 5),
                        (RT_ZR,), f"dc {_op.lower()}, <t:zr>", _feat, mnemonic="dc"))

# CMPP <Xn|SP>, <Xm|SP> is SUBPS with d = 31: an assembly alias, decoded as SUBPS.
_forms.append(_form("SUBPS", None, 0xBAC0001F, (RN_SP, RM_SP), "cmpp <n:sp>, <m:sp>",
                    alias_of="SUBPS", fixed_fields=(("d", 31),)))

FORMS: tuple[Form, ...] = tuple(_forms)
# The forms decode() tries (aliases are spelled by the disassembler, not decoded separately)
DECODE_FORMS: tuple[Form, ...] = tuple(f for f in FORMS if f.alias_of is None)
FORMS_BY_MNEMONIC: dict[str, tuple[Form, ...]] = {}
for _f in FORMS:
    FORMS_BY_MNEMONIC.setdefault(_f.mnemonic, ())
    FORMS_BY_MNEMONIC[_f.mnemonic] += (_f,)
FORM_BY_KEY: dict[tuple[str, str | None], Form] = {
    (f.name, f.form): f for f in DECODE_FORMS}
# Names of every MTE instruction (Insn.name values)
NAMES: tuple[str, ...] = tuple(dict.fromkeys(f.name for f in DECODE_FORMS))
