"""Allocation-tag storage: one 4-bit tag per 16-byte physical granule.

This is the one place tag state lives (the machine owns one instance). It models the Arm ARM's
``PhysMemTagRead`` / ``PhysMemTagWrite`` backing store: tags are indexed by *physical* address,
so every alias of a page sees the same tags.

Each physical range is backed by a ``bytearray`` holding one byte per granule (values 0..15),
which lets the hot question "do all granules of this page hold tag t?" be answered with a single
C-level ``bytearray.count`` over the page's slice.

Change notification: ``on_change(page_pa)`` is called once per ``page_size`` page whose tags
actually changed (a write of the value already stored notifies nothing), and ``version`` is
bumped on every such change, so the machine can drop cached fast paths for that page.
``on_write(pa, tags)``, if set, sees every write before it is made (the tags as a sequence,
one per granule from the one holding ``pa``), whether or not it changes anything: the machine
records who writes tags.
"""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Tuple

LOG2_TAG_GRANULE = 4
TAG_GRANULE = 1 << LOG2_TAG_GRANULE


class TagStorageError(LookupError):
    """A physical address outside every range the storage covers."""


class _Range:
    __slots__ = ("g0", "g1", "tags")

    def __init__(self, g0: int, g1: int) -> None:
        self.g0 = g0          # first granule number (pa >> 4)
        self.g1 = g1          # one past the last granule number
        self.tags = bytearray(g1 - g0)


class TagStorage:
    """Allocation tags for one or more physical address ranges.

    ``TagStorage([(base, size), ...], page_size=1024)``; ``base`` and ``size`` must be multiples
    of 16. Tags start at 0. Counters ``granules_read`` / ``granules_written`` count the granules
    moved by ``get``/``get_range`` and ``set``/``set_range``/``fill`` (``uniform_tag`` and
    ``covers`` are queries and count nothing).
    """

    def __init__(self, ranges: Iterable[Tuple[int, int]] = (), page_size: int = 1024,
                 on_change: Optional[Callable[[int], None]] = None) -> None:
        if page_size < TAG_GRANULE or page_size & (page_size - 1):
            raise ValueError("page_size must be a power of two >= 16")
        self.page_size = page_size
        self._page_shift = page_size.bit_length() - 1
        self._ranges: List[_Range] = []
        self._last: Optional[_Range] = None
        self.on_change = on_change
        self.on_write: Optional[Callable[[int, bytes], None]] = None
        self.version = 0
        self.granules_read = 0
        self.granules_written = 0
        for base, size in ranges:
            self.add_range(base, size)

    # --- layout -----------------------------------------------------------------------------
    def add_range(self, base: int, size: int) -> None:
        """Cover [base, base + size) with tag storage (all tags 0)."""
        if base % TAG_GRANULE or size % TAG_GRANULE or size <= 0:
            raise ValueError("tag storage ranges must be non-empty and 16-byte aligned")
        g0, g1 = base >> LOG2_TAG_GRANULE, (base + size) >> LOG2_TAG_GRANULE
        for r in self._ranges:
            if g0 < r.g1 and r.g0 < g1:
                raise ValueError("tag storage ranges overlap")
        self._ranges.append(_Range(g0, g1))
        self._ranges.sort(key=lambda r: r.g0)

    @property
    def ranges(self) -> List[Tuple[int, int]]:
        """The covered physical ranges as (base, size)."""
        return [(r.g0 << LOG2_TAG_GRANULE, (r.g1 - r.g0) << LOG2_TAG_GRANULE)
                for r in self._ranges]

    def _find(self, g: int) -> Optional[_Range]:
        r = self._last
        if r is not None and r.g0 <= g < r.g1:
            return r
        for r in self._ranges:
            if r.g0 <= g < r.g1:
                self._last = r
                return r
        return None

    def _locate(self, pa: int) -> Tuple[_Range, int]:
        g = pa >> LOG2_TAG_GRANULE
        r = self._find(g)
        if r is None:
            raise TagStorageError("no tag storage at PA 0x%x" % pa)
        return r, g - r.g0

    def covers(self, pa: int, length: int = 1) -> bool:
        """True if every byte of [pa, pa + length) has tag storage."""
        g = pa >> LOG2_TAG_GRANULE
        end = (pa + max(length, 1) - 1) >> LOG2_TAG_GRANULE
        while g <= end:
            r = self._find(g)
            if r is None:
                return False
            g = r.g1
        return True

    # --- single granule ---------------------------------------------------------------------
    def get(self, pa: int) -> int:
        """The allocation tag of the granule holding ``pa``."""
        r, i = self._locate(pa)
        self.granules_read += 1
        return r.tags[i]

    def set(self, pa: int, tag: int) -> None:
        """Set the allocation tag of the granule holding ``pa``."""
        r, i = self._locate(pa)
        tag &= 0xF
        if self.on_write is not None:
            self.on_write(pa, (tag,))
        self.granules_written += 1
        if r.tags[i] != tag:
            r.tags[i] = tag
            self._changed(pa, pa)

    # --- ranges of granules -----------------------------------------------------------------
    def _spans(self, pa: int, n: int):
        """Yield (range, first index, count) pieces covering n granules from pa's granule."""
        g = pa >> LOG2_TAG_GRANULE
        end = g + n
        while g < end:
            r = self._find(g)
            if r is None:
                raise TagStorageError("no tag storage at PA 0x%x" % (g << LOG2_TAG_GRANULE))
            k = min(end, r.g1) - g
            yield r, g - r.g0, k
            g += k

    def get_range(self, pa: int, n_granules: int) -> bytes:
        """Tags of ``n_granules`` consecutive granules starting with the one holding ``pa``."""
        if n_granules <= 0:
            return b""
        r, i = self._locate(pa)
        if i + n_granules <= len(r.tags):
            self.granules_read += n_granules
            return bytes(r.tags[i:i + n_granules])
        out = bytearray()
        for r, i, k in self._spans(pa, n_granules):
            out += r.tags[i:i + k]
        self.granules_read += n_granules
        return bytes(out)

    def set_range(self, pa: int, tags) -> None:
        """Set consecutive granules from the one holding ``pa`` to ``tags`` (ints 0..15 or bytes)."""
        data = bytes(t & 0xF for t in tags)
        n = len(data)
        if n == 0:
            return
        pieces = list(self._spans(pa, n))
        if self.on_write is not None:
            self.on_write(pa, data)
        self.granules_written += n
        pos = 0
        changed = False
        for r, i, k in pieces:
            chunk = data[pos:pos + k]
            if r.tags[i:i + k] != chunk:
                r.tags[i:i + k] = chunk
                changed = True
            pos += k
        if changed:
            g = pa >> LOG2_TAG_GRANULE
            self._changed(g << LOG2_TAG_GRANULE, (g + n - 1) << LOG2_TAG_GRANULE)

    def fill(self, pa: int, n_granules: int, tag: int) -> None:
        """Set ``n_granules`` consecutive granules from the one holding ``pa`` to ``tag``."""
        if n_granules <= 0:
            return
        tag &= 0xF
        pieces = list(self._spans(pa, n_granules))
        if self.on_write is not None:
            self.on_write(pa, bytes((tag,)) * n_granules)
        self.granules_written += n_granules
        changed = False
        for r, i, k in pieces:
            if r.tags.count(tag, i, i + k) != k:
                r.tags[i:i + k] = bytes((tag,)) * k
                changed = True
        if changed:
            g = pa >> LOG2_TAG_GRANULE
            self._changed(g << LOG2_TAG_GRANULE, (g + n_granules - 1) << LOG2_TAG_GRANULE)

    def reset(self, tag: int = 0) -> None:
        """Set every covered granule to ``tag`` (notifies each page that changed)."""
        for r in self._ranges:
            base = r.g0 << LOG2_TAG_GRANULE
            self.fill(base, r.g1 - r.g0, tag)

    # --- the hot-path query -----------------------------------------------------------------
    def uniform_tag(self, pa: int, length: int) -> Optional[int]:
        """The tag shared by every granule that [pa, pa + length) touches, or None if they
        differ or any of them has no tag storage."""
        g = pa >> LOG2_TAG_GRANULE
        n = ((pa + max(length, 1) - 1) >> LOG2_TAG_GRANULE) - g + 1
        r = self._last
        if r is None or not (r.g0 <= g and g + n <= r.g1):
            r = self._find(g)
            if r is None or g + n > r.g1:
                return None
        i = g - r.g0
        tags = r.tags
        t = tags[i]
        if n == 1 or tags.count(t, i, i + n) == n:
            return t
        return None

    def page_tags(self, pa: int) -> Optional[bytes]:
        """All tags of the ``page_size`` page holding ``pa`` (None if not fully covered)."""
        base = (pa >> self._page_shift) << self._page_shift
        if not self.covers(base, self.page_size):
            return None
        r, i = self._locate(base)
        n = self.page_size >> LOG2_TAG_GRANULE
        if i + n <= len(r.tags):
            return bytes(r.tags[i:i + n])
        return b"".join(bytes(r.tags[i:i + k]) for r, i, k in self._spans(base, n))

    # --- notification -----------------------------------------------------------------------
    def _changed(self, first_pa: int, last_pa: int) -> None:
        self.version += 1
        cb = self.on_change
        if cb is None:
            return
        shift = self._page_shift
        for page in range(first_pa >> shift, (last_pa >> shift) + 1):
            cb(page << shift)
