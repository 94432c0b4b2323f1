"""The debugger's look back in time, through the real CLI in batch mode: who set a tag (fault
report, `tags`, `faults`, `history`), going back (`reverse-to-tag-write`, `reverse-step`,
`reverse-continue`, `goto`) and watches that stop before the access (`rwatch`, `awatch`).

asm/use_after_free.S: the buffer is tagged 0xe by `stg x0, [x0]` (_start+0xc, the 4th
instruction), retagged 5 by `stg x10, [x10]` and `stg x10, [x10, #16]` (instructions 12 and
13), then read through the stale pointer at stale_load: a synchronous tag-check fault.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UAF = ROOT / "asm" / "use_after_free.S"


def debug(program: Path, script: str, *options: str) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", "debug", str(program),
                        "--batch", *options], input=script.strip() + "\n", capture_output=True,
                       text=True, env=env, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout


WRITER = ("allocation tag 0x5 set by stg x10, [x10] at _start+0x2c (insn #12, EL1); "
          "before that 0xe by stg x0, [x0] at _start+0xc (insn #4, EL1)")


def test_the_fault_names_the_tag_writer():
    status, out = debug(UAF, """
        continue
        faults
        tags x0 32
        history tag x0
    """)
    assert status == 0, out
    assert out.count(WRITER) == 2, out          # the fault report and `faults`
    assert "granule 0x40081000: allocation tag 0x5  MISMATCH  set by stg x10, [x10] at " \
           "0x4008002c <_start+0x2c> (#12)" in out, out
    assert "granule 0x40081010: allocation tag 0x5  MISMATCH  set by stg x10, [x10, #16] at " \
           "0x40080030 <_start+0x30> (#13)" in out, out
    assert "granule 0x40081000: 2 tag writes, newest first\n" \
           "  #12         0xe -> 0x5  EL1  stg x10, [x10]  at 0x4008002c <_start+0x2c>\n" \
           "  #4          0x0 -> 0xe  EL1  stg x0, [x0]  at 0x4008000c <_start+0xc>" in out, out


def test_reverse_to_tag_write_and_back_and_forth():
    status, out = debug(UAF, """
        continue
        reverse-to-tag-write x0
        assert pc == 0x4008002c
        assert x10 == 0x0500000040081000
        tags x0
        step
        tags x0
        reverse-step 9
        assert pc == 0x4008000c
        goto 11
        assert pc == 0x4008002c
        break stale_load
        continue
        continue
        reverse-continue
        assert pc == stale_load
        reverse-continue
        assert pc == _start
        record
    """)
    assert status == 0, out
    assert "=> 0x4008002c <_start+0x2c>:  stg x10, [x10]\n" \
           "before #12: stg x10, [x10]  at 0x4008002c <_start+0x2c> sets granule 0x40081000 " \
           "from 0xe to 0x5" in out, out
    assert "allocation tag 0xe  match     set by stg x0, [x0]" in out
    assert "allocation tag 0x5  MISMATCH  set by stg x10, [x10]" in out
    assert "Reached the start of the recorded history" in out
    assert "recording since instruction 0" in out and "snapshots (at most 64)" in out


def test_a_debugger_tag_write_is_recorded_and_reversible():
    status, out = debug(UAF, """
        break stale_load
        continue
        set tag x0 = 0xe
        history tag x0 2
        continue
        reverse-to-tag-write x0
        tags x0
        continue
        tags x0
    """)
    assert status == 0, out
    assert "  #14         0x5 -> 0xe  EL1  the debugger (at 0x40080038 <stale_load>)" in out, out
    assert "Program exited with code 0" in out                    # the retag fixed the read
    assert "before #14: the debugger (at 0x40080038 <stale_load>) sets granule 0x40081000 " \
           "from 0x5 to 0xe" in out, out
    # going forward from before the write takes the write again: the run ends the same way
    assert out.count("Program exited with code 0") == 2
    assert out.count("granule 0x40081000: allocation tag 0xe  match     set by the debugger") == 1


def test_watches_that_stop_before_the_access(tmp_path):
    src = tmp_path / "rw.S"
    src.write_text("""
    .text
_start:
    adr x0, value
    ldr x1, [x0]
    add x1, x1, #1
    str x1, [x0]
    ret
    .data
    .balign 16
value: .quad 41
""")
    status, out = debug(src, """
        rwatch value
        continue
        assert pc == _start+4
        x/1gd value
        awatch value
        continue
        assert pc == _start+12
        x/1gd value
        continue
        x/1gd value
    """)
    assert status == 0, out
    assert "Watchpoint: read of 0x40081000 by 0x40080004 <_start+0x4>, stopped before it" in out
    # resuming runs the load it stopped before; the store is the access watch's
    assert "Watchpoint: write of 0x40081000 by 0x4008000c <_start+0xc>, stopped before it" in out
    assert out.count("0x40081000 <value>:  41") == 2 and "0x40081000 <value>:  42" in out, out
    assert "Program exited with code 0" in out


def test_bad_requests_are_one_line_each():
    status, out = debug(UAF, """
        history tag 0x1000
        history tag
        reverse-to-tag-write heap+0x40
        goto 99999
        reverse-step 0
        rwatch
        continue
    """)
    assert status == 1, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: 0x1000 is not Tagged memory: it has no allocation tag",
        "error: usage: history tag ADDR [N]",
        "error: no write of the tag of granule 0x40081040 is recorded: it holds the tag it "
        "started with",
        "error: instruction 99,999 has not run yet (the recorded run reaches 0)",
        "error: step count must be 1..1,000,000,000, not 0",
        "error: watch needs an address",
    ], out
