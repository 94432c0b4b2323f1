"""The Python API examples in examples/ run and print what their docstrings promise."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name, *args, timeout=120):
    """Run examples/NAME with the checkout under test (whatever else is installed); its
    standard output, once it has exited 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args],
                         capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_tag_and_check():
    out = run_example("tag_and_check.py")
    # Granule 1 keeps tag 0 while the pointer carries 3: a synchronous tag-check fault,
    # ESR = EC 0x25 (data abort, same EL) | IL | DFSC 0x11, FAR = the tagged address.
    assert "stopped: exception" in out
    assert "ESR=0x96000011" in out and "FAR=0x3000000400" in out
    assert "logical tag 0x3, allocation tag 0x0" in out
    assert "x3 untouched by the faulting load: 0x0" in out
    assert "tags of buf: [3, 0]" in out


def test_step_irg_sequence():
    # The RGSR_EL1 LFSR known answer (GCR_EL1 = 1, SEED = 0x1234), as QEMU 7.2 and 10 give it.
    out = run_example("step_irg.py")
    assert "IRG tags: e 5 9 b 7 5 5 a" in out
    assert "instructions executed: 9" in out
