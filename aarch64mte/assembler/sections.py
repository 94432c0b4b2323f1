"""Pass-1 section state: input sections, their output kind, emitted bytes, alignment padding and
literal pools.

Literals of `ldr Rt, =expr` go to the section's pool, emitted at `.ltorg` or at the end of the
section, 4-byte entries first, then 8, then 16, each aligned to its size (as GNU as does).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..image import align_up, too_large
from .errors import _Err
from .expr import ExprError, UndefinedSymbol
from .source import Line, split_args

NOP = bytes.fromhex("1f2003d5")
# Items larger than this check the image size at once (summing the sections); smaller ones
# cost no memory until the image is built, and the link checks the total before that.
PAGE_CHECK = 1 << 16


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


class SectionsMixin:
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

    def _bytes(self, data: bytes) -> None:
        s = self.cur
        if data:
            if len(data) > PAGE_CHECK:
                self._check_room(len(data), "this data", s)
            s.emit(("bytes", s.size, data))
            s.size += len(data)

    def _fill(self, n: int, pattern: bytes, what: str, s: _Section | None = None) -> None:
        """`n` bytes of `pattern` repeated (cut at n), laid out now and written only when the
        image is built, after the total size is known to fit."""
        s = s or self.cur
        if n <= 0:
            return
        if s.kind == ".bss" and any(pattern):
            raise _Err(f"non-zero data in section {s.name}")
        if n > PAGE_CHECK:
            self._check_room(n, what, s)
        s.emit(("fill", s.size, n, pattern))
        s.size += n

    def _check_room(self, n: int, what: str, s: _Section) -> None:
        """Refuse growth that cannot fit in the machine's RAM, before anything is allocated:
        so the error names the statement that would have taken too much."""
        total = sum(x.size for x in self.sections.values()) + n
        why = too_large(total)
        if why:
            raise _Err(f"{what} in {s.name} would make the image at least {total:#x} bytes: {why}")

    def _align(self, d: str, args: str) -> None:
        a = split_args(args)
        if not a or not a[0]:
            raise _Err(f"{d} needs an alignment")
        n = self._abs_now(a[0], f"{d} alignment")
        if n < 0:
            raise _Err(f"{d} {n}: alignment is negative")
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
        if too_large(align):
            raise _Err(f"{d} {n}: an alignment of {align:#x} bytes cannot be met: "
                       f"{too_large(align)}")
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
        what = f"{d} {n}"
        if fill is not None:
            unit = {"w": 2, "l": 4}.get(d[-1], 1)
            self._fill(pad, (fill & ((1 << (8 * unit)) - 1)).to_bytes(unit, "little"), what)
        elif s.code:
            lead = (-s.size) % 4
            self._fill(lead, b"\0", what)
            self._fill(pad - lead, NOP, what)
        else:
            self._fill(pad, b"\0", what)

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
