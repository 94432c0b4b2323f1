#!/usr/bin/env python3
"""`aarch64mte bench core` from a checkout: the emulator's speed against raw Unicorn and QEMU on
the same bare-metal programs, as ratios and rates against their targets. Every option is the
command's (--help lists them). Example: tools/bench_core.py --repeat 3 --path both"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aarch64mte.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", "core", *sys.argv[1:]]))
