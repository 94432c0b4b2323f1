"""DC ZVA, DC GVA and DC GZVA: their faults are delivered with the architecture's syndrome, and
the instruction after them runs once.

DC ZVA "behaves as a set of Stores to each byte within the block" (Arm ARM, DC ZVA): its access
descriptor (CreateAccDescDCZero) is a write, so a failed tag check or an MMU fault reports
ISS.WnR = 1, and ISS.CM = 0 ("Despite its mnemonic, DC ZVA is not a cache maintenance
instruction"). AArch64.DataMemZero(regval, vaddress, ...) zeroes the block that holds
Align(regval, size) and reports a fault at regval, the value of Xt (there is no alignment
restriction on Xt within the block). DC GVA/GZVA (AArch64.TagMemZero) take their MMU faults at
the same address.
"""
import pytest

import conformance_support as cs
from conformance_support import harness, native, side  # noqa: F401  (fixtures)
from conformance_support import TAG_WRITE, dabt, ended, run_body, tagged, translation

H = cs.REGISTRY
ZVA_MISMATCH = lambda P: tagged(P + 0x28, 5)          # not block aligned: FAR must keep + 0x28
H.add("zva_tag_sync", ["dc zva, x5"], x5=ZVA_MISMATCH)
H.add("zva_tag_asymm", ["dc zva, x5"], x5=ZVA_MISMATCH, tcf=3)
H.add("zva_tag_async", ["dc zva, x5"], x5=ZVA_MISMATCH, tcf=2)
H.add("zva_translation_tbi0", ["dc zva, x0"], tbi0=0)
H.add("zva_next_once", ["ldr x9, [x0]", "dc zva, x5", "add x10, x10, #1"],
      x5=lambda P: tagged(P + 0x200, 3))
# the harness's test area is two pages with nothing mapped after them
H.add("gva_unmapped", ["dc gva, x5"], x5=lambda P: P - cs.P_OFFSET + 0x2000 + 0x28)
H.add("gzva_unmapped", ["dc gzva, x5"], x5=lambda P: P - cs.P_OFFSET + 0x2000 + 0x28)

DCZID = "mrs x20, dczid_el0\n"


def block_size(run) -> int:
    return 4 << (run.reg("x20") & 0xF)        # DCZID_EL0.BS: log2 of the block in words


def zeroed_block(run, va: int) -> dict:
    """The changes DC ZVA of ``va`` makes: every nonzero word of its block becomes zero."""
    size = block_size(run)
    start = (va & ((1 << 56) - 1)) & ~(size - 1)
    out = {}
    for a in range(start, start + size, 8):
        old = run.initial_at(a, 8)
        if old != bytes(8):
            out[a - run.buf] = (old, bytes(8))
    return out


# --- 1. the tag-check fault is delivered -----------------------------------------------------
def test_dc_zva_tag_check_fault_is_a_store_fault_at_xt(native):
    # AArch64.TagCheckFault for CreateAccDescDCZero's write: synchronous Data Abort,
    # ESR 0x96000051 (EC 0x25, IL, WnR = 1, CM = 0, DFSC 0b010001), FAR = Xt itself (not the
    # block start), ELR = the DC ZVA; nothing of the block is written. Exception entry sets
    # PSTATE.TCO (SPSR.TCO keeps the old 0) and the ERET restores it.
    run = run_body(DCZID + "msr tco, #0\nfault: dc zva, x5\nmrs x9, tco\nf2: dc zva, x2\n",
                   native, regs={"x5": ZVA_MISMATCH})
    ended(run)
    e, e2 = run.log
    assert (e.esr, e.far, e.elr) == (TAG_WRITE, tagged(run.P + 0x28, 5), run.sym("fault"))
    assert (e2.esr, e2.far, e2.elr) == (TAG_WRITE, tagged(run.P, 5), run.sym("f2"))
    assert e.esr & cs.CM == 0
    assert e.tco == cs.SPSR_TCO and e.spsr & cs.SPSR_TCO == 0
    assert run.reg("x9") == 0                   # PSTATE.TCO after the handler: as it was
    assert run.changed() == {}
    assert run.reg("tfsr_el1") == 0


def test_dc_zva_translation_fault_is_delivered(native):
    # TCR_EL1.TBI0 = 0: the tag bits are address bits, the VA is out of TTBR0's range, and
    # AArch64.S1Translate gives a level 0 Translation fault: ESR 0x96000044 (WnR = 1), FAR =
    # the whole Xt. An unmapped VA (no level 1 descriptor): level 1, 0x96000045, FAR = Xt.
    body = (DCZID + "mrs x9, tcr_el1\nbic x9, x9, #(1 << 37)\nmsr tcr_el1, x9\nisb\n"
            "f1: dc zva, x0\n"
            "orr x9, x9, #(1 << 37)\nmsr tcr_el1, x9\nisb\n"
            "f2: dc zva, x5\n")
    run = run_body(body, native, regs={"x5": cs.UNMAPPED_VA + 0x28})
    ended(run)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (dabt(translation(0), True), tagged(run.P, 3), run.sym("f1")),
        (dabt(translation(1), True), cs.UNMAPPED_VA + 0x28, run.sym("f2"))]
    assert run.changed() == {}


def test_dc_zva_under_asymmetric_tcf_is_asynchronous_and_zeroes(native):
    # TCF = 0b11: AArch64.TagCheckFault reports a write's failure asynchronously
    # (TFSR_EL1.TF0: bit 55 of the address is 0); the store happens.
    run = run_body(DCZID + "dc zva, x5\n", native, tcf="asymm", regs={"x5": ZVA_MISMATCH})
    ended(run)
    assert run.log == []
    assert run.reg("tfsr_el1") == cs.TFSR_TF0
    assert run.changed() == zeroed_block(run, run.P + 0x28) != {}
    faults = run.m.tag_faults
    assert faults and all(f.write and f.mode == "async" for f in faults)


# --- 2. the next instruction runs once -------------------------------------------------------
@pytest.mark.parametrize("memory", ["tagged-checked", "mte-off", "untagged"])
def test_dc_zva_runs_the_next_instruction_once(native, memory):
    # Each instruction executes once: after `ldr; dc zva; add` x10 = 1 whatever the MTE setup
    # (TCF = 0 makes the mismatching pointer unchecked; MAIR attribute 0xFF is Untagged).
    regs = {"x5": lambda P: tagged(P + 0x200, 3)}
    kw = {}
    if memory == "mte-off":
        kw["tcf"] = "none"
        regs["x5"] = lambda P: tagged(P + 0x200, 5)
    elif memory == "untagged":
        kw["setup"] = lambda m, buf: cs.alias_block(m, untagged=True)
        regs["x5"] = lambda P: cs.alias(tagged(P + 0x200, 5))
    run = run_body(DCZID + "ldr x9, [x0]\ndc zva, x5\nadd x10, x10, #1\n", native, regs=regs,
                   **kw)
    ended(run)
    assert run.log == []
    assert run.reg("x10") == 1
    assert run.reg("x9") == int.from_bytes(run.initial_at(run.P, 8), "little")
    assert run.changed() == zeroed_block(run, run.P + 0x200) != {}


# --- 4. DC GVA / GZVA: the MMU fault's FAR is Xt ------------------------------------------------
@pytest.mark.parametrize("op", ["gva", "gzva"])
def test_dc_gva_gzva_mmu_fault_far_is_xt(native, op):
    # DC GVA/GZVA store allocation tags (and DC GZVA data) to the block holding Xt; an MMU
    # fault is a write's (WnR = 1) at Xt, not at the block start (AArch64.TagMemZero).
    body = (f"f1: dc {op}, x5\n"
            "mrs x9, tcr_el1\nbic x9, x9, #(1 << 37)\nmsr tcr_el1, x9\nisb\n"
            f"f2: dc {op}, x0\n")
    run = run_body(body, native, regs={"x5": cs.UNMAPPED_VA + 0x28})
    ended(run)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (dabt(translation(1), True), cs.UNMAPPED_VA + 0x28, run.sym("f1")),
        (dabt(translation(0), True), tagged(run.P, 3), run.sym("f2"))]
    assert run.changed() == {}
    assert run.m.read_tags(run.buf, 8192) == [3] * 512


# --- the same bodies on the harness, against QEMU -------------------------------------------------
def test_dc_zva_translation_fault_on_harness(side, harness):
    r = harness.result(side, "zva_translation_tbi0")
    assert r.exc == [(dabt(translation(0), True), tagged(harness.P, 3), 0)] and r.mem == {}


def test_dc_zva_next_instruction_once_on_harness(side, harness):
    r = harness.result(side, "zva_next_once")
    assert r.exc == [] and r.regs == {9: harness.initial_word(cs.P_OFFSET), 10: 1}
    assert r.mem == {o: 0 for o in range(cs.P_OFFSET + 0x200, cs.P_OFFSET + 0x240, 8)
                     if harness.initial_word(o)}


def test_dc_zva_async_tcf_on_harness(side, harness):
    r = harness.result(side, "zva_tag_async")
    assert r.exc == [] and r.tfsr1 == cs.TFSR_TF0
    assert r.mem == {o: 0 for o in range(cs.P_OFFSET, cs.P_OFFSET + 0x40, 8)
                     if harness.initial_word(o)}


@pytest.mark.parametrize("op", ["gva", "gzva"])
def test_dc_gva_gzva_far_on_harness(side, harness, op):
    # the harness maps its level 3 table's first two pages only: level 3 Translation fault
    r = harness.result(side, f"{op}_unmapped")
    assert r.exc == [(dabt(translation(3), True), harness.P - cs.P_OFFSET + 0x2028, 0)]


# --- QEMU departures (tools/qemu_diff/rules.py) --------------------------------------------------
def test_rule_dc_zva_syndrome(side, harness):
    # dc-zva-syndrome: a store's WnR = 1, FAR = Xt. QEMU 10 reports WnR = 0 and the block start.
    r = harness.result(side, "zva_tag_sync")
    x5 = tagged(harness.P + 0x28, 5)
    cs.qemu_departs(side, r.exc == [(cs.TAG_READ, tagged(harness.P, 5), 0)], "dc-zva-syndrome",
                    "DC ZVA's tag-check fault has WnR = 0 and FAR = the block start")
    assert r.exc == [(TAG_WRITE, x5, 0)] and r.mem == {}
    cs.warn_if_qemu_architectural(side, "DC ZVA tag-check fault syndrome")


def test_rule_dc_zva_asymmetric(side, harness):
    # dc-zva-asymmetric: DC ZVA is a write, asynchronous under TCF = 0b11. QEMU 10 takes a
    # synchronous Data Abort with WnR = 0.
    r = harness.result(side, "zva_tag_asymm")
    cs.qemu_departs(side, len(r.exc) == 1 and r.exc[0][0] == cs.TAG_READ, "dc-zva-asymmetric",
                    "DC ZVA under asymmetric TCF takes a synchronous read fault")
    assert r.exc == [] and r.tfsr1 == cs.TFSR_TF0
    assert r.mem == {o: 0 for o in range(cs.P_OFFSET, cs.P_OFFSET + 0x40, 8)
                     if harness.initial_word(o)}
    cs.warn_if_qemu_architectural(side, "DC ZVA under asymmetric TCF")
