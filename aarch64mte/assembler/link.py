"""Pass 2: place the sections (.text at the base, then .rodata, .data, .bss, each page aligned),
encode every item, and build the Image."""
from __future__ import annotations

from ..errors import InputError
from ..image import PAGE, SECTION_ORDER, Image, Segment, align_up, too_large
from .expr import ExprError
from .sections import _Section
from .source import Line


class LinkMixin:
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
        why = too_large(addr - self.base)
        if why:
            raise InputError(f"the image would be {addr - self.base:#x} bytes: {why}",
                             self.filename)
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

    def _encode_section(self, s: _Section, buf: bytearray, out_start: int) -> None:
        base = s.addr - out_start
        is_bss = s.kind == ".bss"
        for item in s.items:
            kind, off = item[0], item[1]
            pos = base + off
            addr = s.addr + off
            if kind == "fill":
                n, pattern = item[2], item[3]
                if any(pattern):      # (_fill refuses these in .bss)
                    _repeat_into(buf, pos, n, pattern)
                continue
            if kind == "bytes":
                data = item[2]
            elif kind == "data":
                _, _, size, exprs, ln = item
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


def _repeat_into(buf: bytearray, pos: int, n: int, pattern: bytes) -> None:
    """Write `pattern` repeated over buf[pos:pos+n] by doubling copies inside buf, so a large
    fill needs no temporary of its size."""
    mv = memoryview(buf)
    k = min(len(pattern), n)
    mv[pos:pos + k] = pattern[:k]
    while k < n:
        c = min(k, n - k)
        mv[pos + k:pos + k + c] = mv[pos:pos + c]
        k += c
