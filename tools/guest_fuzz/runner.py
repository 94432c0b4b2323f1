"""Run fuzz cases in child processes, so that an abort, a segfault, a hang or a runaway allocation
of the emulator is a finding about one case, not the end of the run.

``run(cases, native)`` feeds the cases to ``child.py`` in batches; a batch whose child dies or
stops answering names its case by the child's last ``start`` line, re-runs that case alone in a
fresh child (``alone``: whether it fails there too) and goes on with the rest in a new child.
Every case that did not come back ``ok`` or ``stop`` is a ``Finding``; ``known(finding)`` says
which of them are known machine limitations (see ``KNOWN``).
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = ("ok", "stop")
MEM_LIMIT = 3 << 30             # the child's address space: one machine reserves ~1.2 GiB
HANG_SECONDS = 20.0             # a run still going after this long is a hang
SILENCE_SECONDS = 60.0          # a child that says nothing for this long is killed


@dataclass
class Finding:
    case: dict
    kind: str                   # a child result kind, or 'crash' / 'timeout' / 'stderr'
    detail: str = ""
    alone: bool | None = None   # re-run alone in a fresh child, did it fail again?
    aborting: list = field(default_factory=list)

    def summary(self) -> str:
        c = self.case
        what = f"word {c['word']:#010x}" if "word" in c else "program"
        again = "" if self.alone is None else (" (again alone)" if self.alone
                                               else " (not alone)")
        return (f"{c['id']} [{c['area']}, EL{c['el']}, tcf={c['tcf']}] {what}: {self.kind}"
                f"{again}: {self.detail}")


@dataclass
class Outcome:
    results: list = field(default_factory=list)     # the child's result lines, in order
    findings: list = field(default_factory=list)
    maxrss_kb: int = 0
    children: int = 0


def _child(native: bool, mem: int, hang: float) -> subprocess.Popen:
    env = dict(os.environ, AARCH64MTE_NATIVE="1" if native else "0",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "tools.guest_fuzz.child", "--mem", str(mem),
                             "--hang", str(hang)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _batch(cases: list, native: bool, mem: int, hang: float, out: Outcome):
    """Run ``cases`` in one child. Returns (index of the case in flight when the child died or
    went silent, and how it ended) or None when every case reported."""
    p = _child(native, mem, hang)
    out.children += 1
    p.stdin.write(json.dumps(cases).encode())
    p.stdin.close()
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    by_id = {c["id"]: i for i, c in enumerate(cases)}
    flying, aborting, buf = None, [], b""
    ended = None
    deadline = time.monotonic() + SILENCE_SECONDS
    while True:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            p.kill()
            ended = "timeout"
            break
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            msg = json.loads(line)
            deadline = time.monotonic() + SILENCE_SECONDS
            if "start" in msg:
                flying, aborting = by_id[msg["start"]], []
            elif "aborting" in msg:
                aborting = msg["aborting"]
            elif "done" in msg:
                out.maxrss_kb = max(out.maxrss_kb, msg["maxrss_kb"])
            else:
                out.results.append(msg)
                flying = None
                if msg["kind"] not in GOOD:
                    detail = msg.get("traceback") or (
                        f"reason {msg.get('reason')}, {msg.get('insns')} instructions, "
                        f"{msg.get('exceptions')} exceptions, last ECs {msg.get('last_ecs')}")
                    out.findings.append(Finding(cases[by_id[msg["id"]]], msg["kind"],
                                                detail.strip(), aborting=aborting))
    sel.close()
    p.wait()
    err = p.stderr.read().decode("utf-8", "replace")
    p.stderr.close()
    p.stdout.close()
    if ended is None and p.returncode != 0:
        sig = -p.returncode
        ended = f"crash: {signal.Signals(sig).name}" if sig > 0 else f"exit status {p.returncode}"
    if ended is None and "Traceback" in err:
        out.findings.append(Finding(cases[0], "stderr", err.strip()[-2000:]))
    if ended is None:
        return None
    last = err.strip().splitlines()[-3:] if err.strip() else []
    return flying, f"{ended}{': ' + ' | '.join(last) if last else ''}", aborting


def run(cases: list, native: bool = True, batch: int = 200, mem: int = MEM_LIMIT,
        hang: float = HANG_SECONDS, confirm: bool = True) -> Outcome:
    """Run every case; see the module docstring."""
    out = Outcome()
    todo = list(cases)
    while todo:
        chunk, todo = todo[:batch], todo[batch:]
        while chunk:
            died = _batch(chunk, native, mem, hang, out)
            if died is None:
                break
            i, how, aborting = died
            if i is None:                # it died between cases: blame nothing, go on
                break
            f = Finding(chunk[i], "crash" if how.startswith("crash") else "timeout", how,
                        aborting=aborting)
            if confirm:
                alone = Outcome()
                again = _batch([chunk[i]], native, mem, hang, alone)
                f.alone = again is not None
                out.children += alone.children
            out.findings.append(f)
            chunk = chunk[i + 1:]
    return out


# --- what is known ---------------------------------------------------------------------------
# Findings that are machine limitations already reported (with reproducers, in
# tests/test_guest_fuzz_regressions.py): the fuzz tests list them but do not fail on them.
KNOWN: dict[str, str] = {}


def known(f: Finding) -> str | None:
    """Why a finding is known, or None when it is new."""
    if f.kind in KNOWN:
        return KNOWN[f.kind]
    return None
