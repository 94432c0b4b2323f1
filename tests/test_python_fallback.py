"""The machine-level tests again with the native library switched off (AARCH64MTE_NATIVE=0), so
that the pure-Python hooks, which run wherever the extension is not built, are tested as fully
as the native ones."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITES = ["tests/machine", "tests/test_tagcheck_properties.py", "tests/test_run_machine.py",
          "tests/test_oracle_departures.py", "tests/test_tagcopy.py"]


@pytest.mark.skipif(os.environ.get("AARCH64MTE_NATIVE") == "0",
                    reason="this run already uses the Python hooks")
@pytest.mark.timeout(900)
def test_machine_suites_pass_on_the_python_hooks():
    env = dict(os.environ, AARCH64MTE_NATIVE="0", PYTHONPATH=str(ROOT))
    env.pop("AARCH64MTE_REQUIRE_NATIVE", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        *SUITES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=880)
    tail = "\n".join(r.stdout.splitlines()[-30:])
    assert r.returncode == 0, tail + r.stderr[-2000:]
