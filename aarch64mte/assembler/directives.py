"""Assembler directives: sections, data, strings, space, alignment, symbols, includes."""
from __future__ import annotations

import os

from ..image import RAM_SIZE, align_up
from .errors import _Err
from .limits import MAX_SOURCE_TOTAL
from .sections import PAGE_CHECK, _Section
from .source import (Line, SourceError, parse_strings, read_lines, read_source,
                     split_args)

_DATA_SIZES = {".byte": 1, ".hword": 2, ".short": 2, ".2byte": 2, ".half": 2, ".word": 4,
               ".long": 4, ".int": 4, ".4byte": 4, ".quad": 8, ".8byte": 8, ".xword": 8,
               ".dword": 8}
_IGNORED = {".global", ".globl", ".local", ".weak", ".hidden", ".protected", ".internal",
            ".type", ".size", ".ident", ".file", ".loc", ".arch", ".cpu", ".arch_extension",
            ".variant_pcs", ".func", ".endfunc", ".eabi_attribute", ".gnu_attribute",
            ".addrsig", ".addrsig_sym", ".build_version", ".lcomm_align", ".tlsdesccall",
            ".nops_", ".purgem_"}


class DirectivesMixin:
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
            self._fill(n, bytes([fill & 0xFF]), f"{d} {n:#x}")
        elif d == ".fill":
            a = split_args(args)
            if not a or not a[0]:
                raise _Err(".fill needs a repeat count")
            n = self._abs_now(a[0], ".fill repeat")
            size = self._abs_now(a[1], ".fill size") if len(a) > 1 and a[1] else 1
            value = self._abs_now(a[2], ".fill value") if len(a) > 2 else 0
            if size < 0:
                raise _Err(f".fill size {size} is negative")
            size = min(size, 8)
            one = (value & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4) if size > 4 else \
                (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            if size and n > 0:
                self._fill(n * size, one[:size], f".fill {n}, {size}")
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
            if len(a) < 2 or not a[0] or not a[1]:
                raise _Err(f"{d} needs: name, size[, alignment]")
            bss = self._section(".bss")
            size = self._abs_now(a[1], f"{d} size")
            if size < 0:
                raise _Err(f"{d} size {size} is negative")
            if size > PAGE_CHECK:
                self._check_room(size, f"{d} {a[0]}, {size:#x}", bss)
            align = (self._abs_now(a[2], f"{d} alignment") if len(a) > 2 else
                     min(16, 1 << max(size - 1, 0).bit_length()))
            if align < 1 or align & (align - 1) or align > RAM_SIZE:
                raise _Err(f"{d} alignment {align} is not a power of 2 that fits in RAM")
            if a[0] in self.labels or a[0] in self.equs:
                raise _Err(f"symbol '{a[0]}' is already defined")
            bss.size = align_up(bss.size, align)
            bss.align = max(bss.align, align)
            self.labels[a[0]] = (bss, bss.size)
            self._fill(size, b"\0", f"{d} {a[0]}, {size:#x}", bss)
        elif d in _IGNORED or d.startswith(".cfi_") or d.startswith(".seh_"):
            pass
        elif d == ".org":
            target = self._abs_now(split_args(args)[0] if args.strip() else "", ".org")
            if target < s.size:
                raise _Err(f".org {target:#x} moves backwards (now at {s.size:#x})")
            self._fill(target - s.size, b"\0", f".org {target:#x}")
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

    def _include(self, args: str, ln: Line) -> None:
        name = args.strip().strip('"')
        if not name:
            raise _Err(".include needs a file name")
        here = os.path.dirname(ln.file) if ln.file and not ln.file.startswith("<") else "."
        for d in (here, *self.include_dirs):
            path = os.path.join(d, name)
            if os.path.exists(path):
                break
        else:
            raise _Err(f"cannot find include file '{name}'")
        try:
            text = read_source(path, strict=False)
        except SourceError as e:
            raise _Err(f"cannot include '{name}': {e}") from None
        self.source_chars += len(text)
        if self.source_chars > MAX_SOURCE_TOTAL:
            raise _Err(f"cannot include '{name}': the source files read add up to more than "
                       f"{MAX_SOURCE_TOTAL >> 20} MiB")
        self._push("include", iter((read_lines(text, path),)), ln)
