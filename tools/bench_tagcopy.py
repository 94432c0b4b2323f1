#!/usr/bin/env python3
"""The tag-copy benchmark as a script: the same as `aarch64mte bench tagcopy`.

    python3 tools/bench_tagcopy.py --quick
    python3 tools/bench_tagcopy.py --bs 4,6 --profile neoverse-n2 --out bench-out
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aarch64mte.cli.bench import add_tagcopy_arguments, run_tagcopy  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_tagcopy.py",
        description="LDG/STG user loops vs LDGM/STGM behind a kernel entry, on the emulator")
    add_tagcopy_arguments(parser)
    return run_tagcopy(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
