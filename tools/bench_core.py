#!/usr/bin/env python3
"""Core speed benchmark: untagged, tag-checked and MTE-instruction loops, as ratios against raw
Unicorn (and QEMU system mode with --qemu). Example: tools/bench_core.py --iterations 500000"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aarch64mte.bench.core import WORKLOADS, format_table, run_core_bench  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--iterations", type=int, default=1_000_000,
                   help="loop iterations (the MTE loop runs 1/20 of them)")
    p.add_argument("--repeat", type=int, default=3, help="runs per engine; the best counts")
    p.add_argument("--qemu", action="store_true", help="also time qemu-system-aarch64")
    p.add_argument("--only", action="append", choices=[w.name for w in WORKLOADS])
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    a = p.parse_args(argv)
    rows = run_core_bench(a.iterations, a.repeat, qemu=a.qemu, only=a.only)
    print(json.dumps(rows, indent=2) if a.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
