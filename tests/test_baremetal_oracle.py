"""Bare-metal C programs under QEMU (the oracle) and under `aarch64mte run`: same console
output, same exit status.

The programs are built with the oracle kit (/work/shared/oracles/baremetal: start.S, link.ld,
build.sh) into a temporary directory and run under
`qemu-system-aarch64 -M virt,mte=on -cpu max -semihosting` (run.sh). QEMU's max CPU has
GMID_EL1.BS = 6, so programs that read GMID_EL1 run here with --gmid-bs 6.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KIT = Path(os.environ.get("AARCH64MTE_ORACLES", "/work/shared/oracles")) / "baremetal"
PROGRAMS_DIR = Path(__file__).resolve().parent / "oracle_programs"

PROGRAMS = {
    "example": (KIT / "example.c", []),
    "async_tfsr": (PROGRAMS_DIR / "async_tfsr.c", []),
    "irg_seed": (PROGRAMS_DIR / "irg_seed.c", []),
    "ldgm_gzva": (PROGRAMS_DIR / "ldgm_gzva.c", ["--gmid-bs", "6"]),
}

missing = [what for what, ok in (
    ("aarch64-linux-gnu-gcc", shutil.which("aarch64-linux-gnu-gcc")),
    ("qemu-system-aarch64", shutil.which("qemu-system-aarch64")),
    (f"the oracle kit at {KIT}", (KIT / "build.sh").exists()),
) if not ok]
pytestmark = pytest.mark.skipif(bool(missing), reason="needs " + ", ".join(missing))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("baremetal")
    elves = {}
    for name, (src, _) in PROGRAMS.items():
        elf = out / f"{name}.elf"
        proc = subprocess.run([str(KIT / "build.sh"), str(elf), str(src)], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"building {src}:\n{proc.stderr}"
        elves[name] = elf
    return elves


def run_qemu(elf):
    proc = subprocess.run([str(KIT / "run.sh"), str(elf)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    # With no terminal, QEMU writes semihosting console output to stderr.
    return proc.returncode, proc.stdout + proc.stderr


def run_ours(elf, options):
    try:
        from aarch64mte.machine import Machine  # noqa: F401
    except Exception as exc:
        pytest.skip(f"aarch64mte.machine is not importable: {exc}")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "aarch64mte.cli.run", str(elf), "--json",
                           *options], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode != 2, proc.stderr
    data = json.loads(proc.stdout)
    return proc.returncode, data


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_same_output_and_exit_status_as_qemu(built, name):
    elf = built[name]
    q_status, q_out = run_qemu(elf)
    assert "FAIL" not in q_out or q_status != 0      # the oracle itself is consistent
    status, data = run_ours(elf, PROGRAMS[name][1])
    assert data["exit"]["reason"] == "semihost-exit", data["exit"]
    assert data["console"] == q_out
    assert status == q_status
