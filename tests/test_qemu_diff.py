"""The differential tester (tools/qemu_diff): a CI-sized run against QEMU 10.

Three things are checked, all by running real programs under both QEMU and aarch64mte:
- hand-written tests where both are right agree, and QEMU's result is the architectural one
  (each expected value is derived from the Arm ARM and cited beside it);
- a planted disagreement (a stand-in "emulator" that runs QEMU and drops tag-check fault
  records) is reported, attributed to the right instruction, named, and shrunk;
- a fixed-seed random run of a few hundred tests finds no disagreement outside the list of
  currently known emulator departures (KNOWN_FAILING below).
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tools.qemu_diff import compare, gen, layout, rules
from tools.qemu_diff.evaluate import Sides, evaluate
from tools.qemu_diff.model import Insn
from tools.qemu_diff.model import Test as Case
from tools.qemu_diff.runner import Result, missing_tools, parse_line
from tools.qemu_diff.shrink import minimize

REPO = Path(__file__).resolve().parent.parent
MISSING = missing_tools()
needs_tools = pytest.mark.skipif(bool(MISSING), reason="needs " + ", ".join(MISSING))

# ---------------------------------------------------------------------------------------------
# Emulator departures from QEMU/the architecture known today, one regular expression per class
# (matched against disagreement signatures). The CI run tolerates these and nothing else. It is
# empty: every class the first runs found is fixed or is a QEMU departure with its rule
# (tools/qemu_diff/rules.py), and a class fixed must stay fixed.
KNOWN_FAILING: dict[str, str] = {}
# ---------------------------------------------------------------------------------------------


def known(sig: str) -> str | None:
    for name, pat in KNOWN_FAILING.items():
        if re.search(pat, sig):
            return name
    return None


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    d = tmp_path_factory.mktemp("qemu_diff")
    return Sides(d / "work", d / "cache", str(REPO), jobs=2)


# ---- hand-written tests ---------------------------------------------------------------------
P = layout.AREA + 0x100              # granule-aligned, 256-byte aligned (one LDGM block)


def hand(tid: int, body: list[str], **kw) -> Case:
    """Memory tagged 3 throughout; x0 = P tagged 3 (matching), x2 = P tagged 5
    (mismatching), x3 = P tagged 5 through the Untagged alias, x4 = P tagged 0."""
    t = Case(id=tid, seed=0x1234567 + tid, rgsr=0x1234 << 8)
    t.tags = [3] * layout.GRANULES
    t.x[0] = 3 << 56 | P
    t.x[2] = 5 << 56 | P
    t.x[3] = 5 << 56 | (P + layout.ALIAS)
    t.x[4] = P
    t.x[9], t.x[10], t.x[11] = 0x1111, 0x2222, P
    for k, v in kw.items():
        setattr(t, k, v)
    t.body = [Insn(s, s.split()[0] if not s.startswith("dc") else " ".join(s.split()[:2])[:-1])
              for s in body]
    return t


def word(t: Case, off: int) -> int:
    return layout.area_words(t.seed)[off // 8]


TAG_READ = 0x96000011        # ESR: EC 0x25 (Data Abort, same EL), DFSC 0x11, WnR 0
TAG_READ_EL0 = 0x92000011    # EC 0x24 (from a lower EL)

HAND = [
    # (test, check(test, qemu result)) -- expected values from the architecture
    (hand(1, ["ldr x9, [x0]"]),          # matching tags: an ordinary load
     lambda t, r: not r.exc and r.regs.get(9) == word(t, 0x100)),
    (hand(2, ["ldr x9, [x2]"]),          # sync TCF: Data Abort, DFSC 0x11, FAR = tagged VA,
     lambda t, r: r.exc == [(TAG_READ, t.x[2], 0)] and 9 not in r.regs),   # no effect
    (hand(3, ["str x9, [x2]"], tcf=2),   # async: TFSR_EL1.TF0 (va<55> = 0), the store lands
     lambda t, r: not r.exc and r.tfsr1 == 1 and r.mem.get(0x100) == 0x1111),
    (hand(4, ["ldr x9, [x2]"], el=0),    # EL0, TCF0 = sync: EC 0x24
     lambda t, r: r.exc == [(TAG_READ_EL0, t.x[2], 0)]),
    (hand(5, ["msr tco, #1", "ldr x9, [x2]"]),    # PSTATE.TCO = 1: unchecked
     lambda t, r: not r.exc and r.spsr & layout.SPSR_TCO),
    (hand(6, ["ldr x9, [x3]"]),          # Untagged alias (MAIR 0xFF): unchecked
     lambda t, r: not r.exc and r.regs.get(9) == word(t, 0x100)),
    (hand(7, ["ldr x9, [x4, #8]"], tcma0=1),      # TCMA0 and tag 0: unchecked
     lambda t, r: not r.exc),
    (hand(8, ["irg x10, x0, x11"], gcr=0),        # x11 = P: exclude mask 0x0100 | ...
     lambda t, r: (r.regs[10] & ((1 << 56) - 1)) == P and (r.regs[10] >> 56) & 15 != 8),
    (hand(9, ["irg x10, x0"], gcr=0xFFFF),        # everything excluded: tag 0
     lambda t, r: r.regs[10] == P),
    (hand(10, ["addg x10, x0, #32, #2"]),         # tag 3 + 2 (nothing excluded), +32
     lambda t, r: r.regs[10] == 5 << 56 | (P + 32)),
    (hand(11, ["subp x10, x0, x2"]),              # 56-bit address difference: 0
     lambda t, r: r.regs[10] == 0),
    (hand(12, ["stg x2, [x0]", "ldg x11, [x0]"]),  # STG writes tag 5; LDG inserts it
     lambda t, r: r.tags == {0x10: 5} and r.regs[11] == 5 << 56 | P),
    (hand(13, ["stgp x9, x10, [x0]"]),            # data and the tag (3) of x0
     lambda t, r: r.mem == {0x100: 0x1111, 0x108: 0x2222} and not r.tags),
    (hand(14, ["ldgm x11, [x0]"]),                # GMID_EL1.BS = 6: 16 tags, 4 bits each
     lambda t, r: r.regs[11] == 0x3333333333333333),
    (hand(15, ["dc gva, x2"]),                    # DCZID 64-byte block tagged 5
     lambda t, r: r.tags == {0x10: 5, 0x11: 5, 0x12: 5, 0x13: 5}),
    (hand(16, ["ldaddal x9, x10, [x0]"]),         # x10 = old, memory = old + x9
     lambda t, r: r.regs[10] == word(t, 0x100)
     and r.mem[0x100] == (word(t, 0x100) + 0x1111) % 2 ** 64),
    (hand(17, ["cas x9, x10, [x0]"], pokes=[(0x100, 0x1111)]),   # compare equal: swap
     lambda t, r: r.mem == {0x100: 0x2222} and 9 not in r.regs),
    (hand(18, ["ldr x9, [x2]"], tcf=3),           # asymmetric: a read is synchronous
     lambda t, r: r.exc == [(TAG_READ, t.x[2], 0)]),
]


@needs_tools
def test_hand_written_tests_agree_and_are_architectural(sides):
    tests = [t for t, _ in HAND]
    verdicts = evaluate(tests, sides)
    q, _ = sides.run(tests)
    for (t, check), v in zip(HAND, verdicts):
        assert v.status == "agree", (t.body, v.signature, v.q, v.e)
        assert check(t, q[t.id]), (t.id, [i.text for i in t.body], q[t.id])


# ---- a planted disagreement -----------------------------------------------------------------
FAKE_EMULATOR = '''
"""A stand-in emulator for the tester's own test: runs QEMU and drops every tag-check fault
record from the harness's output, as an emulator that misses synchronous faults would."""
import json, re, subprocess, sys
elf = sys.argv[2]
p = subprocess.run(["qemu-system-aarch64", "-M", "virt,mte=on", "-cpu", "max", "-semihosting",
                    "-nographic", "-net", "none", "-kernel", elf], capture_output=True,
                   text=True, stdin=subprocess.DEVNULL)
out = re.sub(r" e9[26]000011,[0-9a-f]+,[0-9a-f]+", "", p.stdout + p.stderr)
print(json.dumps({"exit": {"reason": "semihost-exit", "code": 0}, "exception": None,
                  "console": out}))
'''


@needs_tools
def test_planted_disagreement_is_found_attributed_and_shrunk(tmp_path):
    pkg = tmp_path / "fake" / "aarch64mte" / "cli"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(textwrap.dedent(FAKE_EMULATOR))
    sides = Sides(tmp_path / "work", tmp_path / "cache", str(tmp_path / "fake"))
    t = hand(40, ["add x12, x12, #1", "ldr x9, [x0]", "ldr x13, [x2, #8]", "add x14, x14, #1"])
    v = evaluate([t], sides)[0]
    assert v.status == "disagree"
    assert v.k == 3                                    # the mismatching load
    assert v.signature == "missed-fault:load:q=DA/tagchk/R:tcf=sync"
    assert v.q.exc == [(TAG_READ, t.x[2] + 8, 8)] and v.e.exc == []
    small = minimize([v], sides)[0]
    assert [i.text for i in small.test.body] == ["ldr x13, [x2, #8]"]
    assert small.signature == v.signature


# ---- the random CI run ----------------------------------------------------------------------
CI_SEED, CI_COUNT = 0x5EED, 240


@needs_tools
def test_random_run_has_no_unknown_disagreement(sides, long_run):
    count = CI_COUNT * (10 if long_run else 1)
    verdicts = evaluate(gen.generate_many(CI_SEED, 0, count), sides)
    unknown = [(v.signature, [i.text for i in v.test.body[:v.k]]) for v in verdicts
               if v.status == "disagree" and known(v.signature) is None]
    assert not unknown, "new disagreements:\n" + "\n".join(map(str, unknown))
    assert sum(v.status == "agree" for v in verdicts) > count // 2


# ---- the pieces, without the tools ----------------------------------------------------------
def test_harness_line_parses():
    tid, r = parse_line("@1f S62000000 P40600800 F1,0 R1234 x9=5 x1e=7 "
                        "e96000011,500000040600100,4 t10=5 m100=0 !2")
    assert tid == 0x1F and r.spsr == 0x62000000 and r.tfsr1 == 1 and r.end == 2
    assert r.regs == {9: 5, 30: 7} and r.exc == [(0x96000011, 0x500000040600100, 4)]
    assert r.tags == {0x10: 5} and r.mem == {0x100: 0}


def test_signature_names_access_class_and_side():
    t = hand(50, ["ldsminalh w27, w26, [x3]"])
    q = Result(exc=[(0x96000011, 0x40601020, 0)])
    e = Result(exc=[(0x96000051, 0x40601020, 0)])
    d = compare.differences(t, q, e)
    assert compare.signature(t, 1, q, e, d) == "esr:atomic:q=DA/tagchk/R:e=DA/tagchk/W"
    assert compare.plain_op("ldsminalb") == "ldsminb"


def test_rules_explain_exactly_their_departure():
    t = hand(51, ["casal x9, x10, [x2]"], tcf=3)
    q = Result(tfsr1=1, mem={0x100: 5})
    e = Result(exc=[(0x96000011, t.x[2], 0)])
    assert rules.explain(t, 1, q, e, compare.differences(t, q, e)).name == "cas-asymmetric"
    t2 = hand(52, ["casal x9, x10, [x2]"], tcf=1)      # synchronous TCF: not the departure
    assert rules.explain(t2, 1, q, e, compare.differences(t2, q, e)) is None


def test_generator_is_seeded():
    a = [x.to_json() for x in gen.generate_many(3, 0, 20)]
    assert a == [x.to_json() for x in gen.generate_many(3, 0, 20)]
    assert a != [x.to_json() for x in gen.generate_many(4, 0, 20)]


# ---- properties -----------------------------------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tid=st.integers(0, 10**6))
def test_generated_tests_round_trip_and_stay_in_bounds(seed, tid):
    t = gen.generate(seed, tid)
    assert Case.from_json(t.to_json()).to_json() == t.to_json()
    # 1-10 draws; a draw emits up to 9 instructions (a SIMD load and the moves exposing it)
    assert 1 <= len(t.body) <= 9 + 9 and len(t.pokes) <= 4
    assert all(0 <= g < 16 for g in t.tags) and len(t.tags) == layout.GRANULES
    assert all(0 <= o < layout.AREA_SIZE and o % 8 == 0 for o, _ in t.pokes)


@given(regs=st.dictionaries(st.integers(0, 30), st.integers(0, 2**64 - 1), max_size=5),
       exc=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
                              st.integers(0, 40)), max_size=4),
       tfsr=st.tuples(st.integers(0, 3), st.integers(0, 3)))
def test_harness_lines_parse_back(regs, exc, tfsr):
    line = (f"@7 S0 P0 F{tfsr[0]:x},{tfsr[1]:x} R0"
            + "".join(f" x{i:x}={v:x}" for i, v in regs.items())
            + "".join(f" e{a:x},{b:x},{c:x}" for a, b, c in exc))
    tid, r = parse_line(line)
    assert tid == 7 and r.regs == regs and r.exc == exc and (r.tfsr1, r.tfsr0) == tfsr
