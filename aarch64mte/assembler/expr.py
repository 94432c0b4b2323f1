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
    if s[:2] in ("0x", "0X"):
        return int(s, 16)
    if s[:2] in ("0b", "0B"):
        return int(s[2:], 2)
    if len(s) > 1 and s[0] == "0":
        return int(s, 8)
    return int(s)


class _Parser:
    def __init__(self, text: str, lookup: Callable[[str], Value]):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.lookup = lookup

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def parse(self) -> Value:
        if not self.toks:
            raise ExprError("missing expression")
        v = self.binary(0)
        if self.i != len(self.toks):
            raise ExprError(f"bad expression '{self.text.strip()}'")
        return v

    def binary(self, min_prec: int) -> Value:
        left = self.unary()
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in _BINARY or _BINARY[op] <= min_prec - 1 or _BINARY[op] < min_prec:
                return left
            prec = _BINARY[op]
            self.take()
            right = self.binary(prec + 1)
            left = _apply(op, left, right)

    def unary(self) -> Value:
        kind, tok = self.take()
        if kind is None:
            raise ExprError(f"incomplete expression '{self.text.strip()}'")
        if kind == "num":
            return _parse_int(tok)
        if kind == "char":
            body = tok[1:].rstrip("'") if len(tok) > 2 and tok.endswith("'") else tok[1:]
            if body.startswith("\\"):
                return _ESCAPES.get(body[1:2], ord(body[1:2]))
            return ord(body[0])
        if kind == "sym":
            return self.lookup(tok)
        if tok == "(":
            v = self.binary(0)
            k, t = self.take()
            if t != ")":
                raise ExprError(f"missing ')' in '{self.text.strip()}'")
            return v
        if tok in ("-", "~", "!", "+"):
            v = self.unary()
            if tok == "+":
                return v
            _need_int(v, tok)
            return -v if tok == "-" else (~v if tok == "~" else int(not v))
        raise ExprError(f"bad expression '{self.text.strip()}'")


def _need_int(v: Value, op: str) -> None:
    if not isinstance(v, int):
        raise ExprError(f"operator '{op}' needs an absolute value, not an address")


def _apply(op: str, a: Value, b: Value) -> Value:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op in ("==", "!=", "<>") and isinstance(a, Rel) and isinstance(b, Rel):
        a, b = a - b, 0
    _need_int(a, op)
    _need_int(b, op)
    if op == "*":
        return a * b
    if op in ("/", "%"):
        if b == 0:
            raise ExprError("division by zero")
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return q if op == "/" else a - q * b
    if op == "<<":
        return a << b if b < 128 else 0
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


def evaluate(text: str, lookup: Callable[[str], Value]) -> Value:
    return _Parser(text, lookup).parse()


def symbols_in(text: str) -> list[str]:
    try:
        return [t for k, t in tokenize(text) if k == "sym"]
    except ExprError:
        return []
