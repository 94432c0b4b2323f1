"""`aarch64mte gdbserver` in a subprocess, and gdb-multiarch in batch mode against it: what the
GDB suites share.

The stub's stderr (its "listening on" line, and with `-v` its packet log) goes to a file, never
to a pipe nobody reads, and its temporary files to their own directory, so a test can check
that none are left behind.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import requires_tool, tool

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "asm" / "debug_demo.S"
GDB = tool("gdb-multiarch")
needs_gdb = requires_tool("gdb-multiarch")


class StubProcess:
    """`aarch64mte gdbserver PROGRAM --port 0 EXTRA...`; `port` is the one it chose, `tmp` its
    TMPDIR, `proc` the process. `stop()` ends it with SIGTERM, as a user would, and returns its
    exit status."""

    def __init__(self, tmp: Path, program: Path = DEMO, *extra: str, cwd: Path = None):
        self.tmp = tmp / "tmpdir"
        self.tmp.mkdir()
        self.log = tmp / "stub.stderr"
        env = dict(os.environ, TMPDIR=str(self.tmp),
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.err = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aarch64mte.cli.main", "gdbserver", str(program), "--port",
             "0", *extra], stdout=subprocess.DEVNULL, stderr=self.err, env=env, cwd=cwd)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"listening on [\d.]+:(\d+)", self.log.read_text())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gdbserver did not start: {self.log.read_text()}")

    def stderr(self) -> str:
        """What the stub has written to stderr so far (with -v, its packet log)."""
        if not self.err.closed:
            self.err.flush()
        return self.log.read_text()

    packets = stderr

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.err.close()
        return self.proc.wait(timeout=10)

    close = stop


def gdb(port: int, *commands: str, timeout: int = 30) -> str:
    """gdb-multiarch -batch connected to the stub at `port`, running `commands`: its output."""
    args = [GDB, "-q", "-batch", "-nx", "-ex", "set confirm off",
            "-ex", f"target remote 127.0.0.1:{port}"]
    for c in commands:
        args += ["-ex", c]
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return out.stdout + out.stderr
