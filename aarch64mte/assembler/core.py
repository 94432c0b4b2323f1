"""The builtin assembler: GNU-as syntax, own layout, Keystone for base A64, the isa table for MTE.

Pass 1 walks the statements in order (expanding macros, .rept/.irp and conditionals), assigns
every label a section-relative offset, and records what each statement emits. Instructions are
4 bytes, so the layout needs no encoding. Literals of `ldr Rt, =expr` go to the section's pool,
emitted at `.ltorg` or at the end of the section, 4-byte entries first, then 8, then 16, each
aligned to its size (as GNU as does). Pass 2 fixes section addresses and encodes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .. import isa
from ..errors import InputError
from ..image import DEFAULT_BASE, PAGE, SECTION_ORDER, Image, Segment, align_up
from ..isa import syntax as mte_syntax
from . import base as base_asm
from .expr import ExprError, Rel, UndefinedSymbol, display_name, evaluate, symbols_in
from .source import (Line, parse_assignment, parse_strings, read_lines, split_args,
                     take_labels)

NOP = bytes.fromhex("1f2003d5")
MTE_MNEMONICS = mte_syntax.mnemonics()
_DATA_SIZES = {".byte": 1, ".hword": 2, ".short": 2, ".2byte": 2, ".half": 2, ".word": 4,
               ".long": 4, ".int": 4, ".4byte": 4, ".quad": 8, ".8byte": 8, ".xword": 8,
               ".dword": 8}
_IGNORED = {".global", ".globl", ".local", ".weak", ".hidden", ".protected", ".internal",
            ".type", ".size", ".ident", ".file", ".loc", ".arch", ".cpu", ".arch_extension",
            ".variant_pcs", ".func", ".endfunc", ".eabi_attribute", ".gnu_attribute",
            ".addrsig", ".addrsig_sym", ".build_version", ".lcomm_align", ".tlsdesccall",
            ".nops_", ".purgem_"}
_NUMREF = re.compile(r"(?<![\w.$\x02])([0-9]+)([bf])(?![\w.$])")
_IDENT = re.compile(r"(?<![\w.$\x02\\])([A-Za-z_.$][\w.$]*)")
_FLOATISH = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")
_MAX_EXPANSION = 200_000


class _Err(Exception):
    """Internal: an error at the statement being processed (file:line added by the caller)."""


@dataclass
class _Section:
    name: str
    kind: str                    # output section: .text .rodata .data .bss
    index: int                   # creation order
    items: list = field(default_factory=list)
    size: int = 0
    align: int = 1
    code: bool = False
    pools: dict = field(default_factory=lambda: {4: [], 8: [], 16: []})
    pool_keys: dict = field(default_factory=dict)
    addr: int = 0

    def emit(self, item) -> None:
        self.items.append(item)


@dataclass
class _PoolEntry:
    size: int
    expr: str
    line: Line
    offset: int = -1
    section: _Section | None = None


def output_kind(name: str, flags: str | None, nobits: bool) -> str:
    """Which output section an input section goes to (as the generated linker script does)."""
    for kind in (".text", ".rodata", ".data", ".bss"):
        if name == kind or name.startswith(kind + "."):
            return kind
    if name.startswith(".tbss") or nobits:
        return ".bss"
    if name.startswith((".sdata", ".tdata")):
        return ".data"
    if flags is not None:
        if "x" in flags:
            return ".text"
        if "w" in flags:
            return ".data"
        return ".rodata"
    return ".data"


class Assembler:
    def __init__(self, filename: str = "<string>", base: int = DEFAULT_BASE,
                 include_dirs: tuple[str, ...] = ()):
        self.filename = filename
        self.base = base
        self.include_dirs = include_dirs
        self.sections: dict[str, _Section] = {}
        self.section_stack: list[tuple[_Section, _Section | None]] = []
        self.cur: _Section = self._section(".text")
        self.prev: _Section | None = None
        self.labels: dict[str, tuple[_Section, int]] = {}
        self.label_where: dict[str, Line] = {}
        self.equs: dict[str, object] = {}      # name -> int | Rel | ('expr', text, Line)
        self.equ_final: set[str] = set()       # defined with .equiv: no redefinition
        self.macros: dict[str, tuple[list[tuple[str, str | None]], list[Line], Line]] = {}
        self.num_defs: dict[str, int] = {}
        self.macro_count = 0
        self.expanded = 0
        self.cond_stack: list[list[bool]] = []  # [active, taken, parent_active]
        self.ended = False
        self.line: Line | None = None
        self.resolving: set[str] = set()

    # --- sections -------------------------------------------------------------------------
    def _section(self, name: str, flags: str | None = None, nobits: bool = False) -> _Section:
        s = self.sections.get(name)
        if s is None:
            if name == ".bss":
                nobits = True
            s = _Section(name, output_kind(name, flags, nobits), len(self.sections))
            if s.kind == ".text":
                s.code = True
            self.sections[name] = s
        return s

    def _switch(self, s: _Section) -> None:
        if s is not self.cur:
            self.prev, self.cur = self.cur, s

    # --- pass 1 ----------------------------------------------------------------------------
    def run(self, text: str) -> Image:
        lines = read_lines(text, self.filename)
        self._process(lines)
        if self.cond_stack:
            raise InputError("missing .endif", self.filename, None)
        for s in self.sections.values():
            self._flush_pools(s)
        return self._link()

    def _process(self, lines: list[Line]) -> None:
        i = 0
        while i < len(lines):
            if self.ended:
                return
            ln = lines[i]
            self.line = ln
            try:
                i = self._statement(lines, i)
            except InputError:
                raise
            except (_Err, ExprError, base_asm.BaseAsmError, isa.EncodeError, ValueError) as e:
                raise InputError(str(e), ln.file, ln.line) from None

    def _collect_block(self, lines: list[Line], i: int, opens: tuple[str, ...],
                       close: tuple[str, ...]) -> tuple[list[Line], int]:
        """Lines of a .macro/.rept body: from i+1 to the matching close; returns (body, index
        after the close)."""
        depth = 1
        j = i + 1
        while j < len(lines):
            word = lines[j].text.split(None, 1)[0].lower() if lines[j].text.split() else ""
            _, rest = take_labels(lines[j].text)
            word = rest.split(None, 1)[0].lower() if rest.split() else word
            if word in opens:
                depth += 1
            elif word in close:
                depth -= 1
                if depth == 0:
                    return lines[i + 1:j], j + 1
            j += 1
        raise _Err(f"missing {close[0]} for {lines[i].text.split()[0]}")

    def _active(self) -> bool:
        return all(c[0] for c in self.cond_stack)

    def _statement(self, lines: list[Line], i: int) -> int:
        ln = lines[i]
        text = ln.text
        head = text.split(None, 1)[0].lower() if text else ""
        # conditionals are seen even while skipping
        if head in (".if", ".ifdef", ".ifndef", ".ifeq", ".ifne", ".ifgt", ".ifge", ".iflt",
                    ".ifle", ".ifc", ".ifnc", ".ifb", ".ifnb", ".ifeqs", ".ifnes", ".ifnotdef"):
            if not self._active():
                self.cond_stack.append([False, True])
            else:
                v = self._condition(head, text.split(None, 1)[1] if " " in text.strip() else "")
                self.cond_stack.append([v, v])
            return i + 1
        if head in (".else", ".elseif"):
            if not self.cond_stack:
                raise _Err(f"{head} without .if")
            top = self.cond_stack[-1]
            outer = all(c[0] for c in self.cond_stack[:-1])
            if top[1] or not outer:
                top[0] = False
            elif head == ".else":
                top[0] = top[1] = True
            else:
                v = self._condition(".if", text.split(None, 1)[1] if " " in text.strip() else "")
                top[0] = top[1] = v
            return i + 1
        if head == ".endif":
            if not self.cond_stack:
                raise _Err(".endif without .if")
            self.cond_stack.pop()
            return i + 1
        if not self._active():
            if head == ".macro":
                _, j = self._collect_block(lines, i, (".macro",), (".endm",))
                return j
            return i + 1

        labels, rest = take_labels(text)
        for lab in labels:
            self._define_label(lab, ln)
        if not rest:
            return i + 1
        assign = parse_assignment(rest)
        if assign and not rest.lstrip().startswith("."):
            self._set_symbol(assign[0], assign[1], ln, final=False)
            return i + 1
        if assign and rest.split(None, 1)[0].lower() not in (".set", ".equ", ".equiv", ".eqv"):
            self._set_symbol(assign[0], assign[1], ln, final=False)
            return i + 1
        parts = rest.split(None, 1)
        word = parts[0]
        args = parts[1].strip() if len(parts) > 1 else ""
        lw = word.lower()
        if lw == ".macro":
            body, j = self._collect_block(lines, i, (".macro",), (".endm",))
            self._define_macro(args, body, ln)
            return j
        if lw in (".rept", ".irp", ".irpc"):
            body, j = self._collect_block(lines, i, (".rept", ".irp", ".irpc"), (".endr",))
            self._repeat(lw, args, body, ln)
            return j
        if lw in (".endm", ".endr"):
            raise _Err(f"{lw} without a matching {'.macro' if lw == '.endm' else '.rept'}")
        if lw == ".exitm":
            raise _ExitMacro()
        if word in self.macros or lw in self.macros:
            self._expand_macro(self.macros.get(word) or self.macros[lw], args, ln)
            return i + 1
        if word.startswith("."):
            self._directive(lw, args, ln)
        else:
            self._instruction(word, args, ln)
        return i + 1

    def _condition(self, head: str, arg: str) -> bool:
        arg = arg.strip()
        if head in (".ifdef", ".ifndef", ".ifnotdef"):
            defined = arg in self.labels or arg in self.equs
            return defined if head == ".ifdef" else not defined
        if head in (".ifb", ".ifnb"):
            return (not arg) == (head == ".ifb")
        if head in (".ifc", ".ifnc", ".ifeqs", ".ifnes"):
            a = split_args(arg)
            if len(a) != 2:
                raise _Err(f"{head} needs two operands")
            x, y = (s.strip().strip('"').strip("'") for s in a)
            return (x == y) == (head in (".ifc", ".ifeqs"))
        v = self._eval_now(arg)
        if not isinstance(v, int):
            raise _Err(f"{head} needs an absolute expression")
        return {".if": v != 0, ".ifne": v != 0, ".ifeq": v == 0, ".ifgt": v > 0,
                ".ifge": v >= 0, ".iflt": v < 0, ".ifle": v <= 0}[head]

    # --- macros -------------------------------------------------------------------------------
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

    # --- symbols --------------------------------------------------------------------------
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
                return self._eval_now(v[1])
            return v
        raise UndefinedSymbol(name)

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

    # --- directives -----------------------------------------------------------------------
    def _directive(self, d: str, args: str, ln: Line) -> None:
        s = self.cur
        if d in (".text", ".data", ".bss", ".rodata"):
            sub = args.strip()
            self._switch(self._section(d if not sub or sub == "0" else f"{d}.{sub}"))
        elif d == ".section":
            self._switch(self._section_directive(args))
        elif d == ".pushsection":
            self.section_stack.append((self.cur, self.prev))
            self._switch(self._section_directive(args))
        elif d == ".popsection":
            if not self.section_stack:
                raise _Err(".popsection without .pushsection")
            self.cur, self.prev = self.section_stack.pop()
        elif d == ".previous":
            if self.prev is None:
                raise _Err(".previous without an earlier section")
            self.cur, self.prev = self.prev, self.cur
        elif d in _DATA_SIZES:
            size = _DATA_SIZES[d]
            vals = split_args(args)
            if not vals or any(v == "" for v in vals):
                raise _Err(f"{d} needs a comma-separated list of values")
            exprs = [self._subst_equs(self._rewrite_numeric(v)) for v in vals]
            s.emit(("data", s.size, size, exprs, ln))
            s.size += size * len(exprs)
        elif d == ".inst":
            vals = split_args(args)
            if not vals:
                raise _Err(".inst needs a value")
            exprs = [self._subst_equs(self._rewrite_numeric(v)) for v in vals]
            s.emit(("data", s.size, 4, exprs, ln))
            s.size += 4 * len(exprs)
            s.align = max(s.align, 4)
        elif d in (".ascii", ".asciz", ".string"):
            data = b""
            for st in parse_strings(args):
                data += st + (b"\0" if d != ".ascii" else b"")
            self._bytes(data)
        elif d in (".space", ".skip", ".zero"):
            a = split_args(args)
            if not a or not a[0]:
                raise _Err(f"{d} needs a size")
            n = self._abs_now(a[0], f"{d} size")
            fill = self._abs_now(a[1], f"{d} fill") if len(a) > 1 and d != ".zero" else 0
            if n < 0:
                raise _Err(f"{d} size {n} is negative")
            self._bytes(bytes([fill & 0xFF]) * n)
        elif d == ".fill":
            a = split_args(args)
            n = self._abs_now(a[0], ".fill repeat")
            size = self._abs_now(a[1], ".fill size") if len(a) > 1 else 1
            value = self._abs_now(a[2], ".fill value") if len(a) > 2 else 0
            size = min(size, 8)
            one = (value & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4) if size > 4 else \
                (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            self._bytes(one[:size] * n)
        elif d in (".align", ".p2align", ".balign", ".balignw", ".balignl", ".p2alignw",
                   ".p2alignl"):
            self._align(d, args)
        elif d in (".equ", ".set", ".equiv", ".eqv"):
            a = split_args(args)
            if len(a) != 2 or not a[0]:
                raise _Err(f"{d} needs: name, value")
            self._set_symbol(a[0], a[1], ln, final=(d == ".equiv"))
        elif d in (".ltorg", ".pool"):
            self._flush_pools(s)
        elif d == ".include":
            self._include(args, ln)
        elif d == ".end":
            self.ended = True
        elif d in (".err", ".error"):
            msg = parse_strings(args)[0].decode() if args.strip().startswith('"') else ".err encountered"
            raise _Err(msg)
        elif d == ".warning":
            pass
        elif d in (".purgem",):
            self.macros.pop(args.strip(), None)
        elif d in (".comm", ".lcomm"):
            a = split_args(args)
            bss = self._section(".bss")
            size = self._abs_now(a[1], f"{d} size")
            align = self._abs_now(a[2], f"{d} alignment") if len(a) > 2 else min(16, 1 << max(size - 1, 0).bit_length())
            bss.size = align_up(bss.size, align)
            bss.align = max(bss.align, align)
            self.labels[a[0]] = (bss, bss.size)
            bss.emit(("bytes", bss.size, bytes(size)))
            bss.size += size
        elif d in _IGNORED or d.startswith(".cfi_") or d.startswith(".seh_"):
            pass
        elif d == ".org":
            target = self._abs_now(args.split(",")[0], ".org")
            if target < s.size:
                raise _Err(f".org {target:#x} moves backwards (now at {s.size:#x})")
            self._bytes(bytes(target - s.size))
        else:
            raise _Err(f"unknown directive '{d}'")

    def _section_directive(self, args: str) -> _Section:
        a = split_args(args)
        if not a or not a[0]:
            raise _Err(".section needs a name")
        name = a[0].strip('"')
        flags = a[1].strip().strip('"') if len(a) > 1 else None
        nobits = any("nobits" in x for x in a[2:])
        return self._section(name, flags, nobits)

    def _bytes(self, data: bytes) -> None:
        s = self.cur
        if data:
            s.emit(("bytes", s.size, data))
            s.size += len(data)

    def _align(self, d: str, args: str) -> None:
        a = split_args(args)
        if not a or not a[0]:
            raise _Err(f"{d} needs an alignment")
        n = self._abs_now(a[0], f"{d} alignment")
        if d.startswith(".p2") or d == ".align":
            if not 0 <= n <= 16:
                raise _Err(f"{d} {n}: alignment too large")
            align = 1 << n
        else:
            if n == 0:
                n = 1
            if n & (n - 1):
                raise _Err(f"{d} {n}: alignment is not a power of 2")
            align = n
        fill = None
        if len(a) > 1 and a[1]:
            fill = self._abs_now(a[1], f"{d} fill")
        maxskip = self._abs_now(a[2], f"{d} limit") if len(a) > 2 and a[2] else None
        s = self.cur
        pad = align_up(s.size, align) - s.size
        if maxskip is not None and pad > maxskip:
            return
        s.align = max(s.align, align)
        if not pad:
            return
        if fill is not None:
            unit = {"w": 2, "l": 4}.get(d[-1], 1)
            data = (fill & ((1 << (8 * unit)) - 1)).to_bytes(unit, "little") * (pad // unit + 1)
            self._bytes(data[:pad])
        elif s.code:
            lead = (-s.size) % 4
            self._bytes(bytes(lead) + NOP * ((pad - lead) // 4))
        else:
            self._bytes(bytes(pad))

    def _include(self, args: str, ln: Line) -> None:
        name = args.strip().strip('"')
        here = os.path.dirname(ln.file) if ln.file and not ln.file.startswith("<") else "."
        for d in (here, *self.include_dirs):
            path = os.path.join(d, name)
            if os.path.exists(path):
                break
        else:
            raise _Err(f"cannot find include file '{name}'")
        with open(path, encoding="utf-8", errors="replace") as f:
            self._run_block(read_lines(f.read(), path))

    # --- instructions ---------------------------------------------------------------------
    def _instruction(self, mnemonic: str, args: str, ln: Line) -> None:
        s = self.cur
        if s.kind == ".bss":
            raise _Err(f"instruction '{mnemonic}' in a .bss section")
        mn = mnemonic.lower()
        ops = self._subst_equs(self._rewrite_numeric(args))
        pool = None
        if mn in ("ldr", "ldrsw") and "=" in ops:
            a = split_args(ops)
            if len(a) == 2 and a[1].startswith("="):
                pool = self._pool_entry(mn, a[0], a[1][1:].strip(), ln)
        if s.size % 4:
            raise _Err(f"instruction at offset {s.size:#x} of {s.name} is not 4-byte aligned "
                       "(add .balign 4)")
        s.emit(("insn", s.size, mnemonic, ops, ln, pool))
        s.size += 4
        s.code = True
        s.align = max(s.align, 4)

    def _pool_entry(self, mn: str, reg: str, expr: str, ln: Line) -> _PoolEntry:
        r = reg.strip().lower()
        if mn == "ldrsw" or r.startswith("w") or r.startswith("s"):
            size = 4
        elif r.startswith("q"):
            size = 16
        else:
            size = 8
        s = self.cur
        try:
            v = self._eval_now(expr)
            key = (size, "v", v) if isinstance(v, int) else (size, "e", expr.replace(" ", ""))
        except (UndefinedSymbol, ExprError):
            key = (size, "e", expr.replace(" ", ""))
        entry = s.pool_keys.get(key)
        if entry is None:
            entry = _PoolEntry(size, expr, ln, section=s)
            s.pool_keys[key] = entry
            s.pools[size].append(entry)
        return entry

    def _flush_pools(self, s: _Section) -> None:
        for size in (4, 8, 16):
            entries = s.pools[size]
            if not entries:
                continue
            pad = align_up(s.size, size) - s.size
            if pad:
                s.emit(("bytes", s.size, bytes(pad)))
                s.size += pad
            s.align = max(s.align, size)
            for e in entries:
                e.offset = s.size
                s.emit(("pool", s.size, e))
                s.size += size
            s.pools[size] = []
        s.pool_keys = {}

    # --- pass 2: layout and encoding ----------------------------------------------------------
    def _ordered(self, kind: str) -> list[_Section]:
        secs = sorted((s for s in self.sections.values() if s.kind == kind), key=lambda s: s.index)
        boot = [s for s in secs if s.name == kind + ".boot"]
        return boot + [s for s in secs if s not in boot]

    def _link(self) -> Image:
        addr = self.base
        segments: list[Segment] = []
        text_end = self.base
        first = True
        layout = []
        for kind, flags in SECTION_ORDER:
            secs = [s for s in self._ordered(kind) if s.size or (kind == ".text" and first)]
            if not any(s.size for s in secs) and not (kind == ".text"):
                continue
            if not first:
                addr = align_up(addr, PAGE)
            first = False
            start = addr
            for s in secs:
                addr = align_up(addr, s.align)
                s.addr = addr
                addr += s.size
            layout.append((kind, flags, start, addr, secs))
            if kind == ".text":
                text_end = addr
        self.final = {}
        for kind, flags, start, end, secs in layout:
            buf = bytearray(end - start)
            for s in secs:
                self._encode_section(s, buf, start)
            segments.append(Segment(start, bytes(buf), flags, kind))
        symbols = {}
        for name, (s, off) in self.labels.items():
            if name.startswith(".L"):
                continue
            symbols[name] = s.addr + off
        entry = symbols.get("_start", self.base if not layout else layout[0][2])
        return Image([sg for sg in segments if sg.data or sg.name == ".text"], symbols, entry,
                     text_end)

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
                    if name in self.resolving:
                        raise ExprError(f"symbol '{name}' is defined in terms of itself")
                    self.resolving.add(name)
                    try:
                        r = evaluate(v[1], self._lookup_final(dot))
                    finally:
                        self.resolving.discard(name)
                    return r.section.addr + r.offset if isinstance(r, Rel) else r
                return v
            raise UndefinedSymbol(name)
        return lookup

    def _eval_final(self, text: str, dot: int) -> int:
        v = evaluate(text, self._lookup_final(dot))
        if isinstance(v, Rel):
            v = v.section.addr + v.offset
        return v

    def _encode_section(self, s: _Section, buf: bytearray, out_start: int) -> None:
        base = s.addr - out_start
        is_bss = s.kind == ".bss"
        for item in s.items:
            kind, off = item[0], item[1]
            pos = base + off
            addr = s.addr + off
            if kind == "bytes":
                data = item[2]
            elif kind == "data":
                _, _, size, exprs, ln = item
                self.line = ln
                data = b"".join(self._value_bytes(e, size, addr + k * size, ln)
                                for k, e in enumerate(exprs))
            elif kind == "pool":
                e = item[2]
                data = self._value_bytes(e.expr, e.size, addr, e.line)
            else:
                _, _, mnemonic, ops, ln, pool = item
                data = self._encode_insn(mnemonic, ops, addr, ln, pool)
            if is_bss and any(data):
                raise InputError(f"non-zero data in section {s.name}", *self._where(item))
            buf[pos:pos + len(data)] = data

    def _where(self, item):
        for x in item:
            if isinstance(x, Line):
                return x.file, x.line
        return self.filename, None

    def _value_bytes(self, expr: str, size: int, addr: int, ln: Line) -> bytes:
        try:
            v = self._eval_final(expr, addr)
        except (ExprError, ValueError) as e:
            raise InputError(str(e), ln.file, ln.line) from None
        lo = -(1 << (8 * size - 1))
        if not lo <= v < (1 << (8 * size)):
            raise InputError(f"value {v:#x} does not fit in {size} byte{'s' if size > 1 else ''}",
                             ln.file, ln.line)
        return (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def _encode_insn(self, mnemonic: str, ops: str, addr: int, ln: Line, pool) -> bytes:
        try:
            return self._encode(mnemonic, ops, addr, pool)
        except InputError:
            raise
        except (_Err, ExprError, base_asm.BaseAsmError, isa.EncodeError, ValueError) as e:
            raise InputError(str(e), ln.file, ln.line) from None

    def _encode(self, mnemonic: str, ops: str, addr: int, pool) -> bytes:
        mn = mnemonic.lower()
        ev = lambda t: self._eval_final(t, addr)  # noqa: E731
        if mn in MTE_MNEMONICS:
            insn = mte_syntax.parse(mn, ops, ev)
            if insn is not None:
                return isa.encode(insn).to_bytes(4, "little")
        if pool is not None:
            reg = split_args(ops)[0]
            target = pool.section.addr + pool.offset
            base_asm.check_pc_relative("ldr", addr, target)
            return base_asm.assemble_one(f"{mn} {reg}, {target:#x}", addr, True)
        kind = base_asm.pc_relative_kind(mn)
        if kind:
            a = split_args(ops)
            target_text = a[-1] if a else ""
            if a and not target_text.startswith("[") and not target_text.startswith("="):
                if kind in ("ldr", "ldrsw", "prfm") and len(a) != 2:
                    pass
                else:
                    t = target_text[1:] if target_text.startswith("#") else target_text
                    if t.lower().startswith(":pg_hi21:"):
                        t = t[len(":pg_hi21:"):]
                    target = ev(t)
                    base_asm.check_pc_relative(kind, addr, target)
                    return base_asm.assemble_one(
                        base_asm.pc_relative_text(kind, mn, a[:-1], addr, target), addr, True)
        text = f"{mnemonic} {self._resolve_operands(ops, ev)}" if ops else mnemonic
        try:
            return base_asm.assemble_one(text, addr, False)
        except base_asm.BaseAsmError:
            from .extra import ExtraError, encode as encode_extra
            try:
                word = encode_extra(mn, ops, ev)
            except ExtraError as e:
                raise _Err(str(e)) from None
            if word is None:
                raise
            return word.to_bytes(4, "little")

    def _resolve_operands(self, ops: str, ev) -> str:
        """Evaluate every '#expr' (and :lo12:-style operators) and every bare operand that
        names a symbol, so Keystone sees only numbers."""
        out = []
        i, n = 0, len(ops)
        while i < n:
            c = ops[i]
            if c == "#" or (c == ":" and _reloc_at(ops, i)):
                j = i + 1 if c == "#" else i
                depth = 0
                k = j
                while k < n:
                    ch = ops[k]
                    if ch == "(":
                        depth += 1
                    elif ch == ")":
                        depth -= 1
                    elif depth == 0 and ch in ",]}!":
                        break
                    k += 1
                expr = ops[j:k].strip()
                out.append("#" + self._immediate(expr, ev))
                i = k
                continue
            out.append(c)
            i += 1
        text = "".join(out)
        parts = split_args(text)
        known = lambda name: name in self.labels or name in self.equs or name == "."  # noqa: E731
        changed = False
        for idx, p in enumerate(parts):
            if p.startswith(("#", "[", "{")) or not p:
                continue
            syms = symbols_in(p)
            if syms and any(known(x) for x in syms) and not _is_register(p):
                parts[idx] = f"#{ev(p):#x}"
                changed = True
        return ", ".join(parts) if changed else text

    def _immediate(self, expr: str, ev) -> str:
        m = re.match(r":(\w+):(.*)$", expr, re.S)
        if m:
            op, rest = m.group(1).lower(), m.group(2)
            v = ev(rest)
            table = {"lo12": lambda x: x & 0xFFF, "lo12_nc": lambda x: x & 0xFFF,
                     "abs_g0": lambda x: x & 0xFFFF, "abs_g0_nc": lambda x: x & 0xFFFF,
                     "abs_g1": lambda x: (x >> 16) & 0xFFFF, "abs_g1_nc": lambda x: (x >> 16) & 0xFFFF,
                     "abs_g2": lambda x: (x >> 32) & 0xFFFF, "abs_g2_nc": lambda x: (x >> 32) & 0xFFFF,
                     "abs_g3": lambda x: (x >> 48) & 0xFFFF}
            if op not in table:
                raise _Err(f"relocation operator ':{op}:' is not supported")
            if op in ("abs_g0", "abs_g1", "abs_g2") and v >> (16 * (int(op[-1]) + 1)):
                raise _Err(f"value {v:#x} does not fit :{op}:")
            shift = int(op[5]) * 16 if op.startswith("abs_g") else 0
            return f"{table[op](v):#x}" + (f", lsl #{shift}" if shift else "")
        if _FLOATISH.match(expr) and ("." in expr or "e" in expr.lower()) and not expr.lower().startswith("0x"):
            return expr
        try:
            v = ev(expr)
        except UndefinedSymbol:
            raise
        except ExprError:
            return expr
        return f"{v:#x}" if v >= 0 else f"-{-v:#x}"


class _ExitMacro(Exception):
    pass


def _reloc_at(text: str, i: int) -> bool:
    return re.match(r":(lo12|lo12_nc|abs_g[0-3](_nc)?|pg_hi21):", text[i:], re.I) is not None


_REGLIKE = re.compile(r"(?i)^([xwbhsdqv]\d+(\.\w+)?(\[\d+\])?|sp|wsp|xzr|wzr|lr|fp)$")


def _is_register(p: str) -> bool:
    return bool(_REGLIKE.match(p.strip()))


def _map_outside_strings(text: str, fn) -> str:
    if '"' not in text:
        return fn(text)
    parts = re.split(r'("(?:\\.|[^"\\])*")', text)
    return "".join(p if p.startswith('"') else fn(p) for p in parts)
