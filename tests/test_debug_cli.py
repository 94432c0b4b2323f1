"""`aarch64mte debug --batch` on a real program with the real machine."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "asm" / "debug_demo.S"


def debug(script: str, *extra, stdin=False, tmp_path=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "aarch64mte.cli.main", "debug", str(DEMO), "--batch", *extra]
    if stdin:
        r = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=60, env=env)
    else:
        path = tmp_path / "cmds"
        path.write_text(script)
        r = subprocess.run(cmd + ["-x", str(path)], capture_output=True, text=True, timeout=60,
                           env=env)
    return r.returncode, r.stdout + r.stderr


SCRIPT = """\
break loop if x0 == 3
continue
registers x0 x1 x20
tags x20 80
next
next
assert pc == loop+8
break bad_load
continue
tagmap buf 128
continue
faults
sysregs
"""


def test_batch_session_on_the_demo(tmp_path):
    status, out = debug(SCRIPT, tmp_path=tmp_path)
    assert status == 0, out
    assert "(mte) break loop if x0 == 3" in out                 # commands are echoed
    assert "Breakpoint 1, 0x40080010 <loop>" in out
    assert "x0 0x0000000000000003*" in out
    assert "pointer 0x0e00000040081000: logical tag 0xe" in out
    assert "granule 0x40081020: allocation tag 0xe  match" in out     # 3 granules so far
    assert "granule 0x40081030: allocation tag 0x0  MISMATCH" in out
    assert "bl 40080038 <tag_granule>" in out
    assert "Breakpoint 2, 0x40080030 <bad_load>" in out
    assert "0x40081000: e e e e 0 0 0 0" in out
    # the fault report
    assert "Tag-check fault (sync, read)" in out
    assert "instruction  0x40080030 <bad_load>:  ldr x4, [x20, #0x40]" in out
    assert "pointer      0x0e00000040081040" in out
    assert "logical tag  0xe   allocation tag 0x0" in out
    assert "e  e  e  e [0] 0" in out
    assert "ESR 0x96000011" in out
    assert "data_abort EC 0x25 ESR 0x96000011" in out
    assert "TCF=1 (sync)" in out and "GMID_EL1    0x0000000000000004  BS=4" in out


def test_batch_from_stdin_and_run_options():
    status, out = debug("sysregs\nstep 3\nassert x0 == 0\nquit 5\nregisters\n", "--tcf", "async",
                        "--gmid-bs", "6", stdin=True)
    assert status == 5, out
    assert "TCF=2 (async)" in out and "BS=6" in out
    assert "(mte) registers" not in out


def test_failing_command_fails_the_batch(tmp_path):
    status, out = debug("break nosuchsymbol\nassert x0 == 1\n", tmp_path=tmp_path)
    assert status == 1
    assert "error: no register or symbol named 'nosuchsymbol'" in out
    assert "error: assertion failed: x0 == 1" in out


def test_bad_program_is_a_usage_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", "debug",
                        str(tmp_path / "missing.S"), "--batch"], capture_output=True, text=True,
                       timeout=60, env=env, input="")
    assert r.returncode == 2 and "missing.S" in r.stderr
