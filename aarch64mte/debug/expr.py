"""Debugger expressions: registers (`x0`, `$sp`, `pc`), symbols (`loop`, `buf+0x10`), numbers
(hex, decimal, binary), memory (`*ADDR`: the 64-bit word there), the usual C operators and
comparisons (`x0 == 3 && x1 != 0`).

Values are 64-bit, like the registers: `-1` stands for 0xffffffffffffffff, bitwise operators
and comparisons work on the unsigned 64-bit pattern. Arithmetic is exact and every result must
fit 64 bits (-2^63..2^64-1): `1 << 70` or `0xffffffffffffffff + 1` is an error, never a value
silently cut to its low bits."""
from __future__ import annotations

import re
from typing import Callable, Optional

MASK64 = (1 << 64) - 1

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*)
  | (?P<name>\$?[A-Za-z_.][\w.$]*)
  | (?P<op><<|>>|==|!=|<=|>=|&&|\|\||[-+*/%&|^~!()<>])
)""", re.VERBOSE)

# binary operators: precedence (higher binds tighter)
_BINARY = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}


class ExprError(ValueError):
    pass


class Evaluator:
    def __init__(self, reg: Callable[[str], int], symbols: Callable[[], dict],
                 read64: Optional[Callable[[int], int]] = None):
        self.reg = reg
        self.symbols = symbols
        self.read64 = read64

    def __call__(self, text: str) -> int:
        return self.evaluate(text)

    def evaluate(self, text: str) -> int:
        """The value as a 64-bit unsigned number (a negative result as its two's complement)."""
        return self.exact(text) & MASK64

    def exact(self, text: str) -> int:
        """The value as an exact integer, -2^63..2^64-1 (for counts, where -1 is not huge)."""
        self.tokens = self._tokenize(text)
        self.pos = 0
        if not self.tokens:
            raise ExprError("empty expression")
        value = self._binary(0)
        if self.pos != len(self.tokens):
            raise ExprError(f"unexpected {self.tokens[self.pos][1]!r} in {text!r}")
        return value

    def _tokenize(self, text: str):
        out, pos = [], 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ExprError(f"cannot read {text[pos:]!r}")
            kind = m.lastgroup
            out.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        return out

    def _peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def _binary(self, min_prec: int) -> int:
        left = self._unary()
        while True:
            kind, op = self._peek()
            if kind != "op" or op not in _BINARY or _BINARY[op] <= min_prec - 1 or \
                    _BINARY[op] < min_prec:
                return left
            self.pos += 1
            right = self._binary(_BINARY[op] + 1)
            left = self._apply(op, left, right)

    @staticmethod
    def _apply(op: str, a: int, b: int) -> int:
        if op in ("/", "%") and b == 0:
            raise ExprError("division by zero")
        ua, ub = a & MASK64, b & MASK64             # the 64-bit patterns
        if op in ("<<", ">>") and not 0 <= b < 64:
            raise ExprError(f"shift count {b} out of range (0..63)")
        if op in ("/", "%"):                        # C: the quotient rounds toward zero
            q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
            return _fit(q if op == "/" else a - q * b, op)
        return _fit({
            "||": lambda: int(bool(a) or bool(b)), "&&": lambda: int(bool(a) and bool(b)),
            "|": lambda: ua | ub, "^": lambda: ua ^ ub, "&": lambda: ua & ub,
            "==": lambda: int(ua == ub), "!=": lambda: int(ua != ub), "<": lambda: int(ua < ub),
            "<=": lambda: int(ua <= ub), ">": lambda: int(ua > ub), ">=": lambda: int(ua >= ub),
            "<<": lambda: a << b, ">>": lambda: ua >> b,
            "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
        }[op](), op)

    def _unary(self) -> int:
        kind, tok = self._peek()
        if kind is None:
            raise ExprError("expression ends too soon")
        self.pos += 1
        if kind == "op":
            if tok == "(":
                value = self._binary(0)
                if self._peek() != ("op", ")"):
                    raise ExprError("missing ')'")
                self.pos += 1
                return value
            if tok == "-":
                return _fit(-self._unary(), "-")
            if tok == "+":
                return self._unary()
            if tok == "~":
                return ~self._unary() & MASK64
            if tok == "!":
                return int(not self._unary())
            if tok == "*":
                addr = self._unary()
                if self.read64 is None:
                    raise ExprError("memory is not readable here")
                return self.read64(addr)
            raise ExprError(f"unexpected {tok!r}")
        if kind == "num":
            digits = tok.replace("_", "")
            if len(digits) > 66:            # '0b' and 64 binary digits at most
                raise ExprError(f"number {tok[:20]}... has too many digits for 64 bits")
            return _fit(int(digits, 0), tok)
        return self._name(tok)

    def _name(self, tok: str) -> int:
        bare = tok[1:] if tok.startswith("$") else tok
        symbols = self.symbols() or {}
        if not tok.startswith("$") and bare in symbols:
            return symbols[bare]
        name = bare.lower()
        if name == "lr":
            name = "x30"
        elif name == "fp":
            name = "x29"
        elif re.fullmatch(r"w\d+", name) and int(name[1:]) < 31:
            return self.reg("x" + name[1:]) & 0xFFFFFFFF
        try:
            return self.reg(name)
        except Exception:
            pass
        if bare in symbols:
            return symbols[bare]
        raise ExprError(f"no register or symbol named {bare!r}")


def _fit(value: int, what: str) -> int:
    """`value` if it fits 64 bits (-2^63..2^64-1), else an ExprError: nothing is truncated.
    (Operands fit 64 bits, so a result needs at most 128: showing it is cheap.)"""
    if -(1 << 63) <= value < 1 << 64:
        return value
    if what[:1].isdigit():
        raise ExprError(f"{what} does not fit in 64 bits")
    raise ExprError(f"result of '{what}' ({value:#x}) does not fit in 64 bits")
