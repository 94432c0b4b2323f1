"""Loading a guest program the way ``run`` does, into guest memory instead of host RAM.

A ``.S``/``.s`` source gets the snippet profile: EL1h, the MMU on with an identity map (VA =
IPA) in 1 GiB blocks -- Normal Tagged (MAIR 0xF0) over every RAM memslot, Device over the low
GiB (the UART and other MMIO) and over device memslots -- built in the top 64 KiB of the memslot
that holds the entry point, the stack below it (each vCPU 64 KiB lower than the one before),
TBI, SCTLR_EL1.ATA = ATA0 = 1, TCF per ``tcf``, GCR_EL1 = 0, the fixed RGSR_EL1 seed, LR = the
end of .text and no guest vectors. An ELF gets the virt profile: MMU off, SCTLR_EL1 at reset.
The VMM writes the image and the tables through its own mapping of guest memory, as a VMM loads
a kernel.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from ..machine import profiles
from ..machine.memory import UART_BASE
from .errors import KvmError

GIB = 1 << 30
VCPU_STACK_STRIDE = 0x1_0000


@dataclass
class Boot:
    """What ``Vm.load`` set up, kept for new vCPUs and for migration."""
    profile: str
    entry: int
    text_end: int
    symbols: Dict[str, int] = field(default_factory=dict)
    regs: Dict[str, int] = field(default_factory=dict)     # for vCPU 0
    stack_top: int = 0                                     # snippet: vCPU 0's SP

    def regs_for(self, index: int) -> Dict[str, int]:
        regs = dict(self.regs)
        if self.profile == "snippet":
            regs["sp_el1"] = self.stack_top - index * VCPU_STACK_STRIDE
        return regs


_cache: Dict[tuple, object] = {}


def read_image(path: str, profile=None):
    """(image, profile) of an assembly source or an ELF file (InputError if it is bad). An
    unchanged file is read once (the race model loads the same guest many times)."""
    ext = os.path.splitext(path)[1]
    try:
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    if key is not None and key in _cache:
        image, kind = _cache[key]
    elif ext in (".s", ".S", ".asm"):
        from ..assembler import assemble_file
        image, kind = assemble_file(path), "snippet"
    else:
        from ..elf import load_elf
        image, kind = load_elf(path), "virt"
    if key is not None:
        if len(_cache) >= 32:
            _cache.clear()
        _cache[key] = (image, kind)
    profile = profile or kind
    if profile not in ("snippet", "virt"):
        raise KvmError("load", "EINVAL", f"unknown profile {profile!r} (snippet, virt)")
    return image, profile


def plan(vm, image, profile: str, tcf: int) -> Tuple[Boot, List[Tuple[int, bytes]]]:
    """The boot state and the (IPA, bytes) writes that load ``image`` into ``vm``."""
    writes = []
    for seg in image.segments:
        if not seg.data:
            continue
        slot = vm.slot_at(seg.addr)
        if slot is None or slot.backing.pfnmap or not slot.contains(seg.addr + len(seg.data) - 1):
            end = seg.addr + len(seg.data)
            raise KvmError("load", "EFAULT", f"segment {seg.name or '?'} at {seg.addr:#x}.."
                                             f"{end:#x} is not inside one RAM memslot")
        writes.append((seg.addr, bytes(seg.data)))
    boot = Boot(profile, image.entry, image.text_end, dict(image.symbols))
    if profile == "virt":
        boot.regs = {"sctlr_el1": profiles.SCTLR_RESET, "pstate": 0x3C5, "pc": image.entry}
        return boot, writes
    home = vm.slot_at(image.entry)
    if home is None or home.backing.pfnmap:
        raise KvmError("load", "EFAULT", f"the entry point {image.entry:#x} is not in a RAM "
                                         f"memslot")
    table = home.ipa + home.size - profiles.TABLES_SIZE
    for addr, data in writes:
        if addr < home.ipa + home.size and addr + len(data) > table:
            raise KvmError("load", "EFAULT",
                           f"the image reaches {addr + len(data):#x}, into the top 64 KiB of "
                           f"its memslot where the snippet profile builds its page tables")
    writes.append((table, stage1_table(vm)))
    boot.stack_top = table - profiles.STACK_GAP
    boot.regs = {
        "mair_el1": profiles.SNIPPET_MAIR, "tcr_el1": profiles.SNIPPET_TCR,
        "ttbr0_el1": table, "ttbr1_el1": 0, "sctlr_el1": profiles.snippet_sctlr(tcf),
        "cpacr_el1": 3 << 20, "x30": image.text_end, "pstate": 0x3C5, "pc": image.entry,
        "gcr_el1": 0, "rgsr_el1": profiles.SNIPPET_SEED << 8,
    }
    return boot, writes


def stage1_table(vm) -> bytes:
    """The level-1 table (TCR_EL1.T0SZ 25: 1 GiB blocks): Normal Tagged (attr 0) over RAM
    memslots, Device-nGnRnE (attr 1, execute-never) elsewhere that matters."""
    af, sh = profiles.AF, profiles.SH_INNER
    device = af | (1 << 2) | (1 << 54) | (1 << 53) | 1
    entries = [0] * 512
    entries[UART_BASE // GIB] = (UART_BASE & ~(GIB - 1)) | device
    for slot in vm.memslots:
        for gib in range(slot.ipa // GIB, (slot.ipa + slot.size - 1) // GIB + 1):
            if gib >= 512:
                break
            if slot.backing.pfnmap:
                entries[gib] = entries[gib] or (gib * GIB) | device
            else:
                entries[gib] = (gib * GIB) | af | sh | 1
    return struct.pack("<512Q", *entries)
