#!/usr/bin/env python3
"""Find the instruction words that crash Unicorn, by translating (or running) them in child
processes and watching the children die.

    tools/engine_words/scan.py pattern:0e400400/9f60c400 --state el1 --state el0-nofp
    tools/engine_words/scan.py random:4000000:1 --state el0 --state el1 --out out.json
    tools/engine_words/scan.py pattern:... --check    # compare with translator_aborts()

Each pool worker builds one engine per state and forks a child from it for a slice of words.
The child writes the index of the word it is about to translate into shared memory before each
one; when a signal kills it (SIGABRT from a QEMU assertion, SIGSEGV, SIGALRM for a hang), the
word at that index is the suspect. The suspect is re-tested alone in a fresh child, which tells
a word that crashes by itself from one that needs what ran before it, and the scan goes on after
it. The result lists every crashing word with the signal and the QEMU source line it reported.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import mmap
import multiprocessing as mp
import os
import re
import signal
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]     # the tools, the package

from spaces import Space  # noqa: E402

TASK = 1 << 15          # words per task handed to a worker
HANG_SECONDS = 20       # a child that gets through no 256 words in this time dies (SIGALRM)
SITE = re.compile(r"([\w./-]+\.(?:c|h|inc)):(\d+)")

_templates: dict = {}   # per worker: state name -> Harness
_progress = None
_errfile = None


def _worker_init() -> None:
    global _progress, _errfile
    _progress = mmap.mmap(-1, 16)
    _errfile = tempfile.TemporaryFile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _template(state_name: str):
    from harness import STATES, Harness
    h = _templates.get(state_name)
    if h is None:
        h = _templates[state_name] = Harness(STATES[state_name])
    return h


def _child(h, words: list[int], start: int, mode: str) -> None:
    """Body of a child: test words[start:], noting each index before its word."""
    from harness import CHUNK
    os.dup2(_errfile.fileno(), 1)         # QEMU's g_assert_not_reached() uses printf
    os.dup2(_errfile.fileno(), 2)
    faulthandler.disable()                # (pytest enables it) an abort here is expected
    prog = _progress
    step = h.run if mode == "run" else h.translate
    i = start
    size = 64                   # a child that follows a crash may well crash again soon:
    while i < len(words):       # lay out a little code first, more as it survives
        batch = words[i:i + size]
        size = min(CHUNK, size * 4)
        h.layout(batch)
        for j in range(len(batch)):
            struct.pack_into("<q", prog, 0, i + j)
            if (j & 0xFF) == 0:
                signal.alarm(HANG_SECONDS)
            step(j)
        i += len(batch)
    signal.alarm(0)


def _fork_test(h, words: list[int], start: int, mode: str) -> tuple[int, int, str]:
    """Run a child over words[start:]; (signal or 0, index reached, stderr tail)."""
    _errfile.seek(0)
    _errfile.truncate()
    struct.pack_into("<q", _progress, 0, -1)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            _child(h, words, start, mode)
        except BaseException as e:       # a Python error is not a crash: report, exit 3
            try:
                os.write(2, f"child error: {e!r}\n".encode())
            except OSError:
                pass
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    idx = struct.unpack_from("<q", _progress, 0)[0]
    _errfile.seek(0)
    err = _errfile.read().decode(errors="replace")
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status), idx, err
    if os.WEXITSTATUS(status) != 0:
        raise RuntimeError(f"scan child failed: {err.strip()[-500:]}")
    return 0, len(words), err


def _site(err: str) -> str:
    m = None
    for m in SITE.finditer(err):
        pass
    if m is None:
        return err.strip().splitlines()[-1][:120] if err.strip() else ""
    return f"{os.path.basename(m.group(1))}:{m.group(2)}"


def run_task(task: tuple) -> dict:
    """Scan words [start, start+count) of a space in one state; the crashes found."""
    spec, start, count, state, mode, confirm, skip_predicted = task
    words = Space(spec).words(start, count)
    skipped = 0
    if skip_predicted:
        from aarch64mte.machine.engine_words import translator_aborts
        kept = [w for w in words if not translator_aborts(w)]
        skipped, words = len(words) - len(kept), kept
    h = _template(state)
    crashes = []
    i = 0
    while i < len(words):
        sig, idx, err = _fork_test(h, words, i, mode)
        if sig == 0:
            break
        if idx < i:
            raise RuntimeError(f"child died before its first word ({signal.Signals(sig).name}):"
                               f" {err.strip()[-300:]}")
        w = words[idx]
        alone = None
        if confirm:
            alone, _, err2 = _fork_test(h, [w], 0, mode)
            err = err2 or err
        crashes.append({"word": f"0x{w:08x}", "signal": signal.Signals(sig).name,
                        "site": _site(err), "alone": None if alone is None else bool(alone),
                        "message": " | ".join(err.split("\n"))[:300].strip()})
        i = idx + 1
    return {"spec": spec, "start": start, "count": len(words), "skipped": skipped,
            "state": state, "mode": mode, "crashes": crashes}


def scan(specs: list[str], states: list[str], mode: str = "translate", jobs: int = 2,
         confirm: bool = True, skip_predicted: bool = False, progress=None) -> dict:
    """Scan every space in every state; returns {'runs': [...], 'crashes': [...]}.
    ``skip_predicted`` leaves out the words ``translator_aborts`` names (each costs a dead
    child process, and forking is the slow part): what remains must not crash at all."""
    tasks = []
    for spec in specs:
        size = Space(spec).size
        for state in states:
            tasks += [(spec, s, min(TASK, size - s), state, mode, confirm, skip_predicted)
                      for s in range(0, size, TASK)]
    runs: dict = {}
    crashes: dict = {}
    t0 = time.time()
    done = 0
    ctx = mp.get_context("fork")
    with ctx.Pool(jobs, initializer=_worker_init) as pool:
        for r in pool.imap_unordered(run_task, tasks):
            key = (r["spec"], r["state"])
            run = runs.setdefault(key, {"space": r["spec"], "state": r["state"], "mode": mode,
                                        "tested": 0, "skipped": 0, "crashed": 0})
            run["tested"] += r["count"]
            run["skipped"] += r["skipped"]
            run["crashed"] += len(r["crashes"])
            for c in r["crashes"]:
                entry = crashes.setdefault(c["word"], {"word": c["word"], "signal": c["signal"],
                                                       "site": c["site"], "states": [],
                                                       "alone": c["alone"],
                                                       "message": c["message"]})
                entry["states"].append(r["state"])
            done += 1
            if progress:
                progress(done, len(tasks), time.time() - t0, runs)
    return {"runs": list(runs.values()), "seconds": round(time.time() - t0, 1),
            "crashes": sorted(crashes.values(), key=lambda c: int(c["word"], 16))}


def check(result: dict, specs: list[str], skip_predicted: bool = False) -> dict:
    """Compare a scan with ``translator_aborts``: crashing words it misses, and tested words it
    names that did not crash (none can be found when the scan skipped the named words)."""
    from aarch64mte.machine.engine_words import translator_aborts
    crashed = {int(c["word"], 16) for c in result["crashes"]}
    missed = sorted(w for w in crashed if not translator_aborts(w))
    false_pos = set()
    if not skip_predicted:
        for spec in specs:
            sp = Space(spec)
            for s in range(0, sp.size, 1 << 16):
                false_pos.update(w for w in sp.words(s, 1 << 16)
                                 if translator_aborts(w) and w not in crashed)
    return {"missed": [f"0x{w:08x}" for w in missed],
            "false_positives": [f"0x{w:08x}" for w in sorted(false_pos)]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("space", nargs="+", help="random:N[:SEED] | pattern:VALUE/MASK | "
                                             "range:LO:HI | file:PATH")
    p.add_argument("--state", action="append",
                   help="engine state (repeatable; default el1 and el0): see harness.STATES")
    p.add_argument("--mode", choices=("translate", "run"), default="translate")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--no-confirm", action="store_true",
                   help="do not re-test each crashing word alone")
    p.add_argument("--check", action="store_true",
                   help="compare with aarch64mte.machine.engine_words.translator_aborts")
    p.add_argument("--skip-predicted", action="store_true",
                   help="leave out the words translator_aborts names (the rest must not crash)")
    p.add_argument("--out", help="write the full result as JSON here")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    from harness import STATES
    states = a.state or ["el1", "el0"]
    for s in states:
        if s not in STATES:
            p.error(f"unknown state {s!r}; known: {', '.join(STATES)}")
    try:
        for spec in a.space:
            Space(spec)
    except (ValueError, OSError) as e:
        p.error(str(e))

    def progress(done, total, secs, runs):
        if not a.quiet:
            tested = sum(r["tested"] for r in runs.values())
            crashed = sum(r["crashed"] for r in runs.values())
            print(f"\r{done}/{total} tasks, {tested} words, {crashed} crashes, "
                  f"{tested / max(secs, 1e-9):,.0f} words/s", end="", file=sys.stderr,
                  flush=True)

    result = scan(a.space, states, a.mode, a.jobs, not a.no_confirm, a.skip_predicted, progress)
    if not a.quiet:
        print(file=sys.stderr)
    if a.check:
        result["check"] = check(result, a.space, a.skip_predicted)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    for r in result["runs"]:
        skipped = f" ({r['skipped']} predicted words left out)" if r["skipped"] else ""
        print(f"{r['space']}  {r['state']}: {r['tested']} words tested, "
              f"{r['crashed']} crashes{skipped}")
    sites: dict = {}
    for c in result["crashes"]:
        sites[c["site"]] = sites.get(c["site"], 0) + 1
    for site, n in sorted(sites.items(), key=lambda kv: -kv[1]):
        print(f"  {n:8d}  {site}")
    if a.check:
        ch = result["check"]
        print(f"check: {len(ch['missed'])} crashing words the predicate misses, "
              f"{len(ch['false_positives'])} predicate-positive words that did not crash")
        return 1 if ch["missed"] or ch["false_positives"] else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
