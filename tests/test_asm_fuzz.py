"""Fuzzing the assembler: mutated sources must never hang, crash, exhaust memory or end in a
traceback. Each case goes through the real command line (`aarch64mte asm`, in-process in a
driver) and must exit with 0, 1 or 2, with one error line at most, and without reaching a host
failure (the messages of errors.at_line's backstop count as failures: a limit was missed).

Sources start from tests/corpus and asm/ and are mutated at random (seeded): characters
inserted, deleted, duplicated or replaced; lines deleted, duplicated or swapped; directives with
huge, negative or recursive arguments, punctuation lines and deep nesting spliced in.

Many cases run in one driver subprocess, under a timeout and an address-space limit; a case
that hangs, kills the driver or leaves it without memory is recorded and the driver restarted
after it. The default run is small; `--long` runs the deep one.

A second suite sends random statements straight to the one function that calls Keystone
(base.assemble_one): Keystone 0.9.2 loops forever in C on some statements, and its shape check
must refuse every such statement before Keystone sees it.

This file is also the driver: `python tests/test_asm_fuzz.py --driver CASES_DIR FIRST MODE`.
"""
from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import random
import re
import resource
import select
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MEMORY_LIMIT = 1 << 30          # address space of the driver
CASE_TIMEOUT = 60               # seconds one case may take before it counts as a hang
START_TIMEOUT = 120             # seconds for the driver to import the assembler
DEFAULT_CASES = 200
LONG_CASES = 6000
# errors.describe's words for host failures: reaching them means a limit was missed
BACKSTOP = ("structure nested too deeply", "out of memory (",
            "a size or an address is out of range")


# --- generating cases --------------------------------------------------------------------------

def seed_sources() -> list[str]:
    paths = sorted(glob.glob(os.path.join(HERE, "corpus", "*.[sS]")) +
                   glob.glob(os.path.join(ROOT, "asm", "**", "*.[sS]"), recursive=True))
    out = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            out.append(f.read())
    return out


CHARS = list("/\\*%-)(,!]{}[#.:;@$&|^~<>=+?'\"` \t_\n0123456789xwsp") + \
    ["\u00e9", "\x00", "\x01", "\x7f", "\u2028", "\ufeff"]
BIG = ["0xffffffffffffffff", "-1", "1<<63", "0x80000000", "-0x8000000000000000", "99999999999",
       "1<<64", "0x7fffffffffff", "(-1)", "18446744073709551616", "0"]
SPLICES = [
    "/", "\\", "*", "%", "-", ")", "\\@", "1. text", "(", ",", "!", "]", "$(", "add :!",
    "add ==1", "=", ":", "::", "a::", ".", "..", "#", "#define X 1", "'", '"', "\\\\",
    ".space {n}", ".skip {n}, {n}", ".zero {n}", ".fill {n}, {n}, {n}", ".org {n}",
    ".balign {n}", ".p2align {n}", ".balignl {n}, {n}", ".align {n}", ".comm big, {n}",
    ".lcomm small, {n}, {n}", ".rept {n}", ".endr", ".rept 3\nnop\n.endr",
    ".irp r, x0, x1\nmov \\r, #1\n.endr", ".irpc c, 0123\n.byte \\c\n.endr",
    ".macro m a\nm \\a\n.endm\nm 1", ".macro m a\nm \\a\\a\n.endm\nm 1",
    ".macro mm a=1, b:req, c:vararg\n.byte \\a, \\b\n.exitm\n.endm\nmm 1, 2, 3",
    ".macro", ".endm", ".exitm", ".purgem m", ".equ zz, zz+1\n.word zz", ".set x, x*x",
    ".equ a1, b1\n.equ b1, a1\n.word a1", ".if zz\n.endif", ".if", ".else", ".endif",
    ".ifdef", ".ifc a,b", ".elseif 1", ".include \"/dev/zero\"", ".include \"/dev/urandom\"",
    ".include \".\"", ".include \"\"", ".include", ".section", ".section .text.x, \"ax\"",
    ".pushsection .data", ".popsection", ".previous", ".bss\nnop", ".data\n.byte 1\nnop",
    ".ascii \"unterminated", ".asciz \"\\777\\x\"", ".byte 1,,2", ".quad 1<<-1", ".word 1/0",
    ".word " + "(" * 3000 + "1" + ")" * 3000, ".word " + "-" * 20000 + "1", ".word " + "9" * 5000,
    "ldr x0, =", "ldr x0, ={n}", "ldr q0, =1", "b {n}", "adrp x0, {n}", "mov x0, #{n}",
    "stg x0, [x1, #{n}]", "ldg x0, [x1, #{n}]", "addg x0, x1, #{n}, #{n}", "ldapur x0, [x1, #{n}]",
    "tbz x0, #{n}, .", "movz x0, #{n}, lsl #{n}", "and x0, x1, #{n}", "nop " + "x" * 3000,
    "ldraa x0, [x1, #{n}]!", "ldrab x0, [sp, #{n}]", "pacia x0, {n}", "braa x0, x1, x2",
    "retaa {n}", "msr pan, #{n}", "mrs x0, ttbr1_el2, x1", "tlbi alle1os, x{n}", "at s1e1rp",
    "1:", "1b", "b 1f", "b 9b", ".end", ".err", ".error \"e\"", ".inst {n}", ".equ", ".equ x",
    ".set y, 1\n.set y, y+1", "x = 1", "x == 1", ".equiv q, 1\n.equiv q, 2", "label: label:",
]


def _number(rnd: random.Random) -> str:
    return rnd.choice(BIG) if rnd.random() < 0.7 else str(rnd.randint(-5000, 5000))


def mutate(text: str, rnd: random.Random) -> str:
    lines = text.split("\n")
    for _ in range(rnd.randint(1, 6)):
        op = rnd.random()
        i = rnd.randrange(len(lines)) if lines else 0
        if op < 0.3 and lines:                                   # a character
            line = lines[i]
            j = rnd.randint(0, len(line))
            kind = rnd.randrange(4)
            c = rnd.choice(CHARS)
            if kind == 0:
                line = line[:j] + c + line[j:]
            elif kind == 1:
                line = line[:j] + line[j + 1:]
            elif kind == 2:
                line = line[:j] + line[j:j + 1] * 2 + line[j + 1:]
            else:
                line = line[:j] + c + line[j + 1:]
            lines[i] = line
        elif op < 0.45 and lines:                                # a line
            kind = rnd.randrange(3)
            if kind == 0:
                del lines[i]
            elif kind == 1:
                lines.insert(i, lines[i])
            else:
                k = rnd.randrange(len(lines))
                lines[i], lines[k] = lines[k], lines[i]
        elif op < 0.6 and lines:                                 # a number made huge
            nums = list(re.finditer(r"(?<![\w.])-?(0x[0-9a-fA-F]+|\d+)(?![\w.])", lines[i]))
            if nums:
                m = rnd.choice(nums)
                lines[i] = lines[i][:m.start()] + _number(rnd) + lines[i][m.end():]
        else:                                                    # a nasty statement
            s = rnd.choice(SPLICES)
            while "{n}" in s:
                s = s.replace("{n}", _number(rnd), 1)
            lines.insert(i, s)
    return "\n".join(lines)


def make_cases(seed: int, count: int) -> list[str]:
    rnd = random.Random(seed)
    seeds = seed_sources()
    return [mutate(rnd.choice(seeds), rnd) for _ in range(count)]


STATEMENT_CHARS = [chr(c) for c in range(32, 127) if chr(c) != ";"] + ["\t"]
OPERAND_TOKENS = ["x0", "w1", "sp", "xzr", "v0.16b", "[", "]", "#", "!", ",", "{", "}", "(",
                  ")", ":lo12:", "lsl", "#1", "'", '"', "\\", "`", "$", "@", "%", "=", ":",
                  "-", "+", "*", "/", "<<", "~", "^", "|", "&", "?", " ", "\t", "0x10", "."]
MNEMONICS = ["add", "ldr", "str", "ldp", "mov", "movk", "b", "bl", "b.eq", "cbz", "tbz", "adrp",
             "dc", "msr", "mrs", "ld1", "fmov", "ldg", "stg", "nop", "svc", "sys", "foo", "x"]


PASSING_TOKENS = ["x0", "w1", "sp", "xzr", "v0.16b", "v1.4s", "q2", "d3", "s4", "z0.d", "p0",
                  "lsl", "uxtw", "sxtw", "msl", "mul", "vl", "eq", "ne", "ish", "pldl1keep",
                  "c7", "s3_0_c4_c2_3", "#1", "#-8", "#0x10", "#1.5", "#-2.0e-3", "0x20", "7",
                  "-3", ".", "=", ":", "'", '"', "\\", "`", "$", "@", "?", "!", "#", " ",
                  "[", "]", "{", "}", "(", ")", ",", ", ", "[x1]", "[sp, #16]!", "{v0.16b}",
                  "{v0.16b-v3.16b}", "[x0], #16", "x1, lsl #3", "#" + "9" * 40]


def make_statements(seed: int, count: int) -> list[str]:
    """Random statements: half in the shapes found to hang or crash Keystone (a leading
    punctuation character, a label or assignment `mn :...`/`mn =...`, arithmetic over names,
    long numbers), which its shape check must refuse; half made of registers, numbers,
    keywords and punctuation and kept only if the shape check lets them through, which
    Keystone must then answer."""
    from aarch64mte.assembler.base import BaseAsmError, check_shape
    rnd = random.Random(seed)
    out = []
    while len(out) < count:
        kind = rnd.random()
        if kind < 0.15:
            ops = "".join(rnd.choice(STATEMENT_CHARS) for _ in range(rnd.randint(1, 6)))
            out.append(ops if rnd.random() < 0.5 else f"{rnd.choice(MNEMONICS)} {ops}")
        elif kind < 0.45:
            ops = "".join(rnd.choice(OPERAND_TOKENS) for _ in range(rnd.randint(1, 9)))
            out.append(f"{rnd.choice(MNEMONICS)} {ops}")
        elif kind < 0.5:
            out.append(f"add x0, x1, #{'1' * rnd.randint(10, 3000)}")
        else:
            ops = "".join(rnd.choice(PASSING_TOKENS) for _ in range(rnd.randint(1, 8)))
            text = f"{rnd.choice(MNEMONICS)} {ops}"
            try:
                check_shape(text)
            except BaseAsmError:
                continue
            out.append(text)
    return out


# --- the driver (runs in the subprocess) -------------------------------------------------------

def driver(case_dir: str, first: int, mode: str) -> None:
    """Run the cases from `first` on and print one JSON record per case. Mode "asm": the
    `aarch64mte asm` command on the case file; mode "keystone": the case's text as one statement
    through base.assemble_one, the only way into Keystone (its shape check must refuse what
    would hang it)."""
    from aarch64mte.assembler import base
    from aarch64mte.cli.main import main
    names = sorted((n for n in os.listdir(case_dir) if n.endswith(".S")),
                   key=lambda n: int(n.split(".")[0]))
    out = os.path.join(case_dir, "out.bin")
    print(json.dumps({"ready": True}), flush=True)
    for name in names[first:]:
        err = io.StringIO()
        tb = None
        rc = None
        path = os.path.join(case_dir, name)
        try:
            if mode == "keystone":
                with open(path, encoding="utf-8", newline="") as f:
                    text = f.read()
                try:
                    base.assemble_one(text, 0x4008_0000, False)
                    rc = 0
                except base.BaseAsmError as e:
                    rc, err = 2, io.StringIO(f"aarch64mte: {e}\n")
            else:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    rc = main(["asm", path, "-o", out])
        except BaseException:               # noqa: B036 - a traceback is what is looked for
            tb = traceback.format_exc()
        print(json.dumps({"case": int(name.split(".")[0]), "rc": rc, "stderr": err.getvalue(),
                          "traceback": tb}), flush=True)


# --- running cases (the test side) -------------------------------------------------------------

def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


class _LineReader:
    """Lines from a pipe with a timeout each: select() on the descriptor and unbuffered reads
    (a buffered readline could hold finished lines where select() cannot see them)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""

    def readline(self, timeout: float) -> bytes | None:
        """A line (b"" at end of file), or None after `timeout` seconds without one."""
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return b""
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line


def run_cases(sources: list[str], case_dir: str, results: list | None = None,
              mode: str = "asm") -> dict[int, str]:
    """Assemble every source through the driver; {case: what went wrong} for the bad ones.
    `results` collects each finished case's record (exit status and stderr)."""
    for i, src in enumerate(sources):
        with open(os.path.join(case_dir, f"{i}.S"), "w", encoding="utf-8", newline="") as f:
            f.write(src)
    bad: dict[int, str] = {}
    nxt = 0
    while nxt < len(sources):
        with open(os.path.join(case_dir, "driver.err"), "w+b") as err:
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--driver",
                                  case_dir, str(nxt), mode], stdout=subprocess.PIPE, stderr=err,
                                 preexec_fn=_limit_memory, cwd=case_dir)

            def died() -> str:
                err.seek(0)
                tail = err.read()[-2000:].decode(errors="replace")
                return f"driver died (status {p.wait()}): {tail}"
            try:
                lines = _LineReader(p.stdout.fileno())
                started = lines.readline(START_TIMEOUT)
                if not started:
                    raise AssertionError("the fuzz driver did not start: " +
                                         (died() if started == b"" else "timed out"))
                while nxt < len(sources):
                    line = lines.readline(CASE_TIMEOUT)
                    if line is None:
                        bad[nxt] = f"hang: no result within {CASE_TIMEOUT} s"
                        nxt += 1
                        break
                    if not line:
                        bad[nxt] = died()
                        nxt += 1
                        break
                    r = json.loads(line)
                    if results is not None:
                        results.append(r)
                    problem = judge(r)
                    if problem:
                        bad[r["case"]] = problem
                    nxt = r["case"] + 1
            finally:
                if p.poll() is None:
                    p.kill()
                p.wait()
                p.stdout.close()
    return bad


def judge(r: dict) -> str | None:
    if r["traceback"]:
        return "traceback:\n" + r["traceback"]
    if r["rc"] not in (0, 1, 2):
        return f"exit status {r['rc']}"
    lines = r["stderr"].strip().splitlines()
    if "Traceback" in r["stderr"]:
        return "traceback on stderr:\n" + r["stderr"]
    if r["rc"] == 2 and len(lines) != 1:
        return f"expected one error line, got:\n{r['stderr']}"
    if any(b in r["stderr"] for b in BACKSTOP):
        return "a host failure reached the backstop (a limit is missing): " + r["stderr"]
    return None


def _report(bad: dict[int, str], sources: list[str], case_dir: str) -> str:
    parts = []
    for i, why in sorted(bad.items())[:10]:
        parts.append(f"case {i} ({os.path.join(case_dir, f'{i}.S')}): {why}\n"
                     f"--- source (first 600 characters) ---\n{sources[i][:600]}")
    return f"{len(bad)} of {len(sources)} cases failed\n" + "\n\n".join(parts)


def test_fuzz_assembler(tmp_path, long_run):
    count = LONG_CASES if long_run else DEFAULT_CASES
    sources = make_cases(seed=20240607, count=count)
    bad = run_cases(sources, str(tmp_path))
    assert not bad, _report(bad, sources, str(tmp_path))


def test_fuzz_keystone_statements(tmp_path, long_run):
    statements = make_statements(seed=61, count=20_000 if long_run else 600)
    results: list = []
    bad = run_cases(statements, str(tmp_path), results, mode="keystone")
    assert not bad, _report(bad, statements, str(tmp_path))
    # the shapes that hang Keystone are among them, and refused; the rest reached Keystone
    assert sum(r["rc"] == 2 for r in results) > len(statements) // 3


def test_fuzz_reports_a_hang_or_an_abort_and_goes_on(tmp_path, monkeypatch):
    # the harness itself: a case that hangs or kills the driver is reported, and the cases
    # after it still run
    monkeypatch.setattr(sys.modules[__name__], "CASE_TIMEOUT", 2)
    hang, abort = ".rept 1\n.endr\n", ".rept 2\n.endr\n"
    sources = ["nop\n", hang, "nop\n", abort, "frob\n", "nop\n"]
    monkeypatch.setenv("AARCH64MTE_FUZZ_HANG_ON", hang)
    monkeypatch.setenv("AARCH64MTE_FUZZ_ABORT_ON", abort)
    results: list = []
    bad = run_cases(sources, str(tmp_path), results)
    assert sorted(bad) == [1, 3], bad
    assert bad[1].startswith("hang") and bad[3].startswith("driver died"), bad
    assert [(r["case"], r["rc"]) for r in results] == [(0, 0), (2, 0), (4, 2), (5, 0)]


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--driver":
    sys.path.insert(0, ROOT)
    if os.environ.get("AARCH64MTE_FUZZ_HANG_ON"):
        # test hooks: stand in for an assembler that never returns on one source, and one
        # that aborts the process on another
        import time
        import aarch64mte.assembler as _asm
        _orig = _asm.assemble

        def _assemble(text, *a, **k):
            if text == os.environ["AARCH64MTE_FUZZ_HANG_ON"]:
                time.sleep(3600)
            if text == os.environ.get("AARCH64MTE_FUZZ_ABORT_ON"):
                os.abort()
            return _orig(text, *a, **k)
        _asm.assemble = _assemble
    driver(sys.argv[2], int(sys.argv[3]), sys.argv[4])
