"""Breakpoints (code hooks bounded to one address) and watches.

Data watches (``kind`` 'data' for writes, 'read', 'access' for either) keep the engine away from
their pages: the TLB fill maps a page with only write watches read-only and refuses a write to
it; a page with a read or access watch gets no data mapping at all. A refused access stops the
engine at the accessing instruction, with its registers as they were before it. Then:

- ``when='before'``: the instruction's footprint is predicted (``footprint``); if it meets a
  watch of its kind, the run stops there, the access not made (what GDB expects of AArch64
  watchpoints: it steps the access itself and reports the change). Resuming runs that
  instruction without stopping again.
- otherwise (or when nothing is predicted), the instruction runs alone with its pages mapped,
  and a memory hook on the watched range reports a hit after it ('after', the default).

MTE instructions write data without the engine's memory path: for them the prediction comes
from their operands before they run, and their writes are noted as they happen (after).

Tag watches compare the tags after each tag instruction (which then all run in Python) and stop
after the one that changed them.
"""
from __future__ import annotations

from typing import Callable, Optional

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_MEM_WRITE

from .footprint import engine_footprint, mte_footprint
from .hostinputs import exact_count
from .memory import ALIAS_FLAG, ALIAS_SHIFT, PAGE
from .results import RunResult, WatchHit
from .translation import READ, WRITE, WalkFault

DATA_KINDS = ("data", "read", "access")
_READS = ("read", "access")
_WRITES = ("data", "access")


class Debugging:
    def __init__(self, eng, mmu, events, read_tags: Callable, pa_of: Callable) -> None:
        self.eng = eng
        self.mmu = mmu
        self.events = events
        self.read_tags = read_tags          # (va, length) -> [tag]
        self.pa_of = pa_of                  # (va) -> PA, for the debugger
        self.counter = None                 # the block counter (Machine sets it)
        self.mteunit = None                 # MteUnit: asks ``mte_before`` when a watch stops before
        self.core = None                    # the shared core (DCZID_EL0's block size)
        self._breakpoints = {}
        self.bp_skip = None                 # resuming at this breakpoint: do not stop at once
        self.watches = []
        self._watch_pages = set()           # PA pages (1 KiB) holding a data watch
        self._read_pages = set()            # ... a read or access watch: no mapping at all
        self._before = []                   # the watches that stop before the access
        self._pass = False                  # an access to a watched page now runs alone, mapped
        self._quiet = False                 # ... and it was reported before: no hit after it
        self.before_skip = None             # (pc, count): resuming at a stop before an access
        self.watch_step_pc = 0              # the instruction that runs alone
        self._data_hit = None               # a watch hit by a write the machine made
        mmu.watch_filter = self.fill_filter

    @property
    def watch_pass(self) -> bool:
        return self._pass

    @watch_pass.setter
    def watch_pass(self, value: bool) -> None:
        self._pass = value
        if not value:
            self._quiet = False

    # --- breakpoints -------------------------------------------------------------------------
    def add_breakpoint(self, addr: int) -> None:
        if addr not in self._breakpoints:
            self._breakpoints[addr] = self.eng.uc.hook_add(UC_HOOK_CODE, self._on_breakpoint,
                                                           begin=addr, end=addr)

    def remove_breakpoint(self, addr: int) -> None:
        h = self._breakpoints.pop(addr, None)
        if h is not None:
            self.eng.uc.hook_del(h)

    @property
    def breakpoints(self):
        return sorted(self._breakpoints)

    def has_breakpoint(self, addr: int) -> bool:
        return addr in self._breakpoints

    def _on_breakpoint(self, uc, addr, size, ud) -> None:
        if self.bp_skip == addr:
            self.bp_skip = None
            return
        self.bp_skip = None
        self.events.pending = ("stop", RunResult("breakpoint", None, None, addr))
        self.eng.emu_stop()

    # --- watches ---------------------------------------------------------------------------------
    def add_watch(self, va: int, length: int = 1, kind: str = "tag", when: str = "after") -> None:
        """Stop a run when an instruction writes data into [va, va + length) (``kind='data'``),
        reads it ('read'), does either ('access'), or changes an allocation tag there ('tag');
        right after the instruction (``when='after'``) or, for data, before it ('before')."""
        if kind not in ("tag",) + DATA_KINDS:
            raise ValueError("watch kind is 'tag', 'data', 'read' or 'access'")
        if when not in ("after", "before") or (when == "before" and kind == "tag"):
            raise ValueError("a data watch stops 'before' or 'after' the access; a tag watch "
                             "'after' the change")
        w = {"va": va, "length": max(1, length), "kind": kind, "when": when, "hook": None}
        if kind == "tag":
            w["tags"] = self.read_tags(va, length)
        else:
            pas = []
            a, end = va, va + w["length"]
            while a < end:
                k = min(end - a, (a | 0xFFF) + 1 - a)
                pas.append((self.pa_of(a), k))
                a += k
            w["pas"] = pas
            types = ((UC_HOOK_MEM_WRITE,) if kind == "data" else (UC_HOOK_MEM_READ,)
                     if kind == "read" else (UC_HOOK_MEM_WRITE, UC_HOOK_MEM_READ))
            w["hook"] = [self.eng.uc.hook_add(ht, self._on_data_watch, w,
                                              begin=base + pa, end=base + pa + k - 1)
                         for pa, k in pas
                         for base in [0] + [ALIAS_FLAG | (t << ALIAS_SHIFT) for t in range(16)]
                         for ht in types]
        self.watches.append(w)
        self._watches_changed()

    def remove_watch(self, va: int, length: Optional[int] = None,
                     kind: Optional[str] = None) -> None:
        """Remove the watches at ``va`` of that length and kind (None: any)."""
        keep = []
        for w in self.watches:
            if w["va"] == va and (kind is None or w["kind"] == kind) and \
                    (length is None or w["length"] == max(1, length)):
                for h in w["hook"] or ():
                    self.eng.uc.hook_del(h)
            else:
                keep.append(w)
        self.watches = keep
        self._watches_changed()

    def _watches_changed(self) -> None:
        pages, reads = set(), set()
        for w in self.watches:
            for pa, k in w.get("pas", ()):
                span = range(pa & ~(PAGE - 1), pa + k, PAGE)
                pages.update(span)
                if w["kind"] in _READS:
                    reads.update(span)
        self._watch_pages, self._read_pages = pages, reads
        self._before = [w for w in self.watches if w["when"] == "before"]
        if self.mteunit is not None:
            self.mteunit.before_check = self.mte_before if self._before else None
        self.mmu.watching = bool(self.watches)   # every fill and MTE instruction in Python
        self.mmu.invalidate()

    def list_watches(self):
        return [(w["va"], w["length"], w["kind"]) for w in self.watches]

    def watch_specs(self):
        """Every watch as the arguments ``add_watch`` takes: (va, length, kind, when)."""
        return [(w["va"], w["length"], w["kind"], w["when"]) for w in self.watches]

    def fill_filter(self, pa_page: int, acc: str, vaddr: int):
        """For the TLB fill: False (no watch here), True (map read-only), None (refuse: an
        access to a watched page, which then stops or runs alone). An instruction fetch from
        a page with a read watch is refused too: the engine's entry for the code would let
        the data reads through unseen (code there then runs an instruction at a time)."""
        if pa_page not in self._watch_pages or self._pass:
            return False
        if acc == WRITE or pa_page in self._read_pages:
            self.events.watch_trap = vaddr
            return None
        return True

    def _hit(self, w, pc: int, addr: Optional[int] = None, access: str = "",
             before: bool = False) -> WatchHit:
        return WatchHit(w["va"], w["length"], w["kind"], pc, before=before,
                        addr=w["va"] if addr is None else addr, access=access)

    # --- stopping before an access -------------------------------------------------------------
    def _meets(self, accesses, el: int):
        """The first before-watch an access of ``accesses`` reaches: (watch, VA of the first
        watched byte it touches, 'read'|'write'), or None."""
        stage1 = self.mmu.translate
        for acc in accesses:
            a, end = acc.va, acc.va + acc.length
            while a < end:
                k = min(end - a, (a | 0xFFF) + 1 - a)
                t = stage1(a, el, WRITE if acc.writes and not acc.reads else READ)
                if not isinstance(t, WalkFault):
                    for w in self._before:
                        kind = w["kind"]
                        if not ((acc.writes and kind in _WRITES) or (acc.reads and kind in _READS)):
                            continue
                        for wpa, wk in w["pas"]:
                            lo, hi = max(wpa, t.pa), min(wpa + wk, t.pa + k)
                            if lo < hi:
                                how = "write" if acc.writes and kind in _WRITES else "read"
                                return w, w["va"] + (lo - wpa) if lo > wpa else w["va"], how
                a += k
        return None

    def _resuming(self, pc: int, count: int) -> bool:
        """True (once) when this instruction was the one a stop before an access reported."""
        if self.before_skip == (pc, count):
            self.before_skip = None
            self._quiet = True
            return True
        return False

    def on_refused_access(self, pc: int, word: int, read_reg, el: int) -> Optional[WatchHit]:
        """At a refused fill for the engine's instruction at ``pc`` (not run yet): the watch it
        would reach, as a stop before it; None: let it run alone."""
        self._data_hit = None               # DC ZVA noted its write before its fill was refused
        if not self._before:
            return None
        count = self.counter.insns
        if self._resuming(pc, count):
            return None
        accesses = engine_footprint(word, read_reg, self.core.dczid_bytes)
        met = self._meets(accesses or (), el)
        if met is None:
            return None
        self.before_skip = (pc, count)
        return self._hit(met[0], pc, met[1], met[2], before=True)

    def mte_before(self, insn, x_or_sp, pc: int, el: int) -> bool:
        """Before an MTE instruction at ``pc`` runs in Python: stop the run before it (True)
        when its data writes would reach a before-watch."""
        count = exact_count(self.counter, pc) - 1
        if self._resuming(pc, count):
            return False
        met = self._meets(mte_footprint(insn, x_or_sp, self.core.dczid_bytes), el)
        if met is None:
            return False
        self.before_skip = (pc, count)
        self.events.pending = ("watch", self._hit(met[0], pc, met[1], met[2], before=True))
        self.eng.emu_stop()
        return True

    # --- stopping after ------------------------------------------------------------------------
    def check_after(self, pc: int) -> None:
        """After the trapped instruction at ``pc``: did it hit a watch?"""
        hit = self._data_hit
        quiet, self._quiet = self._quiet, False
        if hit is not None:
            self._data_hit = None
            if not quiet:
                self.events.pending = ("watch", self._hit(hit, pc, access="write"))
                self.eng.emu_stop()
                return
        for w in self.watches:
            if w["kind"] == "tag":
                now = self.read_tags(w["va"], w["length"])
                if now != w["tags"]:
                    w["tags"] = now
                    self.events.pending = ("watch", self._hit(w, pc))
                    self.eng.emu_stop()
                    return

    def note_data_write(self, pa: int, n: int) -> None:
        """A write the machine makes or lets the engine make without memory hooks (MTE
        instructions, DC ZVA) to [pa, pa + n)."""
        if not self._watch_pages:
            return
        for w in self.watches:
            if w["kind"] not in _WRITES:
                continue
            for wpa, k in w.get("pas", ()):
                if wpa < pa + n and pa < wpa + k:
                    if self._pass:                   # DC ZVA running alone: it hits now
                        if self.events.pending is None and not self._quiet:
                            self.events.pending = ("watch", self._hit(w, self.watch_step_pc,
                                                                      access="write"))
                    else:
                        self._data_hit = w
                    return

    def _on_data_watch(self, uc, access, addr, size, value, w) -> None:
        # only while the instruction that accessed a watched page runs alone
        if self.events.pending is None and not self._quiet:
            self.events.pending = ("watch", self._hit(
                w, self.watch_step_pc, access="write" if access == UC_MEM_WRITE else "read"))
