"""The isa table as a C header, for the native MTE trap.

The native trap decodes MTE words with the same table the assembler and the Python decoder use:
this module writes that table out as C data when the package is built (``setup.py``), so no bit
position is written down a second time. ``c_header()`` is a pure function of ``table``.
"""
from __future__ import annotations

import re

from .table import DECODE_FORMS, SYSREGS

FIELDS = ("d", "n", "m", "t", "t2", "offset", "tag_offset", "imm", "reg")
FORMS = (None, "offset", "pre", "post")


def c_name(name: str) -> str:
    """'MSR TCO imm' -> 'MSR_TCO_IMM', 'DC GZVA' -> 'DC_GZVA'."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def op_names() -> list:
    return list(dict.fromkeys(f.name for f in DECODE_FORMS))


def c_header() -> str:
    ops = op_names()
    out = ["/* Generated from aarch64mte/isa/table.py by aarch64mte/isa/cheader.py: do not edit. */",
           "#ifndef AARCH64MTE_MTE_ISA_H", "#define AARCH64MTE_MTE_ISA_H", "#include <stdint.h>", ""]
    out.append("enum mte_op {")
    out += [f"    OP_{c_name(n)} = {i}," for i, n in enumerate(ops)]
    out.append(f"    OP_COUNT = {len(ops)}")
    out.append("};")
    out.append("enum mte_form { FORM_NONE = 0, FORM_OFFSET = 1, FORM_PRE = 2, FORM_POST = 3 };")
    out.append("enum mte_field {")
    out += [f"    F_{c_name(n)} = {i}," for i, n in enumerate(FIELDS)]
    out.append(f"    F_COUNT = {len(FIELDS)}")
    out.append("};")
    out.append("enum mte_sysreg {")
    out += [f"    SR_{c_name(r.name)} = {i}," for i, r in enumerate(SYSREGS)]
    out.append(f"    SR_COUNT = {len(SYSREGS)}")
    out.append("};")
    out.append("")
    out.append("typedef struct { uint8_t field, lo, width, is_signed, is_sysreg; uint8_t scale; } "
               "mte_field_t;")
    out.append("typedef struct { uint32_t mask, fixed; uint8_t op, form, nfields; "
               "mte_field_t fields[5]; } mte_form_t;")
    out.append("static const mte_form_t MTE_FORMS[] = {")
    for f in DECODE_FORMS:
        fields = ", ".join(
            "{%d, %d, %d, %d, %d, %d}" % (FIELDS.index(x.name), x.lo, x.width, int(x.signed),
                                         int(x.kind == "sysreg"), x.scale)
            for x in f.fields)
        out.append("    {0x%08X, 0x%08X, OP_%s, %d, %d, {%s}},  /* %s */" % (
            f.mask, f.fixed, c_name(f.name), FORMS.index(f.form), len(f.fields), fields,
            f.syntax))
    out.append("};")
    out.append("#define MTE_NFORMS (sizeof MTE_FORMS / sizeof MTE_FORMS[0])")
    out.append("")
    out.append("/* MRS/MSR bits 19:5 (o0:op1:CRn:CRm:op2) of each MTE system register */")
    out.append("static const struct { uint16_t field15; uint8_t id, readable, writable; } "
               "MTE_SYSREGS[] = {")
    for r in SYSREGS:
        out.append("    {0x%04X, SR_%s, %d, %d}," % (r.field15, c_name(r.name), int(r.readable),
                                                     int(r.writable)))
    out.append("};")
    out.append("#define MTE_NSYSREGS (sizeof MTE_SYSREGS / sizeof MTE_SYSREGS[0])")
    out += ["", "#endif", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(c_header())
