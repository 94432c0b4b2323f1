"""Alignment: AArch64.CheckAlignment with FEAT_LSE2 (ID_AA64MMFR2_EL1.AT = 1) and SCTLR_EL1.A/nAA.

- SCTLR_EL1.A = 1: every unaligned access faults, checked per element for pairs and vectors
  (the alignment of a pair or a vector access is its element size); tag instructions make no
  alignment check of their own (LDG and LDGM align the address down, DC GVA takes Xt anywhere
  in its block).
- A = 0, FEAT_LSE2: an unaligned atomic, exclusive or load-acquire/store-release access is
  performed when all its bytes lie in one aligned 16-byte quantity, and takes an Alignment
  fault otherwise; for load-acquire/store-release SCTLR_EL1.nAA = 1 removes even that fault.
- An Alignment fault: DFSC 0b100001; WnR = 0 for loads and read-modify-writes (a read of the
  address generates it), 1 for stores (store-release, store-exclusive); FAR = the address.
- AArch64.ExclusiveMonitorsPass checks the alignment of a store-exclusive before it asks the
  monitor, so an unaligned store-exclusive faults whether or not a monitor is armed.
"""
import pytest
from hypothesis import given, settings, strategies as st

import conformance_support as cs
from conformance_support import harness, native, side  # noqa: F401  (fixtures)
from conformance_support import ALIGN_READ, ALIGN_WRITE, ended, run_body, tagged

H = cs.REGISTRY
at = lambda off: (lambda P: tagged(P + off, 3))
H.add("swp_unaligned_in16", ["swp w9, w10, [x5]"], x5=at(5))
H.add("swp_cross16", ["swp w9, w10, [x5]"], x5=at(14))
H.add("ldxr_loop_in16", ["1: ldxr w9, [x5]", "add w9, w9, #1", "stxr w12, w9, [x5]",
                         "cbnz w12, 1b"], x5=at(5))
H.add("ldaxp_stlxp_in16", ["1: ldaxp w9, w10, [x5]", "add w9, w9, #1",
                           "stlxp w12, w9, w10, [x5]", "cbnz w12, 1b"], x5=at(4))
H.add("casp_w_in16", ["casp w10, w11, w12, w13, [x5]"], x5=at(4))
H.add("ldxr_cross16", ["ldxr w9, [x5]"], x5=at(14))
H.add("stxr_cross16_no_monitor", ["stxr w12, w9, [x5]"], x5=at(14))
for name, insn in [("ldar", "ldar w9, [x5]"), ("ldapr", "ldapr w9, [x5]"),
                   ("ldapur", "ldapur w9, [x5]"), ("stlr", "stlr w9, [x5]"),
                   ("stlur", "stlur w9, [x5]")]:
    H.add(f"{name}_cross16", [insn], x5=at(14))
    H.add(f"{name}_in16", [insn], x5=at(5))
    H.add(f"{name}_naa", ["mrs x12, sctlr_el1", "orr x12, x12, #(1 << 6)", "msr sctlr_el1, x12",
                          "isb", insn], x5=at(14))
SCTLR_A_BODY = ["ldr x9, [x0, #1]", "ldp w10, w11, [x5]", "ldp x13, x14, [x5]",
                "ld1 {v0.4s}, [x5]", "ld1 {v1.2d}, [x5]", "ldr q2, [x5]", "ldg x15, [x5]",
                "ldgm x16, [x0]", "dc gva, x6", "stg x0, [x0]", "st2g x0, [x0, #32]",
                "umov x17, v0.d[0]"]
H.add("sctlr_a", SCTLR_A_BODY, x5=at(4), x6=at(0x48), align=1)
H.add("sctlr_a_off", ["mrs x12, sctlr_el1", "bic x12, x12, #2", "msr sctlr_el1, x12", "isb",
                      "ldr x9, [x0, #1]"], align=1)

SET_NAA = "mrs x12, sctlr_el1\norr x12, x12, #(1 << 6)\nmsr sctlr_el1, x12\nisb\n"
SET_A = "mrs x12, sctlr_el1\norr x12, x12, #2\nmsr sctlr_el1, x12\nisb\n"
CLEAR_A = "mrs x12, sctlr_el1\nbic x12, x12, #2\nmsr sctlr_el1, x12\nisb\n"


def word(run, off, size=4) -> int:
    return int.from_bytes(run.initial_at(run.P + off, size), "little")


# --- 6. unaligned exclusives and atomics --------------------------------------------------------
def test_unaligned_atomics_within_16_bytes_are_performed(native):
    # FEAT_LSE2: bytes P+5..P+8 and P+4..P+11 lie in one aligned 16-byte quantity, so
    # CheckAlignment lets SWP, LDADD, CAS and CASP (W) through; each is performed.
    body = ("swp w9, w10, [x5]\n"          # mem[P+5] = 0x11, w10 = old
            "ldadd w9, w11, [x6]\n"        # mem[P+21] += 0x11
            "cas w12, w13, [x7]\n"         # w12 = old (compare fails: w12 = 0)
            "casp w14, w15, w16, w17, [x8]\n")
    run = run_body(body, native, regs={"x5": at(5), "x6": at(21), "x7": at(37), "x8": at(52),
                                       "x9": 0x11, "x13": 0x99, "x16": 1, "x17": 2})
    ended(run)
    assert run.log == []
    assert run.reg("x10") == word(run, 5) and run.mem(run.P + 5, 4) == (0x11).to_bytes(4, "little")
    assert run.reg("x11") == word(run, 21)
    assert run.mem(run.P + 21, 4) == ((word(run, 21) + 0x11) % 2**32).to_bytes(4, "little")
    assert run.reg("x12") == word(run, 37)
    assert run.mem(run.P + 37, 4) == run.initial_at(run.P + 37, 4)
    assert (run.reg("x14"), run.reg("x15")) == (word(run, 52), word(run, 56))


def test_unaligned_exclusive_retry_loops_complete(native):
    # LDXR/STXR at P+5 and LDAXP/STLXP (W) at P+36: inside 16 bytes, so the loops run and
    # succeed (each increments its word once) instead of faulting or ending the run.
    body = ("1: ldxr w9, [x5]\nadd w9, w9, #1\nstxr w12, w9, [x5]\ncbnz w12, 1b\n"
            "2: ldaxp w10, w11, [x6]\nadd w10, w10, #1\nstlxp w13, w10, w11, [x6]\n"
            "cbnz w13, 2b\n")
    run = run_body(body, native, regs={"x5": at(5), "x6": at(36)})
    ended(run)
    assert run.log == [] and run.reg("x12") == 0 and run.reg("x13") == 0
    assert run.mem(run.P + 5, 4) == ((word(run, 5) + 1) % 2**32).to_bytes(4, "little")
    assert run.mem(run.P + 36, 4) == ((word(run, 36) + 1) % 2**32).to_bytes(4, "little")
    assert run.mem(run.P + 40, 4) == run.initial_at(run.P + 40, 4)


@pytest.mark.parametrize("insn,wnr", [
    ("swp w9, w10, [x5]", False), ("ldadd w9, w10, [x5]", False),
    ("cas w9, w10, [x5]", False), ("ldxr w9, [x5]", False), ("ldaxr w9, [x5]", False),
    ("ldsminb w9, w10, [x6]", None), ("casp w10, w11, w12, w13, [x7]", False),
    ("ldaxp w9, w10, [x7]", False), ("stxr w12, w9, [x5]", True),
    ("stlxp w12, w9, w10, [x7]", True)])
def test_crossing_16_bytes_is_an_alignment_fault(native, insn, wnr):
    # P+14 (4 bytes), P+12 (8 bytes) cross the 16-byte boundary: Alignment fault, FAR = the
    # address, WnR = 0 for loads and RMWs, 1 for store-exclusives; nothing changes. A byte
    # access is always aligned: LDSMINB at P+15 is performed.
    regs = {"x5": at(14), "x6": at(15), "x7": at(12), "x9": 0x77, "x10": 0x88, "x12": 9}
    run = run_body("clrex\nf: " + insn + "\n", native, regs=regs)
    ended(run)
    if wnr is None:
        assert run.log == []
        return
    addr = tagged(run.P + (12 if "x7" in insn else 14), 3)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (ALIGN_WRITE if wnr else ALIGN_READ, addr, run.sym("f"))]
    assert run.changed() == {}
    assert (run.reg("x9"), run.reg("x10"), run.reg("x12")) == (0x77, 0x88, 9)


def test_unaligned_store_exclusive_faults_without_a_monitor(native):
    # AArch64.ExclusiveMonitorsPass: `if !AArch64.CheckAlignment(...)` comes before
    # IsExclusiveVA, so STXR across 16 bytes with no monitor armed (CLREX) still takes its
    # Alignment fault (WnR = 1), its status register unwritten. Inside 16 bytes it just fails.
    run = run_body("clrex\nf1: stxr w12, w9, [x5]\nclrex\nf2: stxr w13, w9, [x6]\n", native,
                   regs={"x5": at(14), "x6": at(5), "x12": 9, "x13": 9})
    ended(run)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (ALIGN_WRITE, tagged(run.P + 14, 3), run.sym("f1"))]
    assert run.reg("x12") == 9 and run.reg("x13") == 1
    assert run.changed() == {}


# --- 7. load-acquire / store-release ------------------------------------------------------------
ORDERED = [("ldar w9, [x0]", False), ("ldapr w9, [x0]", False), ("ldapur w9, [x0]", False),
           ("ldarh w9, [x0]", False), ("stlr w9, [x0]", True), ("stlur w9, [x0]", True),
           ("stlrh w9, [x0]", True), ("ldar x9, [x0]", False), ("stlr x9, [x0]", True)]


@pytest.mark.parametrize("insn,store", ORDERED)
def test_unaligned_ordered_access_crossing_16_bytes_faults(native, insn, store):
    # `add x0, x0, #15`: the access crosses P+16. Alignment fault 0x96000021 (0x96000061 for
    # the stores), FAR = x0, no effect.
    run = run_body(f"add x0, x0, #15\nf: {insn}\n", native, regs={"x9": 0x77})
    ended(run)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (ALIGN_WRITE if store else ALIGN_READ, tagged(run.P + 15, 3), run.sym("f"))]
    assert run.reg("x9") == 0x77 and run.changed() == {}


def test_ldar_at_p_plus_14_faults(native):
    # the brief form: `add x0, x0, #14; ldar w9, [x0]` -> 0x96000021
    run = run_body("add x0, x0, #14\nldar w9, [x0]\n", native)
    ended(run)
    assert [(e.esr, e.far) for e in run.log] == [(ALIGN_READ, tagged(run.P + 14, 3))]


@pytest.mark.parametrize("setup", ["inside-16", "naa"])
@pytest.mark.parametrize("insn,store", ORDERED)
def test_unaligned_ordered_access_performed(native, insn, store, setup):
    # Inside one 16-byte quantity (P+3), or with SCTLR_EL1.nAA = 1 even across it (P+15),
    # the access is performed like any other.
    off = 3 if setup == "inside-16" else 15
    pre = SET_NAA if setup == "naa" else ""
    size = 2 if "h " in insn else (8 if " x9" in insn else 4)
    run = run_body(f"{pre}add x0, x0, #{off}\n{insn}\n", native, regs={"x9": 0x1122334455667788})
    ended(run)
    assert run.log == []
    if store:
        assert run.mem(run.P + off, size) == (0x1122334455667788).to_bytes(8, "little")[:size]
    else:
        assert run.reg("x9") == word(run, off, size)


# --- 8. SCTLR_EL1.A = 1 -------------------------------------------------------------------------
def test_sctlr_a_checks_every_access_per_element_but_not_tag_instructions(native):
    # With A = 1: LDR X at +1 faults; LDP W at +4 (element 4) does not, LDP X at +4 does;
    # LD1 {.4s} at +4 does not, LD1 {.2d} and LDR Q do; LDG, LDGM, DC GVA, STG, ST2G make no
    # check of their own (STG/ST2G need 16-byte alignment whatever A says, and have it); the
    # same LDR after A is cleared again does not fault.
    body = SET_A + "".join(f"i{k}: {t}\n" for k, t in enumerate(SCTLR_A_BODY)) + CLEAR_A + \
        "again: ldr x18, [x0, #1]\n"
    run = run_body(body, native, regs={"x5": at(4), "x6": at(0x48)})
    ended(run)
    faulting = [0, 2, 4, 5]          # ldr x, ldp x, ld1 .2d, ldr q
    addrs = {0: tagged(run.P + 1, 3), 2: tagged(run.P + 4, 3), 4: tagged(run.P + 4, 3),
             5: tagged(run.P + 4, 3)}
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (ALIGN_READ, addrs[k], run.sym(f"i{k}")) for k in faulting]
    assert run.reg("x10") == word(run, 4) and run.reg("x11") == word(run, 8)
    assert run.reg("x15") == tagged(0, 3)          # LDG inserts tag 3 into Xt (0 before)
    tags = (4 << run.reg("gmid_el1")) // 16        # LDGM: one tag per granule of the block
    assert run.reg("x16") == int("3" * tags, 16)
    assert run.reg("x18") == int.from_bytes(run.initial_at(run.P + 1, 8), "little")


# --- CheckAlignment as a property -----------------------------------------------------------------
CLASSES = {  # name: (template, acctype, writes)
    "ldr": ("ldr {r}9, [x5]", "normal", False),
    "str": ("str {r}9, [x5]", "normal", True),
    "ldar": ("ldar {r}9, [x5]", "ordered", False),
    "stlr": ("stlr {r}9, [x5]", "ordered", True),
    "ldxr": ("ldxr {r}9, [x5]", "atomic", False),
    "swp": ("swp {r}10, {r}9, [x5]", "atomic", False),
}
SUFFIX = {1: "b", 2: "h", 4: "", 8: ""}


def check_alignment(addr: int, size: int, acctype: str, a: bool, naa: bool) -> bool:
    """The model: True if the access takes an Alignment fault (AArch64.CheckAlignment with
    FEAT_LSE2)."""
    if addr % size == 0:
        return False
    if a:
        return True
    if acctype == "normal":
        return False
    if addr % 16 + size <= 16:
        return False
    return acctype == "atomic" or not naa


@settings(max_examples=cs.examples(40, 400), deadline=None)
@given(cls=st.sampled_from(sorted(CLASSES)), size=st.sampled_from([1, 2, 4, 8]),
       off=st.integers(0, 31), a=st.booleans(), naa=st.booleans(),
       value=st.integers(0, 2**64 - 1))
@pytest.mark.parametrize("native", cs.PATHS)
def test_check_alignment_property(native, cls, size, off, a, naa, value):
    template, acctype, writes = CLASSES[cls]
    mn, rest = template.split(" ", 1)
    text = mn + SUFFIX[size] + " " + rest.format(r="x" if size == 8 else "w")
    pre = ("mrs x12, sctlr_el1\n" + ("orr x12, x12, #2\n" if a else "")
           + ("orr x12, x12, #(1 << 6)\n" if naa else "") + "msr sctlr_el1, x12\nisb\n")
    run = run_body(pre + "f: " + text + "\n", native, regs={"x5": at(off), "x9": value,
                                                            "x10": 0})
    ended(run)
    addr = run.P + off
    mask = (1 << (8 * size)) - 1
    if check_alignment(addr, size, acctype, a, naa):
        assert [(e.esr, e.far, e.elr) for e in run.log] == [
            (ALIGN_WRITE if writes else ALIGN_READ, tagged(addr, 3), run.sym("f"))], text
        assert run.changed() == {} and run.reg("x9") == value
        return
    assert run.log == [], text
    old = int.from_bytes(run.initial_at(addr, size), "little")
    if cls in ("str", "stlr"):
        assert run.mem(addr, size) == (value & mask).to_bytes(size, "little")
    elif cls == "swp":
        assert run.reg("x9") == old and run.mem(addr, size) == bytes(size)
    else:
        assert run.reg("x9") == old


# --- the harness, against QEMU -------------------------------------------------------------------
def test_unaligned_in16_on_harness(side, harness):
    w = harness.initial_word
    r = harness.result(side, "swp_unaligned_in16")
    assert r.exc == [] and r.regs == {10: (w(0x100) >> 40 | w(0x108) << 24) & 0xFFFFFFFF}
    for name in ("ldxr_loop_in16", "ldaxp_stlxp_in16", "casp_w_in16"):
        r = harness.result(side, name)
        assert r.exc == [] and r.end == 0, name
    r = harness.result(side, "ldxr_loop_in16")
    old = (w(0x100) >> 40 | w(0x108) << 24) & 0xFFFFFFFF
    assert r.regs == {9: (old + 1) & 0xFFFFFFFF}


@pytest.mark.parametrize("name", ["ldar", "ldapr", "ldapur", "stlr", "stlur"])
def test_ordered_alignment_on_harness(side, harness, name):
    store = name.startswith("st")
    r = harness.result(side, f"{name}_cross16")
    assert r.exc == [(ALIGN_WRITE if store else ALIGN_READ, tagged(harness.P + 14, 3), 0)]
    assert harness.result(side, f"{name}_in16").exc == []
    assert harness.result(side, f"{name}_naa").exc == []


def test_sctlr_a_on_harness(side, harness):
    r = harness.result(side, "sctlr_a")
    P4 = tagged(harness.P + 4, 3)
    assert r.exc == [(ALIGN_READ, tagged(harness.P + 1, 3), 0), (ALIGN_READ, P4, 8),
                     (ALIGN_READ, P4, 16), (ALIGN_READ, P4, 20)]
    assert harness.result(side, "sctlr_a_off").exc == []


# --- QEMU departures (tools/qemu_diff/rules.py) -------------------------------------------------
@pytest.mark.parametrize("name", ["swp_cross16", "ldxr_cross16"])
def test_rule_align_wnr(side, harness, name):
    # align-wnr: the Alignment fault of an atomic RMW or a load-exclusive is a read's
    # (WnR = 0). QEMU 10 reports WnR = 1.
    r = harness.result(side, name)
    addr = tagged(harness.P + 14, 3)
    cs.qemu_departs(side, r.exc == [(ALIGN_WRITE, addr, 0)], "align-wnr",
                    "the Alignment fault of an atomic or load-exclusive has WnR = 1")
    assert r.exc == [(ALIGN_READ, addr, 0)] and r.mem == {}
    cs.warn_if_qemu_architectural(side, "atomic/load-exclusive Alignment fault WnR")


def test_rule_stxr_alignment(side, harness):
    # stxr-alignment: ExclusiveMonitorsPass checks alignment first: Alignment fault, WnR = 1,
    # status register unwritten. QEMU 10 fails the monitor check (status 1) with no fault.
    r = harness.result(side, "stxr_cross16_no_monitor")
    cs.qemu_departs(side, r.exc == [] and r.regs == {12: 1}, "stxr-alignment",
                    "an unaligned STXR with no monitor fails with status 1 and no fault")
    assert r.exc == [(ALIGN_WRITE, tagged(harness.P + 14, 3), 0)] and r.regs == {}
    cs.warn_if_qemu_architectural(side, "unaligned store-exclusive alignment check")
