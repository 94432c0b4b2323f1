"""Tag provenance: who wrote each granule's allocation tag, and when.

A tag-check fault says which tags disagreed; the next question is who put the allocation tag
there. For every granule of RAM the machine keeps the last write of its tag (the instruction's
PC and kind, or the host agent that wrote it; the instruction count with the writer counted;
the EL; the tag it replaced), and a ring of the most recent writes from which a granule's
history is read.

The native MTE trap (``_native/provenance.h``) and the Python paths (``CpuView``, and
``Machine.write_tags`` for host writes; any other write through the tag storage, such as the
KVM model's, is recorded as the host's) record into the same memory, so either path sees what
the other wrote:

- ``last``: two 64-bit words a granule (PC, meta) in an anonymous mapping the size of RAM;
  the kernel commits its pages only where tags are written;
- ``ring``: four words a write (seq, granule PA, PC, meta); write number ``seq`` (from 1) lives
  in entry ``seq & (entries - 1)`` and is still there while that entry's first word is ``seq``,
  so a history stops where the ring has moved on; ``Core.prov_seq`` is the last number.

meta: bits 3:0 the tag before the write, 7:4 the tag written, 9:8 the EL, 15:10 the kind (0 for
none; an MTE instruction is its isa op number + 1, host writes are ``SOURCES``), 63:16 the
instruction count.

Memory: RAM-size (virtual) for ``last`` and 32 bytes per ring entry (``DEFAULT_ENTRIES`` =
16,384: 512 KiB, small enough to stay in the cache the native trap writes through); nothing
grows with the number of writes.
"""
from __future__ import annotations

import ctypes
import mmap
import struct
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..isa.cheader import op_names

DEFAULT_ENTRIES = 1 << 14
MAX_ENTRIES = 1 << 24

EL_SHIFT, KIND_SHIFT, INSNS_SHIFT = 8, 10, 16
INSNS_MASK = (1 << 48) - 1

INSN_KINDS = {name: i + 1 for i, name in enumerate(op_names())}
SOURCES = {"host": 61, "debugger": 62, "gdb": 63}
KIND_NAMES = {code: name for name, code in INSN_KINDS.items()}
KIND_NAMES.update({code: name for name, code in SOURCES.items()})


@dataclass(frozen=True)
class TagWrite:
    """One write of a granule's allocation tag."""
    pa: int                 # the granule
    tag: int                # the tag written
    previous: int           # the tag it replaced
    kind: str               # the instruction ('STG', 'DC GZVA', ...) or 'host', 'debugger', 'gdb'
    pc: int                 # the writing instruction, or where the machine stood for a host write
    insns: int              # instructions executed, the writing one included
    el: int
    seq: Optional[int] = None   # its number, while the ring still holds it

    @property
    def by_instruction(self) -> bool:
        return self.kind not in SOURCES


def _decode(pa: int, pc: int, meta: int, seq: Optional[int]) -> TagWrite:
    return TagWrite(pa, (meta >> 4) & 0xF, meta & 0xF,
                    KIND_NAMES.get((meta >> KIND_SHIFT) & 0x3F, "?"), pc,
                    (meta >> INSNS_SHIFT) & INSNS_MASK, (meta >> EL_SHIFT) & 3, seq)


_PACK2 = struct.Struct("<2Q").pack_into
_PACK4 = struct.Struct("<4Q").pack_into


def _mapping(size: int):
    """An anonymous zero-filled mapping, its ctypes address and a word view of it."""
    m = mmap.mmap(-1, size)
    anchor = ctypes.c_char.from_buffer(m)
    return m, anchor, ctypes.addressof(anchor), memoryview(m).cast("Q")


class Provenance:
    def __init__(self, core, ram, tags, entries: int = DEFAULT_ENTRIES) -> None:
        if entries < 1 or entries > MAX_ENTRIES or entries & (entries - 1):
            raise ValueError(f"history entries must be a power of two, 1..{MAX_ENTRIES:,}")
        self.core = core
        self.base, self.size = ram.base, ram.size
        self.entries = entries
        self.tagbuf = tags._ranges[0].tags          # one byte a granule, as TagUnit shares it
        self.counter = core                         # the block counter (Machine sets it)
        self._last_map, self._last_anchor, last_addr, self.last = _mapping(ram.size)
        self._ring_map, self._ring_anchor, ring_addr, self.ring = _mapping(32 * entries)
        core.prov_last[0] = last_addr
        core.prov_ring = ring_addr
        core.prov_mask = entries - 1
        core.prov_seq = 0
        core.prov_on = 1
        off = type(core).prov_seq.offset             # Core.prov_seq, without ctypes' field cost
        self._seq = memoryview(core).cast("B")[off:off + 8].cast("Q")
        self.where = lambda: (0, 0)                  # (PC, EL) now, for host writes (Machine)
        self._recorded = False                       # the next storage write is recorded
        tags.on_write = self._storage_write

    @property
    def mappings(self):
        """The memory holding the records (for snapshots): [(name, mmap)]."""
        return [("provenance", self._last_map), ("history", self._ring_map)]

    @property
    def seq(self) -> int:
        return self.core.prov_seq

    # --- recording (before the tag storage changes) --------------------------------------------
    def record(self, pa: int, tag: int, kind: int, pc: int, el: int, insns: int) -> None:
        head = (insns & INSNS_MASK) << INSNS_SHIFT | kind << KIND_SHIFT | el << EL_SHIFT
        self._write(pa, (tag,), pc, head)

    def record_insn(self, pa: int, tags: Sequence[int], cpu) -> None:
        """An MTE instruction run in Python (``CpuView.writer``: its PC and name) writes
        ``tags`` to consecutive granules from ``pa``."""
        pc, name = cpu.writer
        head = ((self.counter.insns & INSNS_MASK) << INSNS_SHIFT
                | INSN_KINDS.get(name, 0) << KIND_SHIFT | cpu._el << EL_SHIFT)
        if len(tags) == 1:                # most of them, on every STG the Python paths run
            g = (pa - self.base) >> 4
            seqv = self._seq
            seq = seqv[0] + 1
            seqv[0] = seq
            meta = head | (tags[0] & 0xF) << 4 | self.tagbuf[g]
            _PACK2(self._last_map, g << 4, pc, meta)
            _PACK4(self._ring_map, (seq & (self.entries - 1)) << 5, seq, pa & ~0xF, pc, meta)
        else:
            self._write(pa, tags, pc, head)
        self._recorded = True

    def _write(self, pa: int, tags: Sequence[int], pc: int, head: int) -> None:
        # on the Python path of every tag-writing instruction: few Python operations (a
        # pack of all the granules at once is slower for the 4 to 16 an instruction writes)
        seqv, tagbuf, mask = self._seq, self.tagbuf, self.entries - 1
        g = (pa - self.base) >> 4
        pa &= ~0xF
        seq = seqv[0]
        for t in tags:
            meta = head | (t & 0xF) << 4 | tagbuf[g]
            seq += 1
            _PACK2(self._last_map, g << 4, pc, meta)
            _PACK4(self._ring_map, (seq & mask) << 5, seq, pa, pc, meta)
            g += 1
            pa += 16
        seqv[0] = seq

    def record_host(self, pa: int, tag: int, source: str, pc: int, el: int) -> None:
        self.record(pa, tag, SOURCES[source], pc, el, self.counter.insns)
        self._recorded = True

    def _storage_write(self, pa: int, tags) -> None:
        """Every write through the tag storage (the native trap writes its memory directly):
        one that the machine has just recorded passes; any other is the host's (a model of a
        kernel or VMM on the machine, a tool, a test)."""
        if self._recorded:
            self._recorded = False
            return
        if self.covers(pa):
            pc, el = self.where()
            head = ((self.counter.insns & INSNS_MASK) << INSNS_SHIFT
                    | SOURCES["host"] << KIND_SHIFT | el << EL_SHIFT)
            self._write(pa, tags, pc, head)

    # --- reading --------------------------------------------------------------------------------
    def covers(self, pa: int) -> bool:
        return self.base <= pa < self.base + self.size

    def last_write(self, pa: int) -> Optional[TagWrite]:
        """The last write of the tag of the granule holding ``pa`` (None: never written)."""
        if not self.covers(pa):
            return None
        g = (pa - self.base) >> 4
        meta = self.last[2 * g + 1]
        if not (meta >> KIND_SHIFT) & 0x3F:
            return None
        return _decode(pa & ~0xF, self.last[2 * g], meta, None)

    def history(self, pa: int, n: int) -> List[TagWrite]:
        """Up to ``n`` writes of the granule holding ``pa``, newest first, as far back as the ring
        reaches (its last ``entries`` writes of any granule)."""
        if not self.covers(pa) or n <= 0:
            return []
        gpa = pa & ~0xF
        seq = self.core.prov_seq
        mask = self.entries - 1
        ring = self.ring
        pas = ring[1::4].tolist()
        hits = []
        i = -1
        while True:
            try:
                i = pas.index(gpa, i + 1)
            except ValueError:
                break
            s = ring[4 * i]
            if s and s <= seq and s > seq - self.entries and s & mask == i:
                hits.append(s)
        hits.sort(reverse=True)
        out = []
        for s in hits[:n]:
            i = 4 * (s & mask)
            out.append(_decode(gpa, ring[i + 2], ring[i + 3], s))
        return out

    def writers(self, pa: int, before: Optional[int] = None
                ) -> Tuple[Optional[TagWrite], Optional[TagWrite]]:
        """(the last write, the one before it) of the granule holding ``pa``, among the writes
        made before instruction count ``before`` (all of them when None). None where there
        was no such write, or where the ring no longer holds it."""
        last = self.last_write(pa)
        if last is None:
            return None, None
        hist = self.history(pa, self.entries)
        if before is not None and last.insns >= before:
            hist = [w for w in hist if w.insns < before]
            if not hist:
                return None, None
            return hist[0], hist[1] if len(hist) > 1 else None
        if hist and (hist[0].insns, hist[0].pc, hist[0].kind) == (last.insns, last.pc, last.kind):
            return hist[0], hist[1] if len(hist) > 1 else None
        return last, None

    def complete(self) -> bool:
        """Does the ring still hold every write made (it has not wrapped)?"""
        return self.core.prov_seq <= self.entries
