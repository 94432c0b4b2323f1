"""A guest-fuzz campaign for a set time: ``python -m tools.guest_fuzz --minutes 30``.

Runs batches of every area in turn (random words at EL0/EL1 under every TCF, and the grammar
areas), alternating the native and the pure-Python paths, in one child process at a time (the
machine is shared: one core). Prints a table of cases and findings per area and path, every
finding with its case (``--show ID`` prints a case's program again), and writes them all as
JSON with ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.guest_fuzz import gen, runner  # noqa: E402


def case_by_id(case_id: str, max_insns: int) -> dict:
    area, seed, index = case_id.split(":")
    return gen.cases(area, int(index) + 1, int(seed), max_insns=max_insns)[int(index)]


def campaign(minutes: float, seed: int, batch: int, paths, areas, max_insns: int, log) -> dict:
    stop = time.monotonic() + 60 * minutes
    counts = defaultdict(Counter)          # (area, path) -> Counter(kind)
    findings = []
    round_ = 0
    maxrss = 0
    while time.monotonic() < stop:
        for area in areas:
            for native in paths:
                if time.monotonic() >= stop:
                    break
                path = "native" if native else "python"
                s = seed + round_
                if area == "words":
                    cases = [c for el in (0, 1) for tcf in gen.TCF_MODES
                             for c in gen.cases(area, batch // 8, s * 8 + 2 * el
                                                + gen.TCF_MODES.index(tcf), el=el, tcf=tcf,
                                                max_insns=max_insns)]
                else:
                    budget = min(max_insns, 400) if area == "excloop" else max_insns
                    cases = gen.cases(area, batch, s, max_insns=budget)
                out = runner.run(cases, native=native, batch=batch)
                maxrss = max(maxrss, out.maxrss_kb)
                c = counts[(area, path)]
                c["cases"] += len(cases)
                for f in out.findings:
                    why = runner.known(f)
                    c["known" if why else "new"] += 1
                    c[f.kind] += 1
                    findings.append({"path": path, "known": why, "kind": f.kind,
                                     "detail": f.detail, "alone": f.alone, "case": f.case})
                    log(f"{'known' if why else 'NEW'} [{path}] {f.summary()[:300]}")
        round_ += 1
    return {"seed": seed, "minutes": minutes, "rounds": round_, "max_child_rss_kb": maxrss,
            "counts": {f"{a}/{p}": dict(c) for (a, p), c in sorted(counts.items())},
            "findings": findings}


def table(report: dict) -> str:
    kinds = sorted({k for c in report["counts"].values() for k in c} - {"cases", "known", "new"})
    head = f"{'area/path':<18} {'cases':>7} {'new':>5} {'known':>6} " + " ".join(
        f"{k:>10}" for k in kinds)
    rows = [head]
    total = Counter()
    for name, c in report["counts"].items():
        total.update(c)
        rows.append(f"{name:<18} {c.get('cases', 0):>7} {c.get('new', 0):>5} "
                    f"{c.get('known', 0):>6} " + " ".join(f"{c.get(k, 0):>10}" for k in kinds))
    rows.append(f"{'total':<18} {total['cases']:>7} {total['new']:>5} {total['known']:>6} "
                + " ".join(f"{total[k]:>10}" for k in kinds))
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.guest_fuzz",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    ap.add_argument("--batch", type=int, default=96, help="cases per child process")
    ap.add_argument("--max-insns", type=int, default=2000)
    ap.add_argument("--area", action="append", choices=gen.AREAS,
                    help="only these areas (repeatable; default all)")
    ap.add_argument("--path", action="append", choices=("native", "python"),
                    help="only these paths (default both)")
    ap.add_argument("--out", help="write the report as JSON here")
    ap.add_argument("--show", metavar="ID", help="print the case ID (area:seed:index) and exit")
    args = ap.parse_args(argv)
    if args.show:
        case = case_by_id(args.show, args.max_insns)
        print(json.dumps({k: v for k, v in case.items() if k != "source"}))
        print(case.get("source", f".inst {case.get('word', 0):#010x}"))
        return 0
    paths = [p == "native" for p in (args.path or ["native", "python"])]
    areas = args.area or list(gen.AREAS)
    print(f"seed {args.seed}, {args.minutes} minutes", flush=True)
    report = campaign(args.minutes, args.seed, args.batch, paths, areas, args.max_insns,
                      lambda line: print(line, flush=True))
    print(table(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 1 if any(not f["known"] for f in report["findings"]) else 0


if __name__ == "__main__":
    sys.exit(main())
