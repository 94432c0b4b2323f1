"""LSE atomics: their faults' syndromes, and every operation at every width against MemAtomic.

ISS.WnR (ESR_EL1, Data Abort): "For faults on an atomic instruction that both reads and writes
from a memory location, this bit is set to 0 if a read of the address specified by the
instruction would have generated the fault which is being reported, otherwise it is set to 1."
A tag check fails for the read as much as for the write, so a failed check reports WnR = 0
(CreateAccDescAtomicOp: read = TRUE, and AArch64.TagCheckFault treats the access as a read);
an unmapped page faults a read too (WnR = 0); a read-only page faults only the write (WnR = 1).
"""
import pytest
from hypothesis import given, settings, strategies as st

import conformance_support as cs
from conformance_support import harness, native, side  # noqa: F401  (fixtures)
from conformance_support import (TAG_READ, dabt, ended, permission, run_body, tagged,
                                 translation)

H = cs.REGISTRY
OPS = ("add", "clr", "eor", "set", "smax", "smin", "umax", "umin")
SIZES = {1: "b", 2: "h", 4: "", 8: ""}
ORDERS = ("", "a", "al", "l")


def reg(size: int, n: int) -> str:
    return f"{'x' if size == 8 else 'w'}{n}"


# Every atomic form, once each: LD<op> and SWP at every width and ordering, ST<op>, CAS, CASP.
ATOMICS = (
    [f"ld{op}{o}{SIZES[s]} {reg(s, 9)}, {reg(s, 10)}, [x2]" for op in OPS for s in SIZES
     for o in ORDERS]
    + [f"st{op}{o}{SIZES[s]} {reg(s, 9)}, [x2]" for op in OPS for s in SIZES for o in ("", "l")]
    + [f"swp{o}{SIZES[s]} {reg(s, 9)}, {reg(s, 10)}, [x2]" for s in SIZES for o in ORDERS]
    + [f"cas{o}{SIZES[s]} {reg(s, 9)}, {reg(s, 10)}, [x2]" for s in SIZES for o in ORDERS]
    + [f"casp{o} {r}12, {r}13, {r}14, {r}15, [x2]" for r in "wx" for o in ORDERS])

# one of each family for the harness (QEMU)
for name, insn in [("swp", "swp x9, x10, [x2]"), ("ldaddb", "ldaddb w9, w10, [x2]"),
                   ("ldsmaxh", "ldsmaxh w9, w10, [x2]"), ("stumin", "stumin x9, [x2]"),
                   ("cas", "cas x9, x10, [x2]"), ("casp", "casp x12, x13, x14, x15, [x2]")]:
    H.add(f"atomic_tag_{name}", [insn])
    H.add(f"atomic_tag_asymm_{name}", [insn], tcf=3)
H.add("atomic_unmapped_ldadd", ["ldadd x9, x10, [x5]"], x5=lambda P: P - cs.P_OFFSET + 0x2000)
H.add("atomic_unmapped_swp", ["swp x9, x10, [x5]"], x5=lambda P: P - cs.P_OFFSET + 0x2000)
H.add("atomic_unmapped_cas", ["cas x9, x10, [x5]"], x5=lambda P: P - cs.P_OFFSET + 0x2000)
H.add("atomic_unmapped_casp", ["casp x12, x13, x14, x15, [x5]"],
      x5=lambda P: P - cs.P_OFFSET + 0x2000)
for name in ("ldadd", "swp", "cas"):           # the harness's code is read-only at EL1
    H.add(f"atomic_ro_{name}", [f"{name} x9, x10, [x5]"], x5=0x4000_1000)
H.add("ldsminb_signed", ["mov w9, #0x41", "strb w9, [x0]", "mov w9, #0xf1",
                         "ldsminb w9, w10, [x0]"])
H.add("signed_ops", ["mov x9, #-2", "str x9, [x0]", "mov x9, #5", "ldsmax x9, x10, [x0]",
                     "mov w9, #0x8000", "strh w9, [x6]", "mov w9, #1", "ldsminh w9, w11, [x6]",
                     "mov w9, #-7", "str w9, [x7]", "mov w9, #3", "stsmin w9, [x7]"],
      x6=lambda P: tagged(P + 8, 3), x7=lambda P: tagged(P + 16, 3))


# --- 3. tag-check faults: WnR = 0 ---------------------------------------------------------------
def test_every_atomic_tag_check_fault_reports_a_read(native):
    # Each form through x2 (tag 5 on memory tagged 3): one synchronous Data Abort each,
    # ESR 0x96000011, FAR = x2, ELR = the instruction; no register or memory changes.
    body = "".join(f"a{i}: {insn}\n" for i, insn in enumerate(ATOMICS))
    init = {f"x{n}": 0x1111 * n for n in (9, 10, 12, 13, 14, 15)}
    run = run_body(body, native, regs=init, max_insns=50_000)
    ended(run)
    assert [(e.esr, e.far, e.elr) for e in run.log] == [
        (TAG_READ, tagged(run.P, 5), run.sym(f"a{i}")) for i in range(len(ATOMICS))]
    assert {k: run.reg(k) for k in init} == init
    assert run.changed() == {}


@pytest.mark.parametrize("insn", ["ldadd x9, x10, [x5]", "swp x9, x10, [x5]",
                                  "cas x9, x10, [x5]", "casp x12, x13, x14, x15, [x5]",
                                  "stadd x9, [x5]", "ldsminb w9, w10, [x5]"])
def test_atomic_translation_fault_wnr(native, insn):
    # An unmapped VA: a read would fault, WnR = 0 (level 1 Translation fault, 0x96000005).
    # A read-only page (AP[2] = 1) with a matching tag: only the write faults, WnR = 1 (level 1
    # Permission fault, 0x9600004D). FAR = the address; nothing changes.
    un = run_body(insn, native, regs={"x5": cs.UNMAPPED_VA, "x10": 7})
    ro = run_body(insn, native, regs={"x5": lambda P: cs.alias(tagged(P, 3)), "x10": 7},
                  setup=lambda m, buf: cs.alias_block(m, read_only=True))
    for run in (un, ro):
        ended(run)
        assert run.changed() == {} and run.reg("x10") == 7
    assert [(e.esr, e.far) for e in un.log] == [(dabt(translation(1), False), cs.UNMAPPED_VA)]
    assert [(e.esr, e.far) for e in ro.log] == [(dabt(permission(1), True),
                                                 cs.alias(tagged(ro.P, 3)))]


@pytest.mark.parametrize("insn", [
    pytest.param(i) for i in ("ldadd x9, x10, [x5]", "swp x9, x10, [x5]", "cas x9, x10, [x5]",
              "casp x12, x13, x14, x15, [x5]", "stadd x9, [x5]")]
    + ["ldsminb w9, w10, [x5]", "str x9, [x5]"])
def test_permission_fault_outranks_the_tag_check(native, insn):
    # AArch64.MemAtomic translates the access as a read and a write first (a Permission fault
    # is an MMU fault, AArch64.Abort before any memory access); only an access that
    # translates is tag-checked. Read-only alias, pointer tag 5 on memory tagged 3:
    # Permission fault, level 1, WnR = 1 (0x9600004D), FAR = the address.
    run = run_body(insn, native, regs={"x5": lambda P: cs.alias(tagged(P, 5))},
                   setup=lambda m, buf: cs.alias_block(m, read_only=True))
    ended(run)
    assert [(e.esr, e.far) for e in run.log] == [(dabt(permission(1), True),
                                                  cs.alias(tagged(run.P, 5)))]
    assert run.changed() == {}


# --- 5. signed comparisons ---------------------------------------------------------------------
def test_ldsminb_compares_signed(native):
    # LDSMINB: MemAtomic with MemAtomicOp_SMIN compares SInt(byte): 0xf1 (-15) < 0x41 (65), so
    # memory gets 0xf1; Wt gets the old byte zero-extended (0x41).
    run = run_body("mov w9, #0x41\nstrb w9, [x0]\nmov w9, #0xf1\nldsminb w9, w10, [x0]\n",
                   native)
    ended(run)
    assert run.mem(run.P, 1) == b"\xf1" and run.reg("x10") == 0x41
    assert run.mem(run.P + 1, 7) == run.initial_at(run.P + 1, 7)


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("form", ["ldsmin", "ldsmax", "stsmin", "stsmax"])
def test_signed_min_max_at_every_width(native, form, size):
    # memory = the most negative value of the width, Rs = 1: SMIN keeps memory, SMAX stores 1
    # (unsigned they would do the opposite). LD forms return the old value zero-extended.
    neg = 1 << (8 * size - 1)
    suffix = SIZES[size]
    operands = f"{reg(size, 9)}, {reg(size, 10)}" if form[:2] == "ld" else reg(size, 9)
    run = run_body(f"{form}{suffix} {operands}, [x0]\n", native, regs={"x9": 1, "x10": 7},
                   setup=lambda m, buf: m.write_mem(buf + cs.P_OFFSET,
                                                    neg.to_bytes(size, "little")))
    ended(run)
    want = neg if form.endswith("min") else 1
    assert int.from_bytes(run.mem(run.P, size), "little") == want
    assert run.reg("x10") == (neg if form[:2] == "ld" else 7)


def mem_atomic(op: str, old: int, s: int, size: int) -> int:
    """MemAtomic's new value for MemAtomicOp ``op`` on ``size`` bytes (Arm ARM, shared/
    functions/memory/MemAtomic): ADD, BIC, EOR, ORR, SMAX, SMIN, UMAX, UMIN, SWP."""
    bits = 8 * size
    mask = (1 << bits) - 1
    old, s = old & mask, s & mask
    sx = lambda v: v - (1 << bits) if v >> (bits - 1) else v
    return {"add": (old + s) & mask, "clr": old & ~s & mask, "eor": old ^ s, "set": old | s,
            "smax": old if sx(old) >= sx(s) else s, "smin": old if sx(old) <= sx(s) else s,
            "umax": max(old, s), "umin": min(old, s), "swp": s}[op]


@settings(max_examples=cs.examples(40, 400), deadline=None)
@given(kind=st.sampled_from(["ld", "st", "swp", "cas"]), op=st.sampled_from(OPS),
       size=st.sampled_from([1, 2, 4, 8]), order=st.sampled_from(ORDERS),
       old=st.integers(0, 2**64 - 1), s=st.integers(0, 2**64 - 1), t=st.integers(0, 2**64 - 1),
       slot=st.integers(0, 15))
@pytest.mark.parametrize("native", cs.PATHS)
def test_every_atomic_against_mem_atomic(native, kind, op, size, order, old, s, t, slot):
    # LD<op>/ST<op>/SWP: memory = MemAtomic(op, old, Rs), Rt = ZeroExtend(old) (ST<op> writes
    # XZR). CAS: if old == Rs then memory = Rt; Rs = ZeroExtend(old). W-register forms use
    # the low bits of their sources; their destinations are zero-extended.
    sfx = SIZES[size]
    if kind == "ld":
        text, new_op = f"ld{op}{order}{sfx} {reg(size, 9)}, {reg(size, 10)}, [x5]", op
    elif kind == "st":
        text, new_op = f"st{op}{order[-1:] if order.endswith('l') else ''}{sfx} " \
                       f"{reg(size, 9)}, [x5]", op
    elif kind == "swp":
        text, new_op = f"swp{order}{sfx} {reg(size, 9)}, {reg(size, 10)}, [x5]", "swp"
    else:
        text, new_op = f"cas{order}{sfx} {reg(size, 9)}, {reg(size, 10)}, [x5]", None
    mask = (1 << (8 * size)) - 1
    off = slot * size % 16
    if kind == "cas" and slot % 2:
        s = old                                        # half the CAS draws compare equal
    run = run_body(text + "\n", native, regs={"x5": lambda P: tagged(P + off, 3), "x9": s,
                                              "x10": t},
                   setup=lambda m, buf: m.write_mem(buf + cs.P_OFFSET + off,
                                                    (old & mask).to_bytes(size, "little")))
    ended(run)
    assert run.log == []
    got = int.from_bytes(run.mem(run.P + off, size), "little")
    if kind == "cas":
        want = t & mask if (old & mask) == (s & mask) else old & mask
        regs = {"x9": old & mask, "x10": t}
    else:
        want = mem_atomic(new_op, old, s, size)
        regs = {"x9": s, "x10": t if kind == "st" else old & mask}
    assert got == want, text
    assert {k: run.reg(k) for k in regs} == regs, text
    assert {o for o in run.changed()} <= {(cs.P_OFFSET + off) // 8 * 8}


# --- the harness, against QEMU -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["swp", "ldaddb", "ldsmaxh", "stumin"])
def test_atomic_tag_check_fault_on_harness(side, harness, name):
    r = harness.result(side, f"atomic_tag_{name}")
    assert r.exc == [(TAG_READ, tagged(harness.P, 5), 0)] and r.mem == {} and r.regs == {}


@pytest.mark.parametrize("name", ["swp", "ldaddb", "ldsmaxh", "stumin", "cas", "casp"])
def test_atomic_under_asymmetric_tcf_is_synchronous_on_harness(side, harness, name):
    # a read-modify-write is checked as a read: synchronous under TCF = 0b11, nothing done
    r = harness.result(side, f"atomic_tag_asymm_{name}")
    if name in ("cas", "casp"):
        cs.qemu_departs(side, r.exc == [] and r.tfsr1 == 1, "cas-asymmetric",
                        "CAS/CASP under asymmetric TCF report asynchronously and are performed")
    assert r.exc == [(TAG_READ, tagged(harness.P, 5), 0)] and r.tfsr1 == 0 and r.mem == {}


@pytest.mark.parametrize("name", ["ldadd", "swp", "cas", "casp"])
def test_atomic_unmapped_fault_is_a_read_on_harness(side, harness, name):
    # level 3 Translation fault, WnR = 0: a read of the address would fault
    r = harness.result(side, f"atomic_unmapped_{name}")
    unmapped = harness.P - cs.P_OFFSET + 0x2000
    if name in ("cas", "casp"):
        cs.qemu_departs(side, r.exc == [(dabt(translation(3), True), unmapped, 0)],
                        "no rule yet", "CAS/CASP translation faults report WnR = 1 though a "
                        "read of the address faults")
    assert r.exc == [(dabt(translation(3), False), unmapped, 0)]


@pytest.mark.parametrize("name", ["ldadd", "swp", "cas"])
def test_atomic_read_only_fault_is_a_write_on_harness(side, harness, name):
    # the harness's code: a level 2 block, read-only at EL1: Permission fault, WnR = 1
    r = harness.result(side, f"atomic_ro_{name}")
    assert r.exc == [(dabt(permission(2), True), 0x4000_1000, 0)]


def test_signed_compares_on_harness(side, harness):
    r = harness.result(side, "ldsminb_signed")
    w = harness.initial_word(cs.P_OFFSET)
    assert r.exc == [] and r.regs == {9: 0xF1, 10: 0x41}
    assert r.mem == {cs.P_OFFSET: (w & ~0xFF) | 0xF1}
    r = harness.result(side, "signed_ops")
    # LDSMAX X: max(-2, 5) = 5; LDSMINH: min(-32768, 1) keeps 0x8000; STSMIN W: min(-7, 3)
    w8 = harness.initial_word(cs.P_OFFSET + 8)
    assert r.exc == [] and r.regs[10] == 2**64 - 2 and r.regs[11] == 0x8000
    assert r.mem[cs.P_OFFSET] == 5
    assert r.mem[cs.P_OFFSET + 8] == (w8 & ~0xFFFF) | 0x8000
    w16 = harness.initial_word(cs.P_OFFSET + 16)
    assert r.mem[cs.P_OFFSET + 16] == (w16 & ~0xFFFFFFFF) | 0xFFFFFFF9


# --- QEMU departures (tools/qemu_diff/rules.py) -------------------------------------------------
def test_rule_cas_asymmetric(side, harness):
    # cas-asymmetric: CAS is a read-modify-write, so TCF = 0b11 makes its failed check
    # synchronous (0x96000011), with nothing stored. QEMU 10 reports it asynchronously and
    # performs the CAS.
    r = harness.result(side, "atomic_tag_asymm_cas")
    cs.qemu_departs(side, r.exc == [] and r.tfsr1 == 1, "cas-asymmetric",
                    "CAS under asymmetric TCF is asynchronous and performed")
    assert r.exc == [(TAG_READ, tagged(harness.P, 5), 0)] and r.tfsr1 == 0 and r.mem == {}
    cs.warn_if_qemu_architectural(side, "CAS under asymmetric TCF")


@pytest.mark.parametrize("name", ["cas", "casp"])
def test_rule_cas_wnr(side, harness, name):
    # cas-wnr: the synchronous tag-check fault of CAS/CASP has WnR = 0 (a read of the
    # location fails the same check). QEMU 10 reports WnR = 1.
    r = harness.result(side, f"atomic_tag_{name}")
    cs.qemu_departs(side, r.exc == [(cs.TAG_WRITE, tagged(harness.P, 5), 0)], "cas-wnr",
                    f"{name.upper()}'s tag-check fault has WnR = 1")
    assert r.exc == [(TAG_READ, tagged(harness.P, 5), 0)] and r.mem == {}
    cs.warn_if_qemu_architectural(side, f"{name.upper()} tag-check fault WnR")
