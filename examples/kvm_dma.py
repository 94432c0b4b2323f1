"""Device DMA into tagged guest memory: the VMM writes under PSTATE.TCO, straight into the
guest's buffer, whatever its tags.

The guest driver (asm/kvm/dma_guest.S) colours a 64-byte buffer and gives its address to the
VMM's device (an MMIO register). The device writes bytes 1..64 into it: first through a
tag-checked PROT_MTE mapping with an untagged pointer (SIGSEGV, SEGV_MTESERR, nothing written),
then under TCO (no check, no bounce buffer). The guest reads the data back through its tagged
pointer -- tag checked -- and sums it.

    python examples/kvm_dma.py
"""
from pathlib import Path

from aarch64mte.kvm import Vm, VmmTagCheckFault

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
PAYLOAD = bytes(range(1, 65))


class Device:
    def __init__(self, vm):
        self.vm = vm

    def read(self, ipa, size):
        return 0

    def write(self, ipa, size, pointer):
        address = pointer & ((1 << 56) - 1)
        print(f"device: DMA to {pointer:#x} (guest pointer tag {pointer >> 56 & 0xf:#x})")
        try:
            self.vm.vmm_access("checked").write(address, PAYLOAD)
        except VmmTagCheckFault as f:
            print("device: checked write ->", f)
        self.vm.dma_write(address, PAYLOAD)            # PROT_MTE mapping, PSTATE.TCO = 1
        print(f"device: TCO write of {len(PAYLOAD)} bytes done")


vm = Vm(mte=True)
vm.add_memslot(ipa=0x4000_0000, size=0x800_0000, backing="anon", prot_mte=True)
vm.add_device(0x0a00_1000, 0x1000, Device(vm))
vcpu = vm.create_vcpu()
vm.load(str(ASM / "dma_guest.S"))
r = vcpu.run()
want = sum(int.from_bytes(PAYLOAD[i:i + 8], "little") for i in range(0, 64, 8)) % 2**64
print(f"guest: {r.reason}; sum read back {vcpu.reg('x10'):#x} (expected {want:#x})")
print(f"guest: tags of the buffer's granules {vcpu.reg('x11'):#06x}")
print("host view of the tags:", vm.read_tags(vm.symbols["buf"], 64))
