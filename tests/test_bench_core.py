"""`bench core`: every row's program does the same work on the emulator (both paths), raw
Unicorn and QEMU, its checksums show it, its declared counts are what the emulator counts, and
the command's options, JSON and table behave. Timing is never asserted."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys

from pathlib import Path

import pytest
from conftest import ROOT, requires_tool, tool

from aarch64mte.bench import core, core_engines as engines, core_table
from aarch64mte.cli.main import main
from aarch64mte.isa import decode
from aarch64mte.machine import Machine, native

NATIVE = native.library() is not None
needs_native = pytest.mark.skipif(not NATIVE, reason="the native extension is not built "
                                                     "(python setup.py build_ext --inplace)")
ROWS = [r.name for r in core.ROWS]
SMALL = 3                               # iterations: every loop runs more than once


def small(name: str) -> int:
    """Iterations enough for every kind of step: malloc's 64 slots start empty, so its first
    frees and uses come after a few dozen operations."""
    return 60 if name == "malloc" else SMALL


def emulate(image, native_path: bool, **kw):
    m = Machine(profile="virt", gmid_bs=engines.GMID_BS, native=native_path, **kw)
    m.load_image(image)
    r = m.run(max_insns=10_000_000)
    assert (r.reason, r.code) == ("semihost-exit", 0), (r, m.console)
    return m


def sums(m) -> engines.Checksums:
    got = engines.parse_output(m.console)
    assert got == engines.Checksums(m.reg("x20"), m.reg("x21"))   # printed = registers
    return got


def paths():
    return [True, False] if NATIVE else [False]


# --- the programs ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ROWS)
def test_checksums_agree_between_emulator_paths_and_raw_unicorn(name):
    r = core.row(name)
    image = r.image(small(name))
    emu = [engines.run_emulator(image, p, 10_000_000).checksums for p in paths()]
    raw = engines.run_raw(image, 60).checksums
    assert len(set(emu)) == 1                      # native and Python paths alike
    assert emu[0].work == raw.work                 # the same work with MTE as NOPs
    if r.raw_nops:
        # the tag checksum is the MTE instructions' doing: without them it comes out different
        assert emu[0].tags != raw.tags and emu[0].tags != 0


@pytest.mark.parametrize("name", ROWS)
def test_checksums_follow_the_amount_of_work(name):
    r = core.row(name)
    n = small(name)
    a = engines.run_emulator(r.image(n), NATIVE, 10_000_000).checksums
    b = engines.run_emulator(r.image(n + 1), NATIVE, 10_000_000).checksums
    assert a.work != b.work
    if r.raw_nops == "loop":
        assert a.tags != b.tags


@pytest.mark.parametrize("name", ["untagged", "mixed", "malloc"])
def test_work_checksum_sees_every_store(name):
    """Drop any one store of the loop on raw Unicorn and its work checksum no longer agrees
    (or, for the allocator's own lists, the program goes wrong): agreement means the stores and
    the loads that read them back all happened."""
    r = core.row(name)
    image = r.image(max(8, small(name)))
    want = engines.run_raw(image, 60).checksums.work
    text = next(s for s in image.segments if "x" in s.flags)
    stores = [off for off in range(image.symbols["work"] - text.addr, len(text.data), 4)
              if _is_data_store(int.from_bytes(text.data[off:off + 4], "little"))]
    assert stores
    for off in stores:
        patched = copy.deepcopy(image)
        seg = next(s for s in patched.segments if "x" in s.flags)
        seg.data = seg.data[:off] + engines.NOP + seg.data[off + 4:]
        try:
            got = engines.run_raw(patched, 60).checksums.work
        except engines.BenchError:
            continue
        assert got != want, hex(text.addr + off)


def _is_data_store(word: int) -> bool:
    """STR/STP (integer, immediate or register offset), not an MTE store."""
    if decode(word) is not None:
        return False
    return ((word & 0x3FC00000) == 0x39000000 or (word & 0x3FE00C00) == 0x38200800
            or (word & 0x3FC00000) == 0x29000000 or (word & 0x3FC00000) == 0x29800000)


@pytest.mark.parametrize("name", ROWS)
def test_declared_counts_are_what_the_emulator_counts(name):
    """Per iteration (the difference of two runs, which removes boot and set-up): the rate's
    units and the instruction bound the run's limit comes from."""
    r = core.row(name)
    n = small(name)
    a, b = (emulate(r.image(k), NATIVE, count_classes=True).counters for k in (n, n + 1))
    delta = {k: b.by_class.get(k, 0) - a.by_class.get(k, 0) for k in b.by_class}
    insns = b.insns - a.insns
    if name == "malloc":
        assert 0 < insns <= r.insn_bound            # one operation
        return
    assert 0 < insns <= r.insn_bound
    if name in ("untagged", "checked", "mixed"):
        assert delta["load"] + delta["store"] == r.per_iteration
    if name == "mixed":                             # every access checked (AArch64.CheckTag)
        assert b.tag_checks - a.tag_checks == r.per_iteration
    if name == "mte":
        mte = {k: v for k, v in delta.items() if v and k not in ("alu", "branch")}
        assert sorted(mte) == ["addg", "gmi", "irg", "ldg", "st2g", "stg", "stgp", "stzg",
                               "subg", "subp", "subps"]
        assert sum(mte.values()) == r.per_iteration
    if name == "pages":                             # LDGM reads, DC GZVA and STGM write tags
        moved = (b.tag_granules_read - a.tag_granules_read
                 + b.tag_granules_written - a.tag_granules_written)
        assert moved == r.per_iteration


def test_mixed_page_carries_sixteen_tags_no_two_neighbours_alike():
    m = emulate(core.row("mixed").image(1), NATIVE)
    tags = m.read_tags(m.symbols["sweep_page"], 4096)
    assert len(tags) == 256 and len(set(tags)) == 16
    assert all(x != y for x, y in zip(tags, tags[1:]))
    assert tags == [(3 + 5 * i) % 16 for i in range(256)]


@requires_tool("qemu-system-aarch64")
@pytest.mark.parametrize("name", ROWS)
def test_checksums_agree_with_qemu(name):
    image = core.row(name).image(small(name))
    q = engines.run_qemu(tool("qemu-system-aarch64"), image, 120).checksums
    assert q == engines.run_emulator(image, NATIVE, 10_000_000).checksums


@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")
@pytest.mark.parametrize("name", ROWS)
def test_programs_assemble_to_the_same_bytes_with_gnu_as(name):
    from aarch64mte.assembler import assemble
    r = core.row(name)
    text = engines.source(r.source, dict(r.equs), small(name))
    ours, gnu = assemble(text), assemble(text, backend="gnu")
    seg = lambda img: next(s.data for s in img.segments if s.name == ".text")  # noqa: E731
    assert seg(ours) == seg(gnu)


# --- the command ----------------------------------------------------------------------------

def bench(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["bench", "core", *map(str, args)])
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args,expect", [
    (["--repeat", "0"], "--repeat: expected a whole number from 1 to 100, not '0'"),
    (["--repeat", "three"], "--repeat: expected a whole number"),
    (["--iterations", "-5"], "--iterations: expected a whole number from 1"),
    (["--iterations", "2000000000"], "--iterations: expected a whole number"),
    (["--scale", "0"], "--scale: expected a number above 0"),
    (["--scale", "inf"], "--scale: expected a number above 0"),
    (["--scale", "x"], "--scale: expected a number above 0"),
    (["--scale", "1", "--iterations", "5"], "give one or the other"),
    (["--only", "mixed,nosuch"], "--only: unknown row nosuch; the rows are untagged"),
    (["--path", "fast"], "--path: expected native, python or both"),
    (["--clock", "sundial"], "--clock: expected cpu or wall"),
    (["--repeat"], "expected one argument"),
])
def test_bad_options_one_line_exit_2(args, expect):
    status, out, err = bench(*args)
    assert status == 2 and not out
    assert expect in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_native_path_refused_where_it_is_off(monkeypatch):
    monkeypatch.setenv("AARCH64MTE_NATIVE", "0")
    status, out, err = bench("--path", "native", "--only", "mte")
    assert status == 2 and not out and "native extension" in err and len(err.splitlines()) == 1


def test_qemu_required_but_missing(monkeypatch):
    monkeypatch.setenv("AARCH64MTE_QEMU_SYSTEM_AARCH64", "/nonexistent/qemu")
    status, out, err = bench("--qemu", "--only", "mte")
    assert status == 2 and "qemu-system-aarch64 is not installed" in err


def _check_report(report: dict, paths: list, rows: list, iterations: int):
    assert report["benchmark"] == "aarch64mte bench core"
    assert report["paths"] == paths and report["clock"] == "cpu" and report["repeat"] == 1
    assert report["iterations"] == iterations and report["scale"] is None
    assert set(report["host"]) >= {"cpus", "load", "load_after", "python", "unicorn"}
    assert report["checksums_agree"] is True and isinstance(report["missed"], list)
    assert [r["name"] for r in report["rows"]] == rows
    for r in report["rows"]:
        assert r["kind"] in ("ratio", "rate", "qemu") and r["target"] > 0
        assert isinstance(r["target_text"], str) and r["raw_mte_as_nops"] in (None, "set-up",
                                                                             "loop")
        assert list(r["paths"]) == paths
        for f in r["paths"].values():
            assert f["iterations"] == iterations and f["insns"] > iterations
            assert f["seconds"] > 0 and f["raw_seconds"] > 0 and f["rate"] > 0
            assert f["vs_raw"] > 0 and f["met"] in (True, False, None)
            assert f["agree"]["raw"] is True and f["agree"]["repeats"] is True
            for s in (f["checksums"], f["raw_checksums"]):
                assert set(s) == {"work", "tags"} and all(v.startswith("0x") for v in s.values())
            if r["qemu"] is None:
                assert f["qemu_seconds"] is None and f["vs_qemu"] is None


def test_json_schema_without_qemu():
    status, out, err = bench("--iterations", 2, "--repeat", 1, "--only", "checked,mte",
                             "--no-qemu", "--json")
    assert status == 0, err
    report = json.loads(out)
    _check_report(report, ["native" if NATIVE else "python"], ["checked", "mte"], 2)
    assert report["qemu"] is None
    mte = report["rows"][1]
    assert mte["kind"] == "rate" and mte["raw_mte_as_nops"] == "loop"
    f = mte["paths"][report["paths"][0]]
    assert f["value"] == f["rate"] and f["met"] == (f["rate"] >= 5e6)


@requires_tool("qemu-system-aarch64")
def test_json_with_qemu_and_the_table():
    status, out, err = bench("--iterations", 2, "--repeat", 1, "--only", "malloc", "--json")
    assert status == 0, err
    report = json.loads(out)
    _check_report(report, report["paths"], ["malloc"], 2)
    q = report["rows"][0]["qemu"]
    assert q["sizes"][0] == 2 and q["sizes"][1] > 2 and q["checksums"]["2"]
    f = report["rows"][0]["paths"][report["paths"][0]]
    assert f["agree"]["qemu"] is True
    if q["seconds_per_iteration"] is not None:       # malloc: the emulator's time / QEMU's
        assert f["value"] == pytest.approx(f["seconds"] / f["qemu_seconds"])
    text = core_table.table(report)
    assert "malloc" in text and "QEMU's time" in text and "checksums agree" in text


@needs_native
def test_path_both_runs_each_path_in_its_own_process():
    status, out, err = bench("--path", "both", "--iterations", 2, "--repeat", 1, "--only",
                             "untagged,pages", "--no-qemu", "--json")
    assert status == 0, err
    report = json.loads(out)
    _check_report(report, ["native", "python"], ["untagged", "pages"], 2)
    for r in report["rows"]:                         # the same program, the same checksums
        assert r["paths"]["native"]["checksums"] == r["paths"]["python"]["checksums"]


def test_table_flags_missed_targets_and_never_prints_zero_ratios():
    status, out, err = bench("--iterations", 2, "--repeat", 1, "--only", "mte,pages",
                             "--no-qemu")
    assert status == 0, err
    assert "0.000x" not in out and "raw Unicorn has no MTE" in out
    assert "MTE instructions/s" in out and "granules/s" in out
    for line in out.splitlines():
        if line.startswith(("mte ", "pages ")):
            assert line.rstrip().endswith(("met", "MISSED"))
    status, out, err = bench("--iterations", 2, "--repeat", 1, "--only", "mte", "--no-qemu",
                             "--markdown")
    assert status == 0, err
    head, rule, line = out.splitlines()[:3]
    assert head.startswith("| row | what it runs | target |") and rule.startswith("|---|")
    assert line.startswith("| mte |") and "/s**" in line and "0.000x" not in line
    assert core.ratio(0.0001234) == "0.000123x" and core.ratio(None) == "-"
    assert core.si(5e6) == "5M" and core.si(20e6) == "20M" and core.si(1234567) == "1.23M"


def test_tools_wrapper():
    env = dict(os.environ, PYTHONPATH=ROOT)
    script = str(Path(ROOT, "tools", "bench_core.py"))

    def run(*args):
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                              env=env, timeout=120)
    r = run("--help")
    assert r.returncode == 0 and "--path" in r.stdout and "--only" in r.stdout
    r = run("--repeat", "0")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
