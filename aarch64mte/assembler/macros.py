"""Macros, .rept/.irp/.irpc: collecting bodies, substituting arguments, running expansions."""
from __future__ import annotations

import re

from .errors import _Err
from .source import Line, split_args

_MAX_EXPANSION = 200_000


class _ExitMacro(Exception):
    pass


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
                values[m.group(1)] = m.group(2)
                continue
            if pos >= len(params):
                raise _Err(f"too many arguments to macro ({len(actual)} for {len(params)})")
            values[params[pos][0]] = a
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
        self._run_block(expanded)

    def _run_block(self, lines: list[Line]) -> None:
        self.expanded += len(lines)
        if self.expanded > _MAX_EXPANSION:
            raise _Err("macro or .rept expansion too large (recursive macro?)")
        saved = self.line
        try:
            self._process(lines)
        except _ExitMacro:
            pass
        self.line = saved

    def _repeat(self, kind: str, args: str, body: list[Line], ln: Line) -> None:
        if kind == ".rept":
            n = self._eval_now(args)
            if not isinstance(n, int) or n < 0:
                raise _Err(".rept needs a non-negative absolute count")
            for _ in range(n):
                self._run_block([Line(b.file, b.line, b.text) for b in body])
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
        for it in items:
            self._run_block([Line(b.file, b.line, pat.sub(lambda m: "" if m.group(0) == "\\()" else it,
                                                         b.text)) for b in body])

