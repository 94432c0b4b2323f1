"""Stage-2 aborts, as arch/arm64/kvm/mmu.c handles them.

kvm_handle_guest_abort: an IPA outside every RAM memslot is MMIO (io_mem_abort), or an external
abort injected into the guest for an instruction fetch or a stage-1 table walk. Otherwise
user_mem_abort: find the host page behind the memslot's address (get_user_pages, which may map
the zero page, copy it on write, or swap the page in), and on the first mapping of a page into
an MTE guest -- a translation fault, not a permission fault -- initialise its tags once
(sanitise_mte_tags); refuse (-EFAULT) a mapping that cannot hold tags. Then map it: writable
when the host page is writable, except that with dirty logging a read maps it read-only and a
write marks the page dirty.
"""
from __future__ import annotations

from ..el2 import Resume, Stop
from ..semantics.syndrome import (EC_IABT_LOWER, FSC_ACCESS_FLAG, FSC_PERMISSION,
                                  FSC_TRANSLATION, ISS_S1PTW, ISS_WNR)
from .errors import KvmError
from .pages import PAGE_SIZE, drive, init_tags_steps

RETRY_LIMIT = 64                        # the same fault again with no progress: stop


def fault_type(esr: int) -> int:
    """The DFSC/IFSC group: translation, access flag or permission (level bits dropped)."""
    return esr & 0x3C


def is_write_fault(esr: int) -> bool:
    """kvm_is_write_fault: a stage-1 walk's fault is a write only when it is a permission fault
    (a walk in a read-only memslot must not look like a write); an instruction fetch never is."""
    if esr & ISS_S1PTW:
        return fault_type(esr) == FSC_PERMISSION
    if (esr >> 26) & 0x3F == EC_IABT_LOWER:
        return False
    return bool(esr & ISS_WNR)


def guest_abort(vcpu, e):
    """The shim's answer to a stage-2 abort of ``vcpu`` (an el2 action)."""
    vm = vcpu.vm
    esr = e.esr_el2
    iabt = (esr >> 26) & 0x3F == EC_IABT_LOWER
    kind = fault_type(esr)
    if e.ipa is None or kind not in (FSC_TRANSLATION, FSC_ACCESS_FLAG, FSC_PERMISSION):
        return vcpu.internal_error(e, f"unsupported stage-2 fault (ESR_EL2 {esr:#x})")
    ipa = e.ipa & ~(PAGE_SIZE - 1)
    vm.stats.s2_faults += 1
    write = is_write_fault(esr)
    slot = vm.slot_at(ipa)
    if slot is None or slot.backing.pfnmap or (write and slot.readonly):
        if iabt:
            return vcpu.inject_external_abort(e, True)       # -ENOEXEC -> SEA
        if esr & ISS_S1PTW:
            return vcpu.inject_external_abort(e, False)
        return vcpu.mmio_exit(e, ipa | ((e.far_el2 or 0) & 0xFFF))
    perm = kind == FSC_PERMISSION
    if perm and not write and not iabt:
        return vcpu.internal_error(e, "unexpected stage-2 read permission fault")
    if ipa in vcpu.defer_faults:
        vcpu.deferred = (e, slot, write, perm)       # the race scheduler goes on from here
        return Stop("deferred-fault")
    result = drive(user_mem_abort_steps(vm, ipa, slot, write, perm, vcpu.name))
    if vcpu.too_many_retries(result == "retry"):
        return vcpu.internal_error(e, f"IPA {ipa:#x} faulted again {RETRY_LIMIT} times without "
                                      f"the host page settling")
    return Resume()


def user_mem_abort_steps(vm, ipa: int, slot, write: bool, perm: bool, who: str):
    """user_mem_abort as a generator of the Steps that matter to the tag-initialisation race.
    Returns 'mapped', or 'retry' when the host page changed under it (mmu_invalidate_retry:
    the guest takes the fault again)."""
    host = vm.host
    hva = slot.hva_of(ipa)
    vma = vm.mm.find_vma(hva)
    seq = vm.mmu_seq
    page = yield from vm.mm.fault_steps(hva, write, who)          # __kvm_faultin_pfn
    pte = vm.mm.pte(hva)
    writable = (pte.writable if pte is not None else True) and not slot.readonly
    if slot.logging and not write:
        writable = False
    if vm.mmu_seq != seq:
        return "retry"
    if not perm and vm.mte:
        if not vma.mte_allowed:
            raise KvmError("KVM_RUN", "EFAULT",
                           f"{who}: IPA {ipa:#x} is backed by {vma.backing.describe()}, which "
                           f"cannot hold tags, and the VM has MTE (user_mem_abort: the VMA "
                           f"lacks VM_MTE_ALLOWED)")

        def counted():
            vm.stats.pages_sanitised += 1
            host.stats.pages_sanitised += 1
        yield from init_tags_steps(host.frames, page, host.tag_init == "locked", who,
                                   on_clear=counted)
    page.guest_mapped = True
    vm.stage2.map_page(ipa, page.pa, writable)
    vm.stats.pages_mapped += 1
    if page is host.frames.zero_page:
        vm.stats.zero_page_maps += 1
    if writable:
        slot.mark_dirty(ipa)
    return "mapped"
