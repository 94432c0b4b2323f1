"""Swap a tagged guest page out and back: the tags go to swap in the kernel's packed format
(128 bytes per 4 KiB page) and come back on the next fault.

The guest (asm/kvm/swap_tags.S) gives granule g tag (7g + 3) & 0xf, packs the tags itself
with LDGM as the kernel's mte_save_page_tags does, and rings the doorbell; the VMM has the host
swap the page out; the guest resumes and checks every tag and doubleword.

    python examples/kvm_swap.py
"""
from pathlib import Path

from aarch64mte.kvm import Vm

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
PAGE, PACKED = 0x4010_0000, 0x4011_0000

vm = Vm(mte=True)
vm.add_memslot(ipa=0x4000_0000, size=0x800_0000, backing="anon")
vcpu = vm.create_vcpu()
vm.load(str(ASM / "swap_tags.S"))
vcpu.set_reg("x0", PAGE)
vcpu.set_reg("x1", PACKED)
print("guest:", vcpu.run().reason, "(the doorbell)")
print("page before:", vm.page_info(PAGE))
entry, = vm.swap_out(PAGE)
saved = vm.host.swap.saved_tags(entry)
print(f"swapped out to entry {entry}: {len(saved)} bytes of tags: {saved[:16].hex()}...")
guest_packed = vm.vmm_access("untagged").read(PACKED, 128)
print("the same bytes as the guest's LDGM packing:", saved == guest_packed)
print("page while swapped:", vm.page_info(PAGE))
r = vcpu.run()
print(f"guest: {r.reason}; granules with a wrong tag or doubleword: {vcpu.reg('x20')}")
print("page after:", vm.page_info(PAGE))
print("host:", {k: v for k, v in vm.host.stats.as_dict().items() if "swap" in k})
