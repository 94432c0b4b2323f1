"""Debugging across stages: the EL and regime a stop shows, ``translate VA`` through stage 1 and
stage 2, tag views and GDB's ``memory-tag`` commands on guest addresses, and the EL2 registers
in the GDB stub's target description.

The guest runs under the EL2 shim with a stage 2 that is not the identity: IPA 0x4020_0000 is
backed by PA 0x4040_0000. Allocation tags belong to the physical granule (the Arm ARM's tag
storage is indexed by PA: AArch64.MemTag read and write use the descriptor's output address),
so a guest STG there changes the tag at PA 0x4040_0000 and not at 0x4020_0000. Stage 2
attributes decide Tagged (AArch64.S2MemTagType): Normal-NC makes a Tagged stage 1 Untagged;
MemAttr 0b0100 is NoTagAccess (FEAT_MTE_PERM).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from aarch64mte.cli.main import main
from aarch64mte.debug import stages
from aarch64mte.el2 import Stage2Map
from aarch64mte.machine import Machine
from gdb_support import StubProcess, gdb, needs_gdb

REPO = Path(__file__).resolve().parent.parent
RAM, RAM_SIZE, PAGE = 0x4000_0000, 128 << 20, 0x1000
REMAPPED, BACKING = 0x4020_0000, 0x4040_0000
NC, NTA, HOLE = 0x4020_1000, 0x4020_2000, 0x4020_3000

GUEST = """
    .text
    .globl _start
_start:
    ldr x1, =0x0500000040200000
    stg x1, [x1]
    stg x1, [x1, #16]
    ldr x2, [x1]
    ldr x3, =0x0600000040200020
    stg x3, [x3]
here:
    nop
    ret
    .ltorg
"""


def stage2() -> list[dict]:
    s2 = Stage2Map([dict(ipa=RAM, pa=RAM, size=RAM_SIZE)])
    for ipa in (REMAPPED, NC, NTA, HOLE):
        s2.remove(ipa, PAGE)
    s2.add(REMAPPED, BACKING, PAGE, "normal-wb", "rw")
    s2.add(NC, NC, PAGE, "normal-nc", "rw")
    s2.add(NTA, NTA, PAGE, "notagaccess", "rw")
    return [dict(ipa=m.ipa, pa=m.pa, size=m.size, attr=m.attr, perm=m.perm) for m in s2]


def toml() -> str:
    return "".join(f'[[map]]\nipa = {m["ipa"]:#x}\npa = {m["pa"]:#x}\nsize = {m["size"]:#x}\n'
                   f'attr = "{m["attr"]}"\nperm = "{m["perm"]}"\n' for m in stage2())


@pytest.fixture
def guest(tmp_path) -> Path:
    path = tmp_path / "guest.S"
    path.write_text(GUEST)
    (tmp_path / "stage2.toml").write_text(toml())
    return path


def shim(guest: Path, **options) -> Machine:
    m = Machine(el2="shim", stage2=stage2(), **options)
    m.load(str(guest))
    r = m.run()
    assert r.reason == "end", r
    return m


def test_translate_names_both_stages_and_the_tags_of_the_physical_granule(guest):
    m = shim(guest)
    rep = stages.walk(m, 0x0500_0000_4020_0010)
    assert (rep.ipa, rep.pa, rep.tagged, rep.fault) == (REMAPPED + 0x10, BACKING + 0x10, True,
                                                         None)
    text = rep.text()
    assert "EL1&0 regime, stage 1 on, stage 2 on (HCR_EL2.VM)" in text
    assert f"VA 0x500000040200010 -> IPA {REMAPPED + 0x10:#x}" in text
    assert f"IPA {REMAPPED + 0x10:#x} -> PA {BACKING + 0x10:#x}" in text
    assert "S2AP/XN rw-" in text and "MemAttr 0b1111 Normal Inner/Outer WB" in text
    assert "Tagged, allocation tag 0x5" in text
    # the guest's tags went to the backing PA: the page's own PA keeps tag 0
    assert m.tags.get(BACKING) == m.tags.get(BACKING + 0x10) == 5
    assert m.tags.get(BACKING + 0x20) == 6
    assert m.tags.get(REMAPPED) == 0
    # the machine's tag views go through both stages
    assert m.read_tags(REMAPPED, 0x30) == [5, 5, 6]


def test_translate_says_why_memory_is_untagged_or_faults(guest):
    m = shim(guest)
    nc = stages.walk(m, NC)
    assert nc.tagged is False and "Untagged (stage 2 makes it weaker" in nc.text()
    assert "MemAttr 0b0101 Normal Inner/Outer NC" in nc.text()
    nta = stages.walk(m, NTA)
    assert nta.tagged and "NoTagAccess" in nta.text()
    hole = stages.walk(m, HOLE)
    assert hole.fault is not None and hole.fault.stage == 2 and hole.pa is None
    assert f"stage 2 translation fault at level 3 (IPA {HOLE:#x}), FSC 0x07" in hole.text()
    # stage 2 gives the remapped page no execute permission; stage 1 would
    x = stages.walk(m, REMAPPED, "x")
    assert x.fault is not None and x.fault.kind == "permission" and x.fault.stage == 2
    # EL0 has no access at stage 1 (the snippet profile's AP): stage 1 faults first
    el0 = stages.walk(m, REMAPPED, "w", el=0)
    assert el0.fault is not None and el0.fault.stage == 1 and el0.fault.kind == "permission"
    with pytest.raises(ValueError):
        stages.walk(m, REMAPPED, el=2)         # the shim's EL2 is Python: no EL2 regime


def test_translate_reads_stage2_memattr_under_fwb_and_sees_ata_off(guest):
    # FWB = 1: the shim writes normal-wb as MemAttr 0b0110 (force Write-Back); ATA = 0: the
    # guest's STGs had no effect (tag access disabled at EL1)
    m = shim(guest, hcr={"FWB": 1, "ATA": 0})
    text = stages.walk(m, REMAPPED).text()
    assert "MemAttr 0b0110 Normal WB (forced); FWB" in text
    assert "Tagged, allocation tag 0x0; allocation tag access is disabled at EL1" in text


def test_tagged_regions_follow_stage2(guest):
    # GDB's memory-tag commands ask which ranges are tagged (smaps' mt flag)
    m = shim(guest)
    regions = m.tagged_regions()

    def tagged(va):
        return any(lo <= va < hi for lo, hi in regions)
    assert tagged(REMAPPED) and tagged(NTA) and tagged(RAM)
    assert not tagged(NC) and not tagged(HOLE)


def test_debugger_shows_el_regime_and_translates(guest, capsys):
    script = guest.parent / "cmds"
    script.write_text("regime\nbreak here\ncontinue\ntranslate 0x0500000040200000\n"
                      "translate 0x40201000 w\ntags 0x0500000040200000 48\n"
                      "translate 0x40200000 q\nsysregs\n")
    status = main(["debug", str(guest), "--el2", "shim", "--stage2",
                   str(guest.parent / "stage2.toml"), "--batch", "-x", str(script)])
    out = capsys.readouterr().out
    assert "EL1, EL1&0 regime, stage 1 on, stage 2 on (HCR_EL2.VM)" in out
    # the stop line names the EL and regime on a machine with EL2
    assert re.search(r"=> 0x[0-9a-f]+ <here>:.*\[EL1, EL1&0 regime", out)
    assert f"-> PA {BACKING:#x}" in out and "allocation tag 0x5" in out
    assert "Untagged (stage 2 makes it weaker" in out
    assert "'q' is neither an access" in out
    assert re.search(r"HCR_EL2\s+0x[0-9a-f]+\s+VM=1 .*ATA=1", out)
    assert status == 1                           # the bad `translate` failed the batch


def test_debugger_at_el2_translates_the_guest_regime(tmp_path, capsys):
    """The program's own hypervisor (asm/hyp, --boot-el 2): at EL2 the regime is EL2's; at a
    guest breakpoint it is EL1&0 behind stage 2, which the hypervisor's tables define."""
    script = tmp_path / "cmds"
    script.write_text("regime\nbreak scenario_base\ncontinue\n"
                      "regime\ntranslate 0x40202000 w\ntranslate 0x40201000\n"
                      "translate 0x40100000 el2\n")
    assert main(["debug", str(REPO / "asm" / "hyp" / "hyp.S"), "--boot-el", "2", "--batch",
                 "-x", str(script)]) == 0
    out = capsys.readouterr().out
    assert "EL2, EL2 regime, stage 1 on" in out
    assert "EL1, EL1&0 regime, stage 1 on, stage 2 on (HCR_EL2.VM)" in out
    # RO_IPA: stage 2 read-only, so a write is a stage-2 permission fault at level 3
    assert "0x40202000: write at EL1" in out and "stage 2 permission fault at level 3" in out
    # NC_IPA: stage 2 Normal Non-cacheable under a Tagged stage 1
    assert "Untagged (stage 2 makes it weaker than Normal Inner/Outer Write-Back)" in out
    assert "0x40100000: read at EL2, EL2 regime" in out


# --- the GDB stub ---------------------------------------------------------------------------
def test_target_description_has_el2_registers_only_with_el2():
    from aarch64mte.debug.gdb.target_xml import registers, target_xml
    plain, el2 = target_xml(), target_xml(with_el2=True)
    assert 'name="sctlr_el1"' in plain and 'name="hcr_el2"' not in plain
    for name in ("hcr_el2", "vttbr_el2", "vtcr_el2", "hpfar_el2", "esr_el2", "far_el2",
                 "sctlr_el2", "tfsr_el2", "elr_el2", "spsr_el2", "tcr_el2"):
        assert f'name="{name}"' in el2
    nums = [r.regnum for r in registers(with_el2=True)]
    assert nums == list(range(len(nums)))


@needs_gdb
def test_gdb_reads_el2_registers_and_guest_tags_through_stage2(guest, tmp_path):
    stub = StubProcess(tmp_path, guest, "--el2", "shim", "--stage2",
                     str(guest.parent / "stage2.toml"))
    try:
        text = gdb(stub.port, "break *0x40080018", "continue", "p/x $hcr_el2",
                   "p/x $vtcr_el2", "memory-tag print-allocation-tag 0x40200010",
                   "memory-tag print-allocation-tag 0x40200020",
                   "memory-tag check 0x0600000040200000",
                   "memory-tag print-allocation-tag 0x40201000",
                   "monitor translate 0x40200000", "monitor regime", "kill", timeout=60)
    finally:
        stub.close()
    m = Machine(el2="shim", stage2=stage2())
    assert f"$1 = {m.reg('hcr_el2'):#x}" in text and f"$2 = {m.reg('vtcr_el2'):#x}" in text
    assert "$3 = 0x5" in text and "$4 = 0x6" in text
    assert "Logical tag (0x6) does not match the allocation tag (0x5)" in text
    assert "0x40201000 not in a region mapped with a memory tagging flag" in text
    assert f"IPA {REMAPPED:#x} -> PA {BACKING:#x}" in text
    assert "EL1, EL1&0 regime, stage 1 on, stage 2 on" in text


def test_set_el_reaches_el2_only_on_a_machine_with_el2(tmp_path, capsys):
    script = tmp_path / "cmds"
    script.write_text("set el = 2\nregime\nset el = 1\nregime\nset el = 3\n")
    assert main(["debug", str(REPO / "asm" / "hyp" / "hyp.S"), "--boot-el", "2", "--batch",
                 "-x", str(script)]) == 1
    out = capsys.readouterr().out
    assert "EL2, EL2 regime" in out and "EL1, EL1&0 regime, stage 1 on, stage 2 off" in out
    assert "el holds 0, 1 or 2 (EL0..EL2), not 0x3" in out
    script.write_text("set el = 2\n")
    assert main(["debug", str(REPO / "asm" / "hyp" / "hyp.S"), "--batch", "-x",
                 str(script)]) == 1
    assert "el holds 0 or 1 (EL0 or EL1), not 0x2" in capsys.readouterr().out
