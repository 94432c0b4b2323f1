"""Image: what the assembler and the ELF loader produce and the machine loads.

Source images lay out `.text` at the base address, then `.rodata`, `.data`, `.bss`, each 4 KiB
aligned; `.bss` is present as zero bytes. The entry is `_start` if defined, else the start of
`.text`; `text_end` is the address just past the last byte of `.text`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PAGE = 0x1000
DEFAULT_BASE = 0x4008_0000
# The board's RAM, where an image is loaded (the same as machine.memory.RAM_BASE and
# RAM_SIZE_DEFAULT, QEMU virt's default `-m 128M`; kept here so that assembling needs no engine)
RAM_BASE = 0x4000_0000
RAM_SIZE = 128 << 20
# Output sections of a source image, in address order, with their permissions
SECTION_ORDER: tuple[tuple[str, str], ...] = (
    (".text", "rx"), (".rodata", "r"), (".data", "rw"), (".bss", "rw"))


def too_large(size: int) -> str | None:
    """Why an image of `size` bytes cannot be loaded, or None. The assembler asks before
    allocating anything, so a huge .space or .org cannot exhaust the host's memory; where the
    image lands inside RAM is the loader's check."""
    if size <= RAM_SIZE:
        return None
    return (f"it runs past the end of RAM (the machine has {RAM_SIZE >> 20} MiB at "
            f"{RAM_BASE:#x})")


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment if alignment > 1 else value


@dataclass
class Segment:
    """A contiguous run of bytes loaded at `addr`; `flags` is a subset of 'rwx'. `optional`:
    the program does not need it (an ELF file's mapped headers), so it may be left out where
    the board has no memory for it."""

    addr: int
    data: bytes
    flags: str = "rwx"
    name: str = ""
    optional: bool = False

    @property
    def end(self) -> int:
        return self.addr + len(self.data)

    def __contains__(self, addr: int) -> bool:
        return self.addr <= addr < self.end


@dataclass
class Image:
    segments: list[Segment] = field(default_factory=list)
    symbols: dict[str, int] = field(default_factory=dict)
    entry: int = 0
    text_end: int = 0
    notes: list[str] = field(default_factory=list)   # what loading it left out, for the user

    @property
    def start(self) -> int:
        """Lowest loaded address."""
        return min((s.addr for s in self.segments), default=self.entry)

    @property
    def end(self) -> int:
        """Address just past the highest loaded byte."""
        return max((s.end for s in self.segments), default=self.entry)

    def segment(self, name: str) -> Segment | None:
        for s in self.segments:
            if s.name == name:
                return s
        return None

    def segment_at(self, addr: int) -> Segment | None:
        for s in self.segments:
            if addr in s:
                return s
        return None

    def read(self, addr: int, size: int) -> bytes:
        """Bytes of the image at [addr, addr+size); gaps and unloaded bytes read as zero."""
        out = bytearray(size)
        for s in self.segments:
            lo, hi = max(addr, s.addr), min(addr + size, s.end)
            if lo < hi:
                out[lo - addr:hi - addr] = s.data[lo - s.addr:hi - s.addr]
        return bytes(out)

    def word(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def text(self) -> Segment | None:
        return self.segment(".text") or next((s for s in self.segments if "x" in s.flags), None)

    def to_binary(self, include_bss: bool = False) -> tuple[int, bytes]:
        """(load address, flat bytes) from the lowest segment to the end of the last one,
        gaps zero-filled. `.bss` at the end is left out unless `include_bss`."""
        segs = [s for s in self.segments if s.data and (include_bss or s.name != ".bss")]
        if not segs:
            return self.start, b""
        lo = min(s.addr for s in segs)
        hi = max(s.end for s in segs)
        return lo, self.read(lo, hi - lo) if len(segs) > 1 else segs[0].data

    def write_binary(self, path: str) -> int:
        """Write the raw image (see to_binary); returns the load address."""
        base, data = self.to_binary()
        with open(path, "wb") as f:
            f.write(data)
        return base

    def write_elf(self, path: str) -> None:
        from .elf import write_elf
        write_elf(self, path)

    def symbolize(self, addr: int) -> str | None:
        """'name' or 'name+0x10' for the closest symbol at or below addr within its segment."""
        best = None
        seg = self.segment_at(addr)
        for name, value in self.symbols.items():
            if value <= addr and (best is None or value > best[1] or
                                  (value == best[1] and _prefer(name, best[0]))):
                if seg is None or value in seg or value == addr:
                    best = (name, value)
        if best is None:
            return None
        return best[0] if best[1] == addr else f"{best[0]}+{addr - best[1]:#x}"

    @classmethod
    def from_binary(cls, data: bytes, base: int = DEFAULT_BASE, flags: str = "rwx") -> "Image":
        """A raw binary loaded at `base` as one segment; entry at its start."""
        return cls([Segment(base, bytes(data), flags, ".text")], {}, base, base + len(data))


def _prefer(a: str, b: str) -> bool:
    """Between two symbols at one address prefer a global-looking name."""
    return (a.startswith("."), a.startswith("_"), a) < (b.startswith("."), b.startswith("_"), b)
