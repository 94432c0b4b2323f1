"""Running a batch of tests on both sides and judging each: agree, explained by a known
departure, or disagree (with a signature).

A disagreeing test is attributed to its first diverging instruction by running every prefix
of its body (all prefixes of all disagreeing tests go into one more batch): the shortest
prefix that already disagrees ends with the culprit. Signatures and rules look at that
prefix's results, so what follows the first divergence cannot blur the class."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import compare, rules, runner
from .model import Test

PREFIX_BIT = 1 << 40


@dataclass
class Verdict:
    test: Test
    status: str                       # "agree" | "explained" | "disagree"
    signature: str | None = None
    rule: str | None = None
    k: int = 0                        # length of the shortest disagreeing prefix
    q: runner.Result | None = None    # results of that prefix
    e: runner.Result | None = None

    def to_json(self) -> dict:
        return {"test": self.test.to_json(), "status": self.status,
                "signature": self.signature, "rule": self.rule, "k": self.k,
                "q": self.q.to_json() if self.q else None,
                "e": self.e.to_json() if self.e else None}

    @staticmethod
    def from_json(d: dict) -> "Verdict":
        return Verdict(Test.from_json(d["test"]), d["status"], d["signature"], d["rule"],
                       d["k"], runner.Result.from_json(d["q"]) if d["q"] else None,
                       runner.Result.from_json(d["e"]) if d["e"] else None)


class Sides:
    """Where and how to run: a work directory, the harness object cache, the directory from
    which `python -m aarch64mte.cli.main` is run."""

    def __init__(self, workdir: Path, cache: Path, emu_cwd: str, jobs: int = 1):
        self.workdir, self.cache, self.emu_cwd, self.jobs = workdir, cache, emu_cwd, jobs
        workdir.mkdir(parents=True, exist_ok=True)

    def run(self, tests: list[Test]) -> tuple[dict, dict]:
        """Both sides' results. With jobs > 1 the emulator's share (the slow one) is split
        into that many runs at once."""
        if not tests:
            return {}, {}
        q = runner.run_side("qemu", tests, self.workdir, self.cache, self.emu_cwd)
        parts = [tests[i::self.jobs] for i in range(self.jobs) if tests[i::self.jobs]]
        e: dict = {}
        if len(parts) == 1:
            e = runner.run_side("emu", tests, self.workdir, self.cache, self.emu_cwd)
        else:
            with ThreadPoolExecutor(len(parts)) as pool:
                for r in pool.map(lambda p: runner.run_side("emu", p, self.workdir, self.cache,
                                                            self.emu_cwd), parts):
                    e.update(r)
        return q, e


def prefix(t: Test, k: int) -> Test:
    return t.replace(id=PREFIX_BIT | (t.id << 8) | k, body=t.body[:k])


def judge(t: Test, k: int, q, e) -> Verdict:
    d = compare.differences(t, q, e)
    rule = rules.explain(t, k, q, e, d)
    if rule is not None:
        return Verdict(t, "explained", compare.signature(t, k, q, e, d), rule.name, k, q, e)
    return Verdict(t, "disagree", compare.signature(t, k, q, e, d), None, k, q, e)


def latest_culprit(t: Test, q, e) -> int:
    """The last instruction that can be the first divergence: the one where the runs stopped
    (a crash) or where the first exception records differ; else the whole body."""
    n = len(t.body)
    for r in (q, e):
        if r.crash and r.crash_off is not None and r.crash_off < 4 * n:
            n = min(n, r.crash_off // 4 + 1)
    qx, ex = compare.records(q), compare.records(e)
    for i in range(max(len(qx), len(ex))):
        a = qx[i] if i < len(qx) else None
        b = ex[i] if i < len(ex) else None
        if a != b:
            offs = [x[2] for x in (a, b) if x is not None and x[2] < 4 * len(t.body)]
            if offs:
                n = min(n, min(offs) // 4 + 1)
            break
    return max(1, n)


def evaluate(tests: list[Test], sides: Sides) -> list[Verdict]:
    q, e = sides.run(tests)
    verdicts: dict[int, Verdict] = {}
    bad = []
    for t in tests:
        if compare.differences(t, q[t.id], e[t.id]):
            bad.append(t)
        else:
            verdicts[t.id] = Verdict(t, "agree")
    limit = {t.id: latest_culprit(t, q[t.id], e[t.id]) for t in bad}
    found = _first_divergence(bad, {t.id: range(1, limit[t.id] + 1) for t in bad}, q, e, sides)
    # Where the stop point misled (an engine reports the pc of a block, not of the faulting
    # instruction), scan the prefixes after it too.
    rest = [t for t in bad if t.id not in found and limit[t.id] < len(t.body)]
    found.update(_first_divergence(rest, {t.id: range(limit[t.id] + 1, len(t.body) + 1)
                                          for t in rest}, q, e, sides))
    for t in bad:
        k, rq, re_ = found.get(t.id, (len(t.body), q[t.id], e[t.id]))
        verdicts[t.id] = judge(t.replace(body=t.body[:k]), k, rq, re_)
        verdicts[t.id].test = t
    return [verdicts[t.id] for t in tests]


def _first_divergence(tests: list[Test], ks: dict, q, e, sides: Sides) -> dict:
    """test id -> (k, qemu result, emu result) of the shortest disagreeing prefix among
    `ks[id]`; the whole body's results are reused rather than run again."""
    pre = [prefix(t, k) for t in tests for k in ks[t.id] if k < len(t.body)]
    pq, pe = sides.run(pre)
    out = {}
    for t in tests:
        for k in ks[t.id]:
            if k == len(t.body):
                rq, re_ = q[t.id], e[t.id]
            else:
                p = prefix(t, k)
                rq, re_ = pq[p.id], pe[p.id]
            if compare.differences(t.replace(body=t.body[:k]), rq, re_):
                out[t.id] = (k, rq, re_)
                break
    return out
