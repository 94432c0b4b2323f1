"""Tags are initialised once per host page: on the first stage-2 mapping into an MTE guest.

KVM maps a page Normal Write-Back at stage 2 (so it is Tagged for the guest) and, on the first
translation fault, sanitise_mte_tags clears its tags and sets PG_mte_tagged unless that flag is
set -- never again for that page, whichever VM maps it. The host's page allocator leaves tags
as they were (the model's fresh frames carry ``STALE_TAGS``), so without that clear the guest
would read them. The zero page keeps zero tags and is never written: a guest read of a page
never written maps it read-only; a tag store is a write (AArch64.S2CheckPermissions), so it
faults, the host copies the page on write, and the new page is cleared when it is mapped.
"""
from pathlib import Path

from aarch64mte.kvm import Host, Vm
from aarch64mte.kvm.pages import GRANULES, STALE_TAGS

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
RAM = 0x4000_0000
SHARED = 0x8000_0000


def new_vm(program, mte=True, host=None, name=None, shared=None):
    vm = Vm(mte=mte, host=host, name=name)
    vm.add_memslot(RAM, 0x80_0000)
    if shared is not None:          # before load: the snippet profile maps every memslot
        vm.add_memslot(SHARED, 0x1000, "shared", file=shared)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / program))
    return vm, vcpu


def peek_poke(vm, vcpu, address, tag=16):
    vcpu.set_reg("x0", address)
    vcpu.set_reg("x1", tag)
    vcpu.set_reg("pc", vm.symbols["_start"])
    vcpu.set_reg("x30", vm.boot.text_end)
    r = vcpu.run()
    assert r.reason == "end"
    return vcpu.reg("x10"), vcpu.reg("x11")


def test_the_first_mapping_clears_stale_tags():
    vm, vcpu = new_vm("mte_probe.S")
    buf = vm.symbols["buf"]
    # the VMM wrote the image: the page is in host memory, its tags stale
    assert vm.read_tags(buf, 64) == list(STALE_TAGS[:4])
    assert not vm.page_info(buf)["mte_tagged"]
    vcpu.run()
    assert vm.read_tags(buf, 64) == [6, 0, 0, 0]            # cleared, then the guest's STG
    assert vm.page_info(buf)["mte_tagged"]
    # each page the guest touched was cleared exactly once: text, data, its stage-1 table
    assert vm.stats.pages_sanitised == 3 == len(list(vm.stage2.pages()))
    assert vm.host.stats.pages_sanitised == 3


def test_a_page_mapped_again_is_not_cleared_again():
    vm, vcpu = new_vm("retouch.S")
    page = 0x4010_0000
    vcpu.set_reg("x0", page)
    vcpu.set_reg("x1", 0xC)
    r = vcpu.run()
    assert r.reason == "mmio"                               # the doorbell
    cleared = vm.stats.pages_sanitised
    faults = vm.stats.s2_faults
    assert vm.invalidate_stage2(page) == 1                  # KVM drops its mapping only
    r = vcpu.run()
    assert r.reason == "end"
    assert vm.stats.s2_faults == faults + 1                 # the guest faulted again...
    assert vm.stats.pages_sanitised == cleared              # ...and nothing was cleared
    assert vcpu.reg("x10") == 0xC and vcpu.reg("x11") == 0x5EED


def test_a_page_shared_by_two_vms_is_cleared_once():
    host = Host()
    memfd = host.memfd(0x1000, "shared")
    vms = []
    for name in ("A", "B"):
        vm, vcpu = new_vm("tag_peek_poke.S", host=host, name=name, shared=memfd)
        vms.append((vm, vcpu))
    (a, va), (b, vb) = vms
    assert peek_poke(a, va, SHARED + 0x30, 0xA) == (0, 0xA)
    frame = memfd.pages[0]
    assert a.page_info(SHARED)["pa"] == frame.pa
    before = host.stats.pages_sanitised
    # VM B maps the same frame: its tags are initialised (PG_mte_tagged), so B sees A's tag
    assert peek_poke(b, vb, SHARED + 0x30) == (0xA, 0xA)
    assert b.page_info(SHARED)["pa"] == frame.pa
    own = [ipa for ipa, pa, w in b.stage2.pages() if ipa != SHARED]
    assert host.stats.pages_sanitised - before == len(own) == b.stats.pages_sanitised
    assert host.frames.read_tags(frame)[3] == 0xA


def test_without_mte_nothing_is_cleared():
    vm, vcpu = new_vm("tag_peek_poke.S", mte=False)
    peek_poke(vm, vcpu, vm.boot.regs["ttbr0_el1"] - 0x10_0000, 5)
    assert vm.stats.pages_sanitised == 0 and vm.host.stats.pages_sanitised == 0


def test_a_read_of_a_never_written_page_maps_the_zero_page():
    vm, vcpu = new_vm("tag_peek_poke.S")
    fresh = 0x4020_0000
    assert peek_poke(vm, vcpu, fresh + 0x40) == (0, 0)
    assert vcpu.reg("x12") == 0
    info = vm.page_info(fresh)
    assert info["zero_page"] and info["stage2"] == {"pa": vm.host.frames.zero_page.pa,
                                                    "writable": False}
    assert vm.stats.zero_page_maps == 1 and vm.host.stats.zero_page_maps == 1


def test_a_tag_store_to_the_zero_page_copies_it_then_clears_the_copy():
    vm, vcpu = new_vm("tag_peek_poke.S")
    fresh = 0x4020_0000
    peek_poke(vm, vcpu, fresh)
    cleared = vm.stats.pages_sanitised
    assert peek_poke(vm, vcpu, fresh + 0x40, 7) == (0, 7)
    info = vm.page_info(fresh)
    assert not info["zero_page"] and info["mte_tagged"] and info["stage2"]["writable"]
    assert vm.host.stats.cow_breaks == 1
    assert vm.stats.pages_sanitised == cleared + 1          # the copy, once
    tags = vm.read_tags(fresh, 0x1000)
    assert tags[4] == 7 and tags.count(0) == GRANULES - 1   # no stale tag survived
    zero = vm.host.frames.zero_page
    assert vm.host.frames.read_tags(zero) == bytes(GRANULES)
    assert vm.host.frames.read(zero) == bytes(0x1000)


def test_a_prot_mte_mapping_gets_pages_with_zero_tags_from_the_allocator():
    """An anonymous PROT_MTE mapping's pages come zeroed with their tags (tag_clear_highpage)
    and already PG_mte_tagged, so KVM has nothing to clear."""
    vm = Vm(mte=True)
    vm.add_memslot(RAM, 0x80_0000, prot_mte=True)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "mte_probe.S"))
    assert vm.read_tags(vm.symbols["buf"], 64) == [0, 0, 0, 0]
    vcpu.run()
    assert vm.host.stats.pages_zeroed_with_tags == 3
    assert vm.stats.pages_sanitised == 0
    assert vcpu.reg("x11") == 6
