"""A model of KVM's MTE support for guests, on the EL2 shim: run, watch and test it.

    from aarch64mte.kvm import Vm, KvmError
    vm = Vm(mte=True)
    vm.add_memslot(ipa=0x4000_0000, size=0x800_0000, backing="anon")
    vcpu = vm.create_vcpu()
    vm.load("guest.S")
    r = vcpu.run(max_insns=1_000_000)

The host (``Host``) is one MTE CPU whose EL2 is Python; its RAM is the kernel's page frames.
A VM's guest memory is the VMM's mappings (``mm``), registered as memslots; KVM maps each page
at stage 2 on the first fault and initialises its tags once (``fault``, ``pages``). The model
also has swap with tag save/restore (``swap``), KVM_ARM_MTE_COPY_TAGS, the VMM's three kinds of
access (``vmm``), migration (``migration``) and the tag-initialisation race (``race``).
"""
from .errors import KvmError, VmmTagCheckFault
from .host import Host, HostStats
from .vcpu import RunResult, Vcpu
from .vm import KVM_ARM_TAGS_FROM_GUEST, KVM_ARM_TAGS_TO_GUEST, Memslot, Vm, VmStats

__all__ = ["Vm", "Vcpu", "Host", "KvmError", "VmmTagCheckFault", "RunResult", "Memslot",
           "VmStats", "HostStats", "KVM_ARM_TAGS_TO_GUEST", "KVM_ARM_TAGS_FROM_GUEST"]
