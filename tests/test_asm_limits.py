"""Inputs that once hung the assembler, recursed until Python gave up, exhausted memory or
ended in a traceback. Each must now stop with one InputError naming file:line and the limit it
hit, and the command line (`asm` and `run`) must print that one line and exit with status 2.

The command-line tests run in a subprocess with a timeout and an address-space limit, so a
regression shows as a failed test, not a hung or swapped-out test run.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from aarch64mte.assembler import assemble, assemble_file
from aarch64mte.assembler import limits
from aarch64mte.errors import InputError
from aarch64mte.image import RAM_BASE, RAM_SIZE
from conftest import requires_tool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Address space of a command line under test: `asm` needs well under 1 GiB for the largest
# image that fits in RAM; `run` also holds Unicorn's translation buffer (about 1 GiB reserved).
MEMORY_LIMIT = {"asm": 1 << 30, "run": 4 << 30}
# (with --backend gnu, GNU as and ld run in their own limits: see assembler/gnu.py)


def _error(src: str, name: str = "bad.S") -> InputError:
    with pytest.raises(InputError) as e:
        assemble(src, name)
    return e.value


# Lines Keystone 0.9.2 loops on forever (it does not begin with an identifier, or is a label or
# assignment whose value does not parse): refused before Keystone sees them.
@pytest.mark.parametrize("line", ["/", "\\", "*", "%", "-", ")", "\\@", "1. text", "(", ",", "!",
                                  "]", "$(", "add :!", "add ==1", "add :\\"])
def test_lines_that_hang_keystone_are_refused(line):
    e = _error(f"nop\n{line}\n")
    assert (e.file, e.line) == ("bad.S", 2), str(e)
    assert "unknown mnemonic" in e.message or "unexpected" in e.message


@pytest.mark.parametrize("src,msg", ids=["non-ascii", "control", "overlong", "huge-number",
                                         "open-bracket", "close-bracket"], argvalues=[
    # Keystone's binding raises UnicodeEncodeError on this one
    ("mov x0, \u00e9\n", "unexpected character '\\xe9'"),
    ("mov x0,\x01 x1\n", "unexpected character '\\x01'"),
    ("add x0, x1, " + "x" * 2000 + "\n", "longer than"),
    ("add x0, x1, #" + "1" * 100_000 + "\n", "number too large"),   # Keystone hangs on it
    ("ldr x0, [x1\n", "missing closing bracket"),
    ("ldr x0, [x1]]\n", "unbalanced ']'"),
])
def test_statements_keystone_mishandles_are_refused(src, msg):
    e = _error(src)
    assert e.line == 1 and msg in e.message, str(e)


@pytest.mark.parametrize("src,line,msg", ids=[
    "recursive-macro", "doubling-macro", "nested-rept", "huge-rept", "self-equ-final",
    "self-equ-now", "equ-cycle", "equ-chain", "unary-minus", "exitm", "comm"], argvalues=[
    # a macro that invokes itself: GNU as stops at the same depth
    (".macro m a\nm \\a\n.endm\nm 1\n", 4, "macros nested too deeply"),
    # a macro that doubles its argument on every level
    (".macro m a\nm \\a\\a\n.endm\nm 1\n", 4, "MiB of text"),
    ("".join(".rept 1\n" for _ in range(150)) + "nop\n" + ".endr\n" * 150, 102,
     "macros nested too deeply"),
    (".rept 1000000000000\n.endr\n", 1, "would expand to more than"),
    (".equ zz, zz+1\n.word zz\n", 2, "'zz' is defined in terms of itself"),
    (".equ zz, zz+1\n.if zz\n.endif\n", 2, "'zz' is defined in terms of itself"),
    (".equ a, b+1\n.equ b, a+1\n.if a\n.endif\n", 3, "defined in terms of itself"),
    ("".join(f".equ s{i}, s{i + 1}+1\n" for i in range(500)) + ".equ s500, 1\n.word s0\n", 502,
     "more than 100 other symbols"),
    (".word " + "-" * 100_000 + "1\n", 1, "expression nested more than 4096 levels"),
    (".exitm\n", 1, ".exitm outside a macro"),
    (".comm x\n", 1, ".comm needs"),
])
def test_recursion_and_expansion_stop_at_a_named_limit(src, line, msg):
    e = _error(src)
    assert (e.file, e.line) == ("bad.S", line), str(e)
    assert msg in e.message, str(e)


@pytest.mark.parametrize("src", ["paciza x\u202815\n", "mov x0,\x1c1\n", "b x\u0085y\n"])
def test_messages_quoting_source_stay_on_one_line(src):
    # a line or paragraph separator quoted from the source is written as an escape
    e = _error(src)
    assert len(str(e).splitlines()) == 1 and str(e).isprintable(), repr(str(e))


def test_deep_parentheses_assemble_as_in_gnu_as():
    # GNU as 2.40 accepts 2,000 nested parentheses; the evaluator needs no recursion for them
    image = assemble(".word " + "(" * 2000 + "7" + ")" * 2000 + "\n")
    assert image.word(image.entry) == 7


def test_macro_nesting_allows_what_gnu_as_allows():
    # GNU as 2.40: `m 100` (101 nested expansions) assembles, `m 101` is "nested too deeply"
    src = ".macro m n\n.if \\n\nm \"(\\n-1)\"\n.endif\nnop\n.endm\nm {}\n"
    image = assemble(src.format(100))
    assert len(image.segment(".text").data) == 4 * 101
    assert "macros nested too deeply" in _error(src.format(101)).message


def test_arithmetic_wraps_at_64_bits():
    # 3^(2^40) would never finish; GNU as's 64-bit values wrap, and so do these
    image = assemble(".set x, 3\n.rept 40\n.set x, x*x\n.endr\n.quad x\n")
    assert image.read(image.entry, 8) == pow(3, 1 << 40, 1 << 64).to_bytes(8, "little")


RAM_MESSAGE = f"runs past the end of RAM (the machine has 128 MiB at {RAM_BASE:#x})"


@pytest.mark.parametrize("src", ids=["space64", "balign", "org", "comm", "space2g", "fill",
                                "two-sections"], argvalues=[
    ".space 0xffffffffffffffff\n", ".balign 1<<40\n", ".org 0x10000000000\n",
    ".comm big, 0x7fffffffffff\n", ".space 0x80000000\n", ".fill 100000000,8,0\n",
    f".space {RAM_SIZE - 0x1000}\n.data\n.space 0x20000\n",
])
def test_sizes_that_do_not_fit_in_ram_are_refused(src):
    e = _error(src)
    assert e.line is not None and e.file == "bad.S", str(e)
    assert RAM_MESSAGE in e.message, str(e)


def test_many_small_pieces_that_do_not_fit_are_refused_before_the_image_is_built():
    e = _error(".rept 3000\n.space 0x10000, 1\n.endr\n")
    assert e.file == "bad.S" and RAM_MESSAGE in e.message, str(e)


def test_an_image_as_large_as_ram_assembles():
    # (where it lands is the loader's check: at the default base it runs past the end of RAM)
    image = assemble(f".space {RAM_SIZE}\n")
    assert image.end - image.start == RAM_SIZE


def test_ram_constants_match_the_machine():
    memory = pytest.importorskip("aarch64mte.machine.memory")
    assert (RAM_BASE, RAM_SIZE) == (memory.RAM_BASE, memory.RAM_SIZE_DEFAULT)


@pytest.mark.parametrize("target,msg", [
    ("/dev/zero", "is a character device"), ("/dev/urandom", "is a character device"),
    (".", "is a directory"),
])
def test_includes_must_be_regular_files(tmp_path, target, msg):
    if not os.path.exists(target):
        pytest.skip(f"{target} is missing on this host")
    e = _error(f'nop\n.include "{target}"\n', str(tmp_path / "inc.S"))
    assert e.line == 2 and msg in e.message, str(e)


def test_include_of_itself_stops(tmp_path):
    src = tmp_path / "self.S"
    src.write_text('.include "self.S"\n')
    with pytest.raises(InputError, match=f"nested more than {limits.MAX_INCLUDE_DEPTH} files"):
        assemble_file(str(src))


def test_large_source_files_are_refused(tmp_path):
    big = tmp_path / "big.s"
    with open(big, "wb") as f:
        f.truncate(limits.MAX_SOURCE_BYTES + 1)
    with pytest.raises(InputError, match="inputs larger than 8,388,608 bytes are refused"):
        assemble_file(str(big))
    main = tmp_path / "main.S"
    main.write_text('.include "big.s"\n')
    with pytest.raises(InputError, match=r"main.S:1: cannot include 'big.s'.*refused"):
        assemble_file(str(main))


def test_a_source_that_is_a_device_is_refused():
    if not os.path.exists("/dev/zero"):
        pytest.skip("/dev/zero is missing on this host")
    with pytest.raises(InputError, match="is a character device"):
        assemble_file("/dev/zero")


# --- the command line: one line, exit status 2, bounded time and memory ---------------------

CLI_CASES = {
    "slash": "/\n",
    "one_dot": "nop\n1. text\n",
    "recursive_macro": ".macro m a\nm \\a\n.endm\nm 1\n",
    "doubling_macro": ".macro m a\nm \\a\\a\n.endm\nm 1\n",
    "self_equ": ".equ zz, zz+1\n.word zz\n",
    "minus_signs": ".word " + "-" * 100_000 + "1\n",
    "space": ".space 0xffffffffffffffff\n",
    "fill": ".fill 100000000,8,0\n",
    "comm": ".comm big, 0x7fffffffffff\n",
    "dev_zero": '.include "/dev/zero"\n',
    "dev_urandom": '.include "/dev/urandom"\n',
}


def _cli(command, *args):
    limit = MEMORY_LIMIT[command]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", command, *args],
                          capture_output=True, text=True, env=env, timeout=120,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))


# every case through `asm`; a few through `run` too (it starts an emulator first: slower)
@pytest.mark.parametrize("command,case", [("asm", c) for c in sorted(CLI_CASES)] +
                         [("run", c) for c in ("slash", "recursive_macro", "space", "dev_zero")])
def test_cli_reports_one_line_and_exits_2(tmp_path, command, case):
    src = tmp_path / f"{case}.S"
    src.write_text(CLI_CASES[case])
    extra = ["-o", str(tmp_path / "out.bin")] if command == "asm" else []
    r = _cli(command, str(src), *extra)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("aarch64mte") and f" {src}:" in lines[0], lines[0]


@pytest.mark.long
@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")
def test_gnu_backend_bounds_gnu_as_memory(tmp_path):
    # GNU as reads /dev/zero until it runs out of memory: its run is bounded, and that is
    # one error line with exit status 2 (slow: GNU as takes tens of seconds to get there)
    src = tmp_path / "dz.S"
    src.write_text('.include "/dev/zero"\n')
    r = _cli("asm", "--backend", "gnu", str(src), "-o", str(tmp_path / "out.bin"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
