"""Run a batch of fuzz cases in this process and report each as one JSON line.

    python -m tools.guest_fuzz.child [--mem BYTES] [--hang SECONDS] < cases.json

The parent (``runner.py``) reads the lines. Before each case the child prints ``{"start": ID}``
and, once the program is loaded, ``{"aborting": [...]}`` (the translator-aborting words in its
text, from ``engine_words``), so when the process dies the parent knows which case killed it.
After each case: ``{"id": ID, "kind": ..., ...}`` where kind is ``ok``, ``stop`` (the machine refused with a
one-line message: an ``MteError``), ``traceback`` (any other Python exception), ``hang`` (a
watchdog stopped a run that went on past ``--hang`` seconds), ``uncounted`` (more exceptions
taken than the instruction budget: exception entries that are not counted), ``aarch32`` (the
A64-only machine ended up in AArch32), ``el`` (an EL this board does not have), ``over-budget``
(more instructions than asked for) or ``reason`` (a run result reason that is not one of the
documented ones). The address-space limit (``--mem``, RLIMIT_AS) turns a runaway allocation
into a MemoryError, reported as ``traceback``.

The fuzz board: 8 MiB of RAM; the snippet profile at EL1 with the tables replaced by a level-2
map: the first 2 MiB (code, the image, the vectors) EL1 read/write and EL0 execute-only, the
next 6 MiB EL0 and EL1 read/write and never executable; all Normal Tagged. VBAR_EL1 points at
a table whose every entry skips the instruction that trapped (SVC/HVC/SMC excepted: their ELR
is already past it), clears SPSR.IL and returns; the machine's exception log records them.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import struct
import sys
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.guest_fuzz import gen  # noqa: E402

REASONS = {"end", "brk", "semihost-exit", "exception", "insn-limit"}
VECTORS = gen.RAM_BASE + 0x1_0000
VECTOR_CODE = """
        msr tpidr_el1, x0
        mrs x0, esr_el1
        lsr x0, x0, #26
        cmp x0, #0x15
        b.eq 1f
        cmp x0, #0x16
        b.eq 1f
        cmp x0, #0x17
        b.eq 1f
        mrs x0, elr_el1
        add x0, x0, #4
        msr elr_el1, x0
1:      mrs x0, spsr_el1
        bic x0, x0, #(1 << 20)
        msr spsr_el1, x0
        mrs x0, tpidr_el1
        eret
"""
WORD_TEMPLATE = f"        .text\n_start: nop\n        nop\n        nop\n        nop\n{gen.EXIT}" \
                f"{gen.DATA_HEAD}"

AF, SH_INNER, AP_EL0, UXN, BLOCK, TABLE = 1 << 10, 3 << 8, 1 << 6, 1 << 54, 1, 3
UART_BLOCK = 0x0000_0000 | AF | AP_EL0 | (1 << 2) | BLOCK | (1 << 54) | (1 << 53)


class Board:
    """What every case shares: the assembled vector table and word template."""

    def __init__(self) -> None:
        from aarch64mte.assembler import assemble
        self.assemble = assemble
        vec = assemble(".text\n" + "".join(VECTOR_CODE + "        .balign 128\n"
                                           for _ in range(16)), base=VECTORS)
        self.vectors = vec.segments[0].data
        self.template = assemble(WORD_TEMPLATE)

    def tables(self) -> bytes:
        l1 = [0] * 512
        l1[0] = UART_BLOCK
        l1[1] = (gen.TABLES + 0x1000) | TABLE
        l2 = [0] * 512
        for i in range(gen.RAM_SIZE >> 21):
            pa = gen.RAM_BASE + (i << 21)
            l2[i] = pa | AF | SH_INNER | BLOCK | (0 if i == 0 else AP_EL0 | UXN)
        return struct.pack("<512Q", *l1) + struct.pack("<512Q", *l2)

    def machine(self, case: dict):
        from aarch64mte.machine import Machine
        from aarch64mte.machine import engine_words
        rng = random.Random(case["seed"])
        m = Machine(profile="snippet", el=1, tcf=case["tcf"], ram_size=gen.RAM_SIZE,
                    seed=case["seed"])
        if "word" in case:
            image = self.template
        else:
            image = self.assemble(case["source"])
        m.load_image(image)
        if "word" in case:
            m.write_mem(image.entry, struct.pack("<I", case["word"]))
        text = m.read_mem(image.entry, max(4, (image.text_end - image.entry) & ~3))
        aborting = [struct.unpack_from("<I", text, off)[0]
                    for off in engine_words.aborting_offsets(text)]
        m.write_mem(gen.TABLES, self.tables(), physical=True)
        m.write_mem(VECTORS, self.vectors, physical=True)
        m.set_reg("ttbr0_el1", gen.TABLES)
        m.set_reg("vbar_el1", VECTORS)
        # allocation tags on a few data pages: one tag for the page (the engine's fast path
        # for matching pointers) or one per granule (the checked path); the rest keep tag 0
        for page in rng.sample(range(0, gen.DATA_SIZE, 0x1000), 8):
            uniform = rng.randrange(16) if rng.random() < 0.5 else None
            for g in range(0, 0x1000, 16):
                m.tags.set(gen.DATA + page + g, rng.randrange(16) if uniform is None
                           else uniform)
        for i in range(31):
            m.set_reg(f"x{i}", gen.value(rng))
        m.set_reg("sp_el0", gen.DATA + 0x8000)
        if case["el"] == 0:
            m.set_reg("el", 0)
        return m, aborting


class Watchdog(threading.Thread):
    """Stops a run that goes on too long or takes more exceptions than its budget allows."""

    def __init__(self, hang: float) -> None:
        super().__init__(daemon=True)
        self.hang = hang
        self.machine = None
        self.budget = 0
        self.started = 0.0
        self.verdict = None
        self.lock = threading.Lock()

    def watch(self, machine, budget: int) -> None:
        with self.lock:
            self.machine, self.budget, self.started, self.verdict = (machine, budget,
                                                                     time.monotonic(), None)

    def done(self) -> str | None:
        with self.lock:
            self.machine = None
            return self.verdict

    def run(self) -> None:
        while True:
            time.sleep(0.02)
            with self.lock:
                m = self.machine
                if m is None or self.verdict is not None:
                    continue
                if m.counters.exceptions_taken > self.budget + 16:
                    self.verdict = "uncounted"
                elif time.monotonic() - self.started > self.hang:
                    self.verdict = "hang"
                else:
                    continue
                m.request_stop()


def run_case(board: Board, case: dict, dog: Watchdog) -> dict:
    from aarch64mte.errors import MteError
    out = {"id": case["id"], "kind": "ok"}
    t0 = time.monotonic()
    m = None
    try:
        emit({"start": case["id"]})
        m, aborting = board.machine(case)
        emit({"aborting": aborting})
        dog.watch(m, case["max_insns"])
        try:
            r = m.run(case["max_insns"])
        finally:
            verdict = dog.done()
        out.update(reason=r.reason, code=r.code, insns=m.counters.insns,
                   exceptions=m.counters.exceptions_taken, el=m.el,
                   last_ecs=[e.ec for e in m.exception_log[-3:]])
        if verdict is not None:
            out["kind"] = verdict
        elif r.reason not in REASONS:
            out["kind"] = "reason"
        elif m.counters.insns > case["max_insns"]:
            out["kind"] = "over-budget"
        elif m.el not in (0, 1):
            out["kind"] = "el"
        # in AArch32 now, or an exception came from there (SPSR_EL1.M[4]): the A64-only
        # machine was in AArch32, which explains whatever else went wrong
        if m.reg("pstate") & 0x10 or (out["kind"] != "ok" and m.reg("spsr_el1") & 0x10):
            out["kind"] = "aarch32"
    except MteError as e:
        out.update(kind="stop", message=str(e))
        if "\n" in str(e):
            out["kind"] = "traceback"
            out["traceback"] = "a stop message of more than one line: " + str(e)
    except Exception:
        out.update(kind="traceback", traceback=traceback.format_exc(limit=12))
    finally:
        dog.done()
        del m
        gc.collect()
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mem", type=int, default=3 << 30, help="address-space limit (bytes)")
    ap.add_argument("--hang", type=float, default=20.0, help="seconds before a run is a hang")
    args = ap.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (args.mem, args.mem))
    cases = json.load(sys.stdin)
    board = Board()
    dog = Watchdog(args.hang)
    dog.start()
    for case in cases:
        emit(run_case(board, case, dog))
    emit({"done": True, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
    return 0


if __name__ == "__main__":
    sys.exit(main())
