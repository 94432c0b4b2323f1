"""Macros, .rept/.irp/.irpc: collecting bodies, substituting arguments, running expansions."""
from __future__ import annotations

import re

from .errors import _Err
from .limits import (MAX_EXPANSION_CHARS, MAX_EXPANSION_DEPTH, MAX_EXPANSION_LINES,
                     MAX_INCLUDE_DEPTH)
from .source import Line, split_args
from .statements import _Frame


class MacrosMixin:
    def _define_macro(self, args: str, body: list[Line], ln: Line) -> None:
        toks = args.replace(",", " ").split()
        if not toks:
            raise _Err(".macro needs a name")
        name, params = toks[0], []
        # parameters may be "a", "b=default", "c:req", "d:vararg"; allow "b = 1" too
        raw = re.sub(r"\s*=\s*", "=", args[len(toks[0]):].strip())
        for p in re.split(r"[\s,]+", raw):
            if not p:
                continue
            pname, _, default = p.partition("=")
            pname = pname.split(":")[0]
            params.append((pname, default if _ else None))
        if name in self.macros:
            raise _Err(f"macro '{name}' is already defined")
        self.macros[name] = (params, body, ln)

    def _expand_macro(self, macro, args: str, ln: Line) -> None:
        params, body, _ = macro
        values: dict[str, str] = {p: (d or "") for p, d in params}
        actual = split_args(args) if "," in args else (args.split() if args else [])
        pos = 0
        for a in actual:
            m = re.match(r"^([A-Za-z_][\w]*)\s*=(?!=)\s*(.*)$", a)
            if m and m.group(1) in values:
                values[m.group(1)] = _unquote(m.group(2))
                continue
            if pos >= len(params):
                raise _Err(f"too many arguments to macro ({len(actual)} for {len(params)})")
            values[params[pos][0]] = _unquote(a)
            pos += 1
        self.macro_count += 1
        names = sorted(values, key=len, reverse=True)

        def subst(t: str) -> str:
            def rep(m):
                n = m.group(1)
                if n == "@":
                    return str(self.macro_count - 1)
                if n == "()":
                    return ""
                return values[n] if n in values else m.group(0)
            pat = r"\\(@|\(\)|" + "|".join(re.escape(n) for n in names) + ")" if names else r"\\(@|\(\))"
            return re.sub(pat, rep, t)
        expanded = [Line(ln.file, ln.line, subst(b.text)) for b in body]
        self._push("macro", iter((expanded,)), ln)

    def _push(self, kind: str, blocks, ln: Line) -> None:
        """Start reading `blocks` (an iterator of statement lists) before the statement after
        `ln`. Macro and repeat expansions are counted against the expansion limits."""
        if kind == "include":
            if sum(f.kind == "include" for f in self.frames) >= MAX_INCLUDE_DEPTH:
                raise _Err(f".include nested more than {MAX_INCLUDE_DEPTH} files deep "
                           "(does a file include itself?)")
        else:
            if sum(f.kind in ("macro", "repeat") for f in self.frames) > MAX_EXPANSION_DEPTH:
                raise _Err(f"macros nested too deeply (more than {MAX_EXPANSION_DEPTH} levels of "
                           "macro, .rept and .irp expansion: does a macro invoke itself?)")
            blocks = self._counted(blocks)
        self.frames.append(_Frame(kind, blocks, ln, len(self.cond_stack)))

    def _counted(self, blocks):
        for block in blocks:
            self._count_expansion(max(1, len(block)), sum(len(b.text) for b in block))
            yield block

    def _count_expansion(self, lines: int, chars: int) -> None:
        self.expanded += lines
        self.expanded_chars += chars
        if self.expanded > MAX_EXPANSION_LINES:
            raise _Err(f"macro and .rept expansion exceeds {MAX_EXPANSION_LINES} statements "
                       "(a repeat count too large, or a recursive macro?)")
        if self.expanded_chars > MAX_EXPANSION_CHARS:
            raise _Err(f"macro and .rept expansion exceeds {MAX_EXPANSION_CHARS >> 20} MiB of text "
                       "(a macro whose arguments grow on every level?)")

    def _repeat(self, kind: str, args: str, body: list[Line], ln: Line) -> None:
        if kind == ".rept":
            n = self._eval_now(args)
            if not isinstance(n, int) or n < 0:
                raise _Err(".rept needs a non-negative absolute count")
            if self.expanded + n * max(1, len(body)) > MAX_EXPANSION_LINES:
                raise _Err(f".rept {n} would expand to more than {MAX_EXPANSION_LINES} statements")
            self._push("repeat", (body for _ in range(n)), ln)
            return
        name, _, rest = args.partition(",")
        name = name.strip()
        if not name:
            raise _Err(f"{kind} needs a symbol name")
        if kind == ".irp":
            items = split_args(rest) if rest.strip() else [""]
        else:
            items = list(rest.strip())
        pat = re.compile(r"\\" + re.escape(name) + r"(?![\w])|\\\(\)")

        def blocks():
            for it in items:
                yield [Line(b.file, b.line, pat.sub(lambda m: "" if m.group(0) == "\\()" else it,
                                                    b.text)) for b in body]
        self._push("repeat", blocks(), ln)


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def _unquote(arg: str) -> str:
    """A macro argument that is one string literal is passed without its quotes, as GNU as
    does (`m "(n-1)"` substitutes (n-1))."""
    return arg[1:-1] if _QUOTED.fullmatch(arg) else arg
