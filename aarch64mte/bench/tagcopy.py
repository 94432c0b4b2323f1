"""The tag-copy benchmark: LDG/STG loops in user space against LDGM/STGM behind a kernel entry.

Every measurement runs ``asm/tagcopy/tagcopy.S`` on the emulator (``Machine(count_classes=True)``)
and reads its counters: instructions by class, tag granules read and written, data bytes moved,
exceptions taken and returned. A run of the program's ``noop`` routine (boot, nothing, exit) is
the baseline subtracted from every run, so a method's counts are exactly its own.

Four operations, each done two ways:

=========  ==========================================  ===========================================
operation  user-space method (EL0, no kernel entry)    bulk method
=========  ==========================================  ===========================================
read       ``read_ldg``: LDG per granule -> byte/tag    ``read_ldgm``: SVC; LDGM per GMID block
write      ``write_stg``: byte/tag -> STG per granule   ``write_stgm``: SVC; STGM per GMID block
clear      ``clear_stg``: STG per granule + DC ZVA      ``clear_gzva``: DC GZVA per block (EL0 too)
copy       ``copy_el0``: LDG + LDP + STGP per granule   ``copy_el1``: SVC; LDP/STP + LDGM/STGM
=========  ==========================================  ===========================================

Every run is checked: the tags (and data) each method produced must equal the expected pattern
and therefore each other; a mismatch raises ``BenchError`` naming the first differing granule.

Counts are linear in pages with a constant per-call part. The bench measures a few page counts
per (operation, method, GMID_EL1.BS), fits the line exactly through them (``cost.model.
fit_linear`` fails if any measured point is off the line) and reports the other page counts
from the fit, marking which rows were measured.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from aarch64mte.cost import model as cm

PAGE = 4096
GRANULE = 16
GRANULES_PER_PAGE = PAGE // GRANULE
TAG_SHIFT = 56

REPO_ROOT = Path(__file__).resolve().parents[2]
# bench/tagcopy.S links to asm/tagcopy/tagcopy.S, so an installed package carries the program
# (package data); in a checkout this resolves to the file in asm/.
PROGRAM = (Path(__file__).resolve().parent / "tagcopy.S").resolve()

# Where the pages live: inside the snippet profile's RAM (0x4000_0000, 128 MiB), clear of the
# image at 0x4008_0000. 16 MiB per region allows 4096 pages.
SRC_BASE = 0x4100_0000
DST_BASE = 0x4200_0000
BUF_BASE = 0x4300_0000
REGION = 16 << 20
MAX_PAGES = REGION // PAGE

CLEAR_TAG = 0x5              # the logical tag the clears write (pointer bits 59:56)

DEFAULT_PAGES = tuple(2 ** k for k in range(11))           # 1 .. 1024 reported
DEFAULT_MEASURE = (1, 2, 4, 8, 16, 32, 64)                  # measured; the rest from the fit
QUICK_PAGES = (1, 2, 4, 8, 16, 64, 256, 1024)
QUICK_MEASURE = (1, 2, 3)
DEFAULT_BS = (2, 3, 4, 5, 6)
QUICK_BS = (2, 4, 6)


class BenchError(RuntimeError):
    """A run that did not end cleanly, or two methods that disagree."""


@dataclass(frozen=True)
class Operation:
    name: str
    loop: str                 # EL0 routine: user-space method
    bulk: str                 # routine of the bulk method
    bulk_kernel_pages: int    # pages the kernel must look up per page (0: bulk runs at EL0)
    title: str


OPERATIONS: dict[str, Operation] = {
    "read": Operation("read", "read_ldg", "read_ldgm", 1,
                      "read tags to a byte buffer: LDG loop vs SVC + LDGM"),
    "write": Operation("write", "write_stg", "write_stgm", 1,
                       "restore tags from a byte buffer: STG loop vs SVC + STGM"),
    "clear": Operation("clear", "clear_stg", "clear_gzva", 0,
                       "clear pages (data and tags): DC ZVA + STG loop vs DC GZVA"),
    "copy": Operation("copy", "copy_el0", "copy_el1", 1,
                      "copy pages with tags: LDG+LDP+STGP loop vs SVC + LDP/STP + LDGM/STGM"),
}


# ------------------------------------------------------------------------------------------
# Running one routine

def counters_dict(counters) -> dict:
    """The machine's counters as a plain dict (they may be a dataclass)."""
    if hasattr(counters, "as_dict"):
        return counters.as_dict()
    if isinstance(counters, dict):
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in counters.items()}
    return dict(vars(counters))


_IMAGE_CACHE: dict = {}


def program_image(path: Path = PROGRAM):
    """The assembled program, assembled once per process."""
    key = str(path)
    if key not in _IMAGE_CACHE:
        from aarch64mte.assembler import assemble_file
        _IMAGE_CACHE[key] = assemble_file(str(path))
    return _IMAGE_CACHE[key]


def new_machine(gmid_bs: int, image=None):
    from aarch64mte.machine import Machine
    m = Machine(profile="snippet", el=1, tcf="sync", gmid_bs=gmid_bs, count_classes=True)
    m.load_image(image if image is not None else program_image())
    return m


def dczid_block_log2(image=None) -> int:
    """DCZID_EL0.BS of the emulated CPU (DC ZVA/GVA/GZVA block = 4 << BS bytes)."""
    m = new_machine(4, image)
    return m.reg("dczid_el0") & 0xF


def run_routine(routine: str, gmid_bs: int, x0: int = 0, x1: int = 0, x2: int = 0,
                prepare: Optional[Callable] = None, max_insns: int = 50_000_000,
                image=None):
    """Run one EL0 routine of the program; returns (machine, counters dict)."""
    m = new_machine(gmid_bs, image)
    if routine not in m.symbols:
        raise BenchError(f"{PROGRAM.name} has no routine '{routine}'")
    if prepare is not None:
        prepare(m)
    for reg, value in (("x0", x0), ("x1", x1), ("x2", x2), ("x5", m.symbols[routine])):
        m.set_reg(reg, value)
    r = m.run(max_insns=max_insns)
    if r.reason != "semihost-exit" or r.code != 0:
        detail = ""
        if r.exception is not None:
            detail = f"; exception {r.exception}"
        elif r.reason == "semihost-exit" and r.code and r.code >= 100:
            detail = (f"; unexpected exception, vector {r.code - 100}, ESR 0x{m.reg('x21'):x}, "
                      f"FAR 0x{m.reg('x22'):x}, ELR 0x{m.reg('x23'):x}")
        raise BenchError(f"{routine} (BS={gmid_bs}, x0=0x{x0:x}, x1={x1}) ended with "
                         f"{r.reason} code={r.code} at pc=0x{r.pc:x}{detail}")
    return m, counters_dict(m.counters)


# ------------------------------------------------------------------------------------------
# Test patterns and checks

def tag_pattern(granules: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(16) for _ in range(granules))


def data_pattern(nbytes: int, seed: int) -> bytes:
    return random.Random(seed ^ 0x5EED).randbytes(nbytes)


def _first_difference(got: bytes, want: bytes) -> int:
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return i
    return min(len(got), len(want))


def _require_equal(what: str, got: bytes, want: bytes, unit: str = "granule"):
    if bytes(got) != bytes(want):
        i = _first_difference(bytes(got), bytes(want))
        g = got[i] if i < len(got) else None
        w = want[i] if i < len(want) else None
        raise BenchError(f"{what}: {unit} {i} is {g!r}, expected {w!r} "
                         f"(lengths {len(got)} and {len(want)})")


@dataclass
class RunRecord:
    op: str
    routine: str
    method: str           # 'loop' or 'bulk'
    gmid_bs: int
    pages: int
    counters: dict        # baseline already subtracted
    result: bytes = b""   # what the method produced (tags of the pages, or the byte buffer)


def run_operation(op: Operation, method: str, pages: int, gmid_bs: int, seed: int = 1,
                  image=None) -> RunRecord:
    """Run one method of one operation on `pages` pages and check what it produced.

    Returns the raw counters (the caller subtracts the baseline) and the produced tags."""
    routine = op.loop if method == "loop" else op.bulk
    if not 0 <= pages <= MAX_PAGES:
        raise BenchError(f"pages must be 0..{MAX_PAGES}, not {pages}")
    granules = pages * GRANULES_PER_PAGE
    tags = tag_pattern(granules, seed)
    nbytes = pages * PAGE

    if op.name == "read":
        def prep(m):
            m.write_tags(SRC_BASE, tags)
        m, c = run_routine(routine, gmid_bs, SRC_BASE, pages, BUF_BASE, prep, image=image)
        out = m.read_mem(BUF_BASE, granules) if granules else b""
        _require_equal(f"{routine} BS={gmid_bs} pages={pages}: tag bytes", out, tags)
    elif op.name == "write":
        def prep(m):
            if granules:
                m.write_mem(BUF_BASE, tags)
                m.write_tags(SRC_BASE, bytes(granules))
        m, c = run_routine(routine, gmid_bs, SRC_BASE, pages, BUF_BASE, prep, image=image)
        out = bytes(m.read_tags(SRC_BASE, nbytes)) if granules else b""
        _require_equal(f"{routine} BS={gmid_bs} pages={pages}: tags", out, tags)
    elif op.name == "clear":
        def prep(m):
            if granules:
                m.write_tags(SRC_BASE, tags)
                m.write_mem(SRC_BASE, data_pattern(nbytes, seed))
        ptr = SRC_BASE | (CLEAR_TAG << TAG_SHIFT)
        m, c = run_routine(routine, gmid_bs, ptr, pages, 0, prep, image=image)
        out = bytes(m.read_tags(SRC_BASE, nbytes)) if granules else b""
        _require_equal(f"{routine} BS={gmid_bs} pages={pages}: tags", out,
                       bytes([CLEAR_TAG]) * granules)
        data = bytes(m.read_mem(SRC_BASE, nbytes)) if granules else b""
        _require_equal(f"{routine} BS={gmid_bs} pages={pages}: data", data, bytes(nbytes),
                       "byte")
    elif op.name == "copy":
        src_data = data_pattern(nbytes, seed)

        def prep(m):
            if granules:
                m.write_tags(SRC_BASE, tags)
                m.write_mem(SRC_BASE, src_data)
                m.write_tags(DST_BASE, bytes(granules))
        m, c = run_routine(routine, gmid_bs, SRC_BASE, pages, DST_BASE, prep, image=image)
        out = bytes(m.read_tags(DST_BASE, nbytes)) if granules else b""
        _require_equal(f"{routine} BS={gmid_bs} pages={pages}: destination tags", out, tags)
        data = bytes(m.read_mem(DST_BASE, nbytes)) if granules else b""
        _require_equal(f"{routine} BS={gmid_bs} pages={pages}: destination data", data,
                       src_data, "byte")
    else:
        raise BenchError(f"unknown operation {op.name}")
    return RunRecord(op.name, routine, method, gmid_bs, pages, c, out)


def baseline(gmid_bs: int, image=None) -> dict:
    _, c = run_routine("noop", gmid_bs, image=image)
    return c


def method_counters(raw: dict, base: dict, gmid_bs: int, dczid_bs: int = 4) -> dict:
    """A method's own counters: the run minus the baseline. The machine counts the
    tag-storage traffic of the tag instructions (``tag_granules_read/written``) and, apart,
    the granules its tag checks compared (``checked_granules_read/written``)."""
    return cm.subtract(raw, base)


# ------------------------------------------------------------------------------------------
# The sweep

@dataclass
class Fit:
    op: str
    method: str
    routine: str
    gmid_bs: int
    fit: cm.LinearFit
    measured: dict = field(default_factory=dict)    # pages -> counters (baseline subtracted)


@dataclass
class SweepResult:
    fits: list
    profiles: list
    pages: tuple
    measure: tuple
    bs_values: tuple
    ops: tuple
    seed: int

    def fit_for(self, op: str, method: str, bs: int) -> Fit:
        for f in self.fits:
            if f.op == op and f.method == method and f.gmid_bs == bs:
                return f
        raise KeyError((op, method, bs))


def sweep(ops: Sequence[str] = tuple(OPERATIONS), bs_values: Sequence[int] = DEFAULT_BS,
          measure: Sequence[int] = DEFAULT_MEASURE, pages: Sequence[int] = DEFAULT_PAGES,
          profiles: Sequence[str] = (cm.DEFAULT_PROFILE,), seed: int = 1,
          progress: Optional[Callable[[str], None]] = None,
          on_total: Optional[Callable[[int], None]] = None) -> SweepResult:
    """Measure every (operation, method, BS) at the `measure` page counts and fit lines.

    Raises BenchError when a run fails or two methods disagree, NotLinear when a measured point
    is off the line of the others."""
    measure = tuple(sorted(set(measure)))
    if len(measure) < 2:
        raise BenchError("measure at least two page counts (three to check linearity)")
    if max(measure) > MAX_PAGES or max(pages) > MAX_PAGES * 1024:
        raise BenchError(f"at most {MAX_PAGES} pages can be measured")
    loaded = [cm.load_profile(p) for p in profiles]
    image = program_image()
    total = len(bs_values) * (1 + len(ops) * 2 * len(measure))
    if on_total:
        on_total(total)
    fits = []
    dczid_bs = dczid_block_log2(image)
    for bs in bs_values:
        base = baseline(bs, image)
        if progress:
            progress(f"BS={bs} baseline")
        for name in ops:
            op = OPERATIONS[name]
            results = {}
            for method in ("loop", "bulk"):
                points = {}
                for n in measure:
                    rec = run_operation(op, method, n, bs, seed=seed + n, image=image)
                    points[n] = method_counters(rec.counters, base, bs, dczid_bs)
                    results.setdefault(n, {})[method] = rec.result
                    if progress:
                        progress(f"BS={bs} {rec.routine} pages={n}")
                fit = cm.fit_linear(points)
                fits.append(Fit(name, method, op.loop if method == "loop" else op.bulk, bs,
                                fit, points))
            for n, by_method in results.items():
                _require_equal(f"{name} BS={bs} pages={n}: {op.loop} vs {op.bulk}",
                               by_method["loop"], by_method["bulk"])
    return SweepResult(fits, loaded, tuple(pages), measure, tuple(bs_values), tuple(ops), seed)


# ------------------------------------------------------------------------------------------
# Reporting

def lines_for(result: SweepResult, op: str, bs: int, profile: cm.Profile):
    o = OPERATIONS[op]
    lf = result.fit_for(op, "loop", bs)
    bf = result.fit_for(op, "bulk", bs)
    return (cm.cost_line(lf.fit, profile, 0),
            cm.cost_line(bf.fit, profile, o.bulk_kernel_pages))


def table_rows(result: SweepResult) -> list[dict]:
    """One row per (profile, operation, BS, pages, method)."""
    rows = []
    for profile in result.profiles:
        for op in result.ops:
            o = OPERATIONS[op]
            for bs in result.bs_values:
                loop_line, bulk_line = lines_for(result, op, bs, profile)
                for n in result.pages:
                    for method, line, kp in (("loop", loop_line, 0),
                                             ("bulk", bulk_line, o.bulk_kernel_pages)):
                        f = result.fit_for(op, method, bs)
                        c = f.fit.at(n)
                        cyc = line.at(n)
                        rows.append({
                            "profile": profile.name, "op": op, "method": method,
                            "routine": f.routine, "gmid_bs": bs, "pages": n,
                            "measured": n in f.measured,
                            "insns": c["insns"],
                            "exceptions": c["exceptions_taken"],
                            "tag_granules_read": c["tag_granules_read"],
                            "tag_granules_written": c["tag_granules_written"],
                            "data_bytes": c["data_bytes_read"] + c["data_bytes_written"],
                            "cycles": round(cyc, 2),
                            "cycles_per_page": round(cyc / n, 2),
                        })
    return rows


def crossovers(result: SweepResult) -> list[dict]:
    out = []
    for profile in result.profiles:
        for op in result.ops:
            for bs in result.bs_values:
                loop_line, bulk_line = lines_for(result, op, bs, profile)
                n = cm.crossover(loop_line, bulk_line)
                # the kernel's per-page work the bulk method can afford and still win per page
                own = bulk_line.per_page - OPERATIONS[op].bulk_kernel_pages * profile.kernel_per_page
                budget = loop_line.per_page - own if OPERATIONS[op].bulk_kernel_pages else None
                out.append({
                    "profile": profile.name, "op": op, "gmid_bs": bs,
                    "loop_const": round(loop_line.const, 2),
                    "loop_per_page": round(loop_line.per_page, 2),
                    "bulk_const": round(bulk_line.const, 2),
                    "bulk_per_page": round(bulk_line.per_page, 2),
                    "ratio_1": round(bulk_line.at(1) / loop_line.at(1), 3),
                    "ratio_limit": round(bulk_line.per_page / loop_line.per_page, 3),
                    "crossover": n,
                    "kernel_page_budget": None if budget is None else round(budget, 1),
                })
    return out


def count_table(result: SweepResult) -> str:
    """Profile-independent: the measured lines, instructions and tag traffic per call and page
    (tag granules moved by the tag instructions, derived from the class counts)."""
    hdr = (f"{'op':6} {'method':11} {'BS':>2} {'insns/call':>10} {'insns/page':>10} "
           f"{'exc/call':>8} {'tags r/page':>11} {'tags w/page':>11}")
    lines = [hdr, "-" * len(hdr)]
    for op in result.ops:
        for bs in result.bs_values:
            for method in ("loop", "bulk"):
                f = result.fit_for(op, method, bs)
                k, s = f.fit.const, f.fit.per_page
                lines.append(
                    f"{op:6} {f.routine:11} {bs:>2} {str(k['insns']):>10} "
                    f"{str(s['insns']):>10} {str(k['exceptions_taken']):>8} "
                    f"{str(s['tag_granules_read']):>11} {str(s['tag_granules_written']):>11}")
    return "\n".join(lines)


def crossover_table(result: SweepResult) -> str:
    hdr = (f"{'profile':19} {'op':6} {'BS':>2} {'loop cyc/page':>13} {'bulk cyc/page':>13} "
           f"{'bulk/loop @1':>12} {'@limit':>7} {'crossover':>10} {'budget':>7}")
    lines = [hdr, "-" * len(hdr)]
    for c in crossovers(result):
        n = c["crossover"]
        cross = "never" if n is None else ("1 (always)" if n == 1 else str(n))
        lines.append(
            f"{c['profile']:19} {c['op']:6} {c['gmid_bs']:>2} "
            f"{c['loop_per_page']:>13.1f} {c['bulk_per_page']:>13.1f} "
            f"{c['ratio_1']:>12.3f} {c['ratio_limit']:>7.3f} {cross:>10} "
            f"{'-' if c['kernel_page_budget'] is None else format(c['kernel_page_budget'], '.0f'):>7}")
    return "\n".join(lines)


def sweep_table(result: SweepResult, profile: Optional[str] = None, op: str = "read") -> str:
    """Instructions and modelled cycles per page at each page count, loop vs bulk, one
    profile and operation; '*' marks measured rows (the rest come from the exact fit)."""
    profile = profile or result.profiles[0].name
    rows = [r for r in table_rows(result) if r["profile"] == profile and r["op"] == op]
    hdr = (f"{'pages':>5}  {'BS':>2}  {'loop insns':>11} {'bulk insns':>11}  "
           f"{'loop cyc/pg':>11} {'bulk cyc/pg':>11} {'ratio':>6}")
    lines = [f"{op} -- {OPERATIONS[op].title} -- profile {profile}", hdr, "-" * len(hdr)]
    for bs in result.bs_values:
        for n in result.pages:
            lr = next(r for r in rows if r["gmid_bs"] == bs and r["pages"] == n
                      and r["method"] == "loop")
            br = next(r for r in rows if r["gmid_bs"] == bs and r["pages"] == n
                      and r["method"] == "bulk")
            mark = "*" if lr["measured"] and br["measured"] else " "
            ratio = br["cycles"] / lr["cycles"] if lr["cycles"] else float("nan")
            lines.append(f"{n:>5}{mark} {bs:>2}  {lr['insns']:>11} {br['insns']:>11}  "
                         f"{lr['cycles_per_page']:>11.1f} {br['cycles_per_page']:>11.1f} "
                         f"{ratio:>6.3f}")
    return "\n".join(lines)


def write_outputs(result: SweepResult, out_dir: Path, stem: str = "tagcopy",
                  plot: bool = True, plot_path: Optional[Path] = None) -> dict:
    import csv
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table_rows(result)
    paths = {}
    csv_path = out_dir / f"{stem}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    paths["csv"] = csv_path
    doc = {
        "program": str(PROGRAM.relative_to(REPO_ROOT)),
        "model": "cycles = sum(by_class[c]*cpi[c]) + exceptions*entry + erets*return + "
                 "exceptions*kernel.per_call + kernel_pages*kernel.per_page + memory terms",
        "measured_pages": list(result.measure),
        "reported_pages": list(result.pages),
        "gmid_bs": list(result.bs_values),
        "seed": result.seed,
        "fits": [{
            "op": f.op, "method": f.method, "routine": f.routine, "gmid_bs": f.gmid_bs,
            "measured_pages": sorted(f.measured),
            "const": {k: str(v) for k, v in sorted(f.fit.const.items()) if v},
            "per_page": {k: str(v) for k, v in sorted(f.fit.per_page.items()) if v},
        } for f in result.fits],
        "crossovers": crossovers(result),
        "profiles": [{"name": p.name, "description": p.description,
                      "exception_entry": p.exception_entry,
                      "exception_return": p.exception_return,
                      "kernel_per_call": p.kernel_per_call,
                      "kernel_per_page": p.kernel_per_page} for p in result.profiles],
        "rows": rows,
    }
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(doc, indent=1))
    paths["json"] = json_path
    if plot:
        paths["plot"] = make_plot(result, plot_path or out_dir / f"{stem}.png")
    return paths


def make_plot(result: SweepResult, path: Path, profile: Optional[str] = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = next((p for p in result.profiles if p.name == profile), result.profiles[0])
    ops = list(result.ops)
    cols = 2 if len(ops) > 1 else 1
    nrows = (len(ops) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(6.2 * cols, 4.2 * nrows), squeeze=False)
    xs = sorted(set(result.pages) | set(result.measure))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, op in zip(axes.flat, ops):
        loop_drawn = False
        for i, bs in enumerate(result.bs_values):
            loop_line, bulk_line = lines_for(result, op, bs, prof)
            if not loop_drawn:
                ax.plot(xs, [loop_line.at(n) / n for n in xs], "k-", lw=2,
                        label=f"{OPERATIONS[op].loop} (EL0)")
                loop_drawn = True
            meas = sorted(result.fit_for(op, "bulk", bs).measured)
            ax.plot(xs, [bulk_line.at(n) / n for n in xs], "--", color=colors[i % len(colors)],
                    label=f"{OPERATIONS[op].bulk} BS={bs}")
            ax.plot(meas, [bulk_line.at(n) / n for n in meas], "o",
                    color=colors[i % len(colors)], ms=4)
        lmeas = sorted(result.fit_for(op, "loop", result.bs_values[0]).measured)
        ax.plot(lmeas, [lines_for(result, op, result.bs_values[0], prof)[0].at(n) / n
                        for n in lmeas], "ko", ms=4)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("pages per call")
        ax.set_ylabel("modelled cycles per page")
        ax.set_title(OPERATIONS[op].title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ops):]:
        ax.set_visible(False)
    fig.suptitle(f"tag copying on aarch64mte, profile {prof.name} "
                 f"(dots: measured page counts; lines: exact linear fit)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
