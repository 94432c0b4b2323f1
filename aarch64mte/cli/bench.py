"""`aarch64mte bench`: the project's benchmarks.

    aarch64mte bench tagcopy [--quick] [--bs 2,4,6] [--profile neoverse-n2 ...] [--pages ...]
                             [--measure ...] [--out DIR] [--plot FILE] [--no-plot]
    aarch64mte bench core [--iterations N | --scale F] [--repeat N] [--only ROW,...]
                          [--path native|python|both] [--qemu | --no-qemu] [--clock cpu|wall]
                          [--json | --markdown]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from aarch64mte.errors import InputError, host_failures


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = []
        for part in text.split(","):
            part = part.strip()
            if ".." in part:
                lo, hi = part.split("..")
                lo, hi = int(lo, 0), int(hi, 0)
                values.extend(range(lo, hi + 1))
            elif part:
                values.append(int(part, 0))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4 or 2..6, not {text!r}")
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, not {text!r}")
    return tuple(values)


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def add_tagcopy_arguments(p: argparse.ArgumentParser) -> None:
    from aarch64mte.bench import tagcopy as tc
    from aarch64mte.cost import model as cm
    p.add_argument("--quick", action="store_true",
                   help=f"small sweep: BS {','.join(map(str, tc.QUICK_BS))}, measure pages "
                        f"{','.join(map(str, tc.QUICK_MEASURE))}")
    p.add_argument("--bs", type=_int_list, metavar="LIST",
                   help="GMID_EL1.BS values to run, e.g. 2..6 or 4,6 (default 2..6)")
    p.add_argument("--profile", type=_str_list, metavar="LIST", dest="profiles",
                   help=f"cost profiles (names or TOML paths; default: all of "
                        f"{', '.join(cm.list_profiles())})")
    p.add_argument("--ops", type=_str_list, metavar="LIST",
                   help=f"operations (default all: {','.join(tc.OPERATIONS)})")
    p.add_argument("--pages", type=_int_list, metavar="LIST",
                   help="page counts to report (default 1,2,4,...,1024)")
    p.add_argument("--measure", type=_int_list, metavar="LIST",
                   help="page counts to emulate; the others come from the exact linear fit "
                        "through these (default 1,2,4,...,64; at least 3 to check linearity)")
    p.add_argument("--all-measured", action="store_true",
                   help="emulate every reported page count (slow for large counts)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random tag/data patterns")
    p.add_argument("--out", type=Path, default=Path("bench-out"), metavar="DIR",
                   help="directory for tagcopy.csv and tagcopy.json (default bench-out)")
    p.add_argument("--plot", type=Path, metavar="FILE",
                   help="where to write the plot (default DIR/tagcopy.png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH")
    sub.required = True
    tc = sub.add_parser("tagcopy", help="LDG/STG user loops vs LDGM/STGM behind a kernel entry",
                        description="Run the tag-copy programs on the emulator across page "
                                    "counts, GMID_EL1.BS and cost profiles; print the modelled "
                                    "cost and the crossover page count.")
    add_tagcopy_arguments(tc)
    core = sub.add_parser(
        "core", help="emulator speed against raw Unicorn and QEMU, as ratios",
        description="Run each benchmark program on the emulator, on raw Unicorn (no hooks, "
                    "MTE instructions as NOPs) and on QEMU system mode where installed; print "
                    "the ratios and rates against their targets.")
    add_core_arguments(core)


def add_core_arguments(p: argparse.ArgumentParser) -> None:
    """`bench core`'s options. Values are checked by run_core (one line, exit status 2), so
    every one is taken as text here."""
    from aarch64mte.bench.core import ROW_NAMES
    p.add_argument("--iterations", metavar="N",
                   help="iterations of every row's program, on every path (default: each "
                        "row's own count times --scale; the Python path runs fewer)")
    p.add_argument("--scale", metavar="F",
                   help="multiply each row's own iteration count by F (default 1)")
    p.add_argument("--repeat", metavar="N", help="runs per engine; the best counts (default 3)")
    p.add_argument("--only", metavar="ROW[,ROW]",
                   help=f"run only these rows ({', '.join(ROW_NAMES)})")
    p.add_argument("--path", metavar="native|python|both",
                   help="the emulator's native hooks, its Python paths, or both, each in its "
                        "own process (default: native where built)")
    p.add_argument("--qemu", dest="qemu", action="store_const", const="on", default="auto",
                   help="require QEMU (default: use it where installed)")
    p.add_argument("--no-qemu", dest="qemu", action="store_const", const="off",
                   help="do not run QEMU")
    p.add_argument("--clock", metavar="cpu|wall",
                   help="CPU time of each run (default; robust on a shared machine) or wall "
                        "time")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--markdown", action="store_true",
                   help="print the figures as a Markdown table (for a README)")

    def one_line_error(message: str):
        print(f"aarch64mte bench core: {message}", file=sys.stderr)
        raise SystemExit(2)
    p.error = one_line_error


def run_tagcopy(args: argparse.Namespace, out=None) -> int:
    from aarch64mte.bench import tagcopy as tc
    from aarch64mte.cost import model as cm
    out = out or sys.stdout
    quick = bool(getattr(args, "quick", False))
    bs = args.bs or (tc.QUICK_BS if quick else tc.DEFAULT_BS)
    bad = [b for b in bs if not 2 <= b <= 6]
    if bad:
        print(f"error: GMID_EL1.BS must be 2..6, not {bad}", file=sys.stderr)
        return 2
    pages = args.pages or (tc.QUICK_PAGES if quick else tc.DEFAULT_PAGES)
    measure = args.measure or (tc.QUICK_MEASURE if quick else tc.DEFAULT_MEASURE)
    if args.all_measured:
        measure = tuple(sorted(set(pages) | set(measure)))
    for what, values, lo, hi in (("--pages", pages, 1, tc.MAX_PAGES * 1024),
                                 ("--measure", measure, 1, tc.MAX_PAGES)):
        bad = [v for v in values if not lo <= v <= hi]
        if bad:
            print(f"error: {what}: page counts are {lo}..{hi}, not {bad}", file=sys.stderr)
            return 2
    _check_outputs(args)
    ops = args.ops or tuple(tc.OPERATIONS)
    unknown = [o for o in ops if o not in tc.OPERATIONS]
    if unknown:
        print(f"error: unknown operation(s) {unknown}; known: {', '.join(tc.OPERATIONS)}",
              file=sys.stderr)
        return 2
    profiles = args.profiles or tuple(
        [cm.DEFAULT_PROFILE] + [p for p in cm.list_profiles() if p != cm.DEFAULT_PROFILE])
    try:
        for p in profiles:
            cm.load_profile(p)
    except cm.ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    progress_cm = None
    if not args.no_progress:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)
        progress_cm = Progress(TextColumn("{task.description:<34}"), BarColumn(),
                               MofNCompleteColumn(), TimeElapsedColumn(),
                               transient=True)
    try:
        if progress_cm is not None:
            with progress_cm as bar:
                task = bar.add_task("tagcopy", total=None)
                result = tc.sweep(
                    ops, bs, measure, pages, profiles, seed=args.seed,
                    progress=lambda d: bar.update(task, advance=1, description=d),
                    on_total=lambda n: bar.update(task, total=n))
        else:
            result = tc.sweep(ops, bs, measure, pages, profiles, seed=args.seed)
    except tc.BenchError as e:
        print(f"tagcopy: FAILED: {e}", file=sys.stderr)
        return 1
    except cm.NotLinear as e:
        print(f"tagcopy: FAILED: counts are not linear in pages: {e}", file=sys.stderr)
        return 1

    print(f"aarch64mte bench tagcopy: program {tc.PROGRAM.relative_to(tc.REPO_ROOT)}", file=out)
    print(f"measured (emulated) page counts: {', '.join(map(str, result.measure))}; every "
          f"other page count is the exact linear fit through them, which every measured point "
          f"matched exactly.", file=out)
    print("every run checked: both methods produced the expected tags (and data), hence the "
          "same ones.\n", file=out)
    print("Counts per call (constant part) and per page, baseline (boot + exit) subtracted:",
          file=out)
    print(tc.count_table(result), file=out)
    print("", file=out)
    print("Model: cycles = sum(count[class] * cpi[class]) + exceptions*(entry + kernel.per_call)"
          " + erets*return + kernel_pages*kernel.per_page  (profiles in aarch64mte/cost/"
          "profiles/)", file=out)
    print(tc.crossover_table(result), file=out)
    print("crossover: smallest pages per call from which the bulk method is never dearer; "
          "budget: kernel cycles per page (lookup, pinning) the bulk method can spend and still "
          "beat the loop per page -- negative: it loses even with free page lookups.",
          file=out)
    print("", file=out)
    first = result.profiles[0].name
    for op in result.ops:
        print(tc.sweep_table(result, first, op), file=out)
        print("", file=out)
    with host_failures(str(args.out), "cannot write the results"):
        paths = tc.write_outputs(result, args.out, plot=not args.no_plot, plot_path=args.plot)
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=out)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Before a sweep that can take minutes: the output directory can be made and the plot
    path names a file (matplotlib would write 'DIR.png' beside a directory)."""
    with host_failures(str(args.out), "cannot write the results there"):
        args.out.mkdir(parents=True, exist_ok=True)
    if args.plot is not None and not args.no_plot:
        if args.plot.is_dir():
            raise InputError("is a directory; --plot names the image file to write",
                             str(args.plot))
        if not args.plot.parent.is_dir():
            raise InputError(f"no directory {args.plot.parent} to write the plot in",
                             str(args.plot))


def _whole(option: str, text: str, lo: int, hi: int) -> int:
    try:
        v = int(text.replace("_", ""), 0)
    except ValueError:
        v = None
    if v is None or not lo <= v <= hi:
        raise InputError(f"{option}: expected a whole number from {lo:,} to {hi:,}, not {text!r}")
    return v


def core_options(args: argparse.Namespace):
    """The checked options of `bench core` (InputError: one line, exit status 2)."""
    from aarch64mte.bench import core
    opts = core.Options(qemu=args.qemu)
    if args.iterations is not None and args.scale is not None:
        raise InputError("--iterations and --scale: give one or the other")
    if args.iterations is not None:
        opts.iterations = _whole("--iterations", args.iterations, 1, core.MAX_ITERATIONS)
    if args.scale is not None:
        try:
            opts.scale = float(args.scale)
        except ValueError:
            opts.scale = math.nan
        if not 0 < opts.scale <= core.MAX_SCALE:
            raise InputError(f"--scale: expected a number above 0 and at most "
                             f"{core.MAX_SCALE:g}, not {args.scale!r}")
    if args.repeat is not None:
        opts.repeat = _whole("--repeat", args.repeat, 1, core.MAX_REPEAT)
    if args.only is not None:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in core.ROW_NAMES]
        if unknown or not names:
            raise InputError(f"--only: unknown row{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(unknown) or repr(args.only)}; the rows are "
                             f"{', '.join(core.ROW_NAMES)}")
        opts.rows = names
    if args.clock is not None:
        if args.clock not in core.CLOCKS:
            raise InputError(f"--clock: expected cpu or wall, not {args.clock!r}")
        opts.clock = args.clock
    path = args.path
    if path is not None and path not in core.PATHS + ("both",):
        raise InputError(f"--path: expected native, python or both, not {path!r}")
    active = _native_active()
    if path == "native" and not active or path == "both" and not _native_built():
        why = ("is not in use here (AARCH64MTE_NATIVE=0)" if path == "native" and
               _native_built() and os.environ.get("AARCH64MTE_NATIVE") == "0" else
               "is not built, or not for this source")
        raise InputError(f"--path {path}: the native extension {why}; build it with "
                         f"`python setup.py build_ext --inplace` or `pip install .`")
    if path is None:
        path = "native" if active else "python"
    opts.paths = list(core.PATHS) if path == "both" else [path]
    opts.in_process = path != "both"
    if opts.qemu == "on" and core.engines.qemu_path() is None:
        raise InputError(f"--qemu: {core.engines.QEMU} is not installed")
    return opts


def _native_active() -> bool:
    """Would a Machine built now use the native hooks?"""
    from aarch64mte.machine import native
    try:
        return native.library() is not None
    except RuntimeError:                # AARCH64MTE_NATIVE=1 and no library
        return False


def _native_built() -> bool:
    import importlib.util
    return importlib.util.find_spec("aarch64mte.machine._native") is not None


def _progress(text: str) -> None:
    print(f"\r\x1b[Kbench core: {text}", end="", file=sys.stderr, flush=True)


def run_core(args: argparse.Namespace) -> int:
    from aarch64mte.bench import core, core_table
    opts = core_options(args)
    progress = _progress if sys.stderr.isatty() else None
    try:
        report = core.run(opts, progress)
    except core.BenchError as e:
        if progress:
            print("\r\x1b[K", end="", file=sys.stderr)
        print(f"bench core: FAILED: {e}", file=sys.stderr)
        return 1
    if progress:
        print("\r\x1b[K", end="", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(report, indent=1))
    elif args.markdown:
        print(core_table.markdown(report))
    else:
        print(core_table.table(report))
    return 0 if report["checksums_agree"] else 1


def main(args: argparse.Namespace) -> int:
    if args.bench == "tagcopy":
        return run_tagcopy(args)
    if args.bench == "core":
        return run_core(args)
    print(f"unknown benchmark {args.bench!r}", file=sys.stderr)
    return 2
