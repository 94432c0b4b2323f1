"""The VMM's own accesses to guest memory, in the three ways a VMM thread can make them.

``checked``  -- through a PROT_MTE mapping with PSTATE.TCO = 0 and synchronous tag checks: the
               pointer's tag (bits 59:56) must match the allocation tag of every granule the
               access touches, or the thread takes SIGSEGV (SEGV_MTESERR) and nothing is done
               (AArch64.CheckTag on each granule). LDG/STG read and write the real tags.
``tco``      -- the same mapping with PSTATE.TCO = 1: loads and stores are Tag Unchecked
               (AArch64.AccessIsTagChecked), tags untouched; LDG/STG still work. This is how
               device emulation does DMA into guest buffers whatever their tags, directly (no
               bounce buffer).
``untagged`` -- through a mapping without PROT_MTE: the memory is Untagged at stage 1 for the
               VMM, so LDG reads 0, STG writes nothing and nothing is checked. A migration that
               reads tags this way reads zeros.

Addresses are IPAs (the model maps them to the VMM's address through the memslots), with the
pointer tag in bits 59:56. A tagged mapping of a page whose tags were never initialised runs
mte_sync_tags on first touch (the tags are cleared once); an untagged one never does.
Anonymous memory has one mapping, so its PROT_MTE-ness is the memslot's (``prot_mte``); a
shared memfd can be mapped again, so the other kind of mapping is made for the accesses.
"""
from __future__ import annotations

from typing import List

from .errors import KvmError, VmmTagCheckFault
from .mm import Memfd
from .pages import GRANULE, PAGE_SIZE

MODES = ("checked", "tco", "untagged")
ADDRESS_MASK = (1 << 56) - 1


class VmmAccess:
    def __init__(self, vm, mode: str, who: str = "vmm") -> None:
        if mode not in MODES:
            raise KvmError("VMM access", "EINVAL", f"mode {mode!r} is not one of "
                                                   f"{', '.join(MODES)}")
        self.vm = vm
        self.mode = mode
        self.who = who
        self.tagged = mode != "untagged"
        self._aliases = {}

    # --- where an address is ----------------------------------------------------------------------
    def _vma_hva(self, ipa: int):
        vm = self.vm
        slot = vm.slot_at(ipa)
        if slot is None or slot.backing.pfnmap:
            raise KvmError("VMM access", "EFAULT", f"IPA {ipa:#x} is not guest RAM")
        if slot.vma.prot_mte == self.tagged:
            return slot.vma, slot.hva_of(ipa)
        if isinstance(slot.backing, Memfd):
            alias = self._aliases.get(slot.slot)
            if alias is None:
                alias = self._aliases[slot.slot] = vm.mm.mmap(slot.size, slot.backing,
                                                              self.tagged, slot.vma.pgoff)
            return alias, alias.start + (ipa - slot.ipa)
        want = "with" if self.tagged else "without"
        raise KvmError("VMM access", "EACCES",
                       f"the memslot at {slot.ipa:#x} is anonymous memory mapped "
                       f"{'with' if slot.vma.prot_mte else 'without'} PROT_MTE; a {self.mode} "
                       f"access needs a mapping {want} it (add the memslot with "
                       f"prot_mte={self.tagged})")

    def page_steps(self, ipa: int, write: bool):
        """Fault the page in through this mapping (a generator: mte_sync_tags has Steps)."""
        vma, hva = self._vma_hva(ipa)
        page = yield from self.vm.mm.fault_steps(hva, write, self.who)
        return page

    def _page(self, ipa: int, write: bool):
        from .pages import drive
        return drive(self.page_steps(ipa, write))

    # --- data -------------------------------------------------------------------------------------
    def read(self, ptr: int, n: int) -> bytes:
        return self._access(ptr, n, None)

    def write(self, ptr: int, data: bytes) -> None:
        self._access(ptr, len(data), bytes(data))

    def _access(self, ptr: int, n: int, data):
        ipa = ptr & ADDRESS_MASK
        pieces = []
        a, end = ipa, ipa + n
        while a < end:
            k = min(end - a, PAGE_SIZE - (a & (PAGE_SIZE - 1)))
            pieces.append((a, k, self._page(a, data is not None)))
            a += k
        frames = self.vm.host.frames
        if self.mode == "checked":
            logical = (ptr >> 56) & 0xF
            top = ptr & ~ADDRESS_MASK
            for a, k, page in pieces:
                pa0 = page.pa + (a & (PAGE_SIZE - 1))
                for g in range(pa0 & ~(GRANULE - 1), pa0 + k, GRANULE):
                    tag = frames.tag(g)
                    if tag != logical:
                        raise VmmTagCheckFault(top | max(a, a + g - pa0), logical, tag,
                                               data is not None)
        out = bytearray()
        off = 0
        for a, k, page in pieces:
            o = a & (PAGE_SIZE - 1)
            if data is None:
                out += frames.read(page, o, k)
            else:
                frames.write(page, data[off:off + k], o)
                self.vm.dirty_by_vmm(a)
            off += k
        self.vm.stats.vmm_bytes += n
        return bytes(out) if data is None else None

    # --- tags (LDG / STG through this mapping) ----------------------------------------------------
    def ldg(self, ptr: int) -> int:
        return self.read_tags(ptr, GRANULE)[0]

    def stg(self, ptr: int, tag: int) -> None:
        self.write_tags(ptr, [tag])

    def read_tags(self, ptr: int, length: int) -> List[int]:
        """One tag per granule of [ptr, ptr + length): the real tags through a tagged mapping,
        zeros through an untagged one."""
        ipa = (ptr & ADDRESS_MASK) & ~(GRANULE - 1)
        n = max(1, ((ptr & ADDRESS_MASK) + max(length, 1) - ipa + GRANULE - 1) // GRANULE)
        out = []
        frames = self.vm.host.frames
        for i in range(n):
            a = ipa + i * GRANULE
            page = self._page(a, False)
            out.append(frames.tag(page.pa + (a & (PAGE_SIZE - 1))) if self.tagged else 0)
        return out

    def write_tags(self, ptr: int, tags) -> None:
        """STG per granule from ``ptr``; through an untagged mapping the stores do nothing."""
        ipa = (ptr & ADDRESS_MASK) & ~(GRANULE - 1)
        frames = self.vm.host.frames
        for i, t in enumerate(tags):
            a = ipa + i * GRANULE
            page = self._page(a, True)
            if self.tagged:
                frames.set_tag(page.pa + (a & (PAGE_SIZE - 1)), t)
                self.vm.dirty_by_vmm(a)
