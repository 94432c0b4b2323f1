"""The two bugs of docs/debugging.md in examples/allocator (a small MTE allocator in C, built
with the cross gcc), found with the commands the document shows: `run`, the debugger and
gdb-multiarch each name who set the faulting granule's tag, and go back to that write.

use_after_free: the stale node's granule was retagged by mte_free (its STG) after mte_malloc
had tagged it for the node. overflow: the 49th byte of a 48-byte block lands in the next
block, tagged by mte_malloc for that block over the reset tag 0.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "allocator"
GCC = shutil.which("aarch64-linux-gnu-gcc")
GDB = shutil.which("gdb-multiarch")
pytestmark = pytest.mark.skipif(GCC is None, reason="needs aarch64-linux-gnu-gcc (the cross "
                                "gcc; oracles/install.sh)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("allocator")
    r = subprocess.run(["sh", str(EXAMPLE / "build.sh"), str(out)], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, CC=GCC))
    assert r.returncode == 0, r.stderr
    return out


def cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", *map(str, args)],
                       input=stdin, capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def symbols(elf: Path) -> dict:
    from aarch64mte.elf import load_elf
    return load_elf(str(elf)).symbols


def within(addr: int, sym: dict, name: str) -> bool:
    start = sym[name]
    return start <= addr < min(a for a in sym.values() if a > start)


def test_run_names_the_writers(built):
    uaf = built / "use_after_free.elf"
    r = cli("run", uaf, "--json")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    tf = data["exception"]["tag_fault"]
    assert data["console"] == "sum of the list: 0x0000000000000004\nstale node's value: "
    w, p = tf["writer"], tf["previous"]
    assert (w["by"], w["tag"], w["replaced"], w["el"]) == ("STG", tf["allocation_tag"],
                                                          tf["logical_tag"], 1)
    assert w["where"].startswith("mte_free+") and p["where"].startswith("mte_malloc+")
    assert p["tag"] == tf["logical_tag"] and p["replaced"] == 0 and p["insns"] < w["insns"]
    sym = symbols(uaf)
    assert within(int(w["pc"], 16), sym, "mte_free") and w["insn"].startswith("stg ")
    text = cli("run", uaf).stdout
    assert re.search(r"set by +stg x\d+, \[x\d+\] at mte_free\+0x[0-9a-f]+ \(insn #\d+, "
                     r"EL1\)\s*\nbefore +0x[0-9a-f], set by stg x\d+, \[x\d+\] at "
                     r"mte_malloc\+0x[0-9a-f]+ \(insn #\d+, EL1\)", text), text

    r = cli("run", built / "overflow.elf", "--json")
    tf = json.loads(r.stdout)["exception"]["tag_fault"]
    assert tf["write"] and tf["writer"]["where"].startswith("mte_malloc+")
    assert tf["previous"] == {"tag": 0, "by": "reset"}


def test_the_debugger_goes_back_to_the_free(built):
    uaf = built / "use_after_free.elf"
    sym = symbols(uaf)
    r = cli("debug", uaf, "--batch", stdin="continue\nhistory tag x21\n"
            "reverse-to-tag-write x21\n")
    out = r.stdout
    assert r.returncode == 0, out
    assert re.search(r"allocation tag 0x[0-9a-f] set by stg x\d+, \[x\d+\] at mte_free\+0x", out)
    assert re.search(r"granule 0x[0-9a-f]+: 2 tag writes, newest first\n"
                     r"  #\d+ +0x(.) -> 0x(.)  EL1  stg .* <mte_free\+0x[0-9a-f]+>\n"
                     r"  #\d+ +0x0 -> 0x\1  EL1  stg .* <mte_malloc\+0x[0-9a-f]+>", out), out
    m = re.search(r"=> (0x[0-9a-f]+) <mte_free\+0x[0-9a-f]+>:  stg", out)
    assert m and within(int(m.group(1), 16), sym, "mte_free"), out


def test_the_debugger_finds_the_neighbour_of_an_overflow(built):
    elf = built / "overflow.elf"
    r = cli("debug", elf, "--batch", stdin="continue\nreverse-to-tag-write $x19+48\n"
            "finish\nprint/x x0\n")
    out = r.stdout
    assert r.returncode == 0, out
    assert "allocation tag 0x" in out and "the tag it started with" in out
    # back in mte_malloc tagging the next block; it returns that block's pointer to main
    assert re.search(r"=> 0x[0-9a-f]+ <mte_malloc\+0x[0-9a-f]+>:  stg", out), out
    ptr = int(re.findall(r"^(0x[0-9a-f]+)$", out, re.M)[-1], 16)
    assert ptr & ((1 << 56) - 1) == int(re.search(r"granule (0x[0-9a-f]+) from", out).group(1),
                                        16)


@pytest.mark.skipif(GDB is None, reason="gdb-multiarch is not installed")
def test_gdb_multiarch_goes_back_to_the_free(built, tmp_path):
    from gdb_support import StubProcess, gdb
    elf = built / "use_after_free.elf"
    stub = StubProcess(tmp_path, elf, "-v", cwd=tmp_path)
    try:
        first = cli("run", elf, "--json")
        granule = int(json.loads(first.stdout)["exception"]["tag_fault"]["pointer"], 16) \
            & ((1 << 56) - 1) & ~0xF
        out = gdb(stub.port, f"file {elf}", "continue", f"monitor history {granule:#x}",
                  f"monitor watch-tag {granule:#x}", "reverse-continue", "bt", "kill",
                  timeout=120)
    finally:
        stub.close()
    assert re.search(r"tag-check fault: allocation tag 0x. set by stg x\d+, \[x\d+\] at "
                     r"mte_free\+0x[0-9a-f]+ \(insn #\d+, EL1\); before that 0x. by stg x\d+, "
                     r"\[x\d+\] at mte_malloc\+0x[0-9a-f]+", out), out
    assert "Memory tag violation while accessing address" in out
    assert "use_after_free.c:30" in out                       # the read of second->value
    assert re.search(r"#1  mte_free \(p=.*\) at .*alloc\.c:\d+\n#2  .* in main \(\) at .*"
                     r"use_after_free\.c:23", out), out           # mte_free(second)
