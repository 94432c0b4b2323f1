"""The host's swap device, with tags saved as arch/arm64/mm/mteswap.c saves them.

mte_save_tags keeps the tags of a tagged page in 128 bytes (MTE_PAGE_TAG_STORAGE) beside the
swap entry; a page never marked PG_mte_tagged saves none. The packing is mte_save_page_tags'
(arch/arm64/lib/mte.S): for each 256-byte block it ORs the LDGM results into one register and
stores it (little-endian). LDGM puts the tag of the block's granule i in bits 4i+3:4i
(Arm ARM, LDGM: ``data<(index*4)+3:index*4> = tag``), so byte k of the 128 holds granule 2k in
its low nibble and granule 2k+1 in its high nibble, whatever GMID_EL1.BS is. On swap-in,
arch_swap_restore -> mte_restore_tags puts them back (under try_page_mte_tagging) before the
page is mapped again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from .pages import GRANULES

TAG_STORAGE = GRANULES // 2              # 128 bytes per 4 KiB page


def pack_tags(tags: bytes) -> bytes:
    """256 tags (one per byte) -> the 128-byte saved form."""
    if len(tags) != GRANULES:
        raise ValueError(f"a page has {GRANULES} tags, not {len(tags)}")
    return bytes((tags[2 * k] & 0xF) | ((tags[2 * k + 1] & 0xF) << 4) for k in range(TAG_STORAGE))


def unpack_tags(packed: bytes) -> bytes:
    """The 128-byte saved form -> 256 tags, one per byte (mte_restore_page_tags)."""
    if len(packed) != TAG_STORAGE:
        raise ValueError(f"saved tags are {TAG_STORAGE} bytes, not {len(packed)}")
    out = bytearray(GRANULES)
    for k, b in enumerate(packed):
        out[2 * k] = b & 0xF
        out[2 * k + 1] = b >> 4
    return bytes(out)


@dataclass
class SwapSlot:
    data: bytes
    tags: Optional[bytes]                # the 128-byte saved tags, None for an untagged page


class SwapDevice:
    """Swap entries by number; ``tags`` is mteswap.c's xarray of saved tag storage."""

    def __init__(self) -> None:
        self.slots: Dict[int, SwapSlot] = {}
        self._next = 1

    def write(self, data: bytes, tags: Optional[bytes]) -> int:
        entry = self._next
        self._next += 1
        self.slots[entry] = SwapSlot(bytes(data), tags)
        return entry

    def read(self, entry: int) -> SwapSlot:
        return self.slots[entry]

    def free(self, entry: int) -> None:
        """swap_free -> mte_invalidate_tags: the entry and its saved tags go."""
        self.slots.pop(entry, None)

    def saved_tags(self, entry: int) -> Optional[bytes]:
        """The raw 128 bytes mteswap.c keeps for ``entry`` (None: the page was untagged)."""
        slot = self.slots.get(entry)
        return None if slot is None else slot.tags
