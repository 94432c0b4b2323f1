"""The race in initialising a shared page's tags, modelled deterministically.

Two paths take their first access to the same fresh page of a MAP_SHARED memfd at once, and
each then stores tags into its own granules:

- ``vcpu-vmm``: a vCPU (its stage-2 fault runs sanitise_mte_tags, then the guest's STGs run,
  ``asm/kvm/race_tagger.S``) and a VMM thread (its PROT_MTE mapping's first touch runs
  mte_sync_tags, then it stores tags with STG);
- ``two-vms``: the vCPUs of two VMs that both map the memfd.

Each path is the model's real code (``fault.user_mem_abort_steps``, ``mm.Mm.fault_steps``)
written as a generator of the steps that matter -- test or take the page flag, clear the tags,
set PG_mte_tagged, then store tags -- so a scheduler can run them in any order. Without the
lock (``tag_init='racy'``, the code before Linux 6.2) both paths can find PG_mte_tagged clear,
and a clear that comes after the other path's tag stores wipes them. With PG_mte_lock
(``'locked'``), the path that loses the test-and-set waits for PG_mte_tagged, and no order
loses a tag. ``explore`` runs every order of the steps (each from a fresh host) and reports
which lose tags, which granules, and whose.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from .host import Host
from .pages import GRANULE, Step
from .vm import Vm

SCENARIOS = ("vcpu-vmm", "two-vms")
RAM_IPA, RAM_SIZE = 0x4000_0000, 0x40_0000
SHARED_IPA = 0x8000_0000
GUEST = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "asm", "kvm", "race_tagger.S")


@dataclass(frozen=True)
class Writer:
    """One path and the tags it stores: granules [first, first + count) := tag."""
    name: str
    kind: str            # 'vcpu' | 'vmm'
    first: int
    count: int
    tag: int


WRITERS = {
    "vcpu-vmm": (Writer("vCPU", "vcpu", 0, 4, 0xA), Writer("VMM thread", "vmm", 4, 4, 0x5)),
    "two-vms": (Writer("VM A vCPU", "vcpu", 0, 4, 0xA), Writer("VM B vCPU", "vcpu", 4, 4, 0x5)),
}


@dataclass
class Lost:
    granule: int         # index in the page
    ipa: int
    writer: str
    wrote: int
    now: int


@dataclass
class Outcome:
    schedule: List[str]                     # the steps in the order they ran
    picks: List[int]                        # which path took each step
    tags: bytes                             # the page's tags at the end
    lost: List[Lost] = field(default_factory=list)


@dataclass
class RaceReport:
    scenario: str
    tag_init: str
    outcomes: List[Outcome]

    @property
    def losing(self) -> List[Outcome]:
        return [o for o in self.outcomes if o.lost]


class _Path:
    def __init__(self, writer: Writer, steps) -> None:
        self.writer = writer
        self.steps = steps
        self.last: Optional[Step] = None
        self.done = False

    def runnable(self) -> bool:
        return not self.done and (self.last is None or self.last.ready())


def _vcpu_path(vm: Vm, w: Writer, guest: str):
    """Run the vCPU up to its fault on the shared page; the rest is the generator."""
    vcpu = vm.vcpus[0]
    for reg, v in zip(("x0", "x1", "x2", "x3"), (SHARED_IPA, w.first, w.count, w.tag)):
        vcpu.set_reg(reg, v)
    vcpu.defer_faults = {SHARED_IPA}
    r = vcpu.run(10_000)
    if r.reason != "deferred-fault":
        raise RuntimeError(f"{w.name}: expected the fault on the shared page, got {r.reason}")

    def steps():
        from .fault import user_mem_abort_steps
        e, slot, write, perm = vcpu.deferred
        yield from user_mem_abort_steps(vm, SHARED_IPA, slot, write, perm, w.name)
        vcpu.deferred = None
        vcpu.defer_faults = set()
        r = vcpu.run(10_000)
        if r.reason != "end":
            raise RuntimeError(f"{w.name}: the guest stopped with {r.reason}")
        yield Step(f"{w.name}: guest resumes: STG x{w.count} (tag {w.tag:#x}) to granules "
                   f"{w.first}..{w.first + w.count - 1}")
    return steps()


def _vmm_path(vm: Vm, w: Writer):
    acc = vm.vmm_access("checked", w.name)        # its own PROT_MTE mapping of the memfd

    def steps():
        yield from acc.page_steps(SHARED_IPA, True)
        acc.write_tags(SHARED_IPA + w.first * GRANULE, [w.tag] * w.count)
        yield Step(f"{w.name}: STG x{w.count} (tag {w.tag:#x}) to granules "
                   f"{w.first}..{w.first + w.count - 1}")
    return steps()


def setup(scenario: str, tag_init: str, guest: str = GUEST):
    """A fresh host with the scenario's VMs, both paths ready at their first access."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}")
    host = Host(ram_size=8 << 20, tag_init=tag_init)
    memfd = host.memfd(0x1000, "shared-guest-ram")

    def new_vm(name: str) -> Vm:
        vm = Vm(mte=True, host=host, name=name)
        vm.add_memslot(RAM_IPA, RAM_SIZE)
        vm.add_memslot(SHARED_IPA, 0x1000, "shared", file=memfd)
        vm.create_vcpu()
        vm.load(guest)
        return vm
    writers = WRITERS[scenario]
    vms = [new_vm("vmA")] if scenario == "vcpu-vmm" else [new_vm("vmA"), new_vm("vmB")]
    paths = []
    for i, w in enumerate(writers):
        vm = vms[min(i, len(vms) - 1)]
        paths.append(_Path(w, _vcpu_path(vm, w, guest) if w.kind == "vcpu" else _vmm_path(vm, w)))
    return host, memfd, paths


def run_order(scenario: str, tag_init: str, picks: Sequence[int] = (), guest: str = GUEST
              ) -> Tuple[Outcome, List[List[int]]]:
    """Run one order: ``picks[i]`` is the path that takes step i (past the end of ``picks``,
    the first path that can). Returns the outcome and, for each step, the paths that could
    have taken it."""
    host, memfd, paths = setup(scenario, tag_init, guest)
    schedule, taken, choices = [], [], []
    while not all(p.done for p in paths):
        runnable = [i for i, p in enumerate(paths) if p.runnable()]
        if not runnable:
            raise RuntimeError("deadlock: every path waits")
        i = len(taken)
        pick = picks[i] if i < len(picks) and picks[i] in runnable else runnable[0]
        choices.append(runnable)
        p = paths[pick]
        try:
            p.last = next(p.steps)
        except StopIteration:
            p.done = True
            p.last = None
            choices.pop()
            continue
        taken.append(pick)
        schedule.append(p.last.label)
    page = memfd.pages[0]
    tags = host.frames.read_tags(page)
    outcome = Outcome(schedule, taken, tags)
    wrote = {}
    for p in paths:
        for g in range(p.writer.first, p.writer.first + p.writer.count):
            wrote[g] = p.writer
    for g in range(len(tags)):
        w = wrote.get(g)
        want = w.tag if w else 0
        if tags[g] != want:
            outcome.lost.append(Lost(g, SHARED_IPA + g * GRANULE, w.name if w else "(none)",
                                     want, tags[g]))
    return outcome, choices


def explore(scenario: str, tag_init: str, guest: str = GUEST,
            on_outcome: Optional[Callable[[Outcome], None]] = None) -> RaceReport:
    """Every order of the two paths' steps, each run from a fresh host."""
    outcomes = []
    pending = [[]]
    while pending:
        prefix = pending.pop()
        outcome, choices = run_order(scenario, tag_init, prefix, guest)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        for d in range(len(prefix), len(choices)):
            for alt in choices[d]:
                if alt != outcome.picks[d]:
                    pending.append(outcome.picks[:d] + [alt])
    outcomes.sort(key=lambda o: o.picks)
    return RaceReport(scenario, tag_init, outcomes)
