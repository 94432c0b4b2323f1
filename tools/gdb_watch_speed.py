#!/usr/bin/env python3
"""Time a write watchpoint through gdb-multiarch on a loop: `watch` on a variable the loop
writes once, after N iterations that write another variable, then `continue` until GDB reports
the change. A stub without Z2 support refuses GDB's hardware watchpoint, and GDB then needs
`set can-use-hw-watchpoints 0`: a software watchpoint, which single-steps every instruction;
with Z2 the loop runs at the machine's speed.

    tools/gdb_watch_speed.py --iterations 20000 [--baseline /path/to/other/checkout]

`--baseline` runs the stub of another checkout too (for a before/after comparison, with a
software watchpoint where that stub refuses Z2); the program is the same. `--same-page` puts
the loop's variable on the watched variable's page (each of its stores then stops the engine
and runs alone)."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = """
    .text
    .globl _start
_start:
    adr     x0, watched
    adr     x1, other
    movz    x2, #{lo}
    movk    x2, #{hi}, lsl #16
loop:
    str     x2, [x1]
    add     x3, x3, x2
    subs    x2, x2, #1
    b.ne    loop
    str     x3, [x0]            // the watched store, after the loop
    ret
    .data
    .balign 16
watched: .quad 7
{gap}
other:   .quad 0
"""


class NoHardwareWatchpoints(Exception):
    pass


def run(tree: str, iterations: int, same_page: bool, gdb: str, software: bool = False
        ) -> float:
    with tempfile.TemporaryDirectory(prefix="watch-speed-") as tmp:
        src = os.path.join(tmp, "loop.S")
        with open(src, "w") as f:
            f.write(PROGRAM.format(lo=iterations & 0xFFFF, hi=iterations >> 16,
                                   gap="" if same_page else "    .balign 4096"))
        env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), TMPDIR=tmp)
        stub = subprocess.Popen([sys.executable, "-m", "aarch64mte.cli.main", "gdbserver", src,
                                 "--port", "0", "--max-insns", str(1 << 40)],
                                stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)
        try:
            port = None
            while port is None:
                line = stub.stderr.readline()
                if not line:
                    raise RuntimeError("the stub did not start")
                m = re.search(r"listening on [\d.]+:(\d+)", line)
                if m:
                    port = int(m.group(1))
            args = [gdb, "-q", "-batch", "-nx", "-ex", "set confirm off",
                    "-ex", f"set can-use-hw-watchpoints {0 if software else 1}",
                    "-ex", f"target remote 127.0.0.1:{port}", "-ex", "watch *(long *)&watched"]
            t0 = time.perf_counter()
            out = subprocess.run(args + ["-ex", "continue", "-ex", "kill"], capture_output=True,
                                 text=True, timeout=3600)
            dt = time.perf_counter() - t0
            if "Could not insert hardware watchpoint" in out.stdout + out.stderr and not software:
                raise NoHardwareWatchpoints
            if "New value" not in out.stdout:
                raise RuntimeError("GDB did not report the watchpoint:\n" + out.stdout[-2000:]
                                   + out.stderr[-2000:])
            return dt
        finally:
            stub.terminate()
            stub.wait(timeout=30)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--tree", default=ROOT, help="checkout whose stub to run (default: this one)")
    p.add_argument("--baseline", help="a second checkout to compare with (e.g. without Z2)")
    p.add_argument("--same-page", action="store_true")
    a = p.parse_args(argv)
    if not 1 <= a.iterations < 1 << 32:
        p.error("--iterations must be 1..2^32-1")
    gdb = shutil.which("gdb-multiarch")
    if gdb is None:
        print("gdb_watch_speed: error: gdb-multiarch is not installed", file=sys.stderr)
        return 2
    t = run(a.tree, a.iterations, a.same_page, gdb)
    print(f"{a.tree}: {a.iterations:,} iterations, watch to stop in {t:.2f} s")
    if a.baseline:
        how = "hardware"
        try:
            b = run(a.baseline, a.iterations, a.same_page, gdb)
        except NoHardwareWatchpoints:
            how = "software"
            b = run(a.baseline, a.iterations, a.same_page, gdb, software=True)
        print(f"{a.baseline} ({how} watchpoint): {b:.2f} s; ratio {b / t:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
