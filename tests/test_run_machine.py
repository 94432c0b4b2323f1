"""`aarch64mte run` end to end on the real Machine: endings, options, input errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

try:
    from aarch64mte.machine import Machine  # noqa: F401
    WHY = ""
except Exception as exc:       # pragma: no cover - only while the machine is missing
    WHY = f"aarch64mte.machine is not importable: {exc}"
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY)


def cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "aarch64mte.cli.run", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def run_json(*args):
    proc = cli(*args, "--json")
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def src(tmp_path):
    def write(text, name="p.S"):
        path = tmp_path / name
        path.write_text("    .text\n    .globl _start\n_start:\n" + text)
        return path
    return write


def test_end_and_registers(src):
    status, d = run_json(src("    mov x0, #5\n    add x1, x0, #1\n"))
    assert status == 0 and d["exit"]["reason"] == "end"
    assert d["regs"]["x0"] == "0x5" and d["regs"]["x1"] == "0x6"
    assert d["insns"] == 2 and d["regs"]["el"] == 1


def test_brk_ends_the_run_with_its_immediate(src):
    status, d = run_json(src("    mov x0, #1\n    brk #0x3e8\n    mov x0, #2\n"))
    assert status == 0 and d["exit"] == {"reason": "brk", "code": 0x3E8, "status": 0}
    assert d["regs"]["x0"] == "0x1"


def test_instruction_limit(src):
    status, d = run_json(src("1:  b 1b\n"), "--max-insns", "1000")
    assert status == 1 and d["exit"]["reason"] == "insn-limit" and d["insns"] == 1000


def test_semihosting_exit_code_and_console(src):
    prog = src("""
    adr     x1, msg
    mov     x0, #4              // SYS_WRITE0
    hlt     #0xf000
    adr     x1, block
    mov     x0, #0x18           // SYS_EXIT, ADP_Stopped_ApplicationExit, code 7
    hlt     #0xf000
msg:    .asciz "hi\\n"
    .balign 8
block:  .quad 0x20026, 7
""")
    status, d = run_json(prog)
    assert status == 7 and d["exit"]["reason"] == "semihost-exit" and d["exit"]["code"] == 7
    assert d["console"] == "hi\n"


def test_entry_and_set(src):
    prog = src("    mov x0, #1\nsecond:\n    add x0, x0, x1\n")
    status, d = run_json(prog, "--entry", "second", "--set", "x1=0x10", "--set", "x0=second")
    base = int(d["regs"]["pc"], 16)           # ran off the end: pc = second + 4
    assert int(d["regs"]["x0"], 16) == base - 4 + 0x10


def test_el0_start(src):
    status, d = run_json(src("    mov x0, #3\n"), "--el", "0")
    assert d["regs"]["el"] == 0 and d["regs"]["x0"] == "0x3"


def test_tcf_none_suppresses_the_fault(src):
    prog = src("""
    adr     x0, buf
    mov     x9, #3
    bfi     x0, x9, #56, #4
    ldr     x1, [x0]            // logical tag 3 vs allocation tag 0
    .bss
    .balign 16
buf: .skip 16
""")
    status, d = run_json(prog, "--tcf", "none")
    assert status == 0 and d["exception"] is None
    status, d = run_json(prog)               # snippet default: synchronous
    assert status == 1 and d["exception"]["tag_fault"]["logical_tag"] == 3


def test_unhandled_undefined_instruction(src):
    status, d = run_json(src("    .inst 0x00000000\n"))
    assert status == 1 and d["exit"]["reason"] == "exception"
    assert d["exception"]["ec"] == 0 and d["exception"]["tag_fault"] is None


@pytest.mark.parametrize("args, message", [
    (["--set", "x77=1"], "unknown register"),
    (["--mem", "nosuch:4"], "unknown symbol 'nosuch'"),
])
def test_input_errors(src, args, message):
    proc = cli(src("    nop\n"), *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_unassemblable_source_and_missing_file(src, tmp_path):
    proc = cli(src("    frobnicate x0\n"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "p.S:4" in proc.stderr
    proc = cli(tmp_path / "missing.S")
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_not_an_elf(tmp_path):
    path = tmp_path / "junk.elf"
    path.write_bytes(b"not an elf at all")
    proc = cli(path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.strip()


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-gcc"), reason="needs aarch64-linux-gnu-gcc")
def test_elf_defaults_to_the_virt_profile(tmp_path):
    s = tmp_path / "e.S"
    s.write_text("    .text\n    .globl _start\n_start:\n    mrs x0, sctlr_el1\n"
                 "    adr x1, blk\n    mov x0, #0x18\n    hlt #0xf000\n"
                 "    .balign 8\nblk: .quad 0x20026, 0\n")
    elf = tmp_path / "e.elf"
    subprocess.run(["aarch64-linux-gnu-gcc", "-nostdlib", "-static", "-Wl,-Ttext=0x40080000",
                    "-Wl,--build-id=none", str(s), "-o", str(elf)], check=True)
    status, d = run_json(elf)
    assert status == 0 and d["exit"]["reason"] == "semihost-exit"
    assert int(d["sysregs"]["sctlr_el1"], 16) & 1 == 0       # virt: MMU off at reset
