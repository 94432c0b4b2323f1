"""The VMM process's address space: mappings (VMAs) of guest memory, their page table, and the
page-fault paths of the host kernel that decide which frame backs an address and what its tags
are. KVM finds a guest page through these paths (get_user_pages), as the VMM's own accesses do.

What each kind of memory is (the VMA flags KVM looks at):

- ``Anon`` -- MAP_PRIVATE|MAP_ANONYMOUS: VM_MTE_ALLOWED. A read of a page never written maps the
  shared zero page read-only; a write allocates a zeroed page (do_anonymous_page), and copies
  the zero page on write (wp_page_copy). In a PROT_MTE mapping the new page's tags are zeroed
  with its data and it is marked tagged (tag_clear_highpage); otherwise its tags are stale.
  Only anonymous pages are swapped in this model.
- ``Memfd`` -- MAP_SHARED of tmpfs/memfd: VM_MTE_ALLOWED; the same page cache pages for every
  mapping, in every process and VM.
- ``File`` -- MAP_SHARED of a file on a disk filesystem: no VM_MTE_ALLOWED.
- ``Device`` -- a VM_PFNMAP mapping of device memory: no struct pages, no VM_MTE_ALLOWED.

When a mapping takes a page whose tags are not initialised into a PROT_MTE VMA, set_pte_at runs
mte_sync_tags, which clears them once (``pages.init_tags_steps``). Every change to an existing
translation first tells the MMU notifiers (KVM unmaps its stage-2 entries for that address).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from .errors import KvmError
from .pages import PAGE_SIZE, Page, Step, drive, init_tags_steps, mark_tagged
from .swap import pack_tags, unpack_tags

HVA_BASE = 0x7F00_0000_0000


class Backing:
    kind = "anon"
    shared = False
    mte_allowed = True
    pfnmap = False

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name

    def describe(self) -> str:
        return self.kind


class Anon(Backing):
    """Private anonymous memory (its pages live in the page table of the one mapping)."""


class Memfd(Backing):
    """A memfd/tmpfs object: shared page cache pages, tags allowed."""
    kind = "shmem"
    shared = True

    def __init__(self, size: int, name: str) -> None:
        super().__init__(size, name)
        self.pages: Dict[int, Page] = {}           # page index -> page cache page

    def describe(self) -> str:
        return f"shared memfd {self.name!r}"


class File(Backing):
    """A regular file on a disk filesystem, mapped MAP_SHARED: no tag storage allowed."""
    kind = "file"
    shared = True
    mte_allowed = False

    def __init__(self, size: int, name: str, data: bytes = b"") -> None:
        super().__init__(size, name)
        self.data = bytearray(data[:size]) + bytearray(max(0, size - len(data)))
        self.pages: Dict[int, Page] = {}

    def describe(self) -> str:
        return f"file {self.name!r}"


class Device(Backing):
    """A VM_PFNMAP mapping of device memory (no struct page, so no tags)."""
    kind = "device"
    shared = True
    mte_allowed = False
    pfnmap = True

    def describe(self) -> str:
        return "device (VM_PFNMAP)"


@dataclass
class Vma:
    start: int
    end: int
    backing: Backing
    pgoff: int = 0                        # first page index of the object it maps
    prot_mte: bool = False                # VM_MTE

    @property
    def mte_allowed(self) -> bool:        # VM_MTE_ALLOWED
        return self.backing.mte_allowed


class Pte:
    __slots__ = ("page", "writable", "swap")

    def __init__(self, page: Optional[Page] = None, writable: bool = False,
                 swap: Optional[int] = None) -> None:
        self.page = page
        self.writable = writable
        self.swap = swap


class Mm:
    """One VMM process: its VMAs and page table (hva page -> Pte)."""

    def __init__(self, host, name: str = "vmm") -> None:
        self.host = host
        self.frames = host.frames
        self.name = name
        self.vmas: List[Vma] = []
        self.ptes: Dict[int, Pte] = {}
        self._next = HVA_BASE
        self.notifiers: List[Callable[[int], None]] = []   # invalidate(hva page)

    # --- mappings ---------------------------------------------------------------------------------
    def mmap(self, size: int, backing: Backing, prot_mte: bool = False, pgoff: int = 0) -> Vma:
        start = self._next
        self._next += (size + 0x20_0000 - 1) & ~(0x20_0000 - 1)   # 2 MiB apart
        vma = Vma(start, start + size, backing, pgoff, prot_mte)
        self.vmas.append(vma)
        return vma

    def find_vma(self, hva: int) -> Optional[Vma]:
        for v in self.vmas:
            if v.start <= hva < v.end:
                return v
        return None

    def pte(self, hva: int) -> Optional[Pte]:
        return self.ptes.get(hva & ~(PAGE_SIZE - 1))

    def present_page(self, hva: int) -> Optional[Page]:
        """The page mapped at ``hva`` now, without faulting anything in."""
        vma = self.find_vma(hva)
        if vma is None or vma.backing.pfnmap:
            return None
        if isinstance(vma.backing, (Memfd, File)):
            return vma.backing.pages.get(vma.pgoff + ((hva - vma.start) >> 12))
        pte = self.pte(hva)
        return None if pte is None else pte.page

    def _invalidate(self, hva: int) -> None:
        for n in self.notifiers:
            n(hva & ~(PAGE_SIZE - 1))

    # --- handle_mm_fault --------------------------------------------------------------------------
    def fault(self, hva: int, write: bool, who: str = "vmm") -> Page:
        return drive(self.fault_steps(hva, write, who))

    def fault_steps(self, hva: int, write: bool, who: str = "vmm"):
        """Make ``hva`` present (for a write: writable) and return its page. A generator: the
        tag initialisation of a PROT_MTE mapping is made of Steps."""
        vma = self.find_vma(hva)
        if vma is None:
            raise KvmError("page fault", "EFAULT", f"{who}: no mapping at {hva:#x}")
        if vma.backing.pfnmap:
            raise KvmError("page fault", "EFAULT",
                           f"{who}: {hva:#x} is device memory with no struct page")
        frames = self.frames
        stats = self.host.stats
        page_hva = hva & ~(PAGE_SIZE - 1)
        if isinstance(vma.backing, (Memfd, File)):
            obj = vma.backing
            index = vma.pgoff + ((page_hva - vma.start) >> 12)
            page = obj.pages.get(index)
            if page is None:
                page = frames.alloc(obj.kind)
                if isinstance(obj, File):
                    frames.write(page, bytes(obj.data[index << 12:(index + 1) << 12]))
                else:
                    frames.zero(page)                      # shmem_get_folio: a zeroed page
                obj.pages[index] = page
                stats.pages_allocated += 1
        else:
            pte = self.ptes.get(page_hva)
            if pte is not None and pte.swap is not None:
                page = self._swap_in(page_hva, pte)
            elif pte is None or pte.page is None:
                if not write:
                    page = frames.zero_page                # do_anonymous_page, read
                    self.ptes[page_hva] = Pte(page, False)
                    stats.zero_page_maps += 1
                else:
                    page = self._new_anon(vma)
                    self.ptes[page_hva] = Pte(page, True)
            elif write and not pte.writable:
                self._invalidate(page_hva)                 # wp_page_copy: the old one goes
                page = self._new_anon(vma)
                pte.page, pte.writable = page, True
                stats.cow_breaks += 1
            else:
                page = pte.page
        if vma.prot_mte and page is not frames.zero_page:
            # set_pte_at -> mte_sync_tags (the zero page's PTE is special: never synced)
            yield from init_tags_steps(frames, page, self.host.tag_init == "locked", who,
                                       on_clear=self.host.count_sync_clear)
        return page

    def _new_anon(self, vma: Vma) -> Page:
        frames = self.frames
        page = frames.alloc("anon")
        frames.zero(page)                                   # clear_page
        self.host.stats.pages_allocated += 1
        if vma.prot_mte:
            frames.clear_tags(page)                         # tag_clear_highpage
            mark_tagged(page)
            self.host.stats.pages_zeroed_with_tags += 1
        return page

    # --- swap -------------------------------------------------------------------------------------
    def swap_out(self, hva: int) -> Optional[int]:
        """Reclaim the anonymous page at ``hva`` (as MADV_PAGEOUT does): KVM is told first,
        then data and, for a tagged page, its tags go to swap and the frame is freed. Returns
        the swap entry, or None when there is no page of its own there (never written, or only
        the zero page)."""
        vma = self.find_vma(hva)
        if vma is None or not isinstance(vma.backing, Anon):
            raise KvmError("swap-out", "EINVAL",
                           f"{hva:#x} is not anonymous memory (only anonymous pages are "
                           f"swapped in this model)")
        page_hva = hva & ~(PAGE_SIZE - 1)
        pte = self.ptes.get(page_hva)
        if pte is None or pte.page is None or pte.page is self.frames.zero_page:
            return None
        page = pte.page
        self._invalidate(page_hva)                          # try_to_unmap -> MMU notifiers
        frames = self.frames
        tags = pack_tags(frames.read_tags(page)) if page.mte_tagged else None   # mte_save_tags
        entry = self.host.swap.write(frames.read(page), tags)
        pte.page, pte.writable, pte.swap = None, False, entry
        frames.free(page)
        self.host.stats.swap_outs += 1
        if tags is not None:
            self.host.stats.tags_saved_to_swap += 1
        return entry

    def _swap_in(self, page_hva: int, pte: Pte) -> Page:
        """do_swap_page: a new frame, the data, then arch_swap_restore -> mte_restore_tags."""
        frames = self.frames
        slot = self.host.swap.read(pte.swap)
        page = frames.alloc("anon")
        frames.write(page, slot.data)
        if slot.tags is not None:
            frames.write_tags(page, unpack_tags(slot.tags))
            mark_tagged(page)
            self.host.stats.tags_restored_from_swap += 1
        self.host.swap.free(pte.swap)
        pte.page, pte.writable, pte.swap = page, True, None
        self.host.stats.swap_ins += 1
        return page


__all__ = ["Anon", "Memfd", "File", "Device", "Vma", "Pte", "Mm", "Step"]
