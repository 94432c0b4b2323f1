#!/usr/bin/env python3
"""Check ``aarch64mte.machine.engine_words.translator_aborts`` against the real engine.

    tools/engine_words/verify.py                       # states el1 and el0, 4 words per key
    tools/engine_words/verify.py --state el1-sve --per-key 16

For each class of aborting words: every word of the encoding region that routes to the aborting
decoder, except the ones the predicate names, is translated and must not crash (no false
negatives in the region); and for every (mask, value) key of the class, ``--per-key`` words with
random register and free fields must each kill their child (no false positives). Forking a
child per crashing word is the slow part, which is why the positives are sampled per key rather
than tested one by one: the QEMU decoders read none of the free fields before they abort.
Exit status 0 when both hold.
"""
from __future__ import annotations

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scan import scan  # noqa: E402

# The table entry of data_proc_simd (translate-a64.c) that routes to each class's decoder.
REGIONS = {
    "asimd-three-same-fp16": "pattern:0e400400/9f60c400",
    "asimd-two-reg-misc-fp16": "pattern:0e780800/8f7e0c00",
}


def positives(per_key: int, seed: int = 0) -> list[int]:
    """``per_key`` words for every key of every class, free bits drawn at random."""
    from aarch64mte.machine.engine_words import CLASSES
    rng = random.Random(seed)
    out = []
    for c in CLASSES:
        for value in sorted(c.results):
            out += [value | (rng.getrandbits(32) & ~c.mask) for _ in range(per_key)]
    return out


def verify(states: list[str], per_key: int = 4, jobs: int = 2, progress=None) -> dict:
    from aarch64mte.machine.engine_words import CLASSES
    assert sorted(REGIONS) == sorted(c.name for c in CLASSES)
    neg = scan(list(REGIONS.values()), states, jobs=jobs, confirm=True, skip_predicted=True,
               progress=progress)
    words = positives(per_key)
    # the positives travel as a words: space, in slices a command line can hold
    specs = ["words:" + ",".join(f"{w:x}" for w in words[i:i + 2048])
             for i in range(0, len(words), 2048)]
    pos = scan(specs, states, jobs=jobs, confirm=False, progress=progress)
    crashed = {(int(c["word"], 16), s) for c in pos["crashes"] for s in c["states"]}
    not_crashed = sorted({f"0x{w:08x}" for w in words for s in states if (w, s) not in crashed})
    return {
        "regions": [{"space": r["space"], "state": r["state"], "tested": r["tested"],
                     "left_out": r["skipped"], "crashed": r["crashed"]} for r in neg["runs"]],
        "false_negatives": [c["word"] for c in neg["crashes"]],
        "positives_tested": len(words) * len(states),
        "false_positives": not_crashed,
        "sites": sorted({c["site"] for c in pos["crashes"]}),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state", action="append", help="engine state (default: el1 and el0)")
    p.add_argument("--per-key", type=int, default=4)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args(argv)
    from harness import STATES
    states = a.state or ["el1", "el0"]
    for s in states:
        if s not in STATES:
            p.error(f"unknown state {s!r}; known: {', '.join(STATES)}")
    r = verify(states, a.per_key, a.jobs)
    for reg in r["regions"]:
        print(f"{reg['space']}  {reg['state']}: {reg['tested']} words translated, "
              f"{reg['crashed']} crashed ({reg['left_out']} predicted words left out)")
    print(f"predicted words run one per child: {r['positives_tested']}, "
          f"did not crash: {len(r['false_positives'])}")
    print(f"abort sites seen: {', '.join(r['sites'])}")
    if r["false_negatives"] or r["false_positives"]:
        print(f"FAILED: missed {r['false_negatives'][:10]}, "
              f"wrongly named {r['false_positives'][:10]}")
        return 1
    print("ok: the predicate matches the engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
