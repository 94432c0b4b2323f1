"""KVM_CAP_ARM_MTE: a VM sees MTE only when the VMM opted in before creating a vCPU.

Real guest code (asm/kvm/mte_probe.S, mte_sysreg.S) runs under VMs with and without the
capability. Expected values come from the Arm ARM (DDI 0487): ID_AA64PFR1_EL1.MTE, bits 11:8;
AllocationTagAccessIsEnabled, which is FALSE at EL1 when HCR_EL2.ATA = 0 (then STG stores no
tag, LDG reads 0 through AArch64.MemTag, and AArch64.AccessIsTagChecked is FALSE); the
GCR_EL1/RGSR_EL1/TFSR_EL1/TFSRE0_EL1 accessor pseudocode, which traps to EL2 (EC 0x18) when
HCR_EL2.ATA = 0; and from Linux KVM: kvm_vm_ioctl_enable_cap refuses KVM_CAP_ARM_MTE once a vCPU
exists (-EINVAL), kvm_vcpu_reset_hcr sets HCR_EL2.ATA only with MTE, and the MTE registers are
hidden from a VM without MTE (mte_visibility), so accessing them is UNDEFINED.
"""
import errno
from pathlib import Path

import pytest

from aarch64mte.kvm import KvmError, Vm
from aarch64mte.kvm.pages import STALE_TAGS

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"
HCR_ATA = 1 << 56


def new_vm(mte, program, **kw):
    vm = Vm(mte=mte, **kw)
    vm.add_memslot(0x4000_0000, 0x80_0000)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / program))
    return vm, vcpu


def test_a_vm_with_mte_sees_it_and_its_tags_are_checked():
    vm, vcpu = new_vm(True, "mte_probe.S")
    r = vcpu.run()
    assert (vcpu.reg("x10") >> 8) & 0xF == 0b0011        # FEAT_MTE3, the CPU's, passed on
    assert vcpu.reg("x13") == 0xE                          # IRG: the LFSR's first tag
    assert vcpu.reg("x11") == 6                            # STG then LDG
    # the load through tag 9 takes a synchronous Tag Check Fault: DFSC 0b010001, EC 0x25
    assert r.reason == "exception"
    assert r.exception.pc == vm.symbols["wrong_tag_load"]
    assert r.exception.esr == 0x9600_0011
    buf = vm.symbols["buf"]
    assert r.exception.far == buf | (9 << 56)
    assert (r.exception.tag_fault.logical_tag, r.exception.tag_fault.allocation_tag) == (9, 6)
    assert vm.host.machine.reg("hcr_el2") & HCR_ATA
    assert vm.read_tags(buf, 32) == [6, 0]                 # the page was cleared, then tagged


def test_a_vm_without_mte_sees_none_and_runs_with_ata_clear():
    vm, vcpu = new_vm(False, "mte_probe.S")
    r = vcpu.run()
    assert r.reason == "end"
    assert (vcpu.reg("x10") >> 8) & 0xF == 0               # ID_AA64PFR1_EL1.MTE reads 0
    assert vcpu.reg("x13") == 0                            # IRG: tag access disabled
    assert vcpu.reg("x11") == 0                            # LDG: likewise
    assert vcpu.reg("x12") == 0x1234                       # the wrong tag is not checked
    assert not vm.host.machine.reg("hcr_el2") & HCR_ATA
    # nothing cleared the page's tags and the STG stored none: the frame still holds the
    # stale tags it came with (the guest cannot see them)
    assert vm.read_tags(vm.symbols["buf"], 32) == list(STALE_TAGS[:2])
    assert vm.stats.pages_sanitised == 0 and vm.host.stats.pages_sanitised == 0


@pytest.mark.parametrize("sel,label", [(0, "gcr_read"), (1, "rgsr_read"), (2, "tfsr_write"),
                                       (3, "tfsre0_read")])
def test_mte_registers_are_undefined_without_mte(sel, label):
    vm, vcpu = new_vm(False, "mte_sysreg.S")
    vcpu.set_reg("x9", sel)
    r = vcpu.run()
    assert r.reason == "exception"
    assert r.exception.kind == "undefined"
    assert r.exception.esr == 0x0200_0000                  # EC 0 (unknown), IL 1
    assert r.exception.pc == vm.symbols[label]
    assert vm.stats.sysreg_traps == 1


@pytest.mark.parametrize("sel,value", [(0, 0), (1, 0x1234 << 8), (2, None), (3, 0)])
def test_mte_registers_are_the_guests_own_with_mte(sel, value):
    vm, vcpu = new_vm(True, "mte_sysreg.S")
    vcpu.set_reg("x9", sel)
    vcpu.set_reg("x0", 0xDEAD)
    r = vcpu.run()
    assert r.reason == "end"
    assert vm.stats.sysreg_traps == 0                       # HCR_EL2.ATA = 1: no trap
    # GCR_EL1 = 0 and RGSR_EL1.SEED = 0x1234 as the snippet profile sets them
    assert vcpu.reg("x0") == (0xDEAD if value is None else value)


def test_enabling_mte_after_a_vcpu_exists_is_refused_and_changes_nothing():
    vm = Vm()
    vm.add_memslot(0x4000_0000, 0x80_0000)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "mte_probe.S"))
    with pytest.raises(KvmError) as e:
        vm.enable_mte()
    assert e.value.errno == errno.EINVAL
    assert "KVM_CAP_ARM_MTE" in str(e.value) and "before any vCPU" in str(e.value)
    assert vm.mte is False
    r = vcpu.run()                                          # still a VM without MTE
    assert r.reason == "end" and (vcpu.reg("x10") >> 8) & 0xF == 0


def test_enabling_mte_before_the_first_vcpu():
    vm = Vm()
    vm.enable_mte()
    vm.add_memslot(0x4000_0000, 0x80_0000)
    vcpu = vm.create_vcpu()
    vm.load(str(ASM / "mte_probe.S"))
    assert vcpu.run().reason == "exception"
    assert vcpu.reg("x11") == 6


def test_an_elf_gets_the_virt_profile(tmp_path):
    """An ELF starts as QEMU virt's CPU does (MMU off, SCTLR_EL1 at reset); with the MMU off
    its data accesses are Device (no tags, AArch64.S1DisabledOutput) and still reach the VMM's
    UART by MMIO."""
    from aarch64mte.assembler import assemble
    from aarch64mte.elf import write_elf
    source = """
        .text
    _start:
        ldr  x1, =0x09000000
        mov  w2, #'K'
        strb w2, [x1]
        mrs  x10, sctlr_el1
        ldr  x0, =0x84000008
        hvc  #0
    """
    elf = tmp_path / "guest.elf"
    write_elf(assemble(source, "guest.s"), str(elf))
    vm = Vm(mte=True)
    vm.add_memslot(0x4000_0000, 0x80_0000)
    vcpu = vm.create_vcpu()
    vm.load(str(elf))
    assert vm.boot.profile == "virt"
    r = vcpu.run()
    assert r.reason == "system-event" and vm.console == "K"
    assert vcpu.reg("x10") & 1 == 0                         # SCTLR_EL1.M: the MMU is off
