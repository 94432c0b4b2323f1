"""Whether an image fits the board, checked before any byte of it is placed.

The board has memory only in RAM (a UART page aside), so every segment a program needs must lie
inside RAM, whole. A segment the program does not need (`Segment.optional`: the ELF headers ld
maps below a high -Ttext address) is left out with a note where it does not fit. Segments may not
overlap each other (the later one would silently replace the earlier one's bytes), nor the part
of RAM the machine itself fills after loading (the snippet profile's page tables): each of these
is one InputError saying which segment, where, and why.
"""
from __future__ import annotations

import dataclasses

from .errors import InputError
from .image import Image, Segment


def _span(lo: int, hi: int) -> str:
    return f"{lo:#x}..{hi:#x}"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def _describe(seg: Segment) -> str:
    name = f"{seg.name} " if seg.name else ""
    return f"segment {name}({seg.flags or '-'}, {_span(seg.addr, seg.end)})"


def _why_needed(seg: Segment, entry: int) -> str:
    if entry in seg:
        return "it holds the entry point"
    if "x" in seg.flags:
        return "it holds code"
    if "w" in seg.flags:
        return "the program writes it"
    return "the program may read it"


def fit(image: Image, ram_base: int, ram_end: int, reserved_from: int | None = None,
        reserved_for: str = "") -> Image:
    """The image to load: `image` itself, or a copy without the optional segments RAM cannot
    hold (with a note for each). Raises InputError (naming no file: the caller knows it) when a
    needed segment lies outside [ram_base, ram_end), segments overlap, a segment reaches into
    [reserved_from, ram_end) (`reserved_for` says what is there), or the entry point is not in
    RAM."""
    ram = f"RAM is {_span(ram_base, ram_end)} ({_mib(ram_end - ram_base)})"
    kept, notes = [], []
    for seg in image.segments:
        if not seg.data or ram_base <= seg.addr and seg.end <= ram_end:
            kept.append(seg)
            continue
        if seg.optional and image.entry not in seg and not set(seg.flags) & set("wx"):
            notes.append(f"left out {_describe(seg)}: outside RAM, and the program does not "
                         f"need it")
            continue
        where = "runs past the end of RAM" if ram_base <= seg.addr < ram_end else \
            "starts below RAM" if seg.addr < ram_base < seg.end else "is outside RAM"
        raise InputError(f"{_describe(seg)} {where} and cannot be loaded "
                         f"({_why_needed(seg, image.entry)}); {ram}: link or assemble the "
                         f"program for an address in RAM")
    ordered = sorted((s for s in kept if s.data), key=lambda s: s.addr)
    for a, b in zip(ordered, ordered[1:]):
        if b.addr < a.end:
            raise InputError(f"{_describe(a)} and {_describe(b)} overlap: one would overwrite "
                             f"the other's bytes")
    if reserved_from is not None:
        for seg in ordered:
            if seg.end > reserved_from:
                raise InputError(f"{_describe(seg)} reaches into {_span(reserved_from, ram_end)}, "
                                 f"where {reserved_for or 'the machine keeps its own data'}")
    if not ram_base <= image.entry < ram_end:
        raise InputError(f"entry point {image.entry:#x} is outside RAM ({ram}): nothing could "
                         f"run there")
    if len(kept) == len(image.segments) and not notes:
        return image
    return dataclasses.replace(image, segments=kept, notes=list(image.notes) + notes)
