"""GNU-as expressions: integers, symbols, '.', and gas operator precedence.

Values are ints, or `Rel(section, offset)` while section addresses are not yet fixed (layout
pass). `Rel - Rel` in one section is an int, `Rel +/- int` is a Rel; anything else on a Rel is
an error ("needs an absolute value"), as in GNU as.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Union


class ExprError(Exception):
    pass


class UndefinedSymbol(ExprError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"undefined symbol '{display_name(name)}'")


def display_name(name: str) -> str:
    """Internal names of numeric local labels ('.L1\\x02 3') shown as the user wrote them."""
    if "\x02" in name:
        return name[2:].split("\x02")[0]
    return name


@dataclass(frozen=True)
class Rel:
    section: object
    offset: int

    def __add__(self, other):
        if isinstance(other, int):
            return Rel(self.section, self.offset + other)
        raise ExprError("cannot add two addresses")

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, int):
            return Rel(self.section, self.offset - other)
        if isinstance(other, Rel) and other.section is self.section:
            return self.offset - other.offset
        raise ExprError("difference of addresses in different sections is not constant here")


Value = Union[int, Rel]

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<num>0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)(?![\w$.])
    | (?P<char>'(?:\\.|[^\\])'?)
    | (?P<sym>[A-Za-z_.$\x02][\w.$\x02]*|[0-9]+[\x02][0-9]+)
    | (?P<op><<|>>|&&|\|\||==|!=|<>|<=|>=|[-+*/%&|^~!()<>])
    )""", re.VERBOSE)

# gas binary precedence: higher binds tighter
_BINARY = {
    "*": 5, "/": 5, "%": 5, "<<": 5, ">>": 5,
    "|": 4, "&": 4, "^": 4, "!": 4,
    "+": 3, "-": 3, "==": 3, "!=": 3, "<>": 3, "<": 3, ">": 3, "<=": 3, ">=": 3,
    "&&": 2, "||": 1,
}
_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "b": 8, "f": 12}


def tokenize(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"bad expression '{text.strip()}'")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


def _parse_int(s: str) -> int:
    try:
        if s[:2] in ("0x", "0X"):
            return int(s, 16)
        if s[:2] in ("0b", "0B"):
            return int(s[2:], 2)
        if len(s) > 1 and s[0] == "0":
            return int(s, 8)
        return int(s)
    except ValueError:
        if len(s) > 1000:      # Python refuses decimal strings of more than 4300 digits
            raise ExprError(f"number too large: '{s[:20]}...' ({len(s)} digits)") from None
        raise ExprError(f"bad number '{s}'") from None


# Operators waiting on the parser's stack (parentheses and unary operators) before the
# expression is given up as nested too deeply. The parser keeps its own stacks, so deep nesting
# costs no Python recursion; GNU as accepts 2,000 nested parentheses, so the bound is above that.
MAX_NESTING = 4096
_UNARY = ("-", "~", "!", "+")
_OPEN = ("(", None)


def _operand(kind: str, tok: str, lookup: Callable[[str], Value]) -> Value:
    if kind == "num":
        return _parse_int(tok)
    if kind == "char":
        body = tok[1:].rstrip("'") if len(tok) > 2 and tok.endswith("'") else tok[1:]
        if body.startswith("\\"):
            return _ESCAPES.get(body[1:2], ord(body[1:2]))
        return ord(body[0])
    return lookup(tok)


def _unary(op: str, v: Value) -> Value:
    if op == "+":
        return v
    _need_int(v, op)
    return _wrap(-v) if op == "-" else (~v if op == "~" else int(not v))


def evaluate(text: str, lookup: Callable[[str], Value]) -> Value:
    """Evaluate a GNU-as expression by operator precedence with explicit stacks: unary
    operators bind tightest, binary operators are left-associative (see _BINARY)."""
    toks = tokenize(text)
    if not toks:
        raise ExprError("missing expression")
    values: list[Value] = []
    ops: list[tuple[str, str | None]] = []      # ("u", op), ("b", op) or _OPEN

    def reduce_top() -> None:
        kind, op = ops.pop()
        if kind == "u":
            values.append(_unary(op, values.pop()))
        else:
            b = values.pop()
            values.append(_apply(op, values.pop(), b))

    want_operand = True
    for kind, tok in toks:
        if want_operand:
            if kind == "op" and tok in _UNARY:
                ops.append(("u", tok))
            elif kind == "op" and tok == "(":
                ops.append(_OPEN)
            elif kind == "op":
                raise ExprError(f"bad expression '{text.strip()}'")
            else:
                values.append(_operand(kind, tok, lookup))
                want_operand = False
            if len(ops) > MAX_NESTING:
                raise ExprError(f"expression nested more than {MAX_NESTING} levels deep")
        elif kind == "op" and tok == ")":
            while ops and ops[-1] != _OPEN:
                reduce_top()
            if not ops:
                raise ExprError(f"unbalanced ')' in '{text.strip()}'")
            ops.pop()
        elif kind == "op" and tok in _BINARY:
            prec = _BINARY[tok]
            while ops and ops[-1] != _OPEN and (ops[-1][0] == "u" or _BINARY[ops[-1][1]] >= prec):
                reduce_top()
            ops.append(("b", tok))
            want_operand = True
        else:
            raise ExprError(f"bad expression '{text.strip()}'")
    if want_operand:
        raise ExprError(f"incomplete expression '{text.strip()}'")
    while ops:
        if ops[-1] == _OPEN:
            raise ExprError(f"missing ')' in '{text.strip()}'")
        reduce_top()
    return values[0]


def _wrap(v: int) -> int:
    """Arithmetic beyond 64 bits wraps as in GNU as (its values are 64-bit): a result outside
    [-2^63, 2^64) is reduced modulo 2^64. This also keeps a repeated `x*x` from growing
    without bound."""
    if -(1 << 63) <= v < (1 << 64):
        return v
    return v & ((1 << 64) - 1)


def _need_int(v: Value, op: str) -> None:
    if not isinstance(v, int):
        raise ExprError(f"operator '{op}' needs an absolute value, not an address")


def _apply(op: str, a: Value, b: Value) -> Value:
    if op == "+":
        return _wrap(a + b) if isinstance(a, int) and isinstance(b, int) else a + b
    if op == "-":
        return _wrap(a - b) if isinstance(a, int) and isinstance(b, int) else a - b
    if op in ("==", "!=", "<>") and isinstance(a, Rel) and isinstance(b, Rel):
        a, b = a - b, 0
    _need_int(a, op)
    _need_int(b, op)
    if op == "*":
        return _wrap(a * b)
    if op in ("/", "%"):
        if b == 0:
            raise ExprError("division by zero")
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return q if op == "/" else a - q * b
    if op in ("<<", ">>") and b < 0:
        raise ExprError(f"negative shift count {b}")
    if op == "<<":
        return _wrap(a << b) if b < 128 else 0
    if op == ">>":
        return a >> b
    if op == "|":
        return a | b
    if op == "&":
        return a & b
    if op == "^":
        return a ^ b
    if op == "!":
        return a | ~b
    if op == "&&":
        return int(bool(a) and bool(b))
    if op == "||":
        return int(bool(a) or bool(b))
    result = {"==": a == b, "!=": a != b, "<>": a != b, "<": a < b, ">": a > b,
              "<=": a <= b, ">=": a >= b}[op]
    return -1 if result else 0


def symbols_in(text: str) -> list[str]:
    try:
        return [t for k, t in tokenize(text) if k == "sym"]
    except ExprError:
        return []
