"""Migration: RAM, tags and vCPU state (the MTE registers and PSTATE.TCO included) to a file
and back into a new VM, which resumes the guest (asm/kvm/migrate_guest.S, dirty_tags.S).

The tags travel only if the VMM carries them (api.rst, KVM_CAP_ARM_MTE): with
KVM_ARM_MTE_COPY_TAGS or LDG through a PROT_MTE mapping they arrive, and the destination takes
the same synchronous Tag Check Fault as the source would; through a mapping without PROT_MTE
every tag reads 0 (the memory is Untagged for the VMM), so every non-zero tag is lost and the
guest's correct pointers fault. Live migration resends what KVM_GET_DIRTY_LOG reports; an STG
is a write at stage 2 (AArch64.S2CheckPermissions), so a tag-only change dirties the page.
The file is versioned and checked: a truncated or corrupted one is refused before anything is
created.
"""
import errno
import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from aarch64mte.kvm import Host, KvmError, Vm
from aarch64mte.kvm.migration import HEADER, LiveMigration

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
RAM, SIZE = 0x4000_0000, 0x80_0000


def migrating_vm(prot_mte=False):
    vm = Vm(mte=True)
    vm.add_memslot(RAM, SIZE, prot_mte=prot_mte)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "migrate_guest.S"))
    r = vcpu.run()
    assert r.reason == "mmio"                             # "migrate me now"
    return vm, vcpu


def fault_of(r):
    e = r.exception
    return (r.reason, e.pc, e.esr, e.far, e.tag_fault.logical_tag, e.tag_fault.allocation_tag)


@pytest.mark.parametrize("tags,prot_mte", [("copy_tags", False), ("prot_mte", True)])
def test_a_migrated_guest_faults_exactly_as_it_would_have(tmp_path, tags, prot_mte):
    vm, vcpu = migrating_vm(prot_mte)
    report = vm.save(str(tmp_path / "vm.bin"), tags=tags)
    assert report.lost == [] and report.tagged_pages == report.pages
    dest = Vm.restore(str(tmp_path / "vm.bin"))
    assert dest.host is not vm.host
    here, there = vcpu.run(), dest.vcpus[0].run()
    assert fault_of(here) == fault_of(there)
    assert here.exception.pc == vm.symbols["stale_load"]
    assert vcpu.reg("x10") == dest.vcpus[0].reg("x10") == 0xC0DE
    buf = vm.symbols["buf"]
    assert dest.read_tags(buf, 64) == vm.read_tags(buf, 64) != [0] * 4


def test_the_vcpu_state_travels_with_the_mte_registers_and_tco(tmp_path):
    vm, vcpu = migrating_vm()
    vcpu.set_reg("gcr_el1", 0x1_00F0)
    vcpu.set_reg("tfsr_el1", 1)
    vcpu.set_reg("tco", 1)
    vm.save(str(tmp_path / "vm.bin"))
    dest = Vm.restore(str(tmp_path / "vm.bin")).vcpus[0]
    for name in ("gcr_el1", "rgsr_el1", "tfsr_el1", "tfsre0_el1", "tco", "pc", "sp_el1",
                 "sctlr_el1", "tcr_el1", "x0"):
        assert dest.reg(name) == vcpu.reg(name), name
    assert dest.reg("tco") == 1 and dest.reg("gcr_el1") == 0x1_00F0
    # with TCO set the stale pointer is Tag Unchecked (AArch64.AccessIsTagChecked)
    assert dest.run().reason == "end"


def test_a_migration_through_an_untagged_mapping_loses_every_tag(tmp_path):
    vm, vcpu = migrating_vm()
    report = vm.save(str(tmp_path / "vm.bin"), tags="untagged")
    buf = vm.symbols["buf"]
    tag = vm.read_tags(buf, 16)[0]
    assert [(t.ipa, t.tag, t.saved) for t in report.lost] == \
        [(buf + 16 * g, tag, 0) for g in range(4)]
    dest = Vm.restore(str(tmp_path / "vm.bin"))
    assert dest.read_tags(buf, 64) == [0] * 4
    r = dest.vcpus[0].run()
    # now even the right pointer faults: its tag is not the (zero) allocation tag
    assert r.reason == "exception" and r.exception.pc == vm.symbols["stale_load"] - 8
    assert (r.exception.tag_fault.logical_tag, r.exception.tag_fault.allocation_tag) == (tag, 0)


def test_live_migration_resends_a_page_whose_tags_alone_changed(tmp_path):
    vm = Vm(mte=True)
    vm.add_memslot(RAM, SIZE)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "dirty_tags.S"))
    assert vcpu.run().reason == "mmio"                     # doorbell 1: tags 2
    buf = vm.symbols["buf"]
    mig = LiveMigration(vm, str(tmp_path / "live.bin"))
    assert buf in mig.report.rounds[0]
    data = vm.vmm_access("untagged").read(buf, 0x1000)
    assert vcpu.run().reason == "mmio"                     # doorbell 2: tags 9, data same
    assert vm.vmm_access("untagged").read(buf, 0x1000) == data
    assert mig.iterate() == [buf]                          # the STGs dirtied it
    assert vcpu.run().reason == "end" and vcpu.reg("x10") == 0xDA7A
    report = mig.finish()
    assert report.rounds[-1] == []
    dest = Vm.restore(str(tmp_path / "live.bin"))
    assert dest.read_tags(buf, 80) == [9, 9, 9, 9, 0]


def test_copy_tags_to_the_guest_is_busy_during_live_migration(tmp_path):
    vm, _ = migrating_vm()
    LiveMigration(vm, str(tmp_path / "live.bin"))
    with pytest.raises(KvmError) as e:
        vm.copy_tags(RAM, 0x1000, bytes(256), to_guest=True)
    assert e.value.errno == errno.EBUSY


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("mig") / "vm.bin"
    vm, _ = migrating_vm()
    vm.save(str(path))
    return path.read_bytes()


def restore_bytes(tmp_path, data):
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    host = Host(ram_size=4 << 20)
    with pytest.raises(KvmError) as e:
        Vm.restore(str(path), host=host)
    assert host.vms == [] and host.stats.pages_allocated == 0   # nothing was created
    return e.value


@given(cut=st.integers(min_value=0, max_value=10**6))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_truncated_file_is_refused(tmp_path, saved, cut):
    cut %= len(saved)
    e = restore_bytes(tmp_path, saved[:cut])
    assert e.errno == errno.EBADMSG and "truncated" in str(e)


@given(pos=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_corrupted_file_is_refused(tmp_path, saved, pos, bit):
    pos %= len(saved)
    data = bytearray(saved)
    data[pos] ^= 1 << bit
    e = restore_bytes(tmp_path, bytes(data))
    assert e.errno in (errno.EBADMSG, errno.EINVAL)
    assert any(w in str(e) for w in ("corrupted", "truncated", "magic", "version"))


def test_another_version_is_refused_by_name(tmp_path, saved):
    data = bytearray(saved)
    data[8:10] = (2).to_bytes(2, "little")
    e = restore_bytes(tmp_path, bytes(data))
    assert e.errno == errno.EINVAL and "version 2" in str(e)


def test_a_file_that_is_not_one_is_refused(tmp_path):
    e = restore_bytes(tmp_path, b"\x7fELF" + bytes(100))
    assert "bad magic" in str(e)
    with pytest.raises(KvmError):
        Vm.restore(str(tmp_path / "missing.bin"))
    assert HEADER.size == 56 and os.path.exists(tmp_path / "bad.bin")
