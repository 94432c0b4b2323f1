"""Running a batch of tests under QEMU and under aarch64mte, and reading back what each test
did from the harness's console lines.

A run that stops before its last test (an engine error, a harness fault, a timeout) charges the
stop to the first test that printed no line; the tests after it are built into a new ELF and run
again, so one crash costs one test, not the batch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile

from . import program
from .model import Test

QEMU = "qemu-system-aarch64"
QEMU_ARGS = ["-M", "virt,mte=on", "-cpu", "max", "-semihosting", "-nographic", "-net", "none"]
EMU_ARGS = ["--gmid-bs", "6"]
SIDES = ("qemu", "emu")


@dataclass
class Result:
    """What one test did on one side. Registers, tags and memory words hold only what changed
    from the test's initial state; `crash` says why the run stopped in this test."""
    spsr: int = 0
    sp: int = 0
    tfsr1: int = 0
    tfsr0: int = 0
    rgsr: int = 0
    end: int = 0                 # harness end flags: 0 normal, 2 too many records, 4 wild ELR
    regs: dict = field(default_factory=dict)
    exc: list = field(default_factory=list)      # [(esr, far, offset)]
    tags: dict = field(default_factory=dict)
    mem: dict = field(default_factory=dict)
    crash: str | None = None
    crash_off: int | None = None

    def to_json(self):
        return {"spsr": self.spsr, "sp": self.sp, "tfsr1": self.tfsr1, "tfsr0": self.tfsr0,
                "rgsr": self.rgsr, "end": self.end, "regs": {str(k): v for k, v in self.regs.items()},
                "exc": [list(e) for e in self.exc], "tags": {str(k): v for k, v in self.tags.items()},
                "mem": {str(k): v for k, v in self.mem.items()}, "crash": self.crash,
                "crash_off": self.crash_off}

    @staticmethod
    def from_json(d):
        r = Result(**{k: d[k] for k in ("spsr", "sp", "tfsr1", "tfsr0", "rgsr", "end", "crash",
                                         "crash_off")})
        r.regs = {int(k): v for k, v in d["regs"].items()}
        r.exc = [tuple(e) for e in d["exc"]]
        r.tags = {int(k): v for k, v in d["tags"].items()}
        r.mem = {int(k): v for k, v in d["mem"].items()}
        return r


def parse_line(line: str) -> tuple[int, Result]:
    toks = line.split()
    tid = int(toks[0][1:], 16)
    r = Result()
    for t in toks[1:]:
        c, v = t[0], t[1:]
        if c == "S":
            r.spsr = int(v, 16)
        elif c == "P":
            r.sp = int(v, 16)
        elif c == "F":
            a, b = v.split(",")
            r.tfsr1, r.tfsr0 = int(a, 16), int(b, 16)
        elif c == "R":
            r.rgsr = int(v, 16)
        elif c == "!":
            r.end = int(v, 16)
        elif c in "xtm":
            k, val = v.split("=")
            {"x": r.regs, "t": r.tags, "m": r.mem}[c][int(k, 16)] = int(val, 16)
        elif c == "e":
            esr, far, off = (int(p, 16) for p in v.split(","))
            r.exc.append((esr, far, off))
    return tid, r


def parse_console(text: str) -> dict[int, Result]:
    out = {}
    for line in text.splitlines():
        if line.startswith("@") and line[1:2] not in ("B", "E", "H"):
            try:
                tid, r = parse_line(line)
            except (ValueError, IndexError):
                continue
            out[tid] = r
    return out


def body_addresses(elf: Path) -> dict[int, int]:
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {int(s.name[5:]): s["st_value"] for s in symtab.iter_symbols()
                if s.name.startswith("body_") and s.name[5:].isdigit()}


def run_qemu(elf: Path, timeout: float) -> tuple[str, str | None, int | None]:
    """(console, why it stopped early or None, pc of the stop or None)."""
    try:
        p = subprocess.run([QEMU, *QEMU_ARGS, "-kernel", str(elf)], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return out, "qemu: timeout", None
    text = p.stdout + p.stderr
    if "@END" in text and p.returncode == 0:
        return text, None, None
    for line in text.splitlines():
        if line.startswith("@HARNESS-FAULT"):
            return text, "qemu: harness fault " + line[15:], _pc_of(line)
    return text, f"qemu: exit status {p.returncode}", None


def _pc_of(line: str) -> int | None:
    for t in line.split():
        if t.startswith("l"):
            return int(t[1:], 16)
    return None


def emu_command(elf: Path, max_insns: int) -> list[str]:
    return [sys.executable, "-m", "aarch64mte.cli.main", "run", str(elf), *EMU_ARGS,
            "--max-insns", str(max_insns), "--json"]


def run_emu(elf: Path, timeout: float, cwd: str, max_insns: int):
    try:
        p = subprocess.run(emu_command(elf, max_insns), capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return "", "emu: timeout", None
    try:
        data = json.loads(p.stdout)
    except ValueError:
        err = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return p.stdout, f"emu: status {p.returncode}: {err[:200]}", None
    text = data.get("console", "")
    ex = data.get("exit", {})
    if "@END" in text and ex.get("reason") == "semihost-exit":
        return text, None, None
    exc = data.get("exception") or {}
    pc = exc.get("pc") or (data.get("regs") or {}).get("pc")
    pc = int(pc, 16) if isinstance(pc, str) else pc
    for line in text.splitlines():
        if line.startswith("@HARNESS-FAULT"):
            return text, "emu: harness fault " + line[15:], _pc_of(line)
    why = ex.get("reason", "?")
    if why == "exception" and not exc:
        return text, "emu: stopped on an unhandled exception with no exception record", pc
    detail = exc.get("kind") or exc.get("message") or ""
    return text, f"emu: {why} {detail}".strip(), pc


MAX_PER_ELF = 500        # the test table and bodies must fit below the harness data (1.5 MiB)


def run_side(side: str, tests: list[Test], workdir: Path, cache: Path, cwd: str,
             timeout: float | None = None, max_insns: int = 2_000_000_000) -> dict[int, Result]:
    """Results by test id for every test (crashed ones carry `crash`)."""
    results: dict[int, Result] = {}
    for i in range(0, len(tests), MAX_PER_ELF):
        results.update(_run_side(side, tests[i:i + MAX_PER_ELF], workdir, cache, cwd, timeout,
                                 max_insns))
    return results


def _run_side(side, tests, workdir, cache, cwd, timeout, max_insns) -> dict[int, Result]:
    results: dict[int, Result] = {}
    pending = list(tests)
    n = 0
    while pending:
        elf = workdir / f"{side}-{os.getpid()}-{threading.get_ident()}-{n}.elf"
        n += 1
        program.build(pending, elf, cache)
        bodies = body_addresses(elf)
        t = timeout or (30 + 0.5 * len(pending))
        if side == "qemu":
            text, why, pc = run_qemu(elf, t)
        else:
            text, why, pc = run_emu(elf, t * 4, cwd, max_insns)
        got = parse_console(text)
        results.update({k: v for k, v in got.items() if k in {x.id for x in pending}})
        rest = [x for x in pending if x.id not in results]
        if why is None or not rest:
            if rest:                      # the run ended normally yet some tests are missing
                for x in rest:
                    results[x.id] = Result(crash=f"{side}: no result")
            _cleanup(elf)
            break
        victim = rest[0]
        idx = pending.index(victim)
        off = None
        if pc is not None and idx in bodies and bodies[idx] <= pc < bodies[idx] + 4 * (len(victim.body) + 1):
            off = pc - bodies[idx]
        results[victim.id] = Result(crash=why, crash_off=off)
        pending = rest[1:]
        _cleanup(elf)
    return results


def _cleanup(elf: Path) -> None:
    if os.environ.get("QEMU_DIFF_KEEP"):
        return
    for p in (elf, elf.with_suffix(".S")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def missing_tools() -> list[str]:
    return program.missing_tools() + ([QEMU] if shutil.which(QEMU) is None else [])
