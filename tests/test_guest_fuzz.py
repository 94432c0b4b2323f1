"""A guest can never crash, hang or traceback the emulator: random instruction words and short
generated programs (tools/guest_fuzz) run in child processes, with an address-space limit
(RLIMIT_AS) and a watchdog, on both the native and the pure-Python paths.

Each case must come back as a run result (or a one-line refusal, an ``MteError``) within its
instruction budget, with no more exceptions taken than instructions allowed, never in AArch32
(the machine is A64-only) and never at an EL the board lacks. A child that dies names its case;
the case is re-run alone. Findings that are known machine limitations (``runner.KNOWN``; each
has a named test in test_guest_fuzz_regressions.py) are reported as warnings, anything else
fails. ``--long`` runs many more cases (``tools/guest_fuzz`` runs a campaign for a set time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from aarch64mte.assembler import assemble
from conftest import LONG, examples
from tools.guest_fuzz import child, gen, runner

ROOT = Path(__file__).resolve().parent.parent
PATHS = [pytest.param(True, id="native"), pytest.param(False, id="python")]


def native_built() -> bool:
    from aarch64mte.machine import native
    return native.library() is not None


def check(outcome: runner.Outcome, cases: list) -> None:
    assert len(outcome.results) + sum(f.kind in ("crash", "timeout")
                                      for f in outcome.findings) == len(cases)
    new = [f for f in outcome.findings if runner.known(f) is None]
    for f in outcome.findings:
        if runner.known(f) is not None:
            warnings.warn(f"known: {runner.known(f)}: {f.summary()[:400]}", stacklevel=2)
    assert not new, "\n".join(f.summary() for f in new)


def lane(native: bool) -> None:
    if native and not native_built():
        pytest.skip("the native extension is not built")


@settings(max_examples=examples(60, 3000), deadline=None)
@given(area=st.sampled_from(gen.AREAS[1:]), seed=st.integers(0, 2**32 - 1))
def test_generated_programs_assemble_and_repeat(area, seed):
    # every program the grammar makes is valid assembly, and a case id names one case
    first, again = gen.cases(area, 3, seed), gen.cases(area, 3, seed)
    assert first == again
    for case in first:
        assemble(case["source"])


def test_word_template_and_vectors_assemble():
    board = child.Board()
    assert len(board.vectors) == 16 * 128
    assert board.template.entry == 0x4008_0000


@pytest.mark.parametrize("native", PATHS)
def test_random_words_at_el0_and_el1_under_every_tcf(native):
    lane(native)
    n = examples(12, 400)
    cases = []
    for el in (0, 1):
        for i, tcf in enumerate(gen.TCF_MODES):
            cases += gen.cases("words", n, seed=10 * el + i + (1000 if LONG else 0), el=el,
                               tcf=tcf)
    check(runner.run(cases, native=native), cases)


@pytest.mark.parametrize("native", PATHS)
def test_generated_programs_of_every_area(native):
    lane(native)
    n = examples(8, 300)
    cases = []
    for area in gen.AREAS[1:]:
        # exception loops run an exception per instruction or two: a smaller budget
        budget = 400 if area == "excloop" else 2000
        cases += gen.cases(area, n, seed=7 + (1000 if LONG else 0), max_insns=budget)
    check(runner.run(cases, native=native), cases)


def test_a_dying_child_names_its_case():
    # the runner's own promise: a word that aborts Unicorn's translator, with no machine
    # guard in the way, kills the child; the runner names the case and goes on
    cases = gen.cases("words", 3, seed=5, el=1, tcf="none")
    script = ("import os, sys\nsys.path.insert(0, %r)\nfrom tools.guest_fuzz import child\n"
              "real = child.run_case\n"
              "def run_case(board, case, dog):\n"
              "    if case['id'].endswith(':1'):\n"
              "        child.emit({'start': case['id']}); os.abort()\n"
              "    return real(board, case, dog)\n"
              "child.run_case = run_case\nsys.exit(child.main(sys.argv[1:]))\n" % str(ROOT))
    real_child = runner._child

    def fake(native, mem, hang):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.Popen([sys.executable, "-c", script, "--mem", str(mem)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    runner._child = fake
    try:
        out = runner.run(cases, native=False)
    finally:
        runner._child = real_child
    assert [f.kind for f in out.findings] == ["crash"]
    f = out.findings[0]
    assert f.case["id"] == cases[1]["id"] and "SIGABRT" in f.detail and f.alone is True
    assert [r["id"] for r in out.results] == [cases[0]["id"], cases[2]["id"]]


# --- through the command line ------------------------------------------------------------------
VECTOR_TABLE = "        .balign 2048\nvectors:\n" + "".join(
    child.VECTOR_CODE + "        .balign 128\n" for _ in range(16))


def cli_source(case: dict) -> str:
    """The case's program as a self-contained source: its own vector table, at EL1 on the
    snippet profile's map."""
    src = case["source"].replace("_start:\n", "_start:\n        adr x18, vectors\n"
                                 "        msr vbar_el1, x18\n        isb\n", 1)
    return src.replace("        .data\n", VECTOR_TABLE + "        .data\n", 1)


@pytest.mark.parametrize("native", PATHS)
def test_command_line_runs_generated_programs(tmp_path, native):
    lane(native)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               AARCH64MTE_NATIVE="1" if native else "0")
    cases = [gen.cases(area, 1, seed=3 + (1000 if LONG else 0))[0]
             for area in ("memtag", "sysreg", "semihost", "mixed")]
    for case in cases:
        path = tmp_path / "case.S"
        path.write_text(cli_source(case))
        p = subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", "run", str(path),
                            "--max-insns", "2000", "--tcf", case["tcf"], "--json"],
                           capture_output=True, text=True, timeout=300, env=env)
        assert "Traceback" not in p.stderr, (case["id"], p.stderr)
        if p.returncode == 2:
            assert len(p.stderr.strip().splitlines()) == 1, (case["id"], p.stderr)
            continue
        data = json.loads(p.stdout)
        if data["exit"]["reason"] == "semihost-exit":
            assert p.returncode == (data["exit"]["code"] or 0) & 0xFF
        else:
            assert p.returncode in (0, 1), (case["id"], data["exit"])
        assert data["insns"] <= 2000
