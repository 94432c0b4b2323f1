"""Every script in tools/ takes argparse options: `--help` prints its usage and writes nothing,
an unknown option is a usage error (exit status 2). (bench_core.py and qemu_diff belong to the
benchmark and differential suites and are checked there.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OTHERS = ("bench_core.py", "qemu_diff")
SCRIPTS = sorted(p.name for p in (ROOT / "tools").glob("*.py")
                 if not p.name.startswith(OTHERS))


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(ROOT / "tools" / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def test_there_are_tools_to_check():
    assert "gen_mte_corpus.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_usage_and_writes_nothing(tmp_path, script):
    before = {p.name: p.stat().st_mtime_ns for p in (ROOT / "tests" / "corpus").iterdir()}
    r = run(script, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:") and "--help" in r.stdout
    assert list(tmp_path.iterdir()) == []                 # no file named --help, or any other
    after = {p.name: p.stat().st_mtime_ns for p in (ROOT / "tests" / "corpus").iterdir()}
    assert before == after                                # nor a default output rewritten


@pytest.mark.parametrize("script", SCRIPTS)
def test_unknown_option_is_a_usage_error(tmp_path, script):
    r = run(script, "--no-such-option", cwd=tmp_path)
    assert r.returncode == 2
    assert "usage:" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_gen_mte_corpus_writes_the_checked_in_corpus(tmp_path):
    r = run("gen_mte_corpus.py", str(tmp_path / "corpus.s"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "corpus.s").read_text() == \
        (ROOT / "tests" / "corpus" / "mte_corpus.s").read_text()


def test_gen_mte_corpus_unwritable_output(tmp_path):
    r = run("gen_mte_corpus.py", str(tmp_path / "missing" / "corpus.s"), cwd=tmp_path)
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr
