"""GNU-as spelling of MTE instructions, driven by each form's `syntax` template in the table.

`parse(mnemonic, operands, evaluate)` turns source text into an Insn; `format_insn(insn)` gives
the objdump spelling. Neither knows a bit position: both read the table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from . import EncodeError, Insn, encode, form_of
from .table import DC_OPS, FORMS, FORMS_BY_MNEMONIC, SYSREG_BY_NAME, Form

_TOKEN = re.compile(r"<(\w+)(?::(\w+))?>|\{|\}|#|\[|\]|!|,|\s+|[a-z0-9_]+")
_REGWORD = r"[A-Za-z_][A-Za-z0-9_]*"
_EXPR = r"[^,\]\[!]+?"


class SyntaxMismatch(Exception):
    """The operand text does not have the shape of this form."""


@dataclass(frozen=True)
class _Compiled:
    form: Form
    regex: re.Pattern
    optional_groups: tuple[tuple[str, ...], ...]


def _tokens(template: str) -> list[tuple[str, str | None, str | None]]:
    """('lit', text, None) | ('field', name, spec) | ('{', ...) | ('}', ...)"""
    out = []
    pos = 0
    while pos < len(template):
        m = _TOKEN.match(template, pos)
        assert m, template[pos:]
        pos = m.end()
        if m.group(1):
            out.append(("field", m.group(1), m.group(2)))
        else:
            out.append(("lit", m.group(0), None))
    return out


@lru_cache(maxsize=None)
def _compile(form: Form) -> _Compiled:
    ops = form.syntax.split(None, 1)[1] if " " in form.syntax else ""
    if form.mnemonic == "dc":  # "dc gva, <t:zr>": the operation name is part of the operands
        pass
    parts = []
    optional: list[tuple[str, ...]] = []
    current: list[str] | None = None
    for kind, text, spec in _tokens(ops):
        if kind == "field":
            f = form.field(text)
            if f is None:
                raise AssertionError((form.syntax, text))
            if f.kind == "imm":
                parts.append(rf"(?P<{text}>{_EXPR})")
            else:
                parts.append(rf"(?P<{text}>{_REGWORD})")
            if current is not None:
                current.append(text)
        elif text == "{":
            parts.append("(?:")
            current = []
        elif text == "}":
            parts.append(")?")
            optional.append(tuple(current or ()))
            current = None
        elif text == "#":
            parts.append(r"#?\s*")
        elif text.isspace():
            parts.append(r"\s*")
        elif text == ",":
            parts.append(r"\s*,\s*")
        elif text in "[]!":
            parts.append(r"\s*" + re.escape(text) + r"\s*")
        else:
            parts.append(re.escape(text))
    regex = re.compile(r"\s*" + "".join(parts) + r"\s*$", re.IGNORECASE)
    return _Compiled(form, regex, tuple(optional))


_LOOKS_LIKE_REGISTER = re.compile(r"(?i)([xw]([0-9]|[12][0-9]|30)|sp|wsp|xzr|wzr)$")
_GPR = re.compile(r"x([0-9]|[12][0-9]|30)$")


def parse_register(text: str, reg31: str) -> int:
    """'x5' -> 5; 'sp'/'xzr' -> 31 where the operand allows it; ValueError otherwise."""
    t = text.strip().lower()
    m = _GPR.match(t)
    if m:
        return int(m.group(1))
    if t == "sp" and reg31 == "sp":
        return 31
    if t == "xzr" and reg31 == "xzr":
        return 31
    allowed = "x0-x30 or sp" if reg31 == "sp" else "x0-x30 or xzr"
    if t in ("sp", "xzr", "wsp", "wzr") or re.fullmatch(r"w([0-9]|[12][0-9]|30)", t):
        raise ValueError(f"'{text.strip()}' is not allowed here (expected {allowed})")
    raise ValueError(f"'{text.strip()}' is not a register (expected {allowed})")


def match_form(form: Form, operands: str, evaluate: Callable[[str], int]) -> Insn:
    """Parse `operands` against one form; SyntaxMismatch if the shape differs,
    EncodeError if the shape fits but an operand is illegal."""
    c = _compile(form)
    if form.mnemonic == "dc":
        op = form.name.split()[1].lower()
        head, _, rest = operands.partition(",")
        if head.strip().lower() != op:
            raise SyntaxMismatch(operands)
        operands = f"{op}, {rest}" if _ else operands
    m = c.regex.match(operands)
    if not m:
        raise SyntaxMismatch(operands)
    values: dict[str, object] = dict(form.fixed_fields)
    for f in form.fields:
        text = m.group(f.name)
        if text is None:
            values[f.name] = f.default
            continue
        if f.kind == "reg":
            try:
                values[f.name] = parse_register(text, f.reg31 or "xzr")
            except ValueError as e:
                raise EncodeError(f"{form.mnemonic}: {e}") from None
        elif f.kind == "sysreg":
            name = text.strip().upper()
            if name not in SYSREG_BY_NAME:
                raise SyntaxMismatch(operands)
            values[f.name] = name
        else:
            if _LOOKS_LIKE_REGISTER.match(text.strip()):
                raise SyntaxMismatch(operands)
            values[f.name] = evaluate(text.strip())
    name = form.alias_of or form.name
    insn = Insn(name, form.form, **values)
    encode(insn)  # validates ranges with a message naming the operand
    return insn


def mnemonics() -> frozenset[str]:
    """Every mnemonic that can start an MTE line (dc/mrs/msr only with MTE operands)."""
    return frozenset(FORMS_BY_MNEMONIC)


def parse(mnemonic: str, operands: str, evaluate: Callable[[str], int] = None) -> Insn | None:
    """Parse one instruction. None when this is not an MTE instruction at all (e.g. `dc zva`,
    `mrs x0, sctlr_el1`: those belong to the base assembler). EncodeError when it is an MTE
    mnemonic whose operands are wrong."""
    if evaluate is None:
        evaluate = _int
    mn = mnemonic.lower()
    forms = FORMS_BY_MNEMONIC.get(mn)
    if not forms:
        return None
    errors: list[EncodeError] = []
    for form in forms:
        try:
            return match_form(form, operands, evaluate)
        except SyntaxMismatch:
            continue
        except EncodeError as e:
            errors.append(e)
    if mn in ("dc", "mrs", "msr"):
        if errors:
            raise errors[0]
        if not _mentions_mte_operand(mn, operands):
            return None
    if errors:
        # the most specific message: prefer one about a range over one about a form
        raise errors[0]
    shapes = "; ".join(sorted({_shape(f) for f in forms}))
    raise EncodeError(f"{mn}: bad operands '{operands.strip()}' (expected {shapes})")


def _mentions_mte_operand(mn: str, operands: str) -> bool:
    words = {w.upper() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", operands)}
    if mn == "dc":
        return bool(words & {op for op, *_ in DC_OPS}) and operands.split(",")[0].strip().upper() in \
            {op for op, *_ in DC_OPS}
    return bool(words & set(SYSREG_BY_NAME))


def _shape(form: Form) -> str:
    s = re.sub(r"<(\w+)(?::(\w+))?>", lambda m: {"sp": "Xn|SP", "zr": "Xn"}.get(m.group(2), m.group(1))
               if m.group(2) in ("sp", "zr") else ("imm" if m.group(1) != "reg" else "sysreg"),
               form.syntax)
    return s.replace("{", "[").replace("}", "]") if "{" in s else s


def _int(text: str) -> int:
    return int(text.replace("#", ""), 0)


def _reg_name(n: int, reg31: str | None) -> str:
    if n == 31:
        return "sp" if reg31 == "sp" else "xzr"
    return f"x{n}"


def format_insn(insn: Insn) -> str:
    """The objdump (GNU binutils) spelling, e.g. 'stg\tx0, [x1, #16]!' with a tab after the
    mnemonic as objdump prints it."""
    form = form_of(insn)
    if insn.name == "SUBPS" and insn.d == 31:
        form = next(f for f in FORMS if f.alias_of == "SUBPS")
    head, _, ops = form.syntax.partition(" ")
    out = []
    toks = _tokens(ops)
    i = 0
    while i < len(toks):
        kind, text, spec = toks[i]
        if kind == "lit" and text == "{":
            # omit the group if every field in it holds its default
            j = i + 1
            group = []
            while toks[j][1] != "}":
                if toks[j][0] == "field":
                    group.append(toks[j][1])
                j += 1
            if all(getattr(insn, g) == form.field(g).default for g in group):
                i = j + 1
                continue
            i += 1
            continue
        if kind == "lit" and text == "}":
            i += 1
            continue
        if kind == "field":
            f = form.field(text)
            v = getattr(insn, text)
            if v is None:
                v = f.default
            if f.kind == "reg":
                out.append(_reg_name(v, f.reg31))
            elif f.kind == "sysreg":
                out.append(str(v).lower())
            elif spec == "x":
                out.append(hex(v) if v >= 0 else "-" + hex(-v))
            else:
                out.append(str(v))
        else:
            out.append(text)
        i += 1
    return head + "\t" + "".join(out)
