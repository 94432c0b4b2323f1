"""The deep run: many tests in chunks over a process pool, resumable, then one shrunk
reproducer per class and the report.

State in OUT: `state.json` (seed and chunk size, which must not change between resumptions),
`chunks/NNNNNN.json` (one per finished chunk: how many agreed, and every explained or
disagreeing verdict), `shrunk.json` (signature -> shrunk verdict), `report.txt`,
`repro/*.json` (each class's reproducer, for `python -m tools.qemu_diff repro`)."""
from __future__ import annotations

import collections
import json
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from . import gen, report, runner
from .evaluate import Sides, Verdict, evaluate
from .shrink import minimize


class StateError(Exception):
    pass


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _sides(out: Path, emu_cwd: str) -> Sides:
    return Sides(out / "work" / f"p{os.getpid()}", out / "cache", emu_cwd)


def run_chunk(out: str, seed: int, index: int, start: int, n: int, emu_cwd: str) -> int:
    outp = Path(out)
    tests = gen.generate_many(seed, start, n)
    verdicts = evaluate(tests, _sides(outp, emu_cwd))
    data = {"index": index, "start": start, "n": n,
            "agree": sum(v.status == "agree" for v in verdicts),
            "verdicts": [v.to_json() for v in verdicts if v.status != "agree"]}
    _write_json(outp / "chunks" / f"{index:06d}.json", data)
    return index


def shrink_group(out: str, verdicts: list[dict], emu_cwd: str, deadline: float) -> list[dict]:
    vs = [Verdict.from_json(v) for v in verdicts]
    return [v.to_json() for v in minimize(vs, _sides(Path(out), emu_cwd), deadline)]


def load_state(out: Path, seed: int | None, chunk: int) -> dict:
    sp = out / "state.json"
    if sp.exists():
        st = json.loads(sp.read_text())
        if seed is not None and seed != st["seed"]:
            raise StateError(f"{out} holds a run with seed {st['seed']}, not {seed}")
        if chunk != st["chunk"]:
            raise StateError(f"{out} holds a run with chunk size {st['chunk']}, not {chunk}")
        return st
    st = {"seed": seed if seed is not None else int(time.time()) & 0xFFFFFFFF, "chunk": chunk}
    out.mkdir(parents=True, exist_ok=True)
    _write_json(sp, st)
    return st


def collect(out: Path) -> tuple[dict, dict[str, list[Verdict]]]:
    summary = {"agree": 0, "explained": collections.Counter(), "disagree": collections.Counter()}
    by_sig: dict[str, list[Verdict]] = collections.defaultdict(list)
    for p in sorted((out / "chunks").glob("*.json")):
        d = json.loads(p.read_text())
        summary["agree"] += d["agree"]
        for vj in d["verdicts"]:
            v = Verdict.from_json(vj)
            if v.status == "explained":
                summary["explained"][v.rule] += 1
            else:
                summary["disagree"][v.signature] += 1
                by_sig[v.signature].append(v)
    return summary, by_sig


def versions(emu_cwd: str) -> list[str]:
    lines = []
    try:
        q = subprocess.run([runner.QEMU, "--version"], capture_output=True, text=True)
        lines.append("QEMU: " + q.stdout.splitlines()[0])
    except (OSError, IndexError):
        pass
    try:
        g = subprocess.run(["git", "-C", emu_cwd, "log", "-1", "--format=%h %s", "--",
                            "aarch64mte"], capture_output=True, text=True)
        if g.returncode == 0 and g.stdout.strip():
            lines.append(f"aarch64mte: {emu_cwd}, last change {g.stdout.strip()}")
    except OSError:
        pass
    return lines


def run(out: Path, count: int, jobs: int, seed: int | None, chunk: int, emu_cwd: str,
        shrink: bool = True, log=print, shrink_time: float = 600) -> str:
    st = load_state(out, seed, chunk)
    seed = st["seed"]
    (out / "chunks").mkdir(exist_ok=True)
    nchunks = (count + chunk - 1) // chunk
    done = {int(p.stem) for p in (out / "chunks").glob("*.json")}
    todo = [i for i in range(nchunks) if i not in done]
    log(f"seed {seed}: {nchunks} chunks of {chunk} tests, {len(done)} done before, "
        f"{len(todo)} to run on {jobs} processes")
    t0 = time.time()
    if todo:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futs = [pool.submit(run_chunk, str(out), seed, i, i * chunk,
                                min(chunk, count - i * chunk), emu_cwd) for i in todo]
            for n, f in enumerate(as_completed(futs), 1):
                f.result()
                log(f"  chunk {n}/{len(todo)} done ({time.time() - t0:.0f} s)")
    summary, by_sig = collect(out)
    examples: dict[str, Verdict] = {}
    sp = out / "shrunk.json"
    shrunk = json.loads(sp.read_text()) if sp.exists() else {}
    if shrink:
        need = [sorted(vs, key=lambda v: (v.k, len(v.test.body)))[0]
                for sig, vs in by_sig.items() if sig not in shrunk]
        if need:
            log(f"shrinking {len(need)} classes")
            groups = [need[i::jobs] for i in range(jobs) if need[i::jobs]]
            deadline = time.time() + shrink_time
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futs = {pool.submit(shrink_group, str(out), [v.to_json() for v in g], emu_cwd,
                                    deadline): g
                        for g in groups}
                for f in as_completed(futs):
                    for orig, vj in zip(futs[f], f.result()):
                        shrunk[orig.signature] = vj
                    _write_json(sp, shrunk)
    for sig, vs in by_sig.items():
        if sig in shrunk:
            examples[sig] = Verdict.from_json(shrunk[sig])
        else:
            examples[sig] = min(vs, key=lambda v: (v.k, len(v.test.body)))
            examples[sig].test = examples[sig].test.replace(body=examples[sig].test.body)
    repro = out / "repro"
    repro.mkdir(exist_ok=True)
    for i, (sig, _) in enumerate(summary["disagree"].most_common(), 1):
        v = examples[sig]
        _write_json(repro / f"{i:03d}.json", {"signature": sig, "test": v.test.to_json()})
    header = ["aarch64mte against QEMU 10: differential MTE tests",
              f"seed {seed}, {chunk} tests per ELF"] + versions(emu_cwd)
    return report.write(out / "report.txt", summary, examples, header)
