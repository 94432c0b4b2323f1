"""Labels, .equ/.set symbols, numeric local labels, and evaluating expressions against them:
now (pass 1, section-relative) or final (pass 2, addresses fixed)."""
from __future__ import annotations

import re

from .errors import _Err
from .expr import ExprError, Rel, UndefinedSymbol, evaluate
from .limits import MAX_SYMBOL_DEPTH
from .source import Line

_NUMREF = re.compile(r"(?<![\w.$\x02])([0-9]+)([bf])(?![\w.$])")
_IDENT = re.compile(r"(?<![\w.$\x02\\])([A-Za-z_.$][\w.$]*)")


class SymbolsMixin:
    def _define_label(self, name: str, ln: Line) -> None:
        if name.isdigit():
            count = self.num_defs.get(name, 0)
            self.num_defs[name] = count + 1
            name = f".L{name}\x02{count}"
        elif name in self.labels or name in self.equs:
            where = self.label_where.get(name)
            at = f" (first defined at {where.file}:{where.line})" if where else ""
            raise _Err(f"symbol '{name}' is already defined{at}")
        self.labels[name] = (self.cur, self.cur.size)
        self.label_where[name] = ln

    def _set_symbol(self, name: str, expr: str, ln: Line, final: bool) -> None:
        if name in self.labels:
            raise _Err(f"symbol '{name}' is already defined as a label")
        if name in self.equ_final:
            raise _Err(f"symbol '{name}' is already defined (.equiv)")
        text = self._rewrite_numeric(expr)
        try:
            value = self._eval_now(text)
        except UndefinedSymbol:
            value = ("expr", self._subst_equs(text), ln)
        self.equs[name] = value
        self.label_where.setdefault(name, ln)
        if final:
            self.equ_final.add(name)

    def _rewrite_numeric(self, text: str) -> str:
        """'1b' / '2f' -> the internal name of that numeric label definition."""
        if not any(ch.isdigit() for ch in text):
            return text

        def rep(m):
            num, d = m.group(1), m.group(2)
            count = self.num_defs.get(num, 0)
            if d == "b":
                if count == 0:
                    raise _Err(f"no earlier definition of local label '{num}' for '{num}b'")
                return f".L{num}\x02{count - 1}"
            return f".L{num}\x02{count}"
        return _map_outside_strings(text, lambda s: _NUMREF.sub(rep, s))

    def _subst_equs(self, text: str) -> str:
        """Replace symbols set by .equ/.set/= to absolute values with those values, so a later
        redefinition does not change what this statement meant."""
        if not self.equs:
            return text

        def rep(m):
            v = self.equs.get(m.group(1))
            if isinstance(v, int):
                return str(v) if v >= 0 else f"({v})"
            return m.group(0)
        return _map_outside_strings(text, lambda s: _IDENT.sub(rep, s))

    def _lookup_now(self, name: str):
        if name == ".":
            return Rel(self.cur, self.cur.size)
        if name in self.labels:
            s, off = self.labels[name]
            return Rel(s, off)
        if name in self.equs:
            v = self.equs[name]
            if isinstance(v, tuple):
                return self._resolve(name, v[1], self._lookup_now)
            return v
        raise UndefinedSymbol(name)

    def _resolve(self, name: str, text: str, lookup):
        """The value of a symbol defined by an expression over other symbols, with cycles and
        the depth of such definitions bounded."""
        if name in self.resolving:
            raise ExprError(f"symbol '{name}' is defined in terms of itself")
        if len(self.resolving) >= MAX_SYMBOL_DEPTH:
            raise ExprError(f"symbol '{name}': symbols defined through more than "
                            f"{MAX_SYMBOL_DEPTH} other symbols")
        self.resolving.add(name)
        try:
            return evaluate(text, lookup)
        finally:
            self.resolving.discard(name)

    def _eval_now(self, text: str):
        return evaluate(self._rewrite_numeric(text), self._lookup_now)

    def _abs_now(self, text: str, what: str) -> int:
        try:
            v = self._eval_now(text)
        except UndefinedSymbol as e:
            raise _Err(f"{what}: {e} (must be defined before use here)") from None
        if not isinstance(v, int):
            raise _Err(f"{what} must be an absolute value")
        return v

    def _lookup_final(self, dot: int):
        def lookup(name: str) -> int:
            if name == ".":
                return dot
            if name in self.labels:
                s, off = self.labels[name]
                return s.addr + off
            if name in self.equs:
                v = self.equs[name]
                if isinstance(v, Rel):
                    return v.section.addr + v.offset
                if isinstance(v, tuple):
                    r = self._resolve(name, v[1], lookup)
                    return r.section.addr + r.offset if isinstance(r, Rel) else r
                return v
            raise UndefinedSymbol(name)
        return lookup

    def _eval_final(self, text: str, dot: int) -> int:
        v = evaluate(text, self._lookup_final(dot))
        if isinstance(v, Rel):
            v = v.section.addr + v.offset
        return v


def _map_outside_strings(text: str, fn) -> str:
    if '"' not in text:
        return fn(text)
    parts = re.split(r'("(?:\\.|[^"\\])*")', text)
    return "".join(p if p.startswith('"') else fn(p) for p in parts)
