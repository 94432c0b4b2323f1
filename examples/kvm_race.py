"""The race that PG_mte_lock fixed, every order of its steps.

A vCPU and a VMM thread take their first access to the same fresh page of a shared memfd;
each initialises the page's tags on the way (KVM's sanitise_mte_tags; mte_sync_tags for the
VMM's PROT_MTE mapping), then stores tags in its own granules: the guest 0xa into granules 0-3
(asm/kvm/race_tagger.S), the VMM 0x5 into granules 4-7. Without the lock, some orders lose one
side's tags; with it, none does.

    python examples/kvm_race.py [two-vms]
"""
import sys

from aarch64mte.kvm import race

scenario = sys.argv[1] if len(sys.argv) > 1 else "vcpu-vmm"
for tag_init in ("racy", "locked"):
    report = race.explore(scenario, tag_init)
    print(f"{scenario}, tag_init={tag_init}: {len(report.outcomes)} orders, "
          f"{len(report.losing)} lose tags")
    if report.losing:
        o = report.losing[0]
        print("  for example:")
        for step in o.schedule:
            print("    " + step)
        print("  lost:")
        for lost in o.lost:
            print(f"    granule {lost.granule} at IPA {lost.ipa:#x}: {lost.writer} stored "
                  f"{lost.wrote:#x}, now {lost.now:#x}")
        print("  page tags:", " ".join(f"{t:x}" for t in o.tags[:8]), "...")

outcome, _ = race.run_order(scenario, "locked", [0, 0, 1, 0, 0, 1])
print("the same order with the lock:")
for step in outcome.schedule:
    print("    " + step)
print("  page tags:", " ".join(f"{t:x}" for t in outcome.tags[:8]), "...",
      "lost:", len(outcome.lost))
