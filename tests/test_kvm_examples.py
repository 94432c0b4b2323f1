"""The KVM examples in examples/ run and print what their docstrings promise.

The guest's IRG draws from the RGSR_EL1 LFSR seeded by the snippet profile (SEED 0x1234,
GCR_EL1 = 0): its first tag is 0xe (the same known answer examples/step_irg.py prints), so the
buffers in the migration and DMA examples carry tag 0xe and ADDG #1 makes the stale pointer's
tag 0xf.
"""
from functools import partial

import test_python_examples

run_example = partial(test_python_examples.run_example, timeout=300)


def test_migration_keeps_tags_and_the_fault():
    out = run_example("kvm_migrate.py")
    assert "source tags of buf:      [14, 14, 14, 14]" in out
    assert "destination tags of buf: [14, 14, 14, 14]" in out
    assert "0 tags lost" in out
    fault = "exception at 0x40080034 ESR=0x96000011 FAR=0xf00000040081030 " \
            "logical tag 0xf allocation tag 0xe"
    assert f"source goes on:       {fault}" in out
    assert f"destination resumes:  {fault}" in out
    assert "same fault: True" in out and "0xc0de 0xc0de" in out


def test_migration_without_tag_access_lists_the_lost_tags():
    out = run_example("kvm_migrate_untagged.py")
    assert "lost 4 tags:" in out
    for g in range(4):
        assert f"0x{0x40081000 + 16 * g:x}: tag 0xe -> 0x0" in out
    assert "destination tags of buf: [0, 0, 0, 0]" in out
    assert "(the right-tag load): logical tag 0xe, allocation tag 0x0" in out


def test_dma_under_tco():
    out = run_example("kvm_dma.py")
    assert "pointer tag 0x0, allocation tag 0xe" in out          # the checked attempt
    assert "TCO write of 64 bytes done" in out
    assert "sum read back 0x2119110900f8f0e8 (expected 0x2119110900f8f0e8)" in out
    assert "tags of the buffer's granules 0xeeee" in out
    assert "host view of the tags: [14, 14, 14, 14]" in out


def test_swap_round_trip():
    out = run_example("kvm_swap.py")
    # granules 0, 1 have tags 3, 0xa: packed byte 0xa3; then 0x1, 0x8 -> 0x81 ...
    assert "128 bytes of tags: a3816f4d2b09e7c5a3816f4d2b09e7c5..." in out
    assert "the same bytes as the guest's LDGM packing: True" in out
    assert "'swapped': True" in out
    assert "granules with a wrong tag or doubleword: 0" in out
    assert "'swap_outs': 1, 'swap_ins': 1, 'tags_saved_to_swap': 1, " \
           "'tags_restored_from_swap': 1" in out


def test_the_race_with_and_without_the_lock():
    out = run_example("kvm_race.py")
    assert "vcpu-vmm, tag_init=racy: 115 orders, 15 lose tags" in out
    assert "vcpu-vmm, tag_init=locked: 22 orders, 0 lose tags" in out
    for g in range(4):
        assert f"granule {g} at IPA 0x{0x80000000 + 16 * g:x}: vCPU stored 0xa, now 0x0" in out
    assert "VMM thread: try_page_mte_tagging -> lock held, waits for PG_mte_tagged" in out
    assert "page tags: a a a a 5 5 5 5 ... lost: 0" in out
