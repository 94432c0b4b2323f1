"""Migrate an MTE guest with its tags, and watch it fault on the destination exactly where it
would have faulted at home.

The guest (asm/kvm/migrate_guest.S) colours a buffer with IRG/STG and asks to be migrated (a
store to an MMIO doorbell). The VMM saves RAM, the tags (KVM_ARM_MTE_COPY_TAGS) and the vCPU to
a file; a second VM on another host restores it and resumes the guest. Both the source, left
to run on, and the destination then take the same synchronous Tag Check Fault on the stale
pointer.

    python examples/kvm_migrate.py
"""
import tempfile
from pathlib import Path

from aarch64mte.kvm import Vm

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"

src = Vm(mte=True, name="source")
src.add_memslot(ipa=0x4000_0000, size=0x800_0000, backing="anon")
vcpu = src.create_vcpu()
src.load(str(ASM / "migrate_guest.S"))
r = vcpu.run()
print(f"source stopped: {r.reason} at {r.mmio.ipa:#x} (the doorbell)")
buf = src.symbols["buf"]
print("source tags of buf:     ", src.read_tags(buf, 64))

path = Path(tempfile.mkdtemp()) / "guest.mig"
report = src.save(str(path), tags="copy_tags")
print(f"saved {report.pages} pages, {report.tagged_pages} with tags, "
      f"{len(report.lost)} tags lost")

dst = Vm.restore(str(path))
print("destination tags of buf:", dst.read_tags(buf, 64))


def describe(r):
    e = r.exception
    t = e.tag_fault
    return (f"{r.reason} at {e.pc:#x} ESR={e.esr:#x} FAR={e.far:#x} "
            f"logical tag {t.logical_tag:#x} allocation tag {t.allocation_tag:#x}")


home = describe(vcpu.run())
away = describe(dst.vcpus[0].run())
print("source goes on:      ", home)
print("destination resumes: ", away)
print("same fault:", home == away)
print("x10 (the right-tag load) on both:", hex(vcpu.reg("x10")), hex(dst.vcpus[0].reg("x10")))
