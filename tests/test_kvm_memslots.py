"""Memslots (KVM_SET_USER_MEMORY_REGION), MMIO exits and PSCI, through real guest code.

Refusals follow Linux: __kvm_set_memory_region (PAGE_SIZE alignment: -EINVAL; overlap with
another slot: -EEXIST), kvm_arch_prepare_memory_region (beyond the IPA space: -EFAULT; with
MTE a VMA without VM_MTE_ALLOWED -- a disk file, a VM_PFNMAP device -- is -EINVAL; dirty logging
of a VM_PFNMAP region: -EINVAL), and user_mem_abort (a VMA that cannot hold tags in an MTE VM
faults with -EFAULT). An access to an IPA no RAM memslot backs is KVM_EXIT_MMIO, decoded from
the ISS of the data abort (Arm ARM ESR_ELx, ISS encoding for a Data Abort: ISV 24, SAS 23:22,
SSE 21, SRT 20:16, SF 15, WnR 6); without ISV it is KVM_EXIT_ARM_NISV.
"""
import errno
from pathlib import Path

import pytest

from aarch64mte.kvm import KvmError, Vm

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
RAM = 0x4000_0000


def snapshot(vm):
    return ([(s.slot, s.ipa, s.size, s.kind) for s in vm.memslots], len(vm.mm.vmas),
            list(vm.stage2.pages()))


@pytest.mark.parametrize("args,errname,words", [
    (dict(ipa=RAM + 0x8000, size=0x1_0000), "EEXIST", "overlaps memslot 0"),
    (dict(ipa=RAM - 0x1000, size=0x2000), "EEXIST", "overlaps"),
    (dict(ipa=0x5000_0800, size=0x1000), "EINVAL", "PAGE_SIZE"),
    (dict(ipa=0x5000_0000, size=0x1800), "EINVAL", "PAGE_SIZE"),
    (dict(ipa=0x5000_0000, size=0), "EINVAL", "memory_size 0"),
    (dict(ipa=-0x1000, size=0x1000), "EINVAL", "non-negative"),
    (dict(ipa=(1 << 40) - 0x1000, size=0x2000), "EFAULT", "40-bit IPA space"),
    (dict(ipa=0x5000_0000, size=0x1000, backing="rom"), "EINVAL", "backing 'rom'"),
    (dict(ipa=0x5000_0000, size=0x1000, backing="file"), "EINVAL", "cannot hold tags"),
    (dict(ipa=0x5000_0000, size=0x1000, backing="device"), "EINVAL", "VM_MTE_ALLOWED"),
])
def test_bad_memslots_are_refused_and_leave_the_vm_as_it_was(args, errname, words):
    vm = Vm(mte=True)
    vm.add_memslot(RAM, 0x80_0000)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "mte_probe.S"))
    before = snapshot(vm)
    with pytest.raises(KvmError) as e:
        vm.add_memslot(**args)
    assert e.value.errno == getattr(errno, errname)
    assert words in str(e.value) and f"[{errname}]" in str(e.value)
    assert snapshot(vm) == before
    r = vcpu.run()                                 # the guest still runs as before
    assert r.reason == "exception" and vcpu.reg("x11") == 6


def test_without_mte_file_and_device_memslots_are_accepted():
    vm = Vm()
    vm.add_memslot(RAM, 0x80_0000)
    vm.add_memslot(0x5000_0000, 0x1000, "file")
    vm.add_memslot(0x0a00_0000, 0x1000, "device")
    assert [s.kind for s in vm.memslots] == ["device", "anon", "file"]
    with pytest.raises(KvmError) as e:
        vm.add_memslot(0x0b00_0000, 0x1000, "device", log_dirty=True)
    assert e.value.errno == errno.EINVAL and "VM_PFNMAP" in str(e.value)


def test_a_file_memslot_made_before_mte_was_enabled_faults_in_the_guest():
    """KVM does not look at old memslots when MTE is enabled; user_mem_abort refuses the
    page when the guest touches it (-EFAULT from KVM_RUN)."""
    vm = Vm()
    vm.add_memslot(RAM, 0x80_0000)
    vm.add_memslot(0x5000_0000, 0x1000, "file")
    vm.enable_mte()
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "tag_peek_poke.S"))
    vcpu.set_reg("x0", 0x5000_0000)
    vcpu.set_reg("x1", 16)
    with pytest.raises(KvmError) as e:
        vcpu.run()
    assert e.value.errno == errno.EFAULT and "VM_MTE_ALLOWED" in str(e.value)
    assert vcpu.reg("pc") == vm.symbols["_start"]          # the faulting LDG, not done


@pytest.mark.parametrize("where,backing", [(0x0a00_0000, None), (0x5000_0000, "device")])
def test_mmio_exits_carry_the_decoded_access(where, backing):
    vm = Vm()
    vm.add_memslot(RAM, 0x80_0000)
    if backing:
        vm.add_memslot(where, 0x1000, backing)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "mmio_guest.S"))
    vcpu.set_reg("x0", where)
    seen = []
    while True:
        r = vcpu.run()
        if r.reason != "mmio":
            break
        a = r.mmio
        seen.append((a.ipa - where, a.size, a.write, a.register, a.sign_extend, a.data))
        if not a.write:
            a.data = 0xFEDC_BA98                           # what the device returns
    assert seen == [(0, 4, False, 10, False, 0),           # ldr w10, [x0]
                    (2, 2, False, 11, True, 0),            # ldrsh x11, [x0, #2]
                    (1, 1, True, 12, False, 0xAB),         # strb w12, [x0, #1]
                    (8, 8, True, 13, False, 0x1122334455667788)]   # str x13, [x0, #8]
    assert vcpu.reg("x10") == 0xFEDC_BA98                  # W load: upper half zero
    assert vcpu.reg("x11") == 0xFFFF_FFFF_FFFF_BA98        # 0xba98 sign-extended
    assert r.reason == "mmio-nisv"                         # LDP: no instruction syndrome
    assert r.exit.esr_el2 >> 24 & 1 == 0
    assert vm.stats.mmio_exits == 5


def test_a_device_model_answers_without_leaving_run():
    class Dev:
        def __init__(self):
            self.log = []

        def read(self, ipa, size):
            return 0x8000 | size

        def write(self, ipa, size, value):
            self.log.append((ipa, size, value))
    vm = Vm()
    vm.add_memslot(RAM, 0x80_0000)
    dev = Dev()
    vm.add_device(0x0a00_0000, 0x1000, dev)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "mmio_guest.S"))
    vcpu.set_reg("x0", 0x0a00_0000)
    r = vcpu.run()
    assert r.reason == "mmio-nisv"
    assert vcpu.reg("x10") == 0x8004 and vcpu.reg("x11") == 0xFFFF_FFFF_FFFF_8002
    assert dev.log == [(0x0a00_0001, 1, 0xAB), (0x0a00_0008, 8, 0x1122334455667788)]


def test_psci_system_off_ends_the_run_with_a_system_event():
    vm = Vm()
    vm.add_memslot(RAM, 0x80_0000)
    vcpu = vm.create_vcpu()
    image = vm.load(str(ASM / "psci_off.S"))
    r = vcpu.run()
    assert r.reason == "system-event" and r.system_event == "shutdown"
    assert vcpu.reg("x10") == 0x1_0001                      # PSCI 1.1
    assert r.pc == image.entry + 5 * 4                      # after the second HVC
    assert vm.stats.hypercalls == 2


def test_a_host_runs_out_of_stage2_table_space_and_says_so():
    from aarch64mte.kvm import Host
    host = Host(ram_size=4 << 20)
    vms = [Vm(host=host) for _ in range(7)]
    with pytest.raises(KvmError) as e:
        Vm(host=host)
    assert e.value.errno == errno.ENOMEM and "7 VMs" in str(e.value)
    vms[0].destroy()
    assert Vm(host=host).stage2.tables.base == vms[0].stage2.tables.base
