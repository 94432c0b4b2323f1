"""A VM: KVM's VM ioctls over the host model.

``Vm(mte=True)`` is KVM_CREATE_VM followed by KVM_ENABLE_CAP(KVM_CAP_ARM_MTE); ``add_memslot``
is the VMM's mmap plus KVM_SET_USER_MEMORY_REGION; ``create_vcpu`` KVM_CREATE_VCPU;
``copy_tags`` KVM_ARM_MTE_COPY_TAGS; ``enable_dirty_logging``/``get_dirty_log``
KVM_MEM_LOG_DIRTY_PAGES and KVM_GET_DIRTY_LOG. Each refusal is the one the kernel makes, with
its errno, and leaves the VM as it was.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Set, Tuple, Union

from ..el2.stage2map import IPA_BITS
from .errors import KvmError
from .host import Host
from .loader import plan, read_image
from .mm import Anon, Backing, Device, File, Memfd, Mm
from .mmio import UART_BASE, Pl011
from .pages import GRANULE, GRANULES, PAGE_SIZE
from .stage2 import GuestStage2
from .swap import unpack_tags
from .vcpu import Vcpu
from .vmm import VmmAccess

HCR_RW, HCR_VM, HCR_TID3, HCR_ATA = 1 << 31, 1 << 0, 1 << 18, 1 << 56
KVM_ARM_TAGS_TO_GUEST, KVM_ARM_TAGS_FROM_GUEST = 0, 1
BACKINGS = ("anon", "shared", "file", "device")
_names = itertools.count()


@dataclass
class VmStats:
    s2_faults: int = 0              # stage-2 aborts taken to KVM
    pages_mapped: int = 0           # stage-2 mappings made (first maps and permission relaxes)
    pages_sanitised: int = 0        # pages whose tags this VM's faults cleared
    zero_page_maps: int = 0         # stage-2 mappings of the shared zero page
    mmio_exits: int = 0
    sysreg_traps: int = 0
    hypercalls: int = 0
    injected_exceptions: int = 0
    dirty_pages_logged: int = 0     # pages KVM_GET_DIRTY_LOG returned
    copy_tags_bytes: int = 0        # guest bytes whose tags KVM_ARM_MTE_COPY_TAGS moved
    vmm_bytes: int = 0              # bytes the VMM read or wrote through its mappings

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Memslot:
    def __init__(self, slot: int, ipa: int, size: int, backing: Backing, vma, readonly: bool,
                 logging: bool) -> None:
        self.slot = slot
        self.ipa = ipa
        self.size = size
        self.backing = backing
        self.vma = vma
        self.readonly = readonly
        self.logging = logging              # KVM_MEM_LOG_DIRTY_PAGES
        self.dirty: Set[int] = set()

    @property
    def end(self) -> int:
        return self.ipa + self.size

    @property
    def kind(self) -> str:
        return self.backing.kind

    def contains(self, ipa: int) -> bool:
        return self.ipa <= ipa < self.end

    def hva_of(self, ipa: int) -> int:
        return self.vma.start + (ipa - self.ipa)

    def mark_dirty(self, ipa: int) -> None:
        if self.logging:
            self.dirty.add(ipa & ~(PAGE_SIZE - 1))

    def __repr__(self) -> str:
        return f"Memslot({self.slot}, ipa={self.ipa:#x}, size={self.size:#x}, {self.kind})"


class Vm:
    """``Vm(mte=False, host=None, name=None, tcf='sync')``: a VM on ``host`` (a new Host if
    None); ``tcf`` is the guest's TCF for the snippet profile."""

    def __init__(self, mte: bool = False, host: Optional[Host] = None,
                 name: Optional[str] = None, tcf: str = "sync") -> None:
        from ..machine import profiles
        if tcf not in profiles.TCF_CODES:
            raise KvmError("KVM_CREATE_VM", "EINVAL", f"unknown tcf {tcf!r} "
                                                      f"(none, sync, async, asymm)")
        self.host = host if host is not None else Host()
        self.name = name or f"vm{next(_names)}"
        self.tcf = profiles.TCF_CODES[tcf]
        self.mte = False
        self.vcpus: List[Vcpu] = []
        self.memslots: List[Memslot] = []
        self.mm = Mm(self.host, f"{self.name}-vmm")
        self.mm.notifiers.append(self._mmu_notifier)
        self.mmu_seq = 0
        self.stage2 = GuestStage2(self, self.host.new_tables(self))
        self.stats = VmStats()
        self._console: List[str] = []
        self.devices: List[Tuple[int, int, object]] = [(UART_BASE, 0x1000, Pl011(self._console))]
        self.boot = None
        self.vmm_dirty: Set[int] = set()
        self.host.vms.append(self)
        if mte:
            self.enable_mte()

    # --- capabilities -----------------------------------------------------------------------------
    def enable_mte(self) -> None:
        """KVM_ENABLE_CAP(KVM_CAP_ARM_MTE): only before the first vCPU exists."""
        if self.vcpus:
            raise KvmError("KVM_ENABLE_CAP(KVM_CAP_ARM_MTE)", "EINVAL",
                           f"{self.name} already has {len(self.vcpus)} vCPU(s); MTE can only "
                           f"be enabled before any vCPU is created (kvm_vm_ioctl_enable_cap)")
        self.mte = True

    @property
    def hcr(self) -> int:
        """HCR_EL2 while this VM runs: KVM's guest flags that matter here (RW, VM, TID3) and
        ATA only with MTE (kvm_vcpu_reset_hcr)."""
        return HCR_RW | HCR_VM | HCR_TID3 | (HCR_ATA if self.mte else 0)

    def id_register(self, name: Optional[str], key) -> int:
        """The value KVM gives a trapped ID register read: the CPU's, with MTE hidden from a VM
        without it and EL2 hidden (no nested virtualisation); 0 for unallocated ones."""
        m = self.host.machine
        try:
            value = m.sysreg(name.upper()) if name else 0
        except KeyError:
            value = 0
        if key == (3, 0, 0, 4, 1) and not self.mte:           # ID_AA64PFR1_EL1.MTE
            value &= ~(0xF << 8)
        if key == (3, 0, 0, 4, 0):                            # ID_AA64PFR0_EL1.EL2
            value &= ~(0xF << 8)
        return value

    # --- memory slots -----------------------------------------------------------------------------
    def add_memslot(self, ipa: int, size: int, backing: Union[str, Backing] = "anon",
                    file: Optional[Backing] = None, prot_mte: bool = False,
                    readonly: bool = False, log_dirty: bool = False) -> Memslot:
        """mmap the backing in the VMM and register it at ``ipa`` (KVM_SET_USER_MEMORY_REGION).

        ``backing``: 'anon' (MAP_PRIVATE|MAP_ANONYMOUS), 'shared' (MAP_SHARED of a memfd;
        ``file`` a ``Host.memfd`` to share it with other VMs), 'file' (MAP_SHARED of a file on
        disk; ``file`` a ``Host.file``), 'device' (a VM_PFNMAP device mapping). ``prot_mte``:
        the VMM's mapping has PROT_MTE."""
        op = "KVM_SET_USER_MEMORY_REGION"
        for what, v in (("guest_phys_addr", ipa), ("memory_size", size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise KvmError(op, "EINVAL", f"{what} must be a non-negative integer, not {v!r}")
        if size == 0:
            raise KvmError(op, "EINVAL", "memory_size 0 deletes a slot; there is none to delete "
                                         f"at {ipa:#x} (use remove_memslot)")
        if ipa % PAGE_SIZE or size % PAGE_SIZE:
            raise KvmError(op, "EINVAL", f"guest_phys_addr {ipa:#x} and memory_size {size:#x} "
                                         f"must be PAGE_SIZE (4 KiB) aligned")
        obj = self._backing(backing, file, size)
        if log_dirty and obj.pfnmap:
            raise KvmError(op, "EINVAL", "dirty logging is not allowed on a VM_PFNMAP (device) "
                                         "region (kvm_arch_prepare_memory_region)")
        for s in self.memslots:
            if ipa < s.end and s.ipa < ipa + size:
                raise KvmError(op, "EEXIST", f"{ipa:#x}..{ipa + size - 1:#x} overlaps memslot "
                                             f"{s.slot} at {s.ipa:#x}..{s.end - 1:#x}")
        if ipa + size > 1 << IPA_BITS:
            raise KvmError(op, "EFAULT", f"{ipa:#x}..{ipa + size - 1:#x} is beyond the VM's "
                                         f"{IPA_BITS}-bit IPA space")
        if self.mte and not obj.mte_allowed:
            raise KvmError(op, "EINVAL",
                           f"{obj.describe()} cannot hold tags and {self.name} has MTE: with "
                           f"KVM_CAP_ARM_MTE every memslot must be anonymous or RAM-based "
                           f"shared memory (tmpfs, memfd) -- kvm_arch_prepare_memory_region "
                           f"refuses a VMA without VM_MTE_ALLOWED")
        if prot_mte and not obj.mte_allowed:
            raise KvmError("mmap(PROT_MTE)", "EINVAL", f"{obj.describe()} cannot be mapped with "
                                                       f"PROT_MTE (no VM_MTE_ALLOWED)")
        vma = self.mm.mmap(size, obj, prot_mte)
        used = {s.slot for s in self.memslots}
        slot = Memslot(next(i for i in itertools.count() if i not in used), ipa, size, obj, vma,
                       readonly, log_dirty)
        self.memslots.append(slot)
        self.memslots.sort(key=lambda s: s.ipa)
        if log_dirty:
            self.stage2.write_protect(ipa, size)
        return slot

    def _backing(self, backing, file, size: int) -> Backing:
        op = "KVM_SET_USER_MEMORY_REGION"
        if isinstance(backing, Backing):
            file, backing = backing, {Memfd: "shared", File: "file", Device: "device",
                                      Anon: "anon"}.get(type(backing), "anon")
        if backing not in BACKINGS:
            raise KvmError(op, "EINVAL", f"backing {backing!r} is not one of "
                                         f"{', '.join(BACKINGS)}")
        if backing == "anon":
            return Anon(size, "anon")
        if backing == "device":
            return Device(size, "device")
        want = Memfd if backing == "shared" else File
        if file is None:
            return want(size, backing) if want is Memfd else File(size, "file")
        if not isinstance(file, want) or file.size < size:
            kind = "Host.memfd" if want is Memfd else "Host.file"
            raise KvmError(op, "EINVAL", f"file must be a {kind} object of at least "
                                         f"{size:#x} bytes")
        return file

    def remove_memslot(self, ipa: int) -> None:
        """KVM_SET_USER_MEMORY_REGION with memory_size 0: stage 2 for it is unmapped."""
        slot = self.slot_at(ipa)
        if slot is None or slot.ipa != ipa:
            raise KvmError("KVM_SET_USER_MEMORY_REGION", "EINVAL",
                           f"no memslot starts at {ipa:#x}")
        self.stage2.unmap(slot.ipa, slot.size)
        self.memslots.remove(slot)

    def invalidate_stage2(self, ipa: int, size: int = PAGE_SIZE) -> int:
        """Drop KVM's stage-2 mappings of [ipa, ipa + size) while the host pages stay (what an
        MMU-notifier invalidation for page aging does): the guest's next access faults again.
        Returns how many pages were mapped."""
        return self.stage2.unmap(ipa, size)

    def slot_at(self, ipa: int) -> Optional[Memslot]:
        for s in self.memslots:
            if s.contains(ipa):
                return s
        return None

    def _mmu_notifier(self, hva: int) -> None:
        """kvm_mmu_notifier_invalidate_range: the host changes the page at ``hva``."""
        self.mmu_seq += 1
        for s in self.memslots:
            if s.vma.start <= hva < s.vma.end:
                self.stage2.unmap(s.ipa + (hva - s.vma.start))

    # --- devices ----------------------------------------------------------------------------------
    def add_device(self, ipa: int, size: int, device) -> None:
        """A VMM device model answering MMIO in [ipa, ipa + size) without a return from run."""
        self.devices.append((ipa, size, device))

    def device_at(self, ipa: int):
        for base, size, dev in reversed(self.devices):
            if base <= ipa < base + size:
                return dev
        return None

    @property
    def console(self) -> str:
        """What the guest wrote to the UART."""
        return "".join(self._console)

    # --- vCPUs and the program --------------------------------------------------------------------
    def create_vcpu(self) -> Vcpu:
        """KVM_CREATE_VCPU (+ KVM_ARM_VCPU_INIT): the new vCPU starts as ``load`` set up."""
        vcpu = Vcpu(self, len(self.vcpus))
        if self.boot is not None:
            vcpu.ctx.update(self.boot.regs_for(vcpu.index))
            vcpu.text_end = self.boot.text_end
        self.vcpus.append(vcpu)
        return vcpu

    def load(self, path: str, profile: Optional[str] = None):
        """Load a guest program (``.S`` source: the snippet profile; ELF: virt) into guest
        memory and set every vCPU (and each one created later) to start it. Returns the
        image."""
        image, profile = read_image(path, profile)
        boot, writes = plan(self, image, profile, self.tcf)
        acc = self._loader_access()
        for ipa, data in writes:
            acc.write(ipa, data)
        self.boot = boot
        for vcpu in self.vcpus:
            loaded = vcpu.loaded
            if loaded:
                vcpu._save()
            vcpu.ctx.update(boot.regs_for(vcpu.index))
            vcpu.text_end = boot.text_end
            if loaded:
                vcpu._restore()
        return image

    def _loader_access(self) -> VmmAccess:
        return _LoaderAccess(self)

    @property
    def symbols(self) -> Dict[str, int]:
        return dict(self.boot.symbols) if self.boot else {}

    # --- the host's view of guest memory ----------------------------------------------------------
    def _page_of(self, ipa: int):
        """(page or None, saved tags or None) at ``ipa`` now, faulting nothing in."""
        slot = self.slot_at(ipa)
        if slot is None or slot.backing.pfnmap:
            return None, None
        hva = slot.hva_of(ipa)
        page = self.mm.present_page(hva)
        if page is None:
            pte = self.mm.pte(hva)
            if pte is not None and pte.swap is not None:
                return None, self.host.swap.saved_tags(pte.swap)
        return page, None

    def read_tags(self, ipa: int, length: int) -> List[int]:
        """The allocation tags physically behind [ipa, ipa + length), one per granule: what is
        in the frame (stale tags included), the saved tags of a swapped-out page, 0 where no
        page is present."""
        g0 = ipa & ~(GRANULE - 1)
        n = max(1, (ipa + max(length, 1) - g0 + GRANULE - 1) // GRANULE)
        out = []
        frames = self.host.frames
        cache: Dict[int, Tuple] = {}
        for i in range(n):
            a = g0 + i * GRANULE
            key = a & ~(PAGE_SIZE - 1)
            if key not in cache:
                cache[key] = self._page_of(a)
            page, saved = cache[key]
            if page is not None:
                out.append(frames.tag(page.pa + (a & (PAGE_SIZE - 1))))
            elif saved is not None:
                out.append(unpack_tags(saved)[(a & (PAGE_SIZE - 1)) // GRANULE])
            else:
                out.append(0)
        return out

    def page_info(self, ipa: int) -> dict:
        """What backs the guest page at ``ipa``: the frame, its MTE flags, swap, stage 2."""
        slot = self.slot_at(ipa)
        page, saved = self._page_of(ipa)
        s2 = self.stage2.lookup(ipa)
        pte = self.mm.pte(slot.hva_of(ipa)) if slot is not None and not slot.backing.pfnmap \
            else None
        return {"memslot": slot.slot if slot else None, "kind": slot.kind if slot else None,
                "pa": page.pa if page else None,
                "zero_page": page is self.host.frames.zero_page,
                "mte_tagged": page.mte_tagged if page else False,
                "swapped": pte is not None and pte.swap is not None,
                "stage2": None if s2 is None else {"pa": s2[0], "writable": s2[1]}}

    # --- KVM_ARM_MTE_COPY_TAGS --------------------------------------------------------------------
    def copy_tags(self, ipa: int, length: int, buf, to_guest: bool = False,
                  flags: Optional[int] = None, reserved=(0, 0)) -> int:
        """KVM_ARM_MTE_COPY_TAGS: copy the tags of [ipa, ipa + length) to ``buf`` (FROM_GUEST)
        or from it (``to_guest``), one tag per byte, ``length // 16`` bytes. ``flags`` overrides
        the direction (KVM_ARM_TAGS_FROM_GUEST = 1). Returns the number of guest bytes whose
        tags were copied: all of ``length``, or fewer when a page without a memslot stops it
        after at least one page (KvmError EFAULT when it stops at the first).

        Reading a page whose tags were never initialised gives zeros and leaves it so; writing
        tags initialises the page (PG_mte_tagged). Refused while dirty logging when writing
        (EBUSY): the tags would change a page nobody logs."""
        op = "KVM_ARM_MTE_COPY_TAGS"
        if not self.mte:
            raise KvmError(op, "EINVAL", f"{self.name} does not have KVM_CAP_ARM_MTE")
        if flags is None:
            flags = KVM_ARM_TAGS_TO_GUEST if to_guest else KVM_ARM_TAGS_FROM_GUEST
        for what, v in (("guest_ipa", ipa), ("length", length), ("flags", flags)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise KvmError(op, "EINVAL", f"{what} must be a non-negative integer, not {v!r}")
        if tuple(reserved) != (0, 0):
            raise KvmError(op, "EINVAL", "reserved[0] and reserved[1] must be 0")
        if flags & ~KVM_ARM_TAGS_FROM_GUEST:
            raise KvmError(op, "EINVAL", f"flags {flags:#x}: only KVM_ARM_TAGS_FROM_GUEST (1) "
                                         f"may be set (0 is KVM_ARM_TAGS_TO_GUEST)")
        if length % PAGE_SIZE or ipa % PAGE_SIZE:
            raise KvmError(op, "EINVAL", f"guest_ipa {ipa:#x} and length {length:#x} must be "
                                         f"PAGE_SIZE (4 KiB) aligned")
        write = not flags & KVM_ARM_TAGS_FROM_GUEST
        if write and any(s.logging for s in self.memslots):
            raise KvmError(op, "EBUSY", "tags cannot be copied into the guest while dirty "
                                        "logging is enabled")
        need = length // GRANULE
        try:
            view = memoryview(buf).cast("B")
        except TypeError:
            raise KvmError(op, "EFAULT", f"addr is not a buffer ({type(buf).__name__})") from None
        if len(view) < need:
            raise KvmError(op, "EFAULT", f"the buffer holds {len(view)} bytes; {need} are "
                                         f"needed (one per 16-byte granule)")
        if not write and view.readonly:
            raise KvmError(op, "EFAULT", "the buffer is read-only")
        frames = self.host.frames
        done = 0
        while done < length:
            a = ipa + done
            slot = self.slot_at(a)
            if slot is None or slot.backing.pfnmap:
                if done == 0:
                    raise KvmError(op, "EFAULT", f"IPA {a:#x} is not in a RAM memslot")
                break
            page = self.mm.fault(slot.hva_of(a), write, "KVM_ARM_MTE_COPY_TAGS")
            part = view[done // GRANULE:done // GRANULE + GRANULES]
            if write:
                page.mte_lock = True                      # try_page_mte_tagging, result unused
                frames.write_tags(page, bytes(part))
                page.mte_tagged = True
            elif page.mte_tagged:
                part[:] = frames.read_tags(page)
            else:
                part[:] = bytes(GRANULES)                  # no tags in memory: zeros
            done += PAGE_SIZE
        self.stats.copy_tags_bytes += done
        return done

    # --- the VMM's accesses -----------------------------------------------------------------------
    def vmm_access(self, mode: str, who: str = "vmm") -> VmmAccess:
        """The VMM reading and writing guest memory: 'checked', 'tco' or 'untagged' (vmm.py)."""
        return VmmAccess(self, mode, who)

    def dma_write(self, ipa: int, data: bytes) -> None:
        """Device DMA by the VMM: through its PROT_MTE mapping with PSTATE.TCO = 1, unchecked,
        straight into the guest's buffer (its tags stay)."""
        self.vmm_access("tco", "dma").write(ipa, data)

    def dma_read(self, ipa: int, n: int) -> bytes:
        return self.vmm_access("tco", "dma").read(ipa, n)

    def dirty_by_vmm(self, ipa: int) -> None:
        """The VMM's own dirty tracking (what it writes, KVM's log does not see)."""
        if any(s.logging for s in self.memslots):
            self.vmm_dirty.add(ipa & ~(PAGE_SIZE - 1))

    # --- swap -------------------------------------------------------------------------------------
    def swap_out(self, ipa: int, npages: int = 1) -> List[Optional[int]]:
        """Have the host reclaim the anonymous pages at ``ipa`` (MADV_PAGEOUT on the VMM's
        mapping): swap entries, None for a page with nothing of its own to swap."""
        out = []
        for i in range(npages):
            a = (ipa & ~(PAGE_SIZE - 1)) + i * PAGE_SIZE
            slot = self.slot_at(a)
            if slot is None:
                raise KvmError("swap-out", "EFAULT", f"IPA {a:#x} is not in a memslot")
            out.append(self.mm.swap_out(slot.hva_of(a)))
        return out

    # --- dirty logging ----------------------------------------------------------------------------
    def enable_dirty_logging(self) -> None:
        """KVM_MEM_LOG_DIRTY_PAGES on every RAM memslot: stage 2 becomes read-only, so each
        write (a tag store included) faults and is logged."""
        for s in self.memslots:
            if not s.backing.pfnmap:
                s.logging = True
                s.dirty.clear()
                self.stage2.write_protect(s.ipa, s.size)
        self.vmm_dirty.clear()

    def get_dirty_log(self) -> List[int]:
        """KVM_GET_DIRTY_LOG: the pages written since the last call (IPAs), write-protected
        again."""
        out = []
        for s in self.memslots:
            if s.logging:
                for p in sorted(s.dirty):
                    self.stage2.write_protect(p, PAGE_SIZE)
                out += sorted(s.dirty)
                s.dirty.clear()
        self.stats.dirty_pages_logged += len(out)
        return out

    def disable_dirty_logging(self) -> None:
        for s in self.memslots:
            s.logging = False
            s.dirty.clear()

    # --- migration --------------------------------------------------------------------------------
    def save(self, path: str, tags: str = "copy_tags"):
        """Write RAM, tags and vCPU state to ``path`` (see ``migration``); returns a report of
        what was saved and which tags were lost on the way."""
        from .migration import save
        return save(self, path, tags)

    @classmethod
    def restore(cls, path: str, host: Optional[Host] = None) -> "Vm":
        """A new VM (on ``host``, else a new host) from a file ``save`` wrote."""
        from .migration import restore
        return restore(path, host)

    def destroy(self) -> None:
        """Release the VM's stage-2 table space on its host."""
        self.host.release_tables(self)
        if self in self.host.vms:
            self.host.vms.remove(self)
        if self.host.current is not None and self.host.current.vm is self:
            self.host.current = None


class _LoaderAccess(VmmAccess):
    """Writes through whatever mapping the memslot has, no tag semantics involved."""

    def __init__(self, vm) -> None:
        super().__init__(vm, "untagged", "loader")

    def _vma_hva(self, ipa: int):
        slot = self.vm.slot_at(ipa)
        if slot is None or slot.backing.pfnmap:
            raise KvmError("load", "EFAULT", f"IPA {ipa:#x} is not guest RAM")
        return slot.vma, slot.hva_of(ipa)


__all__ = ["Vm", "Memslot", "VmStats"]
