"""Tag checks of ordinary and special accesses: page-crossing pairs, exclusives, PAuth loads,
RCpc2, TFSR, and which access a fault is charged to.

Rules (Arm ARM): every checked access compares the pointer's logical tag with the allocation
tag of each granule it touches (AArch64.CheckTag in AArch64.MemSingle); a synchronous fault
has no effect (no register written, no writeback, no memory change; AArch64.TagCheckFault);
an asynchronous one sets TFSR_EL1.TF0 (TFSRE0_EL1.TF0 at EL0) for an address with bit 55 = 0.
The attribution tests proper are in tests/machine/test_exact_attribution.py (a fault is the
accessing instruction's own: an unhooked load that shares a base register is never blamed,
the faulting load is the one reported after an MTE instruction's trap); these add the
exclusive cases.
"""
import pytest

import conformance_support as cs
from conformance_support import harness, native, side  # noqa: F401  (fixtures)
from conformance_support import (TAG_READ, TAG_WRITE, TFSR_TF0, ended, run_body, tagged)

H = cs.REGISTRY
PAGE_END = lambda P: P - cs.P_OFFSET + 0x1000         # the page boundary inside the area
H.add("ldp_page_cross", ["ldp w15, w8, [x6, #-36]"], x6=lambda P: tagged(PAGE_END(P) - 4 + 36, 3))
H.add("ldp_page_cross_mismatch", ["ldp w15, w8, [x6, #-36]"],
      x6=lambda P: tagged(PAGE_END(P) - 4 + 36, 3),
      tags=[3] * 256 + [6] + [3] * 255)
H.add("ldraa_mismatch", ["mov x9, #7", "ldraa x9, [x2]"])
H.add("ldrab_pre_mismatch", ["mov x9, #7", "ldrab x9, [x2, #8]!"])
H.add("ldraa_sp_pre", ["mov x4, #7", "ldraa x4, [sp, #8]!"], sp=lambda P: tagged(P, 5))
H.add("store_exclusive_sync", ["msr tco, #1", "ldxr x9, [x2]", "msr tco, #0",
                               "stxr w12, x9, [x2]"])
H.add("store_exclusive_asymm", ["msr tco, #1", "ldxr x9, [x2]", "msr tco, #0",
                                "stxr w12, x9, [x2]"], tcf=3)
H.add("ldxp_stlxp_async", ["ldxp x9, x10, [x2]", "stlxp w12, x9, x10, [x2]"], tcf=2)
H.add("failed_stlxr", ["ldxr x9, [x0]", "clrex", "stlxr w12, x9, [x2]"])
H.add("el0_async_tf0", ["ldr x9, [x2]", "str x9, [x2, #8]"], el=0, tcf0=2)
H.add("ldapur_mismatch", ["mov x9, #7", "ldapur x9, [x2]"])
H.add("stlur_mismatch", ["stlur x9, [x2]"], x9=0x77)
H.add("tfsr_res0", ["mov x9, #-1", "msr tfsr_el1, x9", "mrs x10, tfsr_el1", "msr tfsr_el1, xzr"])
H.add("stxr_retagged", ["ldxr x9, [x0]", "stxr w12, x10, [x2]"], tcf=0, x10=0x5555)


# --- 9. a page-crossing LDP whose granules all carry the pointer's tag ----------------------------
def test_page_crossing_ldp_with_matching_granules_does_not_fault(native):
    # ldp w15, w8, [x6, #-36] at page_end - 4: the first register from the last word of one
    # page, the second from the first word of the next; every granule is tagged 3 like x6.
    run = run_body("ldp w15, w8, [x6, #-36]\n", native,
                   regs={"x6": lambda P: tagged(PAGE_END(P) - 4 + 36, 3)})
    ended(run)
    end = PAGE_END(run.P)
    assert run.log == []
    assert run.reg("x15") == int.from_bytes(run.initial_at(end - 4, 4), "little")
    assert run.reg("x8") == int.from_bytes(run.initial_at(end, 4), "little")


def test_page_crossing_ldp_faults_on_the_second_page_granule(native):
    # The granule after the boundary tagged 6: the second element's check fails; FAR = its
    # address (tag 3), and neither register is written.
    run = run_body("ldp w15, w8, [x6, #-36]\n", native, tags=[3] * 256 + [6] + [3] * 255,
                   regs={"x6": lambda P: tagged(PAGE_END(P) - 4 + 36, 3), "x15": 1, "x8": 2})
    ended(run)
    assert [(e.esr, e.far) for e in run.log] == [(TAG_READ, tagged(PAGE_END(run.P), 3))]
    assert (run.reg("x15"), run.reg("x8")) == (1, 2)


@pytest.mark.parametrize("name", ["ldp_page_cross", "ldp_page_cross_mismatch"])
def test_page_crossing_ldp_on_harness(side, harness, name):
    r = harness.result(side, name)
    end = PAGE_END(harness.P) - harness.P + cs.P_OFFSET       # offset of the page end in the area
    w = harness.initial_word
    if name == "ldp_page_cross":
        assert r.exc == [] and r.regs == {15: w(end - 8) >> 32, 8: w(end) & 0xFFFFFFFF}
    else:
        assert r.exc == [(TAG_READ, tagged(PAGE_END(harness.P), 3), 0)] and r.regs == {}


# --- 10. which access a fault is charged to -------------------------------------------------------
def test_async_faults_of_ldxp_and_stlxp_are_recorded(native):
    # TCF = async: LDXP and STLXP through x2 both fail their checks; TFSR_EL1.TF0 is set, no
    # exception, the pair is stored (status 0), and each failure is recorded at its own PC.
    run = run_body("l: ldxp x9, x10, [x2]\ns: stlxp w12, x9, x10, [x2]\n", native, tcf="async",
                   regs={"x12": 9})
    ended(run)
    assert run.log == [] and run.reg("tfsr_el1") == TFSR_TF0 and run.reg("x12") == 0
    assert [(f.pc, f.va, f.mode) for f in run.m.tag_faults] == [
        (run.sym("l"), tagged(run.P, 5), "async"), (run.sym("s"), tagged(run.P, 5), "async")]


def test_async_fault_at_el0_sets_tfsre0_tf0_not_tf1(native):
    # At EL0 the asynchronous report goes to TFSRE0_EL1; bit 55 of the address is 0, so TF0.
    run = run_body("ldr x9, [x2]\nstr x9, [x2, #8]\n", native, tcf="async", el=0)
    ended(run)
    assert run.reg("tfsre0_el1") == TFSR_TF0 and run.reg("tfsr_el1") == 0


@pytest.mark.parametrize("tcf", ["sync", "async"])
def test_no_fault_charged_to_a_failed_stlxr(native, tcf):
    # STLXR with no monitor (CLREX) fails: AArch64.ExclusiveMonitorsPass is FALSE, no memory
    # access is made, so nothing is tag-checked: status 1, no exception, no TFSR bit.
    run = run_body("ldxr x9, [x0]\nclrex\nstlxr w12, x9, [x2]\n", native, tcf=tcf,
                   regs={"x12": 9})
    ended(run)
    assert run.log == [] and run.reg("x12") == 1 and run.reg("tfsr_el1") == 0
    assert run.m.tag_faults == [] and run.changed() == {}


def test_attribution_on_harness(side, harness):
    r = harness.result(side, "ldxp_stlxp_async")
    assert r.exc == [] and r.tfsr1 == TFSR_TF0 and 12 not in r.regs
    r = harness.result(side, "failed_stlxr")
    assert r.exc == [] and r.regs.get(12) == 1 and r.tfsr1 == 0
    r = harness.result(side, "el0_async_tf0")
    assert r.exc == [] and (r.tfsr1, r.tfsr0) == (0, TFSR_TF0)


# --- store-exclusives are checked as stores -------------------------------------------------------
STORE_EXCLUSIVES = [("ldxr x9, [x5]", "stxr w12, x9, [x5]"),
                    ("ldxr x9, [x5]", "stlxr w12, x9, [x5]"),
                    ("ldxp x9, x10, [x5]", "stxp w12, x9, x10, [x5]"),
                    ("ldaxp x9, x10, [x5]", "stlxp w12, x9, x10, [x5]")]


def _se_params():
    out = []
    for load, store in STORE_EXCLUSIVES:
        out.append(pytest.param(load, store, 0, id=store.split()[0] + "-aligned"))
    out.append(pytest.param("ldxr w9, [x5]", "stxr w12, w9, [x5]", 5, id="stxr-w-unaligned"))
    return out


@pytest.mark.parametrize("load,store,off", _se_params())
def test_store_exclusive_tag_check_is_a_store(native, load, store, off):
    # The load-exclusive runs with PSTATE.TCO = 1 (unchecked) and arms the monitor; the
    # store-exclusive through the same mismatching pointer is a write (its accdesc from
    # CreateAccDescExLDST has write = TRUE): TCF = sync -> Data Abort with WnR = 1, status
    # register unwritten; TCF = 0b11 -> asynchronous (TFSR_EL1.TF0), the store performed.
    regs = {"x5": lambda P: tagged(P + off, 5), "x12": 9}
    body = f"msr tco, #1\n{load}\nmsr tco, #0\nf: {store}\n"
    sync = run_body(body, native, regs=regs)
    ended(sync)
    assert [(e.esr, e.far, e.elr) for e in sync.log] == [
        (TAG_WRITE, tagged(sync.P + off, 5), sync.sym("f"))]
    assert sync.reg("x12") == 9
    asym = run_body(body, native, tcf="asymm", regs=regs)
    ended(asym)
    assert asym.log == [] and asym.reg("tfsr_el1") == TFSR_TF0 and asym.reg("x12") == 0
    assert [f.write for f in asym.m.tag_faults] == [True]


@pytest.mark.parametrize("load,store", [
    pytest.param(*STORE_EXCLUSIVES[0], id="stxr"),
    pytest.param(*STORE_EXCLUSIVES[2], id="stxp"),
    pytest.param(*STORE_EXCLUSIVES[3], id="stlxp")])
def test_store_exclusive_fault_is_taken_before_the_next_instruction(native, load, store):
    # A synchronous exception is taken at the faulting instruction: the ADD after it runs
    # once, after the handler returns (x11 = 1).
    run = run_body(f"msr tco, #1\n{load}\nmsr tco, #0\nf: {store}\nadd x11, x11, #1\n", native,
                   regs={"x5": lambda P: tagged(P, 5)})
    ended(run)
    assert [e.elr for e in run.log] == [run.sym("f")]
    assert run.reg("x11") == 1


def test_store_exclusive_tag_check_on_harness(side, harness):
    r = harness.result(side, "store_exclusive_sync")
    assert r.exc == [(TAG_WRITE, tagged(harness.P, 5), 12)] and 12 not in r.regs
    r = harness.result(side, "store_exclusive_asymm")
    assert r.exc == [] and r.tfsr1 == TFSR_TF0 and 12 not in r.regs     # status 0, as before


# --- 11. PAuth loads are tag-checked --------------------------------------------------------------
def test_pauth_loads_are_tag_checked(native):
    # LDRAA/LDRAB with the keys disabled (SCTLR_EL1.EnDA/EnDB = 0) load from the pointer as it
    # is: a mismatching tag faults (0x96000011, FAR = the address), the destination keeps its
    # value and the pre-index writeback is not done.
    run = run_body("mov x9, #7\nf1: ldraa x9, [x2]\nf2: ldrab x9, [x2, #8]!\n"
                   "f3: ldraa x9, [x0, #16]\n", native)
    ended(run)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (TAG_READ, tagged(run.P, 5), run.sym("f1")),
        (TAG_READ, tagged(run.P + 8, 5), run.sym("f2"))]
    assert run.reg("x2") == tagged(run.P, 5)
    assert run.reg("x9") == int.from_bytes(run.initial_at(run.P + 16, 8), "little")


def test_ldraa_sp_writeback_is_checked(native):
    # An SP-based access is unchecked only with an immediate offset and no writeback
    # (AArch64.AccessIsTagChecked via the decode's SetTagCheckedInstruction): the pre-index
    # form through SP tagged 5 faults, SP and x4 unchanged.
    run = run_body("mov x4, #7\nmov x13, sp\nmov sp, x2\nf: ldraa x4, [sp, #8]!\nmov x14, sp\n"
                   "mov sp, x13\n", native)
    ended(run)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (TAG_READ, tagged(run.P + 8, 5), run.sym("f"))]
    assert run.reg("x4") == 7 and run.reg("x14") == tagged(run.P, 5)


@pytest.mark.parametrize("name,far,dest", [("ldraa_mismatch", 0, 9), ("ldrab_pre_mismatch", 8, 9),
                                           ("ldraa_sp_pre", 8, 4)])
def test_pauth_loads_on_harness(side, harness, name, far, dest):
    # the MOV before the load sets the destination to 7; the load leaves it, and SP_EL0
    # (the body's SP) keeps its value
    r = harness.result(side, name)
    assert r.exc == [(TAG_READ, tagged(harness.P + far, 5), 4)]
    assert r.regs == {dest: 7}
    if name == "ldraa_sp_pre":
        assert r.sp == tagged(harness.P, 5)


# --- QEMU departures (tools/qemu_diff/rules.py) -------------------------------------------------
@pytest.mark.parametrize("name", ["ldapur_mismatch", "stlur_mismatch"])
def test_rule_rcpc2_unchecked(side, harness, name):
    # rcpc2-unchecked: LDAPUR/STLUR decode with `SetTagCheckedInstruction(n != 31)`, so they
    # are checked: a synchronous fault, nothing done. QEMU 10 does not check them.
    r = harness.result(side, name)
    store = name.startswith("stlur")
    cs.qemu_departs(side, r.exc == [], "rcpc2-unchecked", "LDAPUR/STLUR are not tag-checked")
    assert r.exc == [(TAG_WRITE if store else TAG_READ, tagged(harness.P, 5), 4 * (not store))]
    assert r.mem == {} and r.regs == ({} if store else {9: 7})
    cs.warn_if_qemu_architectural(side, "LDAPUR/STLUR tag checks")


def test_rcpc2_checked_on_the_emulator(native):
    run = run_body("mov x9, #7\nf1: ldapur x9, [x2]\nf2: stlur x9, [x2, #8]\n", native)
    ended(run)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (TAG_READ, tagged(run.P, 5), run.sym("f1")),
        (TAG_WRITE, tagged(run.P + 8, 5), run.sym("f2"))]
    assert run.reg("x9") == 7 and run.changed() == {}


def test_rule_tfsr_res0(side, harness):
    # tfsr-res0: TFSR_EL1 defines TF0 (bit 0) and TF1 (bit 1); the other bits are RES0, so
    # writing all ones reads back 0b11. QEMU 10 keeps every bit.
    r = harness.result(side, "tfsr_res0")
    cs.qemu_departs(side, r.regs.get(10) == 2**64 - 1, "tfsr-res0",
                    "TFSR_EL1 keeps the RES0 bits written to it")
    assert r.regs == {9: 2**64 - 1, 10: 0b11}
    cs.warn_if_qemu_architectural(side, "TFSR_EL1 RES0 bits")


def test_tfsr_res0_on_the_emulator(native):
    run = run_body("mov x9, #-1\nmsr tfsr_el1, x9\nmrs x10, tfsr_el1\nmsr tfsre0_el1, x9\n"
                   "mrs x11, tfsre0_el1\n", native)
    ended(run)
    assert (run.reg("x10"), run.reg("x11")) == (0b11, 0b11)


def test_rule_stxr_tag(side, harness):
    # stxr-tag: whether a store-exclusive through a pointer whose tag differs from its
    # load-exclusive's passes the monitor is IMPLEMENTATION DEFINED (IsExclusiveVA may or may
    # not compare the tag bits). Either is allowed, but the outcome must be coherent: status 0
    # with the store done, or status 1 with memory unchanged. (TCF = 0: no tag checks.)
    r = harness.result(side, "stxr_retagged")
    assert r.exc == []
    if r.regs.get(12) == 1:
        assert r.mem == {}
    else:
        assert 12 not in r.regs and r.mem == {cs.P_OFFSET: 0x5555}


def test_stxr_through_a_retagged_pointer_on_the_emulator(native):
    # The emulator's choice, held to: its monitor compares the whole address, tag bits
    # included, so the store-exclusive through x2 (tag 5) after LDXR through x0 (tag 3) fails.
    run = run_body("ldxr x9, [x0]\nstxr w12, x10, [x2]\n", native, tcf="none",
                   regs={"x10": 0x5555})
    ended(run)
    assert run.log == [] and run.reg("x12") == 1 and run.changed() == {}
