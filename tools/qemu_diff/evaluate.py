"""Running a batch of tests on both sides and judging each: agree, explained by a known
departure, or disagree (with a signature).

A disagreeing test is attributed to its first diverging instruction by running every prefix
of its body (all prefixes of all disagreeing tests go into one more batch): the shortest
prefix that already disagrees ends with the culprit. Signatures and rules look at that
prefix's results, so what follows the first divergence cannot blur the class."""
from __future__ import annotations

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

    def __init__(self, workdir: Path, cache: Path, emu_cwd: str):
        self.workdir, self.cache, self.emu_cwd = workdir, cache, emu_cwd
        workdir.mkdir(parents=True, exist_ok=True)

    def run(self, tests: list[Test]) -> tuple[dict, dict]:
        if not tests:
            return {}, {}
        q = runner.run_side("qemu", tests, self.workdir, self.cache, self.emu_cwd)
        e = runner.run_side("emu", tests, self.workdir, self.cache, self.emu_cwd)
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
    pre = [prefix(t, k) for t in bad
           for k in range(1, limit[t.id] + (limit[t.id] < len(t.body)))]
    pq, pe = sides.run(pre)
    for t in bad:
        k_found = limit[t.id]
        rq, re_ = (q[t.id], e[t.id]) if k_found == len(t.body) else (None, None)
        for k in range(1, limit[t.id]):
            p = prefix(t, k)
            if compare.differences(p, pq[p.id], pe[p.id]):
                k_found, rq, re_ = k, pq[p.id], pe[p.id]
                break
        if rq is None:                 # the culprit is the instruction at the known point
            p = prefix(t, k_found)
            rq, re_ = pq[p.id], pe[p.id]
            if not compare.differences(p, rq, re_):    # the stop point misled: whole body
                k_found, rq, re_ = len(t.body), q[t.id], e[t.id]
        verdicts[t.id] = judge(t.replace(body=t.body[:k_found]), k_found, rq, re_)
        verdicts[t.id].test = t
    return [verdicts[t.id] for t in tests]
