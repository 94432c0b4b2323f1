"""The race in initialising a MAP_SHARED page's tags, every order of its steps.

Two paths -- a vCPU whose stage-2 fault runs sanitise_mte_tags and whose guest then stores
tags (asm/kvm/race_tagger.S), and a VMM thread whose PROT_MTE mapping runs mte_sync_tags and
which then stores tags; or the vCPUs of two VMs -- take their first access to the same fresh
page. Unlocked (test PG_mte_tagged, clear, set), a path that saw the flag clear may clear the
page after the other path stored its tags: those tags are lost. With PG_mte_lock
(try_page_mte_tagging: test-and-set the lock; the loser waits for PG_mte_tagged), no order
loses any. The page's final tags are checked against what each path stored: the storing path's
tag in its granules, 0 (cleared) everywhere else.
"""
import pytest

from aarch64mte.kvm import race

VCPU_GRANULES, VMM_GRANULES = range(0, 4), range(4, 8)


def check_losses(report):
    writers = dict((w.name, w) for w in race.WRITERS[report.scenario])
    for o in report.outcomes:
        by_writer = {}
        for lost in o.lost:
            by_writer.setdefault(lost.writer, []).append(lost)
        for name, lost in by_writer.items():
            w = writers[name]
            # a loss is a whole path's stores, wiped back to 0 by the other path's clear...
            assert [l.granule for l in lost] == list(range(w.first, w.first + w.count))
            assert all(l.wrote == w.tag and l.now == 0 for l in lost)
            other = next(x for x in writers.values() if x is not w)
            # ...which came after those stores
            stored = max(i for i, s in enumerate(o.schedule) if s.startswith(w.name) and "STG" in s)
            cleared = max(i for i, s in enumerate(o.schedule)
                          if s.startswith(other.name) and "mte_clear_page_tags" in s)
            assert cleared > stored
        assert len(by_writer) <= 1


def test_without_the_lock_some_orders_lose_the_tags_one_side_wrote():
    report = race.explore("vcpu-vmm", "racy")
    assert len(report.outcomes) == 115
    assert len(report.losing) == 15
    check_losses(report)
    lost_sides = {o.lost[0].writer for o in report.losing}
    assert lost_sides == {"vCPU", "VMM thread"}            # either side can lose
    # every order where both paths saw PG_mte_tagged clear and one stored before the
    # other's clear loses; the rest keep every tag
    for o in report.outcomes:
        both_clear = sum("-> clear" in s for s in o.schedule) == 2
        if not both_clear:
            assert not o.lost


def test_the_order_that_wipes_the_guests_tags():
    picks = [0, 0, 1, 0, 0, 1, 1, 1]
    outcome, _ = race.run_order("vcpu-vmm", "racy", picks)
    assert outcome.schedule == [
        "vCPU: test PG_mte_tagged -> clear",
        "vCPU: mte_clear_page_tags",
        "VMM thread: test PG_mte_tagged -> clear",
        "vCPU: set PG_mte_tagged",
        "vCPU: guest resumes: STG x4 (tag 0xa) to granules 0..3",
        "VMM thread: mte_clear_page_tags",
        "VMM thread: set PG_mte_tagged",
        "VMM thread: STG x4 (tag 0x5) to granules 4..7",
    ]
    assert [(l.granule, l.ipa, l.writer, l.wrote, l.now) for l in outcome.lost] == [
        (g, race.SHARED_IPA + 16 * g, "vCPU", 0xA, 0) for g in VCPU_GRANULES]
    assert list(outcome.tags[:8]) == [0] * 4 + [5] * 4


def test_with_the_lock_no_order_loses_a_tag():
    report = race.explore("vcpu-vmm", "locked")
    assert len(report.outcomes) == 22 and report.losing == []
    for o in report.outcomes:
        assert list(o.tags[:8]) == [0xA] * 4 + [0x5] * 4 and not any(o.tags[8:])
        assert sum("mte_clear_page_tags" in s for s in o.schedule) == 1   # cleared once
    # the loser waits: some orders show it
    assert any("waits for PG_mte_tagged" in s for o in report.outcomes for s in o.schedule)


def test_with_the_lock_the_order_that_lost_tags_keeps_them():
    outcome, _ = race.run_order("vcpu-vmm", "locked", [0, 0, 1, 0, 0, 1])
    assert outcome.lost == []
    assert "VMM thread: try_page_mte_tagging -> lock held, waits for PG_mte_tagged" in \
        outcome.schedule


@pytest.mark.long
@pytest.mark.parametrize("tag_init,losing", [("racy", 15), ("locked", 0)])
def test_two_vms_sharing_a_page(tag_init, losing):
    report = race.explore("two-vms", tag_init)
    assert len(report.losing) == losing
    check_losses(report)
