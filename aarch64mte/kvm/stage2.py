"""A VM's stage-2 page table: which IPA pages map which host frames, writable or not, written as
real VMSAv8-64 descriptors (the shim's Stage2Map and table writer) into the VM's own area of
host memory. KVM maps guest memory page by page on demand, Normal Write-Back (MemAttr 0b1111,
HCR_EL2.FWB = 0), so a page a guest maps is Tagged whenever its stage 1 says so.
"""
from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

from ..el2.stage2map import Stage2Map
from ..errors import InputError
from .errors import KvmError
from .pages import PAGE_SIZE


class GuestStage2:
    def __init__(self, vm, tables) -> None:
        self.vm = vm
        self.tables = tables
        self.map = Stage2Map(source=f"stage 2 of {vm.name}")
        self.entries: Dict[int, Tuple[int, bool]] = {}      # IPA page -> (PA page, writable)

    def lookup(self, ipa: int) -> Optional[Tuple[int, bool]]:
        return self.entries.get(ipa & ~(PAGE_SIZE - 1))

    def map_page(self, ipa: int, pa: int, writable: bool) -> None:
        """kvm_pgtable_stage2_map (or relax_perms when only the permission changes)."""
        ipa &= ~(PAGE_SIZE - 1)
        if self.entries.get(ipa) == (pa, writable):
            return
        if ipa in self.entries:
            self.map.remove(ipa, PAGE_SIZE)
        m = self.map.add(ipa, pa, PAGE_SIZE, "normal-wb", "rwx" if writable else "rx")
        self.entries[ipa] = (pa, writable)
        self.sync(lambda: self.tables.set_page(ipa, pa, m.descriptor_bits(False)))

    def unmap(self, ipa: int, size: int = PAGE_SIZE) -> int:
        """kvm_stage2_unmap_range; returns how many pages were mapped there."""
        ipa &= ~(PAGE_SIZE - 1)
        gone = [p for p in self.entries if ipa <= p < ipa + size]
        if not gone:
            return 0
        for p in gone:
            del self.entries[p]
        self.map.remove(ipa, size)
        self.sync()
        return len(gone)

    def write_protect(self, ipa: int, size: int) -> None:
        """stage2_wp_range: every mapped page in the range read-only (dirty logging)."""
        changed = False
        for p, (pa, w) in list(self.entries.items()):
            if ipa <= p < ipa + size and w:
                self.map.remove(p, PAGE_SIZE)
                self.map.add(p, pa, PAGE_SIZE, "normal-wb", "rx")
                self.entries[p] = (pa, False)
                changed = True
        if changed:
            self.sync()

    def pages(self) -> Iterator[Tuple[int, int, bool]]:
        for ipa in sorted(self.entries):
            pa, w = self.entries[ipa]
            yield ipa, pa, w

    def sync(self, change=None) -> None:
        """Write the tables (all of them, or by ``change()`` only what one mapping changes);
        if this VM's vCPU is loaded, the TLBs forget the old ones."""
        try:
            if change is not None and self.tables.built:
                change()
            else:
                self.tables.build(self.map, False)
        except InputError as e:
            raise KvmError("stage-2 map", "ENOMEM", str(e)) from None
        vm = self.vm
        cur = vm.host.current
        if cur is not None and cur.vm is vm:
            m = vm.host.machine
            m.set_sysreg("VTTBR_EL2", self.tables.vttbr)
            m.mmu.invalidate()
