"""Turning a list of tests into one bare-metal ELF: the test table and bodies as assembly,
assembled and linked with the harness by the GNU cross tools."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

from . import layout
from .model import Test

HARNESS = Path(__file__).resolve().parent / "harness"
MARCH = "-march=armv8.5-a+memtag+lse+rcpc+pauth"
CFLAGS = ["-O2", "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns",
          "-nostdlib", "-mgeneral-regs-only", "-mstrict-align", MARCH,
          "-fno-stack-protector", "-fno-pic", "-g0"]
TOOLS = ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")


class BuildError(Exception):
    pass


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def render(tests: list[Test]) -> str:
    """Assembly for the harness's `tests` table and the bodies."""
    out = ["\t.section .rodata", "\t.balign 8", "\t.globl tests, tests_count",
           f"tests_count: .quad {len(tests)}", "tests:"]
    bodies = ['\t.section .text.tests, "ax"', "\t.balign 4"]
    for i, t in enumerate(tests):
        b = f"body_{i}"
        out.append(f"\t.quad {t.id}, {t.sctlr():#x}, {t.tcr():#x}, {t.gcr:#x}, {t.rgsr:#x}, "
                   f"{t.seed:#x}, {b}, {b}_end - {b}")
        out.append("\t.quad " + ", ".join("%#x" % v for v in t.x))
        out.append(f"\t.quad {t.sp:#x}, {b}, {t.spsr():#x}")
        pokes = list(t.pokes)[:4] + [(-1, 0)] * (4 - len(t.pokes[:4]))
        out.append("\t.quad " + ", ".join(f"{o & (2**64 - 1):#x}, {v:#x}" for o, v in pokes))
        for k in range(0, layout.GRANULES, 64):
            out.append("\t.byte " + ",".join(str(v) for v in t.tags[k:k + 64]))
        bodies.append(f"{b}:")
        bodies.extend("\t" + insn.text for insn in t.body)
        bodies.append(f"\tsvc #{layout.END_SVC:#x}")
        bodies.append(f"{b}_end:")
    return "\n".join(out + bodies) + "\n"


def _run(cmd: list[str], what: str) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise BuildError(f"{what} failed: {p.stderr.strip()[:2000]}")


def harness_objects(cache: Path) -> list[Path]:
    """start.o and harness.o, built once per harness source version into `cache`."""
    h = hashlib.sha256()
    for name in ("start.S", "harness.c", "link.ld"):
        h.update((HARNESS / name).read_bytes())
    h.update(" ".join(CFLAGS).encode())
    d = cache / ("harness-" + h.hexdigest()[:12])
    objs = [d / "start.o", d / "harness.o"]
    if not all(o.exists() for o in objs):
        d.mkdir(parents=True, exist_ok=True)
        me = f"{os.getpid()}.{threading.get_ident()}"
        tmp = [d / f"start.{me}.o", d / f"harness.{me}.o"]
        _run(["aarch64-linux-gnu-gcc", MARCH, "-c", str(HARNESS / "start.S"), "-o", str(tmp[0])],
             "assembling the harness")
        _run(["aarch64-linux-gnu-gcc", *CFLAGS, "-c", str(HARNESS / "harness.c"), "-o",
              str(tmp[1])], "compiling the harness")
        for t, o in zip(tmp, objs):
            os.replace(t, o)
    return objs


def build(tests: list[Test], elf: Path, cache: Path) -> Path:
    """Build `elf` from `tests`; the assembly is kept beside it (`.S`)."""
    objs = harness_objects(cache)
    src = elf.with_suffix(".S")
    obj = elf.with_suffix(".o")
    src.write_text(render(tests))
    _run(["aarch64-linux-gnu-as", MARCH, "-o", str(obj), str(src)], "assembling the tests")
    _run(["aarch64-linux-gnu-ld", "-T", str(HARNESS / "link.ld"), "--no-warn-rwx-segments",
          "-o", str(elf), *map(str, objs), str(obj)], "linking")
    obj.unlink()
    return elf
