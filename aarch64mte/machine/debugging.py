"""Breakpoints (code hooks bounded to one address) and watches: data watches refuse writes to
their pages at fill time and run the writing instruction alone; tag watches compare tags after
each tag instruction."""
from __future__ import annotations

from typing import Optional

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_WRITE

from .memory import ALIAS_FLAG, ALIAS_SHIFT, PAGE
from .results import RunResult, WatchHit


class Debugging:
    """Part of ``Machine`` (see ``machine.py``)."""

    def add_breakpoint(self, addr: int) -> None:
        if addr not in self._breakpoints:
            self._breakpoints[addr] = self.uc.hook_add(UC_HOOK_CODE, self._on_breakpoint,
                                                       begin=addr, end=addr)

    def remove_breakpoint(self, addr: int) -> None:
        h = self._breakpoints.pop(addr, None)
        if h is not None:
            self.uc.hook_del(h)

    @property
    def breakpoints(self):
        return sorted(self._breakpoints)

    def _on_breakpoint(self, uc, addr, size, ud) -> None:
        if self._bp_skip == addr:
            self._bp_skip = None
            return
        self._bp_skip = None
        self._pending = ("stop", RunResult("breakpoint", None, None, addr))
        self.eng.emu_stop()

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
                pas.append((self._pa_of(a, False), k))
                a += k
            w["pas"] = pas
            w["hook"] = [self.uc.hook_add(UC_HOOK_MEM_WRITE, self._on_data_watch, w,
                                          begin=base + pa, end=base + pa + k - 1)
                         for pa, k in pas
                         for base in [0] + [ALIAS_FLAG | (t << ALIAS_SHIFT) for t in range(16)]]
        self._watches.append(w)
        self._watch_pages_changed()

    def remove_watch(self, va: int, length: int = 1, kind: Optional[str] = None) -> None:
        keep = []
        for w in self._watches:
            if w["va"] == va and (kind is None or w["kind"] == kind):
                for h in w["hook"] or ():
                    self.uc.hook_del(h)
            else:
                keep.append(w)
        self._watches = keep
        self._watch_pages_changed()

    def _watch_pages_changed(self) -> None:
        pages = set()
        for w in self._watches:
            for pa, k in w.get("pas", ()):
                pages.update(range(pa & ~(PAGE - 1), pa + k, PAGE))
        self._watch_pages = pages
        self._invalidate()

    @property
    def watches(self):
        return [(w["va"], w["length"], w["kind"]) for w in self._watches]

    def _hit(self, w, pc: int) -> WatchHit:
        return WatchHit(w["va"], w["length"], w["kind"], pc)

    def _check_watches_after(self, pc: int) -> None:
        """After the trapped instruction at ``pc``: did it hit a watch?"""
        hit = self._data_hit
        if hit is not None:
            self._data_hit = None
            self._pending = ("watch", self._hit(hit, pc))
            self.eng.emu_stop()
            return
        for w in self._watches:
            if w["kind"] == "tag":
                now = self.read_tags(w["va"], w["length"])
                if now != w["tags"]:
                    w["tags"] = now
                    self._pending = ("watch", self._hit(w, pc))
                    self.eng.emu_stop()
                    return

    def _note_data_write(self, pa: int, n: int) -> None:
        """A write the machine makes itself (MTE instructions, DC ZVA) to [pa, pa + n)."""
        for w in self._watches:
            for wpa, k in w.get("pas", ()):
                if wpa < pa + n and pa < wpa + k:
                    self._data_hit = w
                    return

    def _on_data_watch(self, uc, access, addr, size, value, w) -> None:
        # only while the instruction that wrote to a watched page runs alone
        if self._pending is None:
            self._pending = ("watch", self._hit(w, self._watch_step_pc))
