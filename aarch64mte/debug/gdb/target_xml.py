"""The target description GDB reads with `qXfer:features:read:target.xml`, and the register layout
it implies for `g`/`G`/`p`/`P`.

Three features, with the register names and order GDB's AArch64 support validates:
`org.gnu.gdb.aarch64.core` (x0-x30, sp, pc, cpsr), `org.gnu.gdb.aarch64.fpu` (v0-v31, fpsr, fpcr)
and `org.gnu.gdb.aarch64.mte` (`tag_ctl`, which tells GDB the target has MTE); then the EL1
system registers and, on a machine with EL2, the EL2 ones (`p $hcr_el2`, `info registers
system`). The description
names the OS ABI GNU/Linux so that GDB installs its AArch64 Linux memory-tagging support.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class RegDef:
    name: str
    bits: int
    regnum: int
    feature: str


def _layout() -> list[RegDef]:
    regs = []
    n = 0
    for i in range(31):
        regs.append(RegDef(f"x{i}", 64, n, "core")); n += 1
    for name, bits in (("sp", 64), ("pc", 64), ("cpsr", 32)):
        regs.append(RegDef(name, bits, n, "core")); n += 1
    for i in range(32):
        regs.append(RegDef(f"v{i}", 128, n, "fpu")); n += 1
    for name in ("fpsr", "fpcr"):
        regs.append(RegDef(name, 32, n, "fpu")); n += 1
    regs.append(RegDef("tag_ctl", 64, n, "mte"))
    return regs


REGISTERS: list[RegDef] = _layout()
BY_NAME = {r.name: r for r in REGISTERS}

#: The system registers a kernel or hypervisor developer reads while stepping: translation,
#: exception and MTE state of EL1, and of EL2 where the machine has it. They come after the
#: registers of the `g` packet, so GDB reads them one at a time with `p` (and only on demand).
SYSTEM_EL1 = ("sctlr_el1", "tcr_el1", "ttbr0_el1", "ttbr1_el1", "mair_el1", "vbar_el1",
              "esr_el1", "far_el1", "elr_el1", "spsr_el1", "sp_el0", "sp_el1", "gcr_el1",
              "rgsr_el1", "tfsr_el1", "tfsre0_el1", "gmid_el1")
SYSTEM_EL2 = ("hcr_el2", "sctlr_el2", "tcr_el2", "ttbr0_el2", "ttbr1_el2", "mair_el2",
              "vbar_el2", "esr_el2", "far_el2", "hpfar_el2", "elr_el2", "spsr_el2", "sp_el2",
              "vttbr_el2", "vtcr_el2", "tfsr_el2", "cptr_el2", "vpidr_el2", "vmpidr_el2")
FEATURE_EL1 = "org.aarch64mte.system.el1"
FEATURE_EL2 = "org.aarch64mte.system.el2"


def _system(with_el2: bool) -> list[RegDef]:
    n = len(REGISTERS)
    out = []
    for feature, names in (("el1", SYSTEM_EL1), ("el2", SYSTEM_EL2 if with_el2 else ())):
        for name in names:
            out.append(RegDef(name, 64, n, feature))
            n += 1
    return out
PC_REGNUM = BY_NAME["pc"].regnum
SP_REGNUM = BY_NAME["sp"].regnum
TAG_CTL_REGNUM = BY_NAME["tag_ctl"].regnum

_CORE_TYPES = """\
    <flags id="cpsr_flags" size="4">
      <field name="SP" start="0" end="0"/>
      <field name="EL" start="2" end="3"/>
      <field name="nRW" start="4" end="4"/>
      <field name="F" start="6" end="6"/>
      <field name="I" start="7" end="7"/>
      <field name="A" start="8" end="8"/>
      <field name="D" start="9" end="9"/>
      <field name="TCO" start="25" end="25"/>
      <field name="V" start="28" end="28"/>
      <field name="C" start="29" end="29"/>
      <field name="Z" start="30" end="30"/>
      <field name="N" start="31" end="31"/>
    </flags>
"""

_FPU_TYPES = """\
    <vector id="v2d" type="ieee_double" count="2"/>
    <vector id="v2u" type="uint64" count="2"/>
    <vector id="v2i" type="int64" count="2"/>
    <vector id="v4f" type="ieee_single" count="4"/>
    <vector id="v4u" type="uint32" count="4"/>
    <vector id="v4i" type="int32" count="4"/>
    <vector id="v8u" type="uint16" count="8"/>
    <vector id="v8i" type="int16" count="8"/>
    <vector id="v16u" type="uint8" count="16"/>
    <vector id="v16i" type="int8" count="16"/>
    <vector id="v1u" type="uint128" count="1"/>
    <vector id="v1i" type="int128" count="1"/>
    <union id="vnd">
      <field name="f" type="v2d"/>
      <field name="u" type="v2u"/>
      <field name="s" type="v2i"/>
    </union>
    <union id="vns">
      <field name="f" type="v4f"/>
      <field name="u" type="v4u"/>
      <field name="s" type="v4i"/>
    </union>
    <union id="vnh">
      <field name="u" type="v8u"/>
      <field name="s" type="v8i"/>
    </union>
    <union id="vnb">
      <field name="u" type="v16u"/>
      <field name="s" type="v16i"/>
    </union>
    <union id="vnq">
      <field name="u" type="v1u"/>
      <field name="s" type="v1i"/>
    </union>
    <union id="aarch64v">
      <field name="d" type="vnd"/>
      <field name="s" type="vns"/>
      <field name="h" type="vnh"/>
      <field name="b" type="vnb"/>
      <field name="q" type="vnq"/>
    </union>
"""


def _reg_xml(r: RegDef) -> str:
    extra = ""
    if r.name == "sp":
        extra = ' type="data_ptr"'
    elif r.name == "pc":
        extra = ' type="code_ptr"'
    elif r.name == "cpsr":
        extra = ' type="cpsr_flags"'
    elif r.feature == "fpu" and r.bits == 128:
        extra = ' type="aarch64v" group="vector"'
    elif r.name in ("fpsr", "fpcr"):
        extra = ' type="int" group="float"'
    elif r.name == "tag_ctl":
        extra = ' type="uint64" group="system" save-restore="no"'
    elif r.feature in ("el1", "el2"):
        extra = ' type="uint64" group="system" save-restore="no"'
    else:
        extra = ' type="int"'
    return f'    <reg name="{r.name}" bitsize="{r.bits}" regnum="{r.regnum}"{extra}/>\n'


def target_xml(with_mte: bool = True, osabi: str | None = "GNU/Linux",
               with_el2: bool = False) -> str:
    parts = ['<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n<target>\n',
             "  <architecture>aarch64</architecture>\n"]
    if osabi:
        parts.append(f"  <osabi>{osabi}</osabi>\n")
    features = (("core", "org.gnu.gdb.aarch64.core", _CORE_TYPES),
                ("fpu", "org.gnu.gdb.aarch64.fpu", _FPU_TYPES),
                ("mte", "org.gnu.gdb.aarch64.mte", ""),
                ("el1", FEATURE_EL1, ""), ("el2", FEATURE_EL2, ""))
    regs = registers(with_mte, with_el2)
    for key, name, types in features:
        mine = [r for r in regs if r.feature == key]
        if not mine:
            continue
        parts.append(f'  <feature name="{name}">\n{types}')
        parts.extend(_reg_xml(r) for r in mine)
        parts.append("  </feature>\n")
    parts.append("</target>\n")
    return "".join(parts)


def registers(with_mte: bool = True, with_el2: bool = False) -> list[RegDef]:
    """Every register the description names, in register-number order (the `p`/`P` packets'
    numbering); without MTE the system registers keep their numbers after tag_ctl's gap."""
    return [r for r in REGISTERS if with_mte or r.feature != "mte"] + _system(with_el2)


@lru_cache(maxsize=None)
def registers_by_number(with_el2: bool) -> dict:
    """{GDB register number: RegDef} of the description with MTE (what the stub serves)."""
    return {r.regnum: r for r in registers(with_el2=with_el2)}
