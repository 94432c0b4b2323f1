"""Going back: snapshots of the machine and deterministic re-execution between them.

``Recorder(machine)`` runs the machine in chunks and takes a snapshot between chunks, at stops
and around host changes; ``goto(n)`` brings the machine to the state it had when ``n``
instructions had run: it restores the latest snapshot at or before ``n`` and runs forward the
difference, with breakpoints and watches lifted. That is exact because a run is a function of
the state it starts from (``hostinputs`` makes the clocks and random numbers so) and the state is
all in a snapshot:

- the engine's CPU context (``uc_context_save``: every general, SIMD and system register);
- the shared core's fields, but for its pointers and caches (MTE registers, counters, the
  provenance sequence), and the Python paths' counters, MTE registers, exclusive monitor and
  log lengths (and the EL2 shim's HCR_EL2, exit log and stage-2 tables in host memory; its
  handler must be a function of the machine's state, as the machine is);
- the pages of RAM, allocation tags and provenance records that changed since the previous
  snapshot: each is compared with a shadow copy of its content at the previous snapshot (libc
  ``memcmp`` per MiB, then per 4 KiB page), so a snapshot costs a compare of memory plus a copy
  of what changed.

What the host changes between runs (the debugger's ``set``, GDB's ``M``/``G``/``QMemTags``) is
not re-executable: ``host_change()`` takes a snapshot before it and marks one to be taken after
it, so a replay never crosses it. Replays re-take unhandled-exception and BRK stops as the
original run did. After going back, snapshots later than the restored one describe a future
that re-execution reaches again, but for what the host changed there: running forward from
the past takes each snapshot's state as it reaches its count (so those changes come back),
until a new host change makes a new future and drops them.

Bounds: at most ``max_snapshots`` snapshots (default 64; beyond, the one whose removal leaves the
smallest gap is merged into its successor) and ``budget`` bytes of stored pages (default 256
MiB; beyond, the oldest is merged into the next, giving up history before it). Merging keeps at
most one copy of each page per snapshot, so the worst case is two snapshots of every page (the
oldest and the newest), plus the shadow copies: three times RAM + tags + provenance records.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import time
from dataclasses import dataclass, field, fields as dc_fields
from typing import Dict, List, Optional, Tuple

from . import native
from .results import RunResult

PAGE = 4096
CHUNK = 1 << 20
DEFAULT_SNAPSHOTS = 64
DEFAULT_BUDGET = 256 << 20
MIN_INTERVAL, MAX_INTERVAL = 100_000, 50_000_000
BACK_STRIDE = 20_000                # going back further than twice this leaves a snapshot
SCAN_WINDOW = 64                    # the first window reverse-continue searches (then x8)
# fraction of run time snapshots may take: the interval grows with the cost of a snapshot
SNAPSHOT_SHARE = 0.05
# core fields a snapshot leaves alone: pointers, callbacks, caches rebuilt after a restore,
# what describes the engine's hooks rather than the machine (check_hooked) and configuration
_CORE_SKIP = {"api", "regions", "stlb", "ctlb", "tcache", "winfo", "py_check", "py_intr",
              "py_winfo", "py_event", "py_fetch", "py_fill", "prov_ring", "prov_last",
              "check_hooked", "prov_on", "prov_mask", "regime_valid", "fast_traps",
              "fast_fills"}


class ReplayError(Exception):
    """The state asked for is not reachable from the recorded history."""


def _memcmp():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        f = libc.memcmp
    except (OSError, AttributeError):
        return None
    f.restype = ctypes.c_int
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return f


_MEMCMP = _memcmp()


_ZERO = bytes(CHUNK)
_ZERO_ADDR = ctypes.cast(ctypes.c_char_p(_ZERO), ctypes.c_void_p).value


class _Region:
    """One span of memory a snapshot covers, with its shadow: the content at the last snapshot.
    Shadow chunks never written are compared with zeros instead (reading them would make the
    kernel map every page of them)."""

    def __init__(self, name: str, buf) -> None:
        import mmap
        self.name = name
        self.buf = buf
        self.size = len(buf)
        self.shadow = mmap.mmap(-1, self.size)
        self._anchors = [(ctypes.c_char * self.size).from_buffer(buf),
                         (ctypes.c_char * self.size).from_buffer(self.shadow)]
        self.addr = ctypes.addressof(self._anchors[0])
        self.shadow_addr = ctypes.addressof(self._anchors[1])
        self._written = bytearray((self.size + CHUNK - 1) // CHUNK)   # shadow chunks written

    def _differs(self, off: int, n: int) -> bool:
        written = self._written[off // CHUNK]
        if _MEMCMP is not None:
            other = self.shadow_addr + off if written else _ZERO_ADDR
            return bool(_MEMCMP(self.addr + off, other, n))
        return self.buf[off:off + n] != (self.shadow[off:off + n] if written else _ZERO[:n])

    def changed(self, candidates=None) -> List[int]:
        """Offsets of the pages whose content differs from the shadow (among ``candidates``,
        page offsets, when the caller knows where changes can be)."""
        size = self.size
        if candidates is not None:
            return sorted(p for p in candidates if self._differs(p, min(PAGE, size - p)))
        out = []
        for off in range(0, size, CHUNK):
            n = min(CHUNK, size - off)
            if self._differs(off, n):
                out += [p for p in range(off, off + n, PAGE) if self._differs(p, min(PAGE, size - p))]
        return out

    def read(self, off: int) -> bytes:
        return bytes(self.buf[off:off + PAGE])

    def set_shadow(self, off: int, data: bytes) -> None:
        self.shadow[off:off + len(data)] = data
        self._written[off // CHUNK] = 1

    def put(self, off: int, data: Optional[bytes]) -> None:
        """Set a page (None: zeros) in the memory and the shadow."""
        k = min(PAGE, self.size - off)
        page = data if data is not None else bytes(k)
        self.buf[off:off + k] = page
        self.set_shadow(off, page)


@dataclass
class Snapshot:
    insns: int
    prov_seq: int
    note: str                       # 'start', 'interval', 'stop', 'host-before', 'host-after'
    context: object                 # the engine's saved CPU context
    core: bytes                     # the core's state fields (``_core_spans``)
    state: dict                     # Python-side counters, registers, log lengths
    pages: Dict[Tuple[int, int], Optional[bytes]] = field(default_factory=dict)
    taken_at: float = 0.0

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.pages.values() if p is not None) + len(self.core)


def _core_spans() -> List[Tuple[int, int]]:
    spans = []
    for name, ctype in native.Core._fields_:
        if name in _CORE_SKIP:
            continue
        f = getattr(native.Core, name)
        if spans and spans[-1][0] + spans[-1][1] == f.offset:
            spans[-1] = (spans[-1][0], spans[-1][1] + f.size)
        else:
            spans.append((f.offset, f.size))
    return spans


_SPANS = _core_spans()


class Recorder:
    def __init__(self, machine, max_snapshots: int = DEFAULT_SNAPSHOTS,
                 budget: int = DEFAULT_BUDGET, interval: int = 1_000_000,
                 adaptive: bool = True) -> None:
        if max_snapshots < 2:
            raise ValueError("a recording needs at least 2 snapshots")
        self.m = machine
        self.max_snapshots = max_snapshots
        self.budget = budget
        self.interval = max(1, interval)
        self.adaptive = adaptive         # the interval follows the cost of a snapshot
        self.back_stride = BACK_STRIDE
        self.regions = [_Region("ram", machine.ram.buf),
                        _Region("tags", machine.tags._ranges[0].tags)]
        self.prov = prov = getattr(machine, "provenance", None)
        self._last_region = self._ring_region = None
        if prov is not None:
            self.regions += [_Region(name, buf) for name, buf in prov.mappings]
            self._last_region, self._ring_region = self.regions[2], self.regions[3]
        host = getattr(machine, "host_memory", None)
        if host is not None:                  # the EL2 shim's stage-2 tables
            self.regions.append(_Region("host", host.buf))
        self._core_bytes = (ctypes.c_char * ctypes.sizeof(machine.core)).from_buffer(machine.core)
        self.snaps: List[Snapshot] = []
        self._base = 0                   # the snapshot the shadows hold
        self._rate = None                # instructions per second of the last chunk
        self.host_dirty = False          # the host changed the state since the last snapshot
        self.replaying = False
        self.horizon = self.insns        # the furthest count the recorded run reached
        self.snapshot("start")

    # --- state ------------------------------------------------------------------------------
    @property
    def insns(self) -> int:
        return self.m.counting.counter.insns

    def _py_state(self) -> dict:
        m = self.m
        st = {
            "counters": {f.name: getattr(m.counters, f.name) for f in dc_fields(m.counters)},
            "by_class": dict(m.counters.by_class),
            "counting": (m.counting.bytes_read, m.counting.bytes_written),
            "tagunit": (m.tagunit.tag_checks, m.tagunit.checked_granules_read,
                        m.tagunit.checked_granules_written,
                        getattr(m.tagunit, "faults_dropped", 0) + len(m.tagunit.faults)),
            "cpu": (m.cpu.tag_granules_read, m.cpu.tag_granules_written,
                    m.cpu.insn_bytes_written),
            "mte_insns": m.mteunit.mte_insns,
            "exceptions": len(m.exc.log),
            "console": len(m._console),
        }
        counter = m.counting.counter
        if counter is not m.core:
            st["counter"] = tuple(getattr(counter, k) for k in counter.__slots__)
        if not hasattr(m.mte, "_core"):          # the Python paths keep them in Python
            st["mte"] = dict(vars(m.mte))
        st["hcr"] = getattr(m.mmu, "hcr_value", None)
        slow = getattr(m, "slowpath", None)
        if slow is not None:                      # the exclusive monitor held in Python
            st["monitor"] = dict(vars(slow.monitor))
        shim = getattr(m, "shim", None)
        if shim is not None:
            st["shim"] = (shim.hcr_value, len(shim.exits))
        return st

    def _changed(self, r: _Region) -> List[int]:
        """The pages of ``r`` that differ from its shadow. The provenance records change only
        where a tag write since the base snapshot says (each one is in the ring, unless it
        wrapped since), so only those pages are compared."""
        prov = self.prov
        if prov is not None and r in self.regions[2:4]:
            # before the first snapshot the shadows are zero, as the records were at seq 0
            since = self.snaps[self._base].prov_seq if self.snaps else 0
            now = prov.seq
            if 0 <= now - since < prov.entries:
                ring, mask, base = prov.ring, prov.entries - 1, prov.base
                seqs = range(since + 1, now + 1)
                if r is self._ring_region:
                    pages = {(32 * (q & mask)) & ~(PAGE - 1) for q in seqs}
                else:                               # 16 bytes a granule
                    pages = {(((ring[4 * (q & mask) + 1] - base) >> 4) * 16) & ~(PAGE - 1)
                             for q in seqs}
                return r.changed(pages)
        return r.changed()

    def snapshot(self, note: str) -> Snapshot:
        """Record the machine as it is now (between runs): after the newest snapshot, or, in
        the past, between the one it went back to and the next (whose pages are then made
        relative to the new one)."""
        t0 = time.perf_counter()
        m = self.m
        core = bytes(self._core_bytes)
        snap = Snapshot(self.insns, m.core.prov_seq, note, m.uc.context_save(),
                        b"".join(core[o:o + n] for o, n in _SPANS), self._py_state())
        for ri, r in enumerate(self.regions):
            for off in self._changed(r):
                data = r.read(off)
                r.set_shadow(off, data)
                snap.pages[(ri, off)] = None if not any(data) else data
        at = self._base + 1 if self.snaps else 0
        if at < len(self.snaps):
            nxt = self.snaps[at]
            for key in snap.pages:
                if key not in nxt.pages:
                    nxt.pages[key] = self._version(key, self._base)
        self.snaps.insert(at, snap)
        self._base = at
        self._thin()
        snap.taken_at = time.perf_counter() - t0
        return snap

    def _restore(self, idx: int) -> None:
        """Put the machine in the state of snapshot ``idx`` (later snapshots stay)."""
        m = self.m
        s = self.snaps[idx]
        later = set()
        for t in self.snaps[min(idx, self._base) + 1:]:
            later.update(t.pages)
        for ri, r in enumerate(self.regions):
            for off in self._changed(r):
                later.add((ri, off))
        for key in later:
            self.regions[key[0]].put(key[1], self._version(key, idx))
        self._base = idx
        m.uc.context_restore(s.context)
        buf, pos = self._core_bytes, 0
        for o, n in _SPANS:
            buf[o:o + n] = s.core[pos:pos + n]
            pos += n
        st = s.state
        for k, v in st["counters"].items():
            setattr(m.counters, k, v)
        m.counters.by_class = dict(st["by_class"])
        m.counting.bytes_read, m.counting.bytes_written = st["counting"]
        m.counting._class_block = None
        tu = m.tagunit
        tu.tag_checks, tu.checked_granules_read, tu.checked_granules_written, nf = st["tagunit"]
        # the log keeps the latest failed checks only: what it dropped does not come back
        dropped = getattr(tu, "faults_dropped", 0)
        del tu.faults[max(0, nf - dropped):]
        if nf < dropped:
            tu.faults_dropped = nf
        tu._instance = None
        (m.cpu.tag_granules_read, m.cpu.tag_granules_written,
         m.cpu.insn_bytes_written) = st["cpu"]
        m.mteunit.mte_insns = st["mte_insns"]
        del m.exc.log[st["exceptions"]:]
        del m._console[st["console"]:]
        if "counter" in st:
            for k, v in zip(m.counting.counter.__slots__, st["counter"]):
                setattr(m.counting.counter, k, v)
        if "mte" in st:
            vars(m.mte).update(st["mte"])
        if st.get("hcr") is not None:
            m.mmu.hcr_value = st["hcr"]
        if "monitor" in st:
            vars(m.slowpath.monitor).update(st["monitor"])
            m.slowpath.pass_pc = None
        if "shim" in st:
            m.shim.hcr_value, n = st["shim"]
            del m.shim.exits[n:]
        m.debugging.before_skip = None
        core = m.core
        core.inst_insns = core.inst_blk = core.inst_pc = 0
        core.in_fault = core.refuse_fills = 0
        m.events.clear_run()
        m.debugging._data_hit = None
        m.regs.set_pstate(m.regs.pstate())     # the engine rebuilds its cached flags
        m.mmu.invalidate()
        m.uc.ctl_flush_tb()                    # the code may differ

    def _version(self, key, idx: int) -> Optional[bytes]:
        for s in reversed(self.snaps[:idx + 1]):
            if key in s.pages:
                return s.pages[key]
        return None

    def _drop_after(self, idx: int) -> None:
        del self.snaps[idx + 1:]

    # --- bounds -----------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.snaps)

    def _merge_into_next(self, i: int) -> None:
        """Give up snapshot ``i`` (not the one the shadows hold): the next one takes the pages
        it lacks."""
        assert i != self._base
        s, nxt = self.snaps[i], self.snaps[i + 1]
        for key, data in s.pages.items():
            nxt.pages.setdefault(key, data)
        del self.snaps[i]
        if i < self._base:
            self._base -= 1

    def _thin(self) -> None:
        """Keep within the bounds; never the snapshot the shadows hold."""
        while len(self.snaps) > self.max_snapshots:
            # the interior snapshot whose neighbours are closest
            interior = [i for i in range(1, len(self.snaps) - 1) if i != self._base]
            if not interior:
                break
            best = min(interior, key=lambda i: self.snaps[i + 1].insns - self.snaps[i - 1].insns)
            self._merge_into_next(best)
        while self.nbytes > self.budget and len(self.snaps) > 2 and self._base > 0:
            self._merge_into_next(0)

    @property
    def earliest(self) -> int:
        return self.snaps[0].insns

    def status(self) -> dict:
        return {"snapshots": len(self.snaps), "bytes": self.nbytes,
                "earliest": self.earliest, "latest": self.snaps[-1].insns,
                "max_snapshots": self.max_snapshots, "budget": self.budget,
                "interval": self.interval}

    # --- running forward --------------------------------------------------------------------
    @property
    def in_past(self) -> bool:
        """The machine stands before the newest snapshot (it went back): running forward
        re-executes the recorded run, host changes included, until it passes that snapshot."""
        return self._base < len(self.snaps) - 1

    def host_change(self) -> None:
        """The host is about to change the machine's state (registers, memory, tags). In the
        past this starts a new future: the snapshots after this point are dropped."""
        if self.replaying or self.host_dirty:
            return
        if self.in_past:
            self._drop_after(self._base)
        self.horizon = self.insns
        if self.snaps[-1].insns != self.insns:
            self.snapshot("host-before")
        self.host_dirty = True

    def _before_run(self) -> None:
        if self.host_dirty:
            self.host_dirty = False
            self.snapshot("host-after")

    def _maybe_snapshot(self, note: str, min_gap: int) -> None:
        if self.in_past or self.insns - self.snaps[-1].insns < min_gap:
            return
        t0 = time.perf_counter()
        self.snapshot(note)
        cost = time.perf_counter() - t0
        if self._rate and self.adaptive:
            want = int(self._rate * cost / SNAPSHOT_SHARE)
            self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, want))

    def _boundary(self) -> Optional[int]:
        """In the past: reaching the next snapshot's count, take its state (the same state,
        but for what the host changed there); returns the count of the next one, or None."""
        while self.in_past and self.snaps[self._base + 1].insns <= self.insns:
            self._restore(self._base + 1)
        return self.snaps[self._base + 1].insns if self.in_past else None

    def run(self, budget: int) -> RunResult:
        """``machine.run(budget)``, with a snapshot every ``interval`` instructions (in the
        past: stopping at each recorded snapshot to take what the host changed there)."""
        m = self.m
        self._before_run()
        start = self.insns
        while True:
            left = budget - (self.insns - start)
            nxt = self._boundary()
            if nxt is not None:
                chunk = min(left, nxt - self.insns)
            else:
                chunk = min(left, max(1, self.snaps[-1].insns + self.interval - self.insns))
            if chunk <= 0:
                return RunResult("insn-limit", None, None, m.reg("pc"))
            t0, n0 = time.perf_counter(), self.insns
            r = m.run(chunk)
            dt = time.perf_counter() - t0
            if dt > 0.01:
                self._rate = (self.insns - n0) / dt
            self.horizon = max(self.horizon, self.insns)
            if r.reason != "insn-limit" or chunk >= left:
                self._boundary()
                return r
            self._maybe_snapshot("interval", 1)
            self._boundary()
            if m.debugging.has_breakpoint(m.reg("pc")):     # the next chunk would skip it
                return RunResult("breakpoint", None, None, m.reg("pc"))

    def step(self, n: int = 1) -> RunResult:
        """``machine.step(n)`` (in the past: taking each recorded snapshot on the way)."""
        self._before_run()
        end = self.insns + n
        while True:
            nxt = self._boundary()
            k = end - self.insns if nxt is None else min(end - self.insns, nxt - self.insns)
            r = self.m.step(max(k, 0))
            self.horizon = max(self.horizon, self.insns)
            if r.reason != "step" or self.insns >= end:
                break
        self._boundary()
        if self.insns - self.snaps[-1].insns >= self.interval:
            self._maybe_snapshot("interval", 1)
        return r

    def note_stop(self) -> None:
        """A run stopped and the user will look around: keep a snapshot here when the last one
        is far back, so that stepping back from here replays little."""
        self._maybe_snapshot("stop", max(1, self.interval // 8))

    # --- going back -------------------------------------------------------------------------
    def _index_at(self, insns: int, before_seq: Optional[int] = None) -> int:
        best = None
        for i, s in enumerate(self.snaps):
            if s.insns <= insns and (before_seq is None or s.prov_seq < before_seq):
                best = i
        if best is None:
            raise ReplayError(f"instruction {insns:,} is before the recorded history (it "
                              f"starts at instruction {self.earliest:,})")
        return best

    def _lift(self, stops: bool = True):
        """Breakpoints and watches (``stops``), stops at exceptions and live output off for a
        replay."""
        m = self.m
        bps = list(m.breakpoints) if stops else []
        watches = m.debugging.watch_specs() if stops else []
        saved = (bps, watches, m.stop_on_exception, m.on_output)
        for a in bps:
            m.remove_breakpoint(a)
        for va, length, kind, _ in watches:
            m.remove_watch(va, length, kind)
        m.stop_on_exception = False
        m.on_output = None
        return saved

    def _put_back(self, saved) -> None:
        m = self.m
        for a in saved[0]:
            m.add_breakpoint(a)
        for w in saved[1]:
            m.add_watch(*w)
        m.stop_on_exception, m.on_output = saved[2], saved[3]

    def _forward_to(self, insns: int) -> None:
        m = self.m
        while self.insns < insns:
            r = m.run(insns - self.insns)
            if r.reason in ("end", "semihost-exit", "interrupt"):
                break

    def goto(self, insns: int, before_seq: Optional[int] = None) -> None:
        """The state after ``insns`` instructions (and before tag write number ``before_seq``,
        for a host write): back through the history, or forward through the recorded future;
        raises ReplayError where neither reaches."""
        if insns > self.insns:
            if insns > self.horizon:
                raise ReplayError(f"instruction {insns:,} has not run yet (the recorded run "
                                  f"reaches {self.horizon:,})")
            saved = self._lift()
            try:
                while self.insns < insns:
                    r = self.run(insns - self.insns)
                    if r.reason in ("end", "semihost-exit", "interrupt"):
                        break
            finally:
                self._put_back(saved)
            return
        idx = self._index_at(insns, before_seq)
        saved = self._lift()
        self.replaying = True
        try:
            self._restore(idx)
            self.host_dirty = False
            stride = self.back_stride
            if insns - self.insns > 2 * stride:
                # a snapshot a little before the target: stepping back again from there
                # re-executes little
                self._forward_to(insns - stride)
                if self.insns == insns - stride:
                    self.snapshot("back")
            self._forward_to(insns)
        finally:
            self.replaying = False
            self._put_back(saved)
        if self.insns != insns:
            raise ReplayError(f"re-execution ended at instruction {self.insns:,}, not "
                              f"{insns:,}")

    def goto_before_write(self, w) -> None:
        """Just before tag write ``w`` (a ``provenance.TagWrite`` with its ``seq``): for an
        instruction, the state before that instruction ran; for a host write, the state the
        host found."""
        if w.by_instruction:
            self.goto(w.insns - 1)
        else:
            self.goto(w.insns, before_seq=w.seq)

    def scan_back(self, find) -> Optional[int]:
        """The last instruction count at which ``find`` reports a hit, searching back from now.

        ``find(limit)`` runs the machine forward from where it stands to ``limit`` instructions,
        with the breakpoints and watches in place, and returns the counts of the hits it saw
        (in order, only those it accepts), or None to give up the search. Windows that end
        where the previous one began, each 8 times longer, are searched from now back (a
        hit near now is found without running through everything before it); the caller
        then ``goto``s the count found (or where it stood, or the start of the history)."""
        end, width = self.insns, SCAN_WINDOW
        while end > self.earliest:
            start = max(self.earliest, end - width)
            self.goto(start)
            saved = self._lift(stops=False)
            self.replaying = True
            try:
                hits = find(end)
            finally:
                self.replaying = False
                self._put_back(saved)
            if hits is None:                    # the search was interrupted
                return None
            if hits:
                return hits[-1]
            end, width = start, width * 8
        return None
