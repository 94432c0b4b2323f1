"""The shim's stage 2: a list of mappings (IPA range -> PA range, attribute, permission), and the
real VMSAv8-64 stage-2 tables that express it, written into host memory the guest cannot reach.

A mapping file is TOML, a list of ``[[map]]`` tables::

    [[map]]
    ipa  = 0x4000_0000
    pa   = 0x4000_0000
    size = 0x800_0000
    attr = "normal-wb"      # normal-wb | normal-nc | device | notagaccess
    perm = "rwx"            # any of r, w, x

The tables follow Linux KVM's layout for a 40-bit IPA space: VTCR_EL2.T0SZ = 24 with the walk
starting at level 1 (SL0 = 1) in two concatenated level-1 tables; 2 MiB blocks where a mapping
allows them, 4 KiB pages elsewhere. MemAttr follows HCR_EL2.FWB as KVM writes it: normal-wb is
0b1111 (0b0110, forced Write-Back, with FWB), normal-nc 0b0101, device 0b0001 (Device-nGnRE),
notagaccess 0b0100 (0b1110 with FWB; FEAT_MTE_PERM).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

from ..errors import InputError

IPA_BITS = 40
PAGE = 0x1000
BLOCK2 = 0x20_0000
ATTRS = ("normal-wb", "normal-nc", "device", "notagaccess")
_MEMATTR = {False: {"normal-wb": 0b1111, "normal-nc": 0b0101, "device": 0b0001,
                    "notagaccess": 0b0100},
            True: {"normal-wb": 0b0110, "normal-nc": 0b0101, "device": 0b0001,
                   "notagaccess": 0b1110}}
# VTCR_EL2: T0SZ 24, SL0 1, IRGN0 = ORGN0 = WB-RWA, SH0 inner, TG0 4K, PS 40 bits, RES1 bit 31
VTCR = 24 | (1 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (2 << 16) | (1 << 31)
ROOT_TABLES = 2                           # level 1 resolves IPA bits 39:30: two tables


@dataclass(frozen=True)
class Mapping:
    ipa: int
    pa: int
    size: int
    attr: str = "normal-wb"
    perm: str = "rwx"

    def descriptor_bits(self, fwb: bool) -> int:
        """Lower and upper attributes of its block/page descriptors (no address, no type)."""
        bits = (_MEMATTR[fwb][self.attr] << 2) | (3 << 8) | (1 << 10)   # MemAttr, SH, AF
        if "r" in self.perm:
            bits |= 1 << 6                                             # S2AP[0]: read
        if "w" in self.perm:
            bits |= 1 << 7                                             # S2AP[1]: write
        if "x" not in self.perm:
            bits |= 1 << 54                                            # XN
        return bits


class Stage2Map:
    """Mappings, validated as they are added; ``pa_ok(pa, size, attr)`` says whether a PA
    range exists on the board for that attribute (None: anything goes)."""

    def __init__(self, mappings: Iterable = (), pa_ok: Optional[Callable] = None,
                 source: str = "<stage 2>") -> None:
        self.mappings: List[Mapping] = []
        self.pa_ok = pa_ok
        self.source = source
        for m in mappings:
            if isinstance(m, dict):
                self.add(**m)
            else:
                self.add(m.ipa, m.pa, m.size, m.attr, m.perm)

    @classmethod
    def from_toml(cls, path: str, pa_ok: Optional[Callable] = None) -> "Stage2Map":
        from ..errors import read_text
        try:
            import tomllib
        except ImportError:                               # Python < 3.11
            import tomli as tomllib
        text = read_text(path)
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"{path}: not TOML: {e}") from None
        unknown = set(doc) - {"map"}
        if unknown:
            raise InputError(f"{path}: unknown key {sorted(unknown)[0]!r} (expected [[map]])")
        entries = doc.get("map", [])
        if not isinstance(entries, list):
            raise InputError(f"{path}: 'map' must be a list of [[map]] tables")
        s2 = cls(pa_ok=pa_ok, source=path)
        for i, e in enumerate(entries, 1):
            if not isinstance(e, dict):
                raise InputError(f"{path}: map #{i} is not a table")
            extra = set(e) - {"ipa", "pa", "size", "attr", "perm"}
            if extra:
                raise InputError(f"{path}: map #{i}: unknown key {sorted(extra)[0]!r}")
            missing = [k for k in ("ipa", "pa", "size") if k not in e]
            if missing:
                raise InputError(f"{path}: map #{i}: missing {missing[0]!r}")
            s2.add(e["ipa"], e["pa"], e["size"], e.get("attr", "normal-wb"),
                   e.get("perm", "rwx"), where=f"{path}: map #{i}")
        return s2

    def add(self, ipa: int, pa: int, size: int, attr: str = "normal-wb", perm: str = "rwx",
            where: Optional[str] = None) -> Mapping:
        where = where or f"{self.source}: mapping ipa={ipa!r}"
        for name, v in (("ipa", ipa), ("pa", pa), ("size", size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InputError(f"{where}: {name} must be a non-negative integer, not {v!r}")
            if v % PAGE:
                raise InputError(f"{where}: {name} {v:#x} is not a multiple of 4 KiB")
        if size == 0:
            raise InputError(f"{where}: size is 0")
        if ipa + size > 1 << IPA_BITS:
            raise InputError(f"{where}: IPA range {ipa:#x}..{ipa + size - 1:#x} is beyond the "
                             f"{IPA_BITS}-bit IPA space")
        if attr not in ATTRS:
            raise InputError(f"{where}: attr {attr!r} is not one of {', '.join(ATTRS)}")
        if not isinstance(perm, str) or any(c not in "rwx" for c in perm) or \
                len(set(perm)) != len(perm):
            raise InputError(f"{where}: perm {perm!r} must be made of r, w and x")
        if self.pa_ok is not None and not self.pa_ok(pa, size, attr):
            raise InputError(f"{where}: PA range {pa:#x}..{pa + size - 1:#x} is not memory "
                             f"this board has for {attr}")
        for m in self.mappings:
            if ipa < m.ipa + m.size and m.ipa < ipa + size:
                raise InputError(f"{where}: IPA range {ipa:#x}..{ipa + size - 1:#x} overlaps "
                                 f"the mapping at {m.ipa:#x}..{m.ipa + m.size - 1:#x}")
        mapping = Mapping(ipa, pa, size, attr, "".join(sorted(perm, key="rwx".index)))
        self.mappings.append(mapping)
        self.mappings.sort(key=lambda m: m.ipa)
        return mapping

    def remove(self, ipa: int, size: int = PAGE) -> None:
        """Unmap [ipa, ipa + size): mappings are split where the range cuts them."""
        for name, v in (("ipa", ipa), ("size", size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v % PAGE:
                raise InputError(f"{self.source}: unmap {name} {v!r} is not a multiple of 4 KiB")
        keep = []
        for m in self.mappings:
            if ipa + size <= m.ipa or m.ipa + m.size <= ipa:
                keep.append(m)
                continue
            if m.ipa < ipa:
                keep.append(Mapping(m.ipa, m.pa, ipa - m.ipa, m.attr, m.perm))
            if ipa + size < m.ipa + m.size:
                off = ipa + size - m.ipa
                keep.append(Mapping(ipa + size, m.pa + off, m.size - off, m.attr, m.perm))
        self.mappings = sorted(keep, key=lambda m: m.ipa)

    def lookup(self, ipa: int) -> Optional[Mapping]:
        for m in self.mappings:
            if m.ipa <= ipa < m.ipa + m.size:
                return m
        return None

    def __iter__(self):
        return iter(self.mappings)


class TableWriter:
    """Writes the tables of a Stage2Map into host memory: ``write64(pa, value)`` over
    ``[base, base + size)``. The root (two concatenated level-1 tables) is at ``base``."""

    def __init__(self, base: int, size: int, write: Callable[[int, bytes], None]) -> None:
        self.base = base
        self.size = size
        self.write = write
        self._tables = None                                # what the last build wrote

    @property
    def built(self) -> bool:
        return self._tables is not None

    @property
    def vttbr(self) -> int:
        return (1 << 48) | self.base                      # VMID 1

    def build(self, s2: Stage2Map, fwb: bool) -> None:
        """Write every table of ``s2`` afresh."""
        self._tables = {self.base: [0] * (512 * ROOT_TABLES)}    # table PA -> its entries
        self._next = self.base + PAGE * ROOT_TABLES
        self._source = s2.source
        self._dirty = set()
        for m in s2:
            bits = m.descriptor_bits(fwb)
            ipa, pa, end = m.ipa, m.pa, m.ipa + m.size
            while ipa < end:
                if ipa % BLOCK2 == 0 and pa % BLOCK2 == 0 and end - ipa >= BLOCK2:
                    l2t = self._entry(self.base, (ipa >> 30) & 0x3FF, 1)
                    self._tables[l2t][(ipa >> 21) & 511] = pa | bits | 0b01      # 2 MiB block
                    ipa += BLOCK2
                    pa += BLOCK2
                    continue
                self._set_page(ipa, pa, bits)
                ipa += PAGE
                pa += PAGE
        # clear what a previous build left, then write every table
        self.write(self.base, bytes(self._next - self.base))
        for t, entries in self._tables.items():
            self.write(t, struct.pack(f"<{len(entries)}Q", *entries))

    def set_page(self, ipa: int, pa: int, bits: int) -> None:
        """Map one 4 KiB page (outside any 2 MiB block) in the tables the last ``build``
        wrote, writing only the tables that change: a VM mapping its memory page by page does
        not rewrite the rest."""
        self._dirty = set()
        self._set_page(ipa, pa, bits)
        for t in sorted(self._dirty):
            self.write(t, struct.pack(f"<{len(self._tables[t])}Q", *self._tables[t]))

    def _set_page(self, ipa: int, pa: int, bits: int) -> int:
        l2t = self._entry(self.base, (ipa >> 30) & 0x3FF, 1)
        l3t = self._entry(l2t, (ipa >> 21) & 511, 2)
        self._tables[l3t][(ipa >> 12) & 511] = pa | bits | 0b11                # 4 KiB page
        self._dirty.add(l3t)
        return l3t

    def _entry(self, table: int, index: int, level: int) -> int:
        """The next-level table under (table, index), made if absent."""
        cur = self._tables[table][index]
        if cur & 3 == 3 and level < 3:
            return cur & 0x0000_FFFF_FFFF_F000
        t = self._next
        if t + PAGE > self.base + self.size:
            raise InputError(f"its stage-2 tables need more host memory than the shim "
                             f"has ({self.size >> 10} KiB)", self._source)
        self._next += PAGE
        self._tables[t] = [0] * 512
        self._tables[table][index] = t | 3
        self._dirty.update((table, t))
        return t
