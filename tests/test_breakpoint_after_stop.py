"""A breakpoint set after a stop in the middle of a block holds on the next run.

Unicorn calls a code hook only from code translated after the hook was added; a stop at the
instruction limit leaves the loop's block translated. The machine must still stop at the new
breakpoint, through the Python API and through the debugger's batch mode.
"""
import subprocess
import sys

from aarch64mte.machine import Machine

LOOP = """
    .globl _start
_start:
    mov x0, #0
    mov x1, #0
    .globl loop
loop:
    add x0, x0, #1
    add x1, x1, #2
    add x2, x1, x0
    cmp x0, #4000
    b.ne loop
    brk #0
"""


def test_machine_stops_at_breakpoint_added_after_limit_stop(tmp_path):
    src = tmp_path / "loop.S"
    src.write_text(LOOP)
    m = Machine()
    m.load(str(src))
    r = m.run(1001)                          # stops inside the loop's block
    assert r.reason == "insn-limit" and r.pc != m.symbols["loop"]
    n = m.reg("x0")
    m.debugging.add_breakpoint(m.symbols["loop"])
    r = m.run(100000)
    assert (r.reason, r.pc) == ("breakpoint", m.symbols["loop"])
    assert m.reg("x0") == n                  # at the next pass through the loop's start


def test_debugger_breakpoint_after_instruction_limit(tmp_path):
    src = tmp_path / "loop.S"
    src.write_text(LOOP)
    script = "continue\nbreak loop\ncontinue\ninfo registers pc\n"
    p = subprocess.run([sys.executable, "-m", "aarch64mte", "debug", str(src), "--batch",
                        "--max-insns", "1001"], input=script, capture_output=True, text=True,
                       timeout=120)
    assert "Traceback" not in p.stderr
    first, after = p.stdout.split("(mte) break loop", 1)
    assert "<loop+0x" in first.splitlines()[-1]            # the limit stopped inside the loop
    assert "Breakpoint 1, 0x40080008 <loop>" in after
    assert "pc 0x0000000040080008" in after
