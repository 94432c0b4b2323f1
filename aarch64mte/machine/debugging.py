"""Breakpoints (code hooks bounded to one address) and watches: data watches refuse writes to
their pages at fill time and run the writing instruction alone; tag watches compare tags after
each tag instruction (which then all run in Python)."""
from __future__ import annotations

from typing import Callable, Optional

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_WRITE

from .memory import ALIAS_FLAG, ALIAS_SHIFT, PAGE
from .results import RunResult, WatchHit
from .translation import WRITE


class Debugging:
    def __init__(self, eng, mmu, events, read_tags: Callable, pa_of: Callable) -> None:
        self.eng = eng
        self.mmu = mmu
        self.events = events
        self.read_tags = read_tags          # (va, length) -> [tag]
        self.pa_of = pa_of                  # (va) -> PA, for the debugger
        self._breakpoints = {}
        self.bp_skip = None                 # resuming at this breakpoint: do not stop at once
        self.watches = []
        self._watch_pages = set()           # PA pages (1 KiB) holding a data watch
        self.watch_pass = False             # a write to one of them now runs alone, writable
        self.watch_step_pc = 0              # the instruction that runs alone
        self._data_hit = None               # a watch hit by a write the machine made
        mmu.watch_filter = self.fill_filter

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
    def add_watch(self, va: int, length: int = 1, kind: str = "tag") -> None:
        """Stop a run right after an instruction writes data into [va, va + length)
        (``kind='data'``) or changes an allocation tag there (``kind='tag'``)."""
        if kind not in ("tag", "data"):
            raise ValueError("watch kind is 'tag' or 'data'")
        w = {"va": va, "length": max(1, length), "kind": kind, "hook": None}
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
            w["hook"] = [self.eng.uc.hook_add(UC_HOOK_MEM_WRITE, self._on_data_watch, w,
                                              begin=base + pa, end=base + pa + k - 1)
                         for pa, k in pas
                         for base in [0] + [ALIAS_FLAG | (t << ALIAS_SHIFT) for t in range(16)]]
        self.watches.append(w)
        self._watches_changed()

    def remove_watch(self, va: int, length: int = 1, kind: Optional[str] = None) -> None:
        keep = []
        for w in self.watches:
            if w["va"] == va and (kind is None or w["kind"] == kind):
                for h in w["hook"] or ():
                    self.eng.uc.hook_del(h)
            else:
                keep.append(w)
        self.watches = keep
        self._watches_changed()

    def _watches_changed(self) -> None:
        pages = set()
        for w in self.watches:
            for pa, k in w.get("pas", ()):
                pages.update(range(pa & ~(PAGE - 1), pa + k, PAGE))
        self._watch_pages = pages
        self.mmu.watching = bool(self.watches)   # every fill and MTE instruction in Python
        self.mmu.invalidate()

    def list_watches(self):
        return [(w["va"], w["length"], w["kind"]) for w in self.watches]

    def fill_filter(self, pa_page: int, acc: str, vaddr: int):
        """For the TLB fill: False (no watch here), True (map read-only), None (refuse: a
        write to a watched page, which then runs alone)."""
        if pa_page not in self._watch_pages or self.watch_pass:
            return False
        if acc == WRITE:
            self.events.watch_trap = vaddr
            return None
        return True

    def _hit(self, w, pc: int) -> WatchHit:
        return WatchHit(w["va"], w["length"], w["kind"], pc)

    def check_after(self, pc: int) -> None:
        """After the trapped instruction at ``pc``: did it hit a watch?"""
        hit = self._data_hit
        if hit is not None:
            self._data_hit = None
            self.events.pending = ("watch", self._hit(hit, pc))
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
            for wpa, k in w.get("pas", ()):
                if wpa < pa + n and pa < wpa + k:
                    if self.watch_pass:              # DC ZVA running alone: it hits now
                        if self.events.pending is None:
                            self.events.pending = ("watch", self._hit(w, self.watch_step_pc))
                    else:
                        self._data_hit = w
                    return

    def _on_data_watch(self, uc, access, addr, size, value, w) -> None:
        # only while the instruction that wrote to a watched page runs alone
        if self.events.pending is None:
            self.events.pending = ("watch", self._hit(w, self.watch_step_pc))
