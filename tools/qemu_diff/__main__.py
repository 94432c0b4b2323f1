"""python -m tools.qemu_diff: differential MTE tests of aarch64mte against QEMU 10.

  run --count N --jobs J --out DIR [--seed S]   the deep run (resumes from DIR)
  repro FILE.json [--shrink]                    run one saved test on both sides
  show --seed S [--count N] [--start I]         print generated tests
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from . import campaign, gen, report, runner
from .evaluate import Sides, evaluate
from .model import Test
from .program import BuildError
from .shrink import minimize


def _positive(s: str) -> int:
    try:
        v = int(s, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {s}")
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.qemu_diff", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the deep differential run")
    r.add_argument("--count", type=_positive, default=20000)
    r.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--seed", type=lambda s: int(s, 0), default=None)
    r.add_argument("--chunk", type=_positive, default=250, help="tests per ELF")
    r.add_argument("--no-shrink", action="store_true")
    r.add_argument("--shrink-time", type=_positive, default=600,
                   help="seconds after which shrinking stops where it is (default 600)")
    r.add_argument("--emu-dir", default=os.getcwd(),
                   help="directory to run `python -m aarch64mte.cli.main` from (default: here)")
    p = sub.add_parser("repro", help="run one saved test (a repro/*.json) on both sides")
    p.add_argument("file", type=Path)
    p.add_argument("--shrink", action="store_true", help="shrink it first")
    p.add_argument("--emu-dir", default=os.getcwd())
    s = sub.add_parser("show", help="print generated tests")
    s.add_argument("--seed", type=lambda v: int(v, 0), required=True)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("--count", type=_positive, default=5)
    a = ap.parse_args(argv)

    if a.cmd == "show":
        for t in gen.generate_many(a.seed, a.start, a.count):
            print(f"# test {t.id}")
            print("\n".join(report.render_test(t)))
        return 0
    missing = runner.missing_tools()
    if missing:
        print(f"qemu_diff: needs {', '.join(missing)} on PATH", file=sys.stderr)
        return 2
    try:
        if a.cmd == "run":
            text = campaign.run(a.out, a.count, a.jobs, a.seed, a.chunk, a.emu_dir,
                                shrink=not a.no_shrink, shrink_time=a.shrink_time)
            print(text.split("== Reproducers ==")[0])
            print(f"report: {a.out / 'report.txt'}")
            return 0
        try:
            data = json.loads(a.file.read_text())
            t = Test.from_json(data["test"] if "test" in data else data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"qemu_diff: {a.file}: not a saved test ({exc})", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            sides = Sides(Path(tmp) / "work", Path(tmp) / "cache", a.emu_dir)
            v = evaluate([t], sides)[0]
            if a.shrink and v.status != "agree":
                v = minimize([v], sides)[0]
        print(f"{v.status}" + (f": {v.signature}" if v.signature else "")
              + (f" (explained by {v.rule})" if v.rule else ""))
        print("\n".join(report.render_test(v.test, v.k if v.status != "agree" else None)))
        if v.status != "agree":
            print("QEMU:")
            print("\n".join(report.render_result(v.test, v.q)))
            print("aarch64mte:")
            print("\n".join(report.render_result(v.test, v.e)))
        return 0 if v.status != "disagree" else 1
    except (campaign.StateError, BuildError) as exc:
        print(f"qemu_diff: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"qemu_diff: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
