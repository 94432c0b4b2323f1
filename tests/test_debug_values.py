"""Every debugger command on the real machine: a value out of range is an error, never cut to fit;
a failure names what went wrong in the program's terms, never an exception class; what `help`
lists, `info` finds. Expected values follow the architecture: an allocation tag is 4 bits (Arm
ARM D10.3 "Allocation tags"), a W register write zero-extends into X (Arm ARM C1.2.5 "Register
names"), NZCV holds only bits 31:28."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from aarch64mte.debug.commands import Debugger, run_batch
from aarch64mte.debug.expr import Evaluator, ExprError
from aarch64mte.debug.session import Session
from aarch64mte.machine import Machine

ROOT = Path(__file__).resolve().parent.parent
INTERNAL_NAMES = ("UcError", "ValueError", "KeyError", "IndexError", "TypeError", "Traceback",
                  "OverflowError", "AttributeError", "UC_ERR")


@pytest.fixture(scope="module")
def program_image():
    from aarch64mte.assembler import assemble_file
    return assemble_file(str(ROOT / "asm" / "tag_buffer.S"))


def debugger(image):
    m = Machine(profile="snippet")
    m.load_image(image)
    out = io.StringIO()
    console = Console(file=out, highlight=False, no_color=True, width=200, emoji=False)
    return Debugger(Session(m), console=console), out, m


def run(image, *commands):
    """Each command's output (its lines after the echoed command), and the batch status."""
    d, out, m = debugger(image)
    status = run_batch(d, list(commands))
    text = out.getvalue()
    chunks = re.split(r"^\(mte\) .*\n", text, flags=re.M)[1:]
    assert len(chunks) == len(commands), text
    for c in chunks:
        for name in INTERNAL_NAMES:
            assert name not in c, c
    return [c.strip() for c in chunks], status, m


def test_info_finds_everything_help_lists(program_image):
    d, out, _ = debugger(program_image)
    usage = d.commands["info"].usage                    # info breakpoints|registers|...
    for what in usage.split(" ", 1)[1].split("|"):
        assert d.execute(f"info {what}"), (what, out.getvalue())
    (watch, info_watch, info_watches), status, _ = run(
        program_image, "watch buf 16", "info watch", "info watches")
    assert status == 0 and "watch 1" in watch
    assert "data 0x40081000 len 16" in info_watch and info_watch == info_watches


@pytest.mark.parametrize("command,expect", [
    ("step -1", "step count must be 1..1,000,000,000, not -1"),
    ("step 0", "not 0"),
    ("next -1", "not -1"),
    ("step 0x10000000000000000", "does not fit in 64 bits"),
    ("set tag buf = 0x1f", "an allocation tag is 0..15 (0x0..0xf), not 0x1f"),
    ("set tag buf = 16", "not 0x10"),
    ("set tag buf = -1", "not -1"),
    ("set x0 = 1 << 70", "shift count 70 out of range"),
    ("set x0 = 0xffffffffffffffff + 1", "does not fit in 64 bits"),
    ("set x0 = 0x10000000000000000", "does not fit in 64 bits"),
    ("set w0 = 0x100000000", "does not fit in w0 (32 bits)"),
    ("set nzcv = 1", "nzcv holds only bits 31:28"),
    ("set el = 2", "el holds 0 or 1"),
    ("set tco = 2", "tco holds 0 or 1"),
    ("set nosuch = 1", "no register 'nosuch'"),
    ("print/q 1", "bad format '/q'"),
    ("print *0x0", "cannot read 0x0..0x7: no memory there"),
    ("mem 0xffffffff0000", "cannot read 0xffffffff0000..0xffffffff003f: address 0xffffffff0000 "
                           "is not mapped (translation fault, level 0)"),
    ("x/2xg 0xffffffff0000", "is not mapped"),
    ("mem buf 0", "length must be 1..65,536, not 0"),
    ("mem buf -1", "not -1"),
    ("x/100000xb buf", "100,000 bytes; 1..65,536 at once"),
    ("tags buf 0x100000", "length must be 1..65,536"),
    ("tagmap buf 0", "length must be 1..1,048,576, not 0"),
    ("disas buf 0", "count must be 1..4,096, not 0"),
    ("x/5000i buf", "count must be 1..4096"),
    ("watch buf 0", "length must be 1..65,536, not 0"),
    ("unwatch", "unwatch which?"),
    ("quit 256", "exit status must be 0..255, not 256"),
    ("quit -1", "not -1"),
    ("print 123456789012345678901234567890", "does not fit in 64 bits"),
    ("print 1" + "0" * 5000, "has too many digits"),
    ("print 1 / 0", "division by zero"),
    ("set tag 0x100 = 3", "0x100 is not Tagged memory"),
])
def test_out_of_range_and_failed_access_are_errors(program_image, command, expect):
    (text,), status, _ = run(program_image, command)
    assert status == 1 and text.startswith("error:") and expect in text, text


def test_nothing_changed_by_a_refused_value(program_image):
    outs, status, m = run(program_image, "set x0 = 7", "set x0 = 1 << 70", "set tag buf = 3",
                          "set tag buf = 0x13", "print x0", "tags buf")
    assert status == 1
    assert outs[4].startswith("0x7 (7)")
    assert m.read_tags(m.symbols["buf"], 16) == [3]


def test_values_that_fit(program_image):
    outs, status, m = run(program_image, "set x0 = -1", "set w1 = -1", "set w2 = 0xffffffff",
                          "set nzcv = 0x60000000", "set x3 = 1 << 63", "set tag buf = 0xf",
                          "print/x x0", "print/d x0", "print/u 5", "print/o 8", "print/t 5",
                          "print/c 65", "print/a _start", "print/z 1")
    assert status == 0, outs
    assert m.reg("x0") == (1 << 64) - 1
    assert m.reg("x1") == 0xFFFF_FFFF == m.reg("x2")             # zero-extended
    assert m.reg("nzcv") == 0x6000_0000 and m.reg("x3") == 1 << 63
    assert m.read_tags(m.symbols["buf"], 16) == [0xF]
    assert outs[6:14] == ["0xffffffffffffffff", "-1", "5", "010", "101", "65 'A'",
                          "0x40080000 <_start>", "0x0000000000000001"]


def test_script_lines_that_are_not_commands(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "aarch64mte.cli.main", "debug",
           str(ROOT / "asm" / "tag_buffer.S"), "--batch"]
    r = subprocess.run(cmd, input=b"print 1\n\xff\xfe\n", capture_output=True, env=env, timeout=60)
    assert r.returncode == 2 and b"standard input:2: not UTF-8 text" in r.stderr
    r = subprocess.run(cmd, input=b"x" * 100_000, capture_output=True, env=env, timeout=60)
    assert r.returncode == 2 and b"standard input:1: line longer than" in r.stderr
    script = tmp_path / "dir"
    script.mkdir()
    r = subprocess.run(cmd + ["-x", str(script)], capture_output=True, env=env, timeout=60)
    assert r.returncode == 2 and b"is a directory, not a file" in r.stderr
    assert b"Traceback" not in r.stderr


# --- the expression evaluator: exact within 64 bits ------------------------------------------------

U64 = st.integers(0, (1 << 64) - 1)


@settings(max_examples=300, deadline=None)
@given(U64, U64, st.sampled_from(["+", "-", "*", "<<", "&", "|", "^", "==", "<"]))
def test_an_expression_is_exact_or_refused(a, b, op):
    ev = Evaluator(lambda n: {"a": a, "b": b}[n], lambda: {})
    exact = {"+": a + b, "-": a - b, "*": a * b, "<<": a << b if b < 64 else None,
             "&": a & b, "|": a | b, "^": a ^ b, "==": int(a == b), "<": int(a < b)}[op]
    text = f"a {op} b"
    if exact is None or not -(1 << 63) <= exact < 1 << 64:
        with pytest.raises(ExprError):
            ev(text)
    else:
        assert ev(text) == exact & ((1 << 64) - 1)
        assert ev.exact(text) == exact
