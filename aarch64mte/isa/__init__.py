"""MTE instruction set: one table (`table.py`), read by `decode` and `encode`.

    insn = decode(word)   # -> Insn or None (None: not an MTE encoding, or unallocated)
    word = encode(insn)   # -> int; raises EncodeError on an illegal operand
"""
from __future__ import annotations

from dataclasses import dataclass, fields as _dc_fields
from functools import lru_cache

from ..errors import MteError
from .table import (DC_OPS, DECODE_FORMS, FORM_BY_KEY, FORMS, FORMS_BY_MNEMONIC, NAMES,
                    SYSREG_BY_FIELD15, SYSREG_BY_KEY, SYSREG_BY_NAME, SYSREGS, Field, Form,
                    SysReg, sysreg_name)

__all__ = ["Insn", "EncodeError", "decode", "encode", "form_of", "FORMS", "NAMES", "SYSREGS",
           "SYSREG_BY_NAME", "SYSREG_BY_KEY", "SysReg", "Form", "Field", "sysreg_name", "DC_OPS",
           "FORMS_BY_MNEMONIC", "is_mte"]


class EncodeError(MteError, ValueError):
    """An Insn that no MTE encoding can represent (bad name, form or operand)."""


@dataclass(frozen=True)
class Insn:
    """A decoded MTE instruction; operand fields carry the architectural meaning.

    Register numbers are 0..31 (31 is SP or XZR as the form's pseudocode says); `offset` is
    in bytes (already scaled by 16); `reg` is a system register name from SYSREGS.
    """

    name: str
    form: str | None = None
    d: int | None = None
    n: int | None = None
    m: int | None = None
    t: int | None = None
    t2: int | None = None
    offset: int | None = None
    tag_offset: int | None = None
    imm: int | None = None
    reg: str | None = None

    @property
    def feature(self) -> str:
        return form_of(self).feature


_OPERANDS = tuple(f.name for f in _dc_fields(Insn) if f.name not in ("name", "form"))


def _extract(word: int, f: Field) -> int:
    raw = (word >> f.lo) & ((1 << f.width) - 1)
    if f.signed and raw >> (f.width - 1):
        raw -= 1 << f.width
    return raw * f.scale


def decode(word: int) -> Insn | None:
    """Decode a 32-bit A64 word; None when it is not an allocated MTE encoding."""
    return _decode(word & 0xFFFFFFFF)


@lru_cache(maxsize=1 << 16)
def _decode(word: int) -> Insn | None:
    for form in DECODE_FORMS:
        if word & form.mask != form.fixed:
            continue
        ops = {}
        for f in form.fields:
            if f.kind == "sysreg":
                r = SYSREG_BY_FIELD15.get((word >> f.lo) & ((1 << f.width) - 1))
                if r is None:
                    return None
                ops[f.name] = r.name
            else:
                ops[f.name] = _extract(word, f)
        return Insn(form.name, form.form, **ops)
    return None


def is_mte(word: int) -> bool:
    return decode(word) is not None


def form_of(insn: Insn) -> Form:
    form = FORM_BY_KEY.get((insn.name, insn.form))
    if form is None:
        if any(f.name == insn.name for f in DECODE_FORMS):
            forms = sorted(str(f.form) for f in DECODE_FORMS if f.name == insn.name)
            raise EncodeError(f"{insn.name} has no form {insn.form!r} (forms: {', '.join(forms)})")
        raise EncodeError(f"unknown MTE instruction {insn.name!r}")
    return form


def encode_field(form: Form, f: Field, value) -> int:
    """The bits of one operand value in its field; EncodeError if it does not fit."""
    what = f"{form.mnemonic}: {_describe(f)}"
    if f.kind == "sysreg":
        r = SYSREG_BY_NAME.get(str(value).upper()) if value is not None else None
        if r is None:
            raise EncodeError(f"{what}: {value!r} is not an MTE system register")
        return r.field15 << f.lo
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError(f"{what}: expected an integer, got {value!r}")
    if f.kind == "reg":
        if not 0 <= value <= 31:
            raise EncodeError(f"{what}: register number {value} is not 0..31")
        return value << f.lo
    if value % f.scale:
        raise EncodeError(f"{what}: {value} is not a multiple of {f.scale}")
    if not f.lo_value <= value <= f.hi_value:
        raise EncodeError(f"{what}: {value} is out of range {f.lo_value}..{f.hi_value}")
    raw = value // f.scale
    return (raw & ((1 << f.width) - 1)) << f.lo


def _describe(f: Field) -> str:
    return {"d": "destination register", "n": "base register", "m": "register Xm",
            "t": "register Xt", "t2": "register Xt2", "offset": "offset",
            "tag_offset": "tag offset", "imm": "immediate", "reg": "system register"}[f.name]


def encode(insn: Insn) -> int:
    """Encode an Insn; EncodeError names the operand that does not fit."""
    form = form_of(insn)
    word = form.fixed
    names = {f.name for f in form.fields}
    for op in _OPERANDS:
        v = getattr(insn, op)
        if v is not None and op not in names:
            raise EncodeError(f"{form.mnemonic}: takes no {op} operand (got {v!r})")
    for f in form.fields:
        v = getattr(insn, f.name)
        if v is None:
            if f.default is None:
                raise EncodeError(f"{form.mnemonic}: missing {_describe(f)}")
            v = f.default
        word |= encode_field(form, f, v)
    return word
