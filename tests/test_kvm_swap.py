"""Swap keeps a guest page's tags: arch/arm64/mm/mteswap.c saves the 256 tags of a
PG_mte_tagged page in 128 bytes when the page goes to swap, and arch_swap_restore puts them back
before the page is mapped again; the guest's next access faults (stage 2 was unmapped by the
MMU notifier), KVM finds the restored page already tagged and does not clear it.

The packing is the kernel's mte_save_page_tags (arch/arm64/lib/mte.S): LDGM results ORed per
256-byte block and stored as doublewords. The guest (asm/kvm/swap_tags.S) runs that same
algorithm with real LDGM, whose result holds the tag of the block's granule i in bits
4i+3:4i (Arm ARM, LDGM), and the saved bytes must equal what it computed.
"""
from pathlib import Path

from hypothesis import given, strategies as st

from aarch64mte.kvm import Vm
from aarch64mte.kvm.pages import GRANULES, STALE_TAGS
from aarch64mte.kvm.swap import TAG_STORAGE, pack_tags, unpack_tags

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
RAM = 0x4000_0000
PAGE, PACKED = 0x4010_0000, 0x4011_0000


def expected_tags():
    return bytes((g * 7 + 3) & 0xF for g in range(GRANULES))


def test_a_swapped_out_page_comes_back_with_its_tags():
    vm = Vm(mte=True)
    vm.add_memslot(RAM, 0x80_0000)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "swap_tags.S"))
    vcpu.set_reg("x0", PAGE)
    vcpu.set_reg("x1", PACKED)
    r = vcpu.run()
    assert r.reason == "mmio"                               # the doorbell: swap it now
    before = vm.page_info(PAGE)["pa"]
    assert bytes(vm.read_tags(PAGE, 0x1000)) == expected_tags()
    entry, = vm.swap_out(PAGE)
    saved = vm.host.swap.saved_tags(entry)
    assert len(saved) == TAG_STORAGE == 128
    assert saved == pack_tags(expected_tags())
    assert saved == vm.vmm_access("untagged").read(PACKED, 128)   # the guest's own LDGM packing
    info = vm.page_info(PAGE)
    assert info["swapped"] and info["stage2"] is None and info["pa"] is None
    assert bytes(vm.read_tags(PAGE, 0x1000)) == expected_tags()   # the host's view: in swap
    r = vcpu.run()
    assert r.reason == "end"
    assert vcpu.reg("x20") == 0                             # every tag and doubleword back
    info = vm.page_info(PAGE)
    assert info["mte_tagged"] and info["pa"] != before      # another frame...
    s = vm.host.stats
    assert (s.swap_outs, s.swap_ins, s.tags_saved_to_swap,
            s.tags_restored_from_swap) == (1, 1, 1, 1)
    # ...whose stale tags the restore overwrote, and which KVM did not clear again
    assert bytes(vm.read_tags(PAGE, 0x1000)) == expected_tags()
    assert vm.host.swap.saved_tags(entry) is None           # the entry is freed


def test_an_untagged_page_saves_no_tags_and_is_cleared_when_mapped_again():
    vm = Vm(mte=True)
    vm.add_memslot(RAM, 0x80_0000)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "tag_peek_poke.S"))
    vm.vmm_access("untagged").write(PAGE, b"\x11" * 64)     # only the VMM wrote it
    assert not vm.page_info(PAGE)["mte_tagged"]
    entry, = vm.swap_out(PAGE)
    assert vm.host.swap.saved_tags(entry) is None
    vcpu.set_reg("x0", PAGE + 0x10)
    vcpu.set_reg("x1", 16)
    assert vcpu.run().reason == "end"
    # the swapped-in frame had stale tags; the guest's first fault cleared them
    assert vcpu.reg("x10") == 0 and vcpu.reg("x12") == 0x1111111111111111
    assert vm.read_tags(PAGE, 0x1000) == [0] * GRANULES


def test_nothing_to_swap_for_a_page_never_written():
    vm = Vm(mte=True)
    vm.add_memslot(RAM, 0x80_0000)
    assert vm.swap_out(PAGE, 2) == [None, None]
    assert vm.host.stats.swap_outs == 0


@given(st.binary(min_size=GRANULES, max_size=GRANULES).map(lambda b: bytes(x & 0xF for x in b)))
def test_packing_round_trips_and_puts_granule_pairs_in_nibbles(tags):
    packed = pack_tags(tags)
    assert unpack_tags(packed) == tags
    for k in range(TAG_STORAGE):
        assert packed[k] == tags[2 * k] | (tags[2 * k + 1] << 4)


def test_stale_tags_are_never_zero():
    assert 0 not in STALE_TAGS and len(STALE_TAGS) == GRANULES
