"""`aarch64mte bench core`: how fast the emulator runs tag-heavy code, as ratios in one run.

Each row is one bare-metal program (`core_boot.S` + the row's source; see core_engines.py for
how each engine runs it), run on the emulator, on raw Unicorn 2.1.4 (no hooks, same CPU model,
RAM and bytes, MTE instructions as NOPs) and, where installed, on QEMU 10 system mode:

=========  ==================================================================  ===============
row        program                                                             target
=========  ==================================================================  ===============
untagged   loads/stores sweeping a 4 KiB page, MMU off: nothing checked         >= 0.9x raw
checked    the same sweep through tag 5 over a page all of tag 5: all checked   >= 0.8x raw
mixed      the same sweep over a page of 16 tags, each granule through its tag  >= 5M accesses/s
mte        IRG, GMI, ADDG, STG, STZG, ST2G, LDG, SUBG, SUBP, CMPP, STGP loop    >= 5M MTE insn/s
pages      LDGM save, DC GZVA clear, STGM restore of 4 pages (Linux's routines) >= 20M granules/s
malloc     a tagging allocator (IRG + ST2G on malloc and on free) under load    <= 20x QEMU time
=========  ==================================================================  ===============

Raw Unicorn has no MTE: where a row's loop holds MTE instructions its raw time is only a
reference and the row's figure is a rate. QEMU's start-up is subtracted by timing the program at
two sizes and dividing the difference by the difference in iterations. Every run's checksums
are compared: the work checksum (trip counts and the data loaded and stored) across all engines,
the tag checksum (what the MTE instructions produced) between the emulator and QEMU.

Times are best-of-``repeat``, CPU time of the run by default (the machine this runs on is
usually shared), wall time with ``clock="wall"``. ``paths`` picks the emulator's native hooks,
its pure-Python paths, or both; with both, each path runs in its own process with
AARCH64MTE_NATIVE set, and QEMU runs once in this one.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from aarch64mte.bench import core_engines as engines
from aarch64mte.bench.core_engines import BenchError

PATHS = ("native", "python")
CLOCKS = ("cpu", "wall")
MAX_ITERATIONS = 1_000_000_000
MAX_SCALE = 1000.0
MAX_REPEAT = 100
QEMU_MIN_DIFF_S = 0.25          # QEMU's two sizes must differ by at least this much time
QEMU_MAX_FACTOR = 256           # ... the larger adding at most this many times the row's
                                # own iteration count


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    source: str                         # the row's .S file beside this module
    equs: tuple                         # (name, value) pairs for the .equ lines
    iterations: int                     # at scale 1 on the native path
    python_share: float                 # the Python path runs this fraction of them
    kind: str                           # 'ratio' (vs raw), 'rate' (units/s), 'qemu' (time)
    target: float
    unit: str                           # what the rate counts
    per_iteration: int                  # units per iteration
    insn_bound: int                     # instructions per iteration, at most (the run's limit)
    raw_nops: str                       # MTE instructions raw Unicorn runs as NOPs: none
                                        # (''), in the 'set-up' or in the 'loop'

    def iterations_at(self, scale: float, path: str) -> int:
        share = self.python_share if path == "python" else 1.0
        return max(1, round(self.iterations * scale * share))

    def image(self, iterations: int):
        return engines.build(self.source, self.equs, iterations)

    @property
    def target_text(self) -> str:
        if self.kind == "ratio":
            return f">= {self.target:g}x raw"
        if self.kind == "rate":
            return f">= {si(self.target)} {self.unit}/s"
        return f"<= {self.target:g}x QEMU's time"


SWEEP = "core_sweep.S"
ROWS: tuple = (
    Row("untagged", "loads and stores sweeping a 4 KiB page with the MMU off (Untagged "
        "memory): nothing is checked", SWEEP,
        (("TAGGED_MAP", 0), ("PAGE_TAG", 0), ("TAG_STEP", 0), ("COLOUR", 0)),
        20_000, 1.0, "ratio", 0.9, "accesses", 512, 1160, ""),
    Row("checked", "the same sweep through tag 5 over a page whose 256 granules all hold "
        "tag 5: every access checked, all pass", SWEEP,
        (("TAGGED_MAP", 1), ("PAGE_TAG", 5), ("TAG_STEP", 0), ("COLOUR", 1)),
        20_000, 0.1, "ratio", 0.8, "checked accesses", 512, 1160, "set-up"),
    Row("mixed", "the same sweep over a page whose granules carry 16 different tags, each "
        "reached through a pointer with its tag", SWEEP,
        (("TAGGED_MAP", 1), ("PAGE_TAG", 3), ("TAG_STEP", 5), ("COLOUR", 1)),
        5_000, 0.04, "rate", 5e6, "checked accesses", 512, 1160, "set-up"),
    Row("mte", "IRG, GMI, ADDG, STG, STZG, ST2G, LDG, SUBG, SUBP, CMPP and STGP colouring "
        "64-byte objects (11 of 22 instructions)", "core_mte.S", (("TAGGED_MAP", 1),),
        200_000, 0.025, "rate", 5e6, "MTE instructions", 11, 32, "loop"),
    Row("pages", "Linux's page routines over 4 pages: save tags (LDGM), clear (DC GZVA), "
        "restore tags (STGM); 3 x 256 granules a page", "core_pages.S", (("TAGGED_MAP", 1),),
        500, 0.1, "rate", 20e6, "granules", 4 * 3 * 256, 4096, "loop"),
    Row("malloc", "a tagging allocator: malloc/free/use of 32-128-byte objects, IRG + ST2G "
        "on malloc and on free, checked loads and stores", "core_malloc.S",
        (("TAGGED_MAP", 1),), 200_000, 0.025, "qemu", 20.0, "operations", 1, 64, "loop"),
)
ROW_NAMES = tuple(r.name for r in ROWS)


def row(name: str) -> Row:
    return next(r for r in ROWS if r.name == name)


# --- formatting numbers -----------------------------------------------------------------------

def si(x: float) -> str:
    """5000000 -> '5M', 1234567 -> '1.23M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def ratio(x: Optional[float]) -> str:
    """Three significant digits, whatever the size: never '0.000x'."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}x" if x < 1000 else f"{x:,.0f}x"


# --- one path: emulator and raw Unicorn, in this process --------------------------------------

def measure_path(rows: Sequence[Row], path: str, iterations: Dict[str, int], repeat: int,
                 clock: str, progress: Optional[Callable[[str], None]] = None) -> Dict[str, dict]:
    """Run every row `repeat` times on the emulator (this path) and on raw Unicorn, alternating
    -> {row name: measurement}. Raises BenchError when a program does not run to its end."""
    out = {}
    for r in rows:
        n = iterations[r.name]
        image = r.image(n)
        emu, raw = [], []
        for i in range(repeat):
            if progress:
                progress(f"{r.name} on the emulator ({path}) and raw Unicorn, run {i + 1} of "
                         f"{repeat}")
            try:
                e = engines.run_emulator(image, path == "native",
                                         r.insn_bound * n + 1_000_000, clock)
                emu.append(e)
                raw.append(engines.run_raw(image, 60 + 20 * e.seconds, clock))
            except BenchError as exc:
                raise BenchError(f"{r.name} ({path}, {n:,} iterations): {exc}") from None
        out[r.name] = {
            "path": path, "iterations": n, "insns": emu[0].insns,
            "seconds": min(e.seconds for e in emu), "raw_seconds": min(x.seconds for x in raw),
            "runs": {"emulator": [e.seconds for e in emu], "raw": [x.seconds for x in raw]},
            "checksums": emu[0].checksums.as_dict(),
            "raw_checksums": raw[0].checksums.as_dict(),
            "repeatable": (len({e.checksums for e in emu}) == 1
                           and len({x.checksums.work for x in raw}) == 1),
        }
    return out


def measure_path_in_child(rows: Sequence[Row], path: str, argv_tail: List[str]) -> Dict[str, dict]:
    """`measure_path` in a fresh interpreter with AARCH64MTE_NATIVE set for `path`."""
    root = str(Path(__file__).resolve().parents[2])
    pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, AARCH64MTE_NATIVE="1" if path == "native" else "0",
               PYTHONPATH=os.pathsep.join([root] + pythonpath))
    cmd = [sys.executable, "-m", "aarch64mte.cli.main", "bench", "core", "--path", path,
           "--no-qemu", "--json", "--only", ",".join(r.name for r in rows), *argv_tail]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode not in (0, 1) or not p.stdout.strip():
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"the {path} path's process failed (exit status {p.returncode}): "
                         f"{last}")
    report = json.loads(p.stdout)
    return {r["name"]: r["paths"][path] for r in report["rows"]}


# --- QEMU -------------------------------------------------------------------------------------

def measure_qemu(exe: str, r: Row, n: int, also: Sequence[int], repeat: int, clock: str,
                 progress: Optional[Callable[[str], None]] = None) -> dict:
    """QEMU's time per iteration of row `r`: the program at n and at a larger size chosen so the
    difference is at least QEMU_MIN_DIFF_S; (t(big) - t(n)) / (big - n), best of `repeat` at
    each size. Also QEMU's checksums at n and at every size in `also`."""
    def timed(size: int, est: float) -> engines.Run:
        if progress:
            progress(f"{r.name} on QEMU, {size:,} iterations")
        return engines.run_qemu(exe, r.image(size), 60 + 20 * est, clock)

    try:
        small = [timed(n, 1.0)]
        # the larger size adds at least the row's own iteration count, whatever n is, and grows
        # until the two differ by enough time to measure
        delta, cap = max(4 * n, r.iterations), r.iterations * QEMU_MAX_FACTOR
        big = [timed(n + delta, 5 * small[0].seconds)]
        while big[0].seconds - small[0].seconds < QEMU_MIN_DIFF_S and delta < cap:
            diff = max(big[0].seconds - small[0].seconds, 1e-3)
            grow = min(64, max(2, math.ceil(1.5 * QEMU_MIN_DIFF_S / diff)))
            delta = min(cap, delta * grow)
            big = [timed(n + delta, small[0].seconds + 2 * grow * diff)]
        big_n = n + delta
        for _ in range(repeat - 1):
            small.append(timed(n, small[0].seconds))
            big.append(timed(big_n, big[0].seconds))
        sums = {n: small[0].checksums}
        for size in also:
            if size not in sums:
                sums[size] = timed(size, small[0].seconds).checksums
    except BenchError as exc:
        raise BenchError(f"{r.name} (QEMU): {exc}") from None
    t_small, t_big = min(x.seconds for x in small), min(x.seconds for x in big)
    per_iter = (t_big - t_small) / (big_n - n)
    return {
        "sizes": [n, big_n], "seconds": [t_small, t_big],
        "seconds_per_iteration": per_iter if per_iter > 0 else None,
        "checksums": {str(k): v.as_dict() for k, v in sums.items()},
        "repeatable": len({x.checksums for x in small}) == 1,
    }


# --- figures ----------------------------------------------------------------------------------

def figures(r: Row, m: dict, q: Optional[dict]) -> dict:
    """The derived numbers of one path's measurement `m` of row `r` (QEMU's `q` if any)."""
    n, t, raw_t = m["iterations"], m["seconds"], m["raw_seconds"]
    rate = r.per_iteration * n / t if t > 0 else math.inf
    vs_raw = raw_t / t if t > 0 else math.inf
    qemu_t = vs_qemu = None
    if q is not None and q["seconds_per_iteration"] is not None:
        qemu_t = q["seconds_per_iteration"] * n
        vs_qemu = qemu_t / t if t > 0 else math.inf
    if r.kind == "ratio":
        value, met = vs_raw, vs_raw >= r.target
    elif r.kind == "rate":
        value, met = rate, rate >= r.target
    else:
        value = t / qemu_t if qemu_t else None
        met = None if value is None else value <= r.target
    agree_raw = m["checksums"]["work"] == m["raw_checksums"]["work"]
    agree_qemu = None
    if q is not None and str(n) in q["checksums"]:
        agree_qemu = q["checksums"][str(n)] == m["checksums"]
    return dict(m, rate=rate, vs_raw=vs_raw, qemu_seconds=qemu_t, vs_qemu=vs_qemu, value=value,
                met=met, agree={"raw": agree_raw, "qemu": agree_qemu,
                                "repeats": m["repeatable"]})


# --- the whole benchmark ----------------------------------------------------------------------

@dataclass
class Options:
    rows: List[str] = field(default_factory=lambda: list(ROW_NAMES))
    paths: List[str] = field(default_factory=lambda: ["native"])
    iterations: Optional[int] = None    # every row, every path; else scale * the row's own
    scale: float = 1.0
    repeat: int = 3
    qemu: str = "auto"                  # 'auto' (where installed), 'on' (required), 'off'
    clock: str = "cpu"
    in_process: bool = True             # one path, measured here (else: child processes)


def host() -> dict:
    import unicorn
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {"cpus": os.cpu_count(), "load": load, "python": platform.python_version(),
            "unicorn": unicorn.__version__, "machine": platform.machine()}


def run(opts: Options, progress: Optional[Callable[[str], None]] = None) -> dict:
    """Measure and return the report (what --json prints; `core_table.table` formats it)."""
    rows = [row(n) for n in ROW_NAMES if n in opts.rows]
    before = host()
    measured: Dict[str, Dict[str, dict]] = {r.name: {} for r in rows}
    for path in opts.paths:
        iters = {r.name: opts.iterations or r.iterations_at(opts.scale, path) for r in rows}
        if opts.in_process:
            got = measure_path(rows, path, iters, opts.repeat, opts.clock, progress)
        else:
            if progress:
                progress(f"the {path} path, in its own process")
            tail = ["--repeat", str(opts.repeat), "--clock", opts.clock]
            tail += (["--iterations", str(opts.iterations)] if opts.iterations
                     else ["--scale", repr(opts.scale)])
            got = measure_path_in_child(rows, path, tail)
        for name, m in got.items():
            measured[name][path] = m
    qemu_info = None
    exe = engines.qemu_path() if opts.qemu != "off" else None
    if exe:
        qemu_info = {"path": exe, "version": engines.qemu_version(exe),
                     "command": "qemu-system-aarch64 -M virt,mte=on -cpu max -m 128M "
                                "-semihosting -kernel PROGRAM.elf"}
    out_rows = []
    for r in rows:
        ms = measured[r.name]
        q = None
        if exe:
            sizes = sorted({m["iterations"] for m in ms.values()})
            ref = ms["native"]["iterations"] if "native" in ms else sizes[0]
            q = measure_qemu(exe, r, ref, sizes, opts.repeat, opts.clock, progress)
        out_rows.append({
            "name": r.name, "what": r.what, "kind": r.kind, "target": r.target,
            "target_text": r.target_text, "unit": r.unit, "per_iteration": r.per_iteration,
            "raw_mte_as_nops": r.raw_nops or None, "qemu": q,
            "paths": {p: figures(r, m, q) for p, m in ms.items()},
        })
    agree = all(all(v is not False for v in f["agree"].values())
                for x in out_rows for f in x["paths"].values())
    missed = [f"{x['name']}/{p}" for x in out_rows for p, f in x["paths"].items()
              if f["met"] is False]
    return {
        "benchmark": "aarch64mte bench core", "paths": list(opts.paths), "clock": opts.clock,
        "repeat": opts.repeat, "scale": None if opts.iterations else opts.scale,
        "iterations": opts.iterations, "gmid_bs": engines.GMID_BS,
        "host": dict(before, load_after=host()["load"]), "qemu": qemu_info,
        "raw": "Unicorn 2.1.4, MAX CPU, RAM 128 MiB at 0x40000000, the same bytes with every "
               "MTE instruction a NOP, no hooks, from the entry to `done`",
        "rows": out_rows, "checksums_agree": agree, "missed": missed,
    }
