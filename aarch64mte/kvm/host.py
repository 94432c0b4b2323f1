"""The host: one physical CPU with MTE and EL2 (a Machine whose EL2 is played by Python through
the shim), its RAM as the kernel's page frames, a swap device, and the KVM module's shared
state. Every VM of a host runs on that CPU; a vCPU runs after a world switch loads its
registers, its VM's HCR_EL2 and its VM's stage-2 tables (VTTBR_EL2), as KVM's vcpu_load does.

Two VMs on one host share its physical pages and their tags for real: a page mapped into both
(a shared memfd) is one frame with one set of tags.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List, Optional

from ..el2.stage2map import TableWriter
from ..machine import Machine
from .errors import KvmError
from .mm import File, Memfd
from .pages import Frames
from .swap import SwapDevice

TAG_INIT = ("locked", "racy")
TABLE_AREA = 0x2_0000                    # host memory for one VM's stage-2 tables (128 KiB)


@dataclass
class HostStats:
    """What the host kernel did to pages, for every VM and the VMM processes."""
    pages_allocated: int = 0             # frames given to anonymous, shmem or file pages
    pages_sanitised: int = 0             # tags cleared by KVM's sanitise_mte_tags
    mte_sync_clears: int = 0             # tags cleared by mte_sync_tags (a PROT_MTE mapping)
    pages_zeroed_with_tags: int = 0      # anonymous PROT_MTE pages allocated with zero tags
    zero_page_maps: int = 0              # reads of never-written anonymous pages
    cow_breaks: int = 0                  # copy-on-write of the zero page
    swap_outs: int = 0
    swap_ins: int = 0
    tags_saved_to_swap: int = 0
    tags_restored_from_swap: int = 0

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class VmTables(TableWriter):
    """A VM's stage-2 tables in its own area of host memory, with its VMID in VTTBR_EL2."""

    def __init__(self, base: int, size: int, write, vmid: int) -> None:
        super().__init__(base, size, write)
        self.vmid = vmid

    @property
    def vttbr(self) -> int:
        return (self.vmid << 48) | self.base


class Host:
    """``Host(ram_size=32 MiB, tag_init='locked', stale_tags=True, gmid_bs=4, seed=0)``.

    ``tag_init``: 'locked' initialises a page's tags under PG_mte_lock (Linux since 6.2);
    'racy' tests and sets PG_mte_tagged without it (the code the lock replaced)."""

    def __init__(self, ram_size: int = 32 << 20, tag_init: str = "locked",
                 stale_tags: bool = True, gmid_bs: int = 4, seed: int = 0,
                 count_classes: bool = False) -> None:
        if tag_init not in TAG_INIT:
            raise ValueError(f"tag_init must be one of {', '.join(TAG_INIT)}")
        self.machine = Machine(profile=None, el2="shim", stage2=[], gmid_bs=gmid_bs, seed=seed,
                               ram_size=ram_size, count_classes=count_classes)
        self.machine.shim.handler = self._on_exit
        self.tag_init = tag_init
        self.frames = Frames(self.machine, stale_tags)
        self.swap = SwapDevice()
        self.stats = HostStats()
        self.vms: List[object] = []
        self.current = None                # the loaded vCPU
        # area 0 holds the shim's own (empty) tables; each VM gets one of the others
        self._areas: List[Optional[object]] = [self.machine.shim]

    # --- memory objects the VMMs can map ----------------------------------------------------------
    def memfd(self, size: int, name: str = "memfd") -> Memfd:
        """A tmpfs/memfd object: MAP_SHARED mappings of it in several VMs share its pages."""
        return Memfd(_page_multiple(size, "memfd"), name)

    def file(self, size: int, name: str = "file", data: bytes = b"") -> File:
        """A regular file on a disk filesystem (its pages cannot hold tags)."""
        return File(_page_multiple(size, "file"), name, data)

    # --- KVM-wide state ---------------------------------------------------------------------------
    def count_sync_clear(self) -> None:
        self.stats.mte_sync_clears += 1

    def new_tables(self, vm) -> VmTables:
        """Stage-2 table space for a new VM (KVM_CREATE_VM's kvm_init_stage2_mmu)."""
        host = self.machine.host_memory
        slots = host.size // TABLE_AREA
        for i in range(slots):
            if i >= len(self._areas) or self._areas[i] is None:
                if i >= len(self._areas):
                    self._areas.append(None)
                self._areas[i] = vm
                return VmTables(host.base + i * TABLE_AREA, TABLE_AREA, host.write, vmid=i)
        raise KvmError("KVM_CREATE_VM", "ENOMEM",
                       f"this host has stage-2 table space for {slots - 1} VMs")

    def release_tables(self, vm) -> None:
        for i, owner in enumerate(self._areas):
            if owner is vm:
                self._areas[i] = None

    def _on_exit(self, vm_exit):
        """The shim's handler: the exit belongs to the loaded vCPU."""
        from ..el2 import Stop
        vcpu = self.current
        if vcpu is None:
            return Stop("no-vcpu")
        try:
            return vcpu.handle_exit(vm_exit)
        except (KvmError, RuntimeError) as err:
            # KVM_RUN returns the error; the guest stays at the instruction that exited
            vcpu._stop = dict(reason="error", exit=vm_exit, error=err)
            return Stop("error")
        finally:
            self.frames.flush_code()


def _page_multiple(size: int, what: str) -> int:
    if not isinstance(size, int) or size <= 0 or size % 0x1000:
        raise KvmError(what, "EINVAL", f"size {size!r} is not a positive multiple of 4 KiB")
    return size
