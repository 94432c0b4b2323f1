#!/usr/bin/env python3
"""Time ``aborting_offsets`` and ``translator_aborts`` on 4 KiB pages of different kinds.

    tools/engine_words/bench.py [--repeat 5]

Prints the best time per page (microseconds) for each kind: real code (the .text of the
project's assembled examples when present), random words, NEON-heavy words, pages full of FP16
three-same words, and pages where every word aborts (the worst case).
"""
from __future__ import annotations

import argparse
import glob
import os
import random
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from aarch64mte.machine.engine_words import aborting_offsets, translator_aborts  # noqa: E402

PAGE_WORDS = 1024


def _page(words) -> bytes:
    return b"".join(struct.pack("<I", w & 0xFFFFFFFF) for w in words)


def pages() -> dict:
    rng = random.Random(1)
    out = {
        "nops": _page([0xD503201F] * PAGE_WORDS),
        "random words": _page(rng.getrandbits(32) for _ in range(PAGE_WORDS)),
        "NEON top bytes": _page((rng.getrandbits(24)) | rng.choice([0x0E, 0x4E, 0x1E, 0x5E, 0x6E,
                                                                    0x2E]) << 24
                                for _ in range(PAGE_WORDS)),
        "all FP16 three-same": _page((rng.getrandbits(32) & ~0x9F60C400) | 0x0E400400
                                     for _ in range(PAGE_WORDS)),
        "all aborting": _page([0x4E562DBA] * PAGE_WORDS),
    }
    text = b""
    for path in sorted(glob.glob(os.path.join(ROOT, "asm", "**", "*.S"), recursive=True))[:40]:
        try:
            from aarch64mte.assembler import assemble_file
            for seg in assemble_file(path).segments:
                if "x" in seg.flags:
                    text += bytes(seg.data)
        except Exception:
            continue
    if len(text) >= 4096:
        out["project .text"] = text[:4096]
    return out


def best(fn, repeat: int, inner: int) -> float:
    t_best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        t_best = min(t_best, (time.perf_counter() - t) / inner)
    return t_best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    print(f"{'page (4 KiB)':24s} {'aborting':>8s} {'aborting_offsets':>17s} "
          f"{'translator_aborts x1024':>24s}")
    for name, page in pages().items():
        words = struct.unpack(f"<{len(page) // 4}I", page)
        n = len(aborting_offsets(page))
        t_page = best(lambda: aborting_offsets(page), a.repeat, 200)
        t_words = best(lambda: [w for w in words if translator_aborts(w)], a.repeat, 50)
        print(f"{name:24s} {n:8d} {t_page * 1e6:14.1f} us {t_words * 1e6:21.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
