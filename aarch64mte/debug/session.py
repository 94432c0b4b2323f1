"""A debugging session over one Machine: breakpoints (with conditions), stepping, running, going
back (reverse execution over the machine's ``replay.Recorder``), and one description of why
execution stopped, shared by the REPL debugger and the GDB stub.

Only the `machine` contract of docs/ARCHITECTURE.md is used, so tests can drive a small fake;
recording needs the real Machine and is on whenever the machine has one to offer.

Whatever the front ends change in the machine's state between runs (registers, memory, tags)
goes through ``host_change()`` first, so that going back never re-executes across it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

MASK64 = (1 << 64) - 1
GRANULE = 16

# Signal numbers as GDB's remote protocol numbers them (Linux values).
SIGINT, SIGILL, SIGTRAP, SIGBUS, SIGSEGV, SIGXCPU = 2, 4, 5, 7, 11, 24
# si_code values the Linux kernel uses for the signals above.
SEGV_MAPERR, SEGV_ACCERR, SEGV_MTEAERR, SEGV_MTESERR = 1, 2, 8, 9
ILL_ILLOPC, BUS_ADRALN, TRAP_BRKPT = 1, 1, 1

EC_UNKNOWN = 0x00
EC_DABT_LOWER, EC_DABT_CUR = 0x24, 0x25
EC_IABT_LOWER, EC_IABT_CUR = 0x20, 0x21
EC_PC_ALIGN, EC_SP_ALIGN = 0x22, 0x26
EC_BRK = 0x3C


def logical_tag(ptr: int) -> int:
    return (ptr >> 56) & 0xF


def strip_tag(ptr: int) -> int:
    """The address with the top byte cleared (what TBI ignores)."""
    return ptr & ((1 << 56) - 1)


def is_call(word: int) -> bool:
    """BL imm26, BLR Xn (and the pointer-authenticated BLRA* forms): instructions that return."""
    if (word & 0xFC000000) == 0x94000000:
        return True
    if (word & 0xFFFFFC1F) == 0xD63F0000:
        return True
    return (word & 0xFEFFF800) == 0xD63F0800       # BLRAA/BLRAB/BLRAAZ/BLRABZ


@dataclass
class Breakpoint:
    number: int
    addr: int
    condition: Optional[str] = None
    temporary: bool = False
    hits: int = 0
    enabled: bool = True
    label: str = ""


@dataclass
class Stop:
    """Why the program stopped, in terms both front ends need."""
    reason: str                      # the RunResult reason, or 'step'
    pc: int
    signal: int = SIGTRAP
    si_code: int = 0
    fault_addr: Optional[int] = None
    exited: bool = False
    exit_code: int = 0
    exception: object = None         # the machine's ExceptionRecord, if one stopped us
    tag_fault: object = None         # its TagFault, if it was a tag check
    breakpoint: Optional[Breakpoint] = None
    message: str = ""
    watch: object = None             # the machine's WatchHit, for a watchpoint


def _fault_signal(rec) -> tuple[int, int, Optional[int]]:
    """(signal, si_code, fault address) for an exception record, as Linux would deliver it."""
    tf = getattr(rec, "tag_fault", None)
    ec = getattr(rec, "ec", None)
    far = getattr(rec, "far", None)
    if tf is not None:
        mode = str(getattr(tf, "mode", "sync"))
        code = SEGV_MTEAERR if mode.startswith("async") else SEGV_MTESERR
        return SIGSEGV, code, getattr(tf, "va", far)
    if ec == EC_UNKNOWN:
        return SIGILL, ILL_ILLOPC, getattr(rec, "pc", None)
    if ec in (EC_DABT_LOWER, EC_DABT_CUR, EC_IABT_LOWER, EC_IABT_CUR):
        esr = getattr(rec, "esr", 0) or 0
        dfsc = esr & 0x3F
        if dfsc == 0x21:
            return SIGBUS, BUS_ADRALN, far
        if (dfsc & 0x3C) == 0x0C:            # permission fault
            return SIGSEGV, SEGV_ACCERR, far
        return SIGSEGV, SEGV_MAPERR, far
    if ec in (EC_PC_ALIGN, EC_SP_ALIGN):
        return SIGBUS, BUS_ADRALN, far
    if ec == EC_BRK:
        return SIGTRAP, TRAP_BRKPT, None
    return SIGILL, ILL_ILLOPC, getattr(rec, "pc", None)


def describe_exception(rec) -> str:
    kind = getattr(rec, "kind", "exception")
    ec = getattr(rec, "ec", None)
    parts = [str(kind)]
    if ec is not None:
        parts.append(f"EC 0x{ec:02x}")
    esr = getattr(rec, "esr", None)
    if esr is not None:
        parts.append(f"ESR 0x{esr:08x}")
    far = getattr(rec, "far", None)
    if far is not None:
        parts.append(f"FAR 0x{far:016x}")
    pc = getattr(rec, "pc", None)
    if pc is not None:
        parts.append(f"at 0x{pc:x}")
    el, from_el = getattr(rec, "el", None), getattr(rec, "from_el", None)
    if el is not None and from_el is not None:
        parts.append(f"EL{from_el}->EL{el}")
    return " ".join(parts)


class Session:
    """Owns the breakpoints and the stepping logic for one machine.

    `run_lock` serializes every use of the machine, so a GDB client's Ctrl-C (which only calls the
    thread-safe `request_stop`) is the one thing that can happen during a run.
    """

    def __init__(self, machine, max_insns: int = 10_000_000, record: Optional[bool] = None):
        self.machine = machine
        self.max_insns = max_insns
        self.recorder = None
        if record is None:
            record = hasattr(machine, "counting") and hasattr(machine, "ram")
        if record:
            from aarch64mte.machine.replay import Recorder
            self.recorder = Recorder(machine)
        self.breakpoints: dict[int, Breakpoint] = {}
        self._next_bp = 1
        self._next_internal = 0
        self.exited: Optional[Stop] = None
        self.last_stop: Optional[Stop] = None
        self.run_lock = threading.RLock()
        #: evaluates a breakpoint condition; the debugger installs its expression evaluator
        self.condition_eval: Optional[Callable[[str], int]] = None

    # --- breakpoints ----------------------------------------------------------------------------
    def _machine_bps(self) -> set[int]:
        return {bp.addr for bp in self.breakpoints.values() if bp.enabled}

    def add_breakpoint(self, addr: int, condition: Optional[str] = None,
                       temporary: bool = False, label: str = "") -> Breakpoint:
        addr &= MASK64
        if label == "internal":             # not numbered like the user's breakpoints
            self._next_internal -= 1
            number = self._next_internal
        else:
            number = self._next_bp
            self._next_bp += 1
        bp = Breakpoint(number, addr, condition, temporary, label=label)
        already = addr in self._machine_bps()
        self.breakpoints[bp.number] = bp
        if not already:
            self.machine.add_breakpoint(addr)
        return bp

    def delete_breakpoint(self, number: int) -> Breakpoint:
        bp = self.breakpoints.pop(number)
        if bp.addr not in self._machine_bps():
            self.machine.remove_breakpoint(bp.addr)
        return bp

    def breakpoints_at(self, addr: int) -> list[Breakpoint]:
        return [bp for bp in self.breakpoints.values() if bp.enabled and bp.addr == addr]

    def find_breakpoint(self, addr: int) -> Optional[Breakpoint]:
        for bp in self.breakpoints.values():
            if bp.addr == addr:
                return bp
        return None

    # --- execution ----------------------------------------------------------------------------
    def pc(self) -> int:
        return self.machine.reg("pc")

    def _classify(self, result) -> Stop:
        m = self.machine
        reason = getattr(result, "reason", "end")
        pc = getattr(result, "pc", None)
        if pc is None:
            pc = m.reg("pc")
        stop = Stop(reason=reason, pc=pc)
        if reason == "semihost-exit":
            stop.exited, stop.exit_code = True, int(result.code or 0) & 0xFF
            stop.message = f"program exited with code {stop.exit_code}"
        elif reason == "end":
            stop.exited, stop.exit_code = True, 0
            stop.message = "program ran off the end of its text"
        elif reason == "brk":
            code = getattr(result, "code", None)
            stop.signal, stop.si_code = SIGTRAP, TRAP_BRKPT
            stop.message = f"BRK #0x{code or 0:x}"
        elif reason == "exception":
            rec = getattr(result, "exception", None)
            stop.exception = rec
            stop.tag_fault = getattr(rec, "tag_fault", None)
            stop.signal, stop.si_code, stop.fault_addr = _fault_signal(rec)
            if getattr(rec, "pc", None) is not None:
                stop.pc = rec.pc
            stop.message = ("tag-check fault: " if stop.tag_fault is not None else "") + \
                describe_exception(rec)
        elif reason == "insn-limit":
            stop.signal = SIGXCPU
            stop.message = "instruction limit reached"
        elif reason == "interrupt":
            stop.signal = SIGINT
            stop.message = "interrupted"
        elif reason == "watchpoint":
            stop.watch = getattr(result, "watch", None)
            stop.message = "watchpoint hit"
        elif reason == "breakpoint":
            bps = self.breakpoints_at(pc)
            stop.breakpoint = bps[0] if bps else None
            stop.message = "breakpoint"
        else:
            stop.message = reason
        return stop

    def _finish(self, stop: Stop) -> Stop:
        if stop.exited:
            self.exited = stop
        self.last_stop = stop
        if self.recorder is not None:
            self.recorder.note_stop()
        return stop

    def _run(self, budget: int):
        rec = self.recorder
        return rec.run(budget) if rec is not None else self.machine.run(max_insns=budget)

    def host_change(self) -> None:
        """The front end is about to change registers, memory or tags."""
        if self.recorder is not None:
            self.recorder.host_change()

    def _step_raw(self) -> Stop:
        """One instruction, ignoring a breakpoint on the current PC."""
        m = self.machine
        pc = m.reg("pc")
        here = pc in self._machine_bps()
        if here:
            m.remove_breakpoint(pc)
        try:
            result = self.recorder.step(1) if self.recorder is not None else m.step(1)
        finally:
            if here:
                m.add_breakpoint(pc)
        stop = self._classify(result)
        if stop.reason in ("step", "breakpoint"):
            stop.reason, stop.breakpoint = "step", None
            stop.message = "step"
        return stop

    def step(self, count: int = 1) -> Stop:
        """Single-step `count` instructions; stops early at an exit, a fault or a breakpoint."""
        with self.run_lock:
            if self.exited:
                return self.exited
            stop = None
            for i in range(max(1, count)):
                stop = self._step_raw()
                if stop.reason != "step":
                    break
                if i + 1 < count and self._hit_breakpoint(stop.pc):
                    stop = self._classify_bp(stop.pc)
                    break
            return self._finish(stop)

    def _classify_bp(self, pc: int) -> Stop:
        bps = self.breakpoints_at(pc)
        return Stop(reason="breakpoint", pc=pc, breakpoint=bps[0] if bps else None,
                    message="breakpoint")

    def _hit_breakpoint(self, pc: int) -> bool:
        """True when a breakpoint at pc should stop us (its condition holds); counts the hit."""
        hit = False
        for bp in self.breakpoints_at(pc):
            if bp.condition and self.condition_eval is not None:
                try:
                    if not self.condition_eval(bp.condition):
                        continue
                except Exception:           # a bad condition stops, as GDB does
                    pass
            bp.hits += 1
            hit = True
        return hit

    def _drop_temporaries(self, pc: int) -> None:
        for bp in list(self.breakpoints.values()):
            if bp.temporary and bp.addr == pc:
                self.delete_breakpoint(bp.number)

    def cont(self, max_insns: Optional[int] = None) -> Stop:
        """Run until a breakpoint whose condition holds, a fault, the end, or an interrupt."""
        budget = self.max_insns if max_insns is None else max_insns
        with self.run_lock:
            if self.exited:
                return self.exited
            m = self.machine
            start_insns = self._insns()
            first = True
            while True:
                if first and m.reg("pc") in self._machine_bps():
                    stop = self._step_raw()             # leave the breakpoint we sit on
                    if stop.reason != "step":
                        return self._finish(stop)
                    if self._hit_breakpoint(stop.pc):
                        stop = self._classify_bp(stop.pc)
                        self._drop_temporaries(stop.pc)
                        return self._finish(stop)
                first = False
                used = self._insns() - start_insns
                left = budget - used if used >= 0 else budget
                if left <= 0:
                    return self._finish(Stop(reason="insn-limit", pc=m.reg("pc"),
                                             signal=SIGXCPU, message="instruction limit reached"))
                stop = self._classify(self._run(left))
                if stop.reason == "breakpoint":
                    if not self._hit_breakpoint(stop.pc):
                        first = True                    # condition false: keep going
                        continue
                    stop.breakpoint = (self.breakpoints_at(stop.pc) or [None])[0]
                    self._drop_temporaries(stop.pc)
                return self._finish(stop)

    def _insns(self) -> int:
        counters = getattr(self.machine, "counters", None)
        if isinstance(counters, dict):
            return int(counters.get("insns", 0))
        return int(getattr(counters, "insns", 0) or 0)

    def next(self) -> Stop:
        """Step one instruction, running through a call (BL/BLR) to the instruction after it."""
        with self.run_lock:
            if self.exited:
                return self.exited
            pc = self.pc()
            try:
                word = int.from_bytes(self.machine.read_mem(pc, 4), "little")
            except Exception:
                word = 0
            if not is_call(word):
                return self.step()
            return self.run_to(pc + 4)

    def run_to(self, addr: int) -> Stop:
        """Continue with a temporary breakpoint at addr (`until ADDR`, `next` over a call)."""
        bp = self.add_breakpoint(addr, temporary=True, label="internal")
        try:
            return self.cont()
        finally:
            if bp.number in self.breakpoints:
                self.delete_breakpoint(bp.number)

    def request_stop(self) -> None:
        self.machine.request_stop()

    # --- going back -----------------------------------------------------------------------------
    def _need_recorder(self):
        if self.recorder is None:
            raise ReverseError("this session does not record: there is no going back")
        return self.recorder

    def _after_reverse(self, reason: str, message: str) -> Stop:
        self.exited = None
        stop = Stop(reason=reason, pc=self.machine.reg("pc"), message=message)
        self.last_stop = stop
        return stop

    def _goto(self, fn) -> None:
        from aarch64mte.machine.replay import ReplayError
        try:
            fn()
        except ReplayError as exc:
            raise ReverseError(str(exc)) from None

    def reverse_step(self, count: int = 1) -> Stop:
        """Back ``count`` instructions (to the start of the recorded history at most)."""
        with self.run_lock:
            rec = self._need_recorder()
            now = self._insns()
            target = max(now - max(1, count), rec.earliest)
            if target == now:
                return self._after_reverse("history-start", "at the start of the recorded "
                                                            "history")
            self._goto(lambda: rec.goto(target))
            if target == rec.earliest and target > now - count:
                return self._after_reverse("history-start", "at the start of the recorded "
                                                            "history")
            return self._after_reverse("step", "step back")

    def reverse_continue(self, access_then_step: bool = False) -> Stop:
        """Back to the last time before now that a breakpoint (whose condition holds) was
        reached or a watch hit; or to the start of the recorded history.

        A data watch stops before the access. With ``access_then_step`` (GDB: AArch64
        watchpoints are not continuable, so GDB steps over the access itself, in reverse a step
        back) the stop is right after the access instead, and the access may be the last
        instruction run."""
        with self.run_lock:
            rec = self._need_recorder()
            m = self.machine
            now = self._insns()
            bps = self._machine_bps()
            watched = {}                    # count -> the watch hit there
            interrupted = []

            def find(limit: int):
                hits = []
                if m.reg("pc") in bps and self._insns() < now and \
                        self._condition_holds(m.reg("pc")):
                    hits.append(self._insns())  # a run starting here would not stop here
                while self._insns() < limit:
                    r = m.run(max_insns=limit - self._insns())
                    at = self._insns()
                    if r.reason == "breakpoint":
                        if r.pc in bps and at < now and self._condition_holds(r.pc):
                            hits.append(at)
                    elif r.reason == "watchpoint":
                        w = r.watch
                        if getattr(w, "before", False):
                            at += 1 if access_then_step else 0
                        else:
                            at -= 1                 # after the instruction: before it
                        if at < now or (access_then_step and at == now and w.before):
                            watched[at] = w
                            hits.append(at)
                    elif r.reason == "interrupt":
                        interrupted.append(True)
                        return None
                    elif r.reason not in ("exception", "brk", "insn-limit", "step"):
                        break
                return hits

            found = None
            if now > rec.earliest or access_then_step:
                from aarch64mte.machine.replay import ReplayError
                try:
                    found = rec.scan_back(find)
                except ReplayError as exc:
                    raise ReverseError(str(exc)) from None
            if interrupted and found is None:          # Ctrl-C: back where it stood
                self._goto(lambda: rec.goto(now))
                stop = self._after_reverse("interrupt", "interrupted")
                stop.signal = SIGINT
                return stop
            if found is None:
                self._goto(lambda: rec.goto(rec.earliest))
                return self._after_reverse("history-start", "at the start of the recorded "
                                                            "history")
            self._goto(lambda: rec.goto(found))
            pc = m.reg("pc")
            if found in watched:
                stop = self._after_reverse("watchpoint", "watchpoint hit")
                w = stop.watch = watched[found]
                if w.before and not access_then_step:
                    m.debugging.before_skip = (pc, found)   # resuming makes that access
            else:
                stop = self._after_reverse("breakpoint", "breakpoint")
                stop.breakpoint = (self.breakpoints_at(pc) or [None])[0]
            return stop

    def _condition_holds(self, pc: int) -> bool:
        bps = self.breakpoints_at(pc)
        for bp in bps:
            if not bp.condition or self.condition_eval is None:
                return True
            try:
                if self.condition_eval(bp.condition):
                    return True
            except Exception:
                return True
        return not bps

    def goto(self, insns: int) -> Stop:
        """The state after ``insns`` instructions (no later than now)."""
        with self.run_lock:
            rec = self._need_recorder()
            self._goto(lambda: rec.goto(insns))
            return self._after_reverse("step", f"at instruction {insns:,}")

    def reverse_to_tag_write(self, addr: int):
        """Back to just before the last write of the allocation tag of the granule holding
        ``addr``: (Stop, the TagWrite). The machine is then where that instruction is about to
        run (or, for a host write, as the host found it)."""
        with self.run_lock:
            rec = self._need_recorder()
            m = self.machine
            va = strip_tag(addr)
            last, _ = m.tag_writers(va)
            if last is None:
                if not m.is_tagged(va):
                    raise ReverseError(f"{va:#x} is not Tagged memory: it has no allocation tag")
                raise ReverseError(f"no write of the tag of granule {va & ~(GRANULE - 1):#x} is "
                                   f"recorded: it holds the tag it started with")
            if not last.by_instruction and last.seq is None:
                raise ReverseError(f"that {last.kind} write is older than the tag-write history")
            self._goto(lambda: rec.goto_before_write(last))
            if last.by_instruction and m.reg("pc") != last.pc:
                raise ReverseError(f"re-execution reached {m.reg('pc'):#x}, not the writer at "
                                   f"{last.pc:#x}")
            return self._after_reverse("step", "before the tag write"), last


class ReverseError(Exception):
    """Going back is not possible (no recording, or before the recorded history)."""
