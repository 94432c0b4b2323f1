"""KVM_ARM_MTE_COPY_TAGS, as Documentation/virt/kvm/api.rst and kvm_vm_ioctl_mte_copy_tags
(arch/arm64/kvm/guest.c) define it: guest_ipa and length PAGE_SIZE aligned (-EINVAL), flags
only KVM_ARM_TAGS_FROM_GUEST (-EINVAL), reserved words 0 (-EINVAL), a VM with
KVM_CAP_ARM_MTE (-EINVAL); one tag per byte, length / 16 bytes; the return is the number of
bytes copied -- fewer than length when a page without a memslot stops it after some pages,
-EFAULT when the first page has none. Reading a page whose tags were never initialised gives
zeros ("No tags in memory, so write zeros") and leaves it so; writing tags takes the page lock,
writes them all and sets PG_mte_tagged. Writing is refused while dirty logging (-EBUSY).
The tags are the ones guest code (asm/kvm/tag_peek_poke.S, swap_tags.S) stores and loads.
"""
import errno
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from aarch64mte.kvm import KVM_ARM_TAGS_FROM_GUEST, KvmError, Vm
from aarch64mte.kvm.pages import GRANULES

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
RAM, SIZE = 0x4000_0000, 0x80_0000
PAGE, PACKED = 0x4010_0000, 0x4011_0000


def tagged_vm():
    """A VM whose guest coloured PAGE with tag (g * 7 + 3) & 0xf in granule g."""
    vm = Vm(mte=True)
    vm.add_memslot(RAM, SIZE)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "swap_tags.S"))
    vcpu.set_reg("x0", PAGE)
    vcpu.set_reg("x1", PACKED)
    assert vcpu.run().reason == "mmio"
    return vm, vcpu


def expected():
    return bytes((g * 7 + 3) & 0xF for g in range(GRANULES))


def state(vm):
    pages = {}
    for s in vm.memslots:
        for p in range(s.ipa, s.end, 0x1000):
            page, _ = vm._page_of(p)
            if page is not None:
                pages[p] = (page.pa, page.mte_tagged, vm.host.frames.read_tags(page))
    return pages, list(vm.stage2.pages())


def test_from_guest_reads_the_guests_tags():
    vm, _ = tagged_vm()
    buf = bytearray(2 * GRANULES)
    assert vm.copy_tags(PAGE, 0x2000, buf) == 0x2000
    assert bytes(buf[:GRANULES]) == expected()
    # the next page was never written: zeros (it reads as the zero page)
    assert bytes(buf[GRANULES:]) == bytes(GRANULES)
    assert vm.stats.copy_tags_bytes == 0x2000


def test_a_page_never_tagged_reads_as_zeros_and_stays_untagged():
    vm, _ = tagged_vm()
    other = PAGE + 0x5000
    vm.vmm_access("untagged").write(other, b"data")           # present, stale tags
    assert vm.read_tags(other, 16) != [0]
    buf = bytearray(b"\xff" * GRANULES)
    assert vm.copy_tags(other, 0x1000, buf, flags=KVM_ARM_TAGS_FROM_GUEST) == 0x1000
    assert bytes(buf) == bytes(GRANULES)
    assert not vm.page_info(other)["mte_tagged"]


def test_to_guest_marks_the_page_tagged_and_the_guest_then_reads_those_tags():
    vm = Vm(mte=True)
    vm.add_memslot(RAM, SIZE)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "tag_peek_poke.S"))
    tags = bytes((g % 15) + 1 for g in range(GRANULES))
    assert vm.copy_tags(PAGE, 0x1000, tags, to_guest=True) == 0x1000
    assert vm.page_info(PAGE)["mte_tagged"]
    vcpu.set_reg("x0", PAGE + 0x50)
    vcpu.set_reg("x1", 16)
    assert vcpu.run().reason == "end"
    # the guest's first fault found PG_mte_tagged set: the copied tags were kept
    assert vcpu.reg("x10") == tags[5]
    assert bytes(vm.read_tags(PAGE, 0x1000)) == tags


def test_a_copy_that_meets_a_page_without_a_memslot_stops_there():
    vm, _ = tagged_vm()
    end = RAM + SIZE
    buf = bytearray(b"\xee" * (3 * GRANULES))
    assert vm.copy_tags(end - 0x2000, 0x3000, buf) == 0x2000  # two pages, then no memslot
    assert bytes(buf[2 * GRANULES:]) == b"\xee" * GRANULES    # the third untouched
    assert vm.copy_tags(PAGE, 0, bytearray()) == 0


@pytest.mark.parametrize("kwargs,errname,words", [
    (dict(ipa=PAGE + 0x10, length=0x1000), "EINVAL", "PAGE_SIZE"),
    (dict(ipa=PAGE, length=0x800), "EINVAL", "PAGE_SIZE"),
    (dict(ipa=PAGE, length=0x1000, flags=2), "EINVAL", "flags 0x2"),
    (dict(ipa=PAGE, length=0x1000, flags=3), "EINVAL", "flags 0x3"),
    (dict(ipa=PAGE, length=0x1000, reserved=(0, 1)), "EINVAL", "reserved"),
    (dict(ipa=0x1_0000_0000, length=0x1000), "EFAULT", "not in a RAM memslot"),
    (dict(ipa=(1 << 40) + 0x1000, length=0x1000), "EFAULT", "not in a RAM memslot"),
    (dict(ipa=PAGE, length=0x2000, buf_size=GRANULES), "EFAULT", "holds 256 bytes"),
    (dict(ipa=PAGE, length=0x1000, to_guest=True, logging=True), "EBUSY", "dirty logging"),
])
def test_bad_arguments_are_refused_and_change_nothing(kwargs, errname, words):
    vm, vcpu = tagged_vm()
    if kwargs.pop("logging", False):
        vm.enable_dirty_logging()
    buf = bytearray(b"\xab" * kwargs.pop("buf_size", 2 * GRANULES))
    before = state(vm)
    with pytest.raises(KvmError) as e:
        vm.copy_tags(buf=buf, **kwargs)
    assert e.value.errno == getattr(errno, errname)
    assert words in str(e.value) and "KVM_ARM_MTE_COPY_TAGS" in str(e.value)
    assert state(vm) == before and buf == bytearray(b"\xab" * len(buf))
    vm.disable_dirty_logging()
    assert vcpu.run().reason == "end" and vcpu.reg("x20") == 0    # the guest goes on intact


def test_a_vm_without_mte_has_no_copy_tags():
    vm = Vm()
    vm.add_memslot(RAM, SIZE)
    with pytest.raises(KvmError) as e:
        vm.copy_tags(RAM, 0x1000, bytearray(GRANULES))
    assert e.value.errno == errno.EINVAL and "KVM_CAP_ARM_MTE" in str(e.value)


@given(tags=st.binary(min_size=2 * GRANULES, max_size=2 * GRANULES),
       granule=st.integers(min_value=0, max_value=2 * GRANULES - 1))
@settings(max_examples=15, deadline=None)
def test_tags_copied_in_are_what_the_guest_and_copy_out_see(tags, granule):
    tags = bytes(t & 0xF for t in tags)
    vm = Vm(mte=True)
    vm.add_memslot(RAM, SIZE)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "tag_peek_poke.S"))
    assert vm.copy_tags(PAGE, 0x2000, tags, to_guest=True) == 0x2000
    out = bytearray(2 * GRANULES)
    assert vm.copy_tags(PAGE, 0x2000, out) == 0x2000 and bytes(out) == tags
    vcpu.set_reg("x0", PAGE + 16 * granule)
    vcpu.set_reg("x1", 16)
    assert vcpu.run().reason == "end"
    assert vcpu.reg("x10") == tags[granule]                 # LDG in the guest
