"""A migration that reads guest memory through a mapping without PROT_MTE: the data arrives,
every tag reads as 0, and nothing says so -- until the guest faults on a pointer that was right.

The report lists exactly which tags were lost (granule, tag at the source, tag carried).

    python examples/kvm_migrate_untagged.py
"""
import tempfile
from pathlib import Path

from aarch64mte.kvm import Vm

ASM = Path(__file__).resolve().parent.parent / "asm" / "kvm"

src = Vm(mte=True, name="source")
src.add_memslot(ipa=0x4000_0000, size=0x800_0000, backing="anon")
vcpu = src.create_vcpu()
src.load(str(ASM / "migrate_guest.S"))
vcpu.run()                                        # up to the migration doorbell

path = Path(tempfile.mkdtemp()) / "guest.mig"
report = src.save(str(path), tags="untagged")
print(f"saved {report.pages} pages; tags read through a mapping without PROT_MTE")
print(f"lost {len(report.lost)} tags:")
for line in report.lost_summary():
    print("  ", line)

dst = Vm.restore(str(path))
buf = src.symbols["buf"]
print("source tags of buf:     ", src.read_tags(buf, 64))
print("destination tags of buf:", dst.read_tags(buf, 64))
r = dst.vcpus[0].run()
e = r.exception
where = "the right-tag load" if e.pc == src.symbols["stale_load"] - 8 else "elsewhere"
print(f"destination: {r.reason} at {e.pc:#x} ({where}): logical tag "
      f"{e.tag_fault.logical_tag:#x}, allocation tag {e.tag_fault.allocation_tag:#x}")
