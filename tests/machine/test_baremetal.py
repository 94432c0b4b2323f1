"""The shared bare-metal example runs as under qemu-system-aarch64 -M virt,mte=on -semihosting:
same output, exit code 0 (its exit code is the number of failed checks)."""
import os
import shutil
import subprocess

import pytest

from aarch64mte.machine import Machine

BAREMETAL = "/work/shared/oracles/baremetal"
EXPECTED = ("PASS LDG returns the tag STG stored\nPASS matching store does not fault\n"
            "PASS mismatching load faults once\nPASS ESR says data abort, tag check fault\n")


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-gcc") or not os.path.isdir(BAREMETAL),
                    reason="needs aarch64-linux-gnu-gcc and the shared bare-metal sources")
def test_example_elf_matches_qemu(tmp_path):
    elf = tmp_path / "example.elf"
    subprocess.run([os.path.join(BAREMETAL, "build.sh"), str(elf), "example.c"], check=True)
    m = Machine(profile=None)
    m.load(str(elf))
    r = m.run()
    assert (r.reason, r.code) == ("semihost-exit", 0)
    assert m.console == EXPECTED
    assert [(e.kind, e.esr) for e in m.exception_log] == [("data_abort", 0x96000011)]
