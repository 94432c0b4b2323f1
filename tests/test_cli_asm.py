"""`aarch64mte asm` and `aarch64mte disasm` through the real command line: outputs, formats,
and errors (one message, exit status 2, no traceback)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from aarch64mte.cli.main import main
from aarch64mte.elf import load_elf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MTE = os.path.join(HERE, "corpus", "mte_insns.s")


def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_asm_elf_then_disasm(tmp_path):
    out = tmp_path / "m.elf"
    r = cli("asm", MTE, "-o", str(out))
    assert r.returncode == 0, r.stderr
    img = load_elf(str(out))
    assert img.word(0x40080000) == 0x9ADF1020
    r = cli("disasm", str(out))
    assert r.returncode == 0, r.stderr
    assert "stgp\tx2, x3, [x1, #64]" in r.stdout and "<f>:" in r.stdout


def test_asm_raw_binary_with_base(tmp_path):
    out = tmp_path / "m.bin"
    r = cli("asm", MTE, "-o", str(out), "--base", "0x80000000")
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data[:4] == (0x9ADF1020).to_bytes(4, "little") and len(data) == 0x88
    r = cli("disasm", str(out), "--base", "0x80000000")
    assert "80000000:\t9adf1020 \tirg\tx0, x1" in r.stdout


def test_format_option_overrides_suffix(tmp_path):
    out = tmp_path / "m.img"
    assert main(["asm", MTE, "-o", str(out), "--format", "elf"]) == 0
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_disasm_words(tmp_path):
    r = cli("disasm", "d9200820", "--word", "0xd503419f")
    assert r.returncode == 0
    assert "d503419f\tmsr\ttco, #0x1" in r.stdout
    assert "d9200820\tstg\tx0, [x1]" in r.stdout


@pytest.mark.parametrize("src,expect", [
    ("addg x0, x1, #8, #1\n", "bad.S:1: addg: offset: 8 is not a multiple of 16"),
    ("nop\nstg x0, [x1, #-4112]\n", "bad.S:2: stg: offset: -4112 is out of range -4096..4080"),
    ("ldgm x0, [x1, #16]\n", "bad.S:1: ldgm: bad operands"),
    ("irg x0, x1, sp\n", "bad.S:1: irg: 'sp' is not allowed here"),
    ("b nowhere\n", "bad.S:1: undefined symbol 'nowhere'"),
    ("x: nop\nx: nop\n", "bad.S:2: symbol 'x' is already defined"),
    ("frob x0\n", "bad.S:1: unknown mnemonic 'frob'"),
])
def test_asm_errors(tmp_path, src, expect):
    (tmp_path / "bad.S").write_text(src)
    r = cli("asm", "bad.S", "-o", "out.elf", cwd=str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.startswith("aarch64mte: ") and expect in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _bad_elf(tmp_path, patch):
    from aarch64mte.assembler import assemble_file
    from aarch64mte.elf import elf_bytes
    data = bytearray(elf_bytes(assemble_file(MTE)))
    patch(data)
    p = tmp_path / "bad.elf"
    p.write_bytes(bytes(data))
    return str(p)


@pytest.mark.parametrize("args,expect", [
    (["disasm", "missing.elf"], "missing.elf: no such file"),
    (["asm", "missing.S", "-o", "x.elf"], "missing.S: no such file"),
])
def test_missing_files(tmp_path, args, expect):
    r = cli(*args, cwd=str(tmp_path))
    assert r.returncode == 2 and expect in r.stderr and "Traceback" not in r.stderr


def test_truncated_and_foreign_elf(tmp_path):
    trunc = _bad_elf(tmp_path, lambda d: d.__delitem__(slice(100, None)))
    r = cli("disasm", trunc)
    assert r.returncode == 2 and "truncated" in r.stderr and "Traceback" not in r.stderr
    x86 = _bad_elf(tmp_path, lambda d: struct.pack_into("<H", d, 18, 62))
    r = cli("disasm", x86)
    assert r.returncode == 2 and "not an AArch64 ELF file" in r.stderr


def test_usage_errors_exit_2(tmp_path):
    assert cli("asm").returncode == 2
    assert cli("asm", MTE, "--format", "hex").returncode == 2
    assert cli("frobnicate").returncode == 2
    r = cli("disasm", "--word", "zz")
    assert r.returncode == 2 and "not a 32-bit hex word" in r.stderr


def test_help_lists_every_command():
    r = cli("--help")
    assert r.returncode == 0
    for name in ("asm", "disasm", "run", "debug", "gdbserver", "bench"):
        assert name in r.stdout


def test_missing_command_module(monkeypatch, capsys):
    from aarch64mte.cli import main as m
    monkeypatch.setitem(m.COMMANDS, "nosuch", "a command that is not installed")
    assert m.main(["nosuch"]) == 2
    assert "'nosuch' command is not available" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("shutil").which("aarch64-linux-gnu-as"),
                    reason="oracle tool missing: aarch64-linux-gnu-as")
def test_asm_gnu_backend_same_bytes(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    assert main(["asm", MTE, "-o", str(a)]) == 0
    assert main(["asm", MTE, "-o", str(b), "--backend", "gnu"]) == 0
    assert a.read_bytes() == b.read_bytes()
