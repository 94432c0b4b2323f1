"""Shrinking a disagreement to a minimal reproducer (delta debugging over the body and the
setup), many tests at a time.

Each round proposes, for every test still shrinking, the body with chunks removed (halves
down to single instructions; the culprit, last, stays) and setup simplifications (EL1, TCO
and NZCV 0, no exclusion, A = 0, no TCMA, TBI on, tag access on, the other EL's TCF none,
no pokes, unused registers 0, uniform tags). All candidates of all tests run in one batch; a
candidate is kept when it still disagrees with the same signature. The first kept body
reduction and every kept setup simplification are combined and tried as one candidate in the
next round; if that fails, the first kept candidate alone is taken. The result is verified by
a fresh attribution (evaluate) and discarded if its signature changed."""
from __future__ import annotations

import collections
import re
import time
from itertools import count

from . import compare, evaluate
from .model import Test

_ids = count(1 << 44)
_REG = re.compile(r"\b[xw](\d+)\b")


def used_regs(t: Test) -> set[int]:
    regs = set()
    for insn in t.body:
        text = insn.text
        if text.startswith(".inst"):
            text = text.split("//", 1)[1]
        regs.update(int(m) for m in _REG.findall(text))
    return regs


def body_candidates(t: Test) -> list[Test]:
    n = len(t.body)
    out = []
    size = (n - 1) // 2 or 1
    while n > 1 and size >= 1:
        for start in range(0, n - 1, size):
            body = t.body[:start] + t.body[start + size:n - 1] + [t.body[-1]]
            if len(body) < n:
                out.append(t.replace(body=body))
        if size == 1:
            break
        size //= 2
    seen, uniq = set(), []
    for c in out:
        key = tuple(i.text for i in c.body)
        if key not in seen:
            seen.add(key)
            uniq.append(c)
    return uniq


def setup_candidates(t: Test) -> list[tuple[str, Test]]:
    out = []

    def add(name, **kw):
        c = t.replace(**kw)
        if c.to_json() != t.to_json():
            out.append((name, c))

    add("el1", el=1, tcf=t.tcf0, ata=t.ata0) if t.el == 0 else None
    add("tco", tco=0)
    add("nzcv", nzcv=0)
    add("gcr", gcr=0)
    add("align", align=0)
    add("tcma", tcma0=0)
    add("tbi", tbi0=1)
    add("ata", ata=1, ata0=1)
    add("other-tcf", **({"tcf0": 0} if t.el else {"tcf": 0}))
    add("pokes", pokes=[])
    used = used_regs(t)
    x = [v if i in used else 0 for i, v in enumerate(t.x)]
    add("regs", x=x)
    common = collections.Counter(t.tags).most_common(1)[0][0]
    add("tags", tags=[common] * len(t.tags))
    add("seed", seed=1)
    return out


def combine(base: Test, parts: list[tuple[str, Test]], body_from: Test | None) -> Test:
    c = base.replace(body=list((body_from or base).body))
    for _, p in parts:
        for f in ("el", "tcf", "tcf0", "ata", "ata0", "align", "tbi0", "tcma0", "tco", "nzcv",
                  "gcr", "rgsr", "seed"):
            if getattr(p, f) != getattr(base, f):
                setattr(c, f, getattr(p, f))
        if p.x != base.x:
            c.x = list(p.x)
        if p.tags != base.tags:
            c.tags = list(p.tags)
        if p.pokes != base.pokes:
            c.pokes = list(p.pokes)
    return c


def _sig(t: Test, q, e) -> str | None:
    d = compare.differences(t, q, e)
    if not d:
        return None
    return compare.signature(t, len(t.body), q, e, d)


def first_round(t: Test) -> list[tuple[str, Test]]:
    """The boldest candidates, tried before any other: most disagreements are one
    instruction in a plain setup, and these find that in one run."""
    alone = t.replace(body=[t.body[-1]])
    setups = setup_candidates(t)
    out = []
    if setups:
        out.append(("combo", combine(alone, setup_candidates(alone), None)))
    if len(t.body) > 1:
        out.append(("combo", alone))
    if setups:
        out.append(("combo", combine(t, setups, None)))
    return out


def shrink_many(items: list[tuple[Test, str]], sides: evaluate.Sides,
                max_rounds: int = 8, deadline: float | None = None) -> list[Test]:
    """items: (test cut after its culprit, its signature). Returns the shrunk tests."""
    cur = [t for t, _ in items]
    target = [s for _, s in items]
    combo: list[Test | None] = [None] * len(items)
    active = set(range(len(items)))
    for rnd in range(max_rounds):
        if not active or (deadline is not None and time.time() > deadline):
            break
        batch, owner = [], []
        for i in sorted(active):
            if rnd == 0:
                cands = first_round(cur[i])
            else:
                cands = ([("combo", combo[i])] if combo[i] is not None else [])
                cands += [("body", c) for c in body_candidates(cur[i])]
                cands += setup_candidates(cur[i])
            for name, c in cands:
                c = c.replace(id=next(_ids))
                batch.append(c)
                owner.append((i, name))
        q, e = sides.run(batch)
        kept: dict[int, list[tuple[str, Test]]] = collections.defaultdict(list)
        for c, (i, name) in zip(batch, owner):
            if _sig(c, q[c.id], e[c.id]) == target[i]:
                kept[i].append((name, c))
        for i in sorted(active):
            ks = kept.get(i, [])
            if not ks:
                active.discard(i)
                continue
            if ks[0][0] == "combo":
                cur[i], combo[i] = ks[0][1], None
                if len(cur[i].body) == 1 and not setup_candidates(cur[i]):
                    active.discard(i)                # nothing left to simplify
                continue
            body = next((c for n, c in ks if n == "body"), None)
            setups = [(n, c) for n, c in ks if n not in ("body", "combo")]
            cur[i] = ks[0][1]
            if len(ks) > 1:
                base = cur[i]
                rest = [(n, c) for n, c in setups if c is not ks[0][1]]
                combo[i] = combine(base, rest, body if body is not ks[0][1] else None) \
                    if rest or (body is not None and body is not ks[0][1]) else None
            else:
                combo[i] = None
    return cur


def minimize(verdicts: list[evaluate.Verdict], sides: evaluate.Sides,
             deadline: float | None = None) -> list[evaluate.Verdict]:
    """Shrunk and re-attributed verdicts, one per input; an input whose shrunk form changes
    signature on re-attribution keeps its unshrunk (cut) form."""
    items = [(v.test.replace(body=v.test.body[:v.k]), v.signature) for v in verdicts]
    small = shrink_many(items, sides, deadline=deadline)
    for t in small:
        t.id = next(_ids)
    again = evaluate.evaluate(small, sides)
    out = []
    for v, w, (cut, _) in zip(verdicts, again, items):
        if w.status != "agree" and w.signature == v.signature:
            out.append(w)
        else:
            cut = cut.replace(id=next(_ids))
            out.append(evaluate.evaluate([cut], sides)[0])
    return out
