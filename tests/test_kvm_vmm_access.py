"""The VMM's own accesses to guest memory (aarch64mte.kvm.vmm), against tags the guest set.

Expected behaviour from the Arm ARM for an EL0 thread of the host: through a PROT_MTE mapping
(MAIR Tagged) with PSTATE.TCO = 0 and synchronous TCF, a load or store is Tag Checked and a
mismatch is a synchronous Tag Check Fault before any effect (AArch64.CheckTag; Linux delivers
SIGSEGV, SEGV_MTESERR); with PSTATE.TCO = 1 it is Tag Unchecked (AArch64.AccessIsTagChecked);
through a mapping without PROT_MTE the memory is Untagged: LDG gives 0 and STG stores nothing.
A first touch through a PROT_MTE mapping of a page whose tags were never initialised runs
mte_sync_tags (they are cleared once). Device DMA: the device writes through TCO straight into
the guest's tagged buffer (asm/kvm/dma_guest.S), and the guest then reads it, tag checked.
"""
import errno
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from aarch64mte.kvm import Host, KvmError, Vm, VmmTagCheckFault

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
RAM, SIZE = 0x4000_0000, 0x80_0000


class DmaDevice:
    """Writes bytes 1..64 into the buffer whose address the guest gives it."""

    def __init__(self, vm, mode):
        self.vm, self.mode, self.faults, self.address = vm, mode, [], None

    def read(self, ipa, size):
        return 0

    def write(self, ipa, size, value):
        self.address = value
        ptr = value if self.mode == "checked-with-guest-tag" else value & ((1 << 56) - 1)
        mode = "tco" if self.mode == "tco" else "checked"
        try:
            self.vm.vmm_access(mode, "dma").write(ptr, bytes(range(1, 65)))
        except VmmTagCheckFault as f:
            self.faults.append(f)


def dma_vm(mode):
    vm = Vm(mte=True)
    vm.add_memslot(RAM, SIZE, prot_mte=True)
    dev = DmaDevice(vm, mode)
    vm.add_device(0x0a00_1000, 0x1000, dev)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "dma_guest.S"))
    return vm, vcpu, dev


def sum_of_words(data):
    return sum(int.from_bytes(data[i:i + 8], "little") for i in range(0, 64, 8)) & (2 ** 64 - 1)


def test_dma_under_tco_lands_in_the_tagged_buffer_and_the_guest_reads_it():
    vm, vcpu, dev = dma_vm("tco")
    r = vcpu.run()
    assert r.reason == "end"
    tag = (dev.address >> 56) & 0xF
    assert tag != 0                                        # the buffer is coloured
    assert dev.faults == []
    assert vcpu.reg("x10") == sum_of_words(bytes(range(1, 65)))
    assert vcpu.reg("x11") == tag * 0x1111                 # its tags were left alone
    buf = vm.symbols["buf"]
    assert vm.read_tags(buf, 64) == [tag] * 4


def test_checked_dma_with_an_untagged_pointer_faults_and_writes_nothing():
    vm, vcpu, dev = dma_vm("checked")
    r = vcpu.run()
    assert r.reason == "end"
    f, = dev.faults
    buf = vm.symbols["buf"]
    tag = (dev.address >> 56) & 0xF
    assert (f.address, f.logical_tag, f.allocation_tag, f.write) == (buf, 0, tag, True)
    assert vcpu.reg("x10") == 0                            # the buffer kept its zeros


def test_checked_dma_with_the_guests_pointer_passes():
    vm, vcpu, dev = dma_vm("checked-with-guest-tag")
    assert vcpu.run().reason == "end"
    assert dev.faults == [] and vcpu.reg("x10") == sum_of_words(bytes(range(1, 65)))


def test_an_untagged_mapping_reads_zero_tags_and_its_tag_stores_do_nothing():
    vm = Vm(mte=True)
    vm.add_memslot(RAM, SIZE)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "mte_probe.S"))
    vcpu.run()
    buf = vm.symbols["buf"]
    acc = vm.vmm_access("untagged")
    assert acc.read_tags(buf, 32) == [0, 0]                # the guest's tag 6 reads as 0
    acc.write_tags(buf, [0xF, 0xF])
    assert vm.read_tags(buf, 32) == [6, 0]                 # nothing stored
    assert acc.read(buf | (0xF << 56), 8) == (0x1234).to_bytes(8, "little")   # unchecked


def test_a_tagged_mapping_of_anonymous_memory_needs_prot_mte():
    vm = Vm(mte=True)
    vm.add_memslot(RAM, SIZE)
    with pytest.raises(KvmError) as e:
        vm.vmm_access("checked").read(RAM, 8)
    assert e.value.errno == errno.EACCES and "prot_mte=True" in str(e.value)
    with pytest.raises(KvmError) as e:
        vm.vmm_access("bogus")
    assert e.value.errno == errno.EINVAL


def test_a_vmm_thread_mapping_a_memfd_with_prot_mte_initialises_its_tags_once():
    host = Host()
    memfd = host.memfd(0x2000)
    vm = Vm(mte=True, host=host)
    vm.add_memslot(0x8000_0000, 0x2000, "shared", file=memfd)
    acc = vm.vmm_access("checked")                         # its own PROT_MTE mapping
    acc.write(0x8000_0000, b"hi")                          # pointer tag 0: the tags are 0
    assert host.stats.mte_sync_clears == 1
    acc.stg(0x8000_0010, 0x4)
    acc.write(0x8000_0010 | (0x4 << 56), b"ok")
    assert acc.read_tags(0x8000_0000, 32) == [0, 4]
    with pytest.raises(VmmTagCheckFault) as f:
        acc.read(0x8000_0018, 16)                          # spans granules 1 (tag 4) and 2
    assert (f.value.address, f.value.logical_tag, f.value.allocation_tag) == \
        (0x8000_0018, 0, 4)
    assert host.stats.mte_sync_clears == 1
    assert vm.vmm_access("untagged").read(0x8000_0010, 2) == b"ok"


@given(alloc=st.lists(st.integers(0, 15), min_size=4, max_size=4),
       tag=st.integers(0, 15), start=st.integers(0, 63), length=st.integers(1, 64 - 1))
@settings(max_examples=30, deadline=None)
def test_a_checked_access_faults_exactly_when_a_touched_granule_differs(alloc, tag, start,
                                                                         length):
    length = min(length, 64 - start)
    host = Host(ram_size=4 << 20)
    vm = Vm(mte=True, host=host)
    vm.add_memslot(0x8000_0000, 0x1000, "shared")
    acc = vm.vmm_access("checked")
    acc.write_tags(0x8000_0000, alloc)
    touched = {alloc[g] for g in range(start // 16, (start + length - 1) // 16 + 1)}
    ptr = (tag << 56) | (0x8000_0000 + start)
    try:
        acc.write(ptr, b"\x5a" * length)
        faulted = None
    except VmmTagCheckFault as f:
        faulted = f
    assert (faulted is None) == (touched == {tag})          # AArch64.CheckTag per granule
    if faulted is not None:
        first = next(g for g in range(start // 16, 4) if alloc[g] != tag)
        assert faulted.address == (tag << 56) | (0x8000_0000 + max(start, 16 * first))
        assert vm.vmm_access("tco").read(0x8000_0000, 64) == bytes(64)   # nothing written
