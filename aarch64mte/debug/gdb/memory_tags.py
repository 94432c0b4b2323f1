"""Memory-tag packets (`qMemTags`, `QMemTags`, `qIsAddressTagged`) for GDB's `memory-tag`."""
from __future__ import annotations

from aarch64mte.debug.commands import write_tags
from aarch64mte.debug.gdb import packets as pk
from aarch64mte.debug.gdb.packets import MAX_MEM
from aarch64mte.debug.session import GRANULE, strip_tag

ALLOCATION_TAG_TYPE = 1                 # GDB's aarch64_memtag_type::mte_allocation
LOGICAL_TAG_TYPE = 0
#: Granules one QMemTags may set (1 MiB of memory): more is refused, not worked through.
MAX_STORE_GRANULES = 1 << 16


class MemoryTagsMixin:
    def _tagged(self, addr: int) -> bool:
        try:
            return bool(self.m.is_tagged(strip_tag(addr)))
        except Exception:
            return False

    def fetch_tags(self, args: str) -> str:
        where, _, kind = args.rpartition(":")
        addr, length = self._addr_len(where)
        if int(kind, 16) != ALLOCATION_TAG_TYPE:
            return "E01"
        first, count = _granules(addr, length)
        if count * 2 > MAX_MEM:
            return "E22"
        try:
            tags = self.m.read_tags(first, count * GRANULE)
        except Exception:
            return "E14"
        return "m" + bytes(t & 0xF for t in tags).hex()

    def store_tags(self, args: str) -> str:
        head, _, tag_hex = args.rpartition(":")
        where, _, kind = head.rpartition(":")
        addr, length = self._addr_len(where)
        if int(kind, 16) != ALLOCATION_TAG_TYPE:
            return "E01"
        pattern = pk.unhex(tag_hex)
        first, count = _granules(addr, length)
        if count > MAX_STORE_GRANULES:
            return "E22"
        if not pattern:
            return "E22" if length else "OK"
        tags = [pattern[i % len(pattern)] & 0xF for i in range(count)]
        self.session.host_change()
        try:
            write_tags(self.m, first, tags, "gdb")
        except Exception:
            return "E14"
        return "OK"


def _granules(addr: int, length: int) -> tuple[int, int]:
    """The first granule and how many granules cover [addr, addr + length); at least one."""
    va = strip_tag(addr)
    first = va & ~(GRANULE - 1)
    end = va + max(length, 1)
    return first, (end - first + GRANULE - 1) // GRANULE
