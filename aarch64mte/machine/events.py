"""What hooks leave for the run loop.

A hook cannot return anything through the engine: it records what happened here and stops the
engine, and the run loop (``Machine._run``) reads it once ``emu_start`` returns.
"""
from __future__ import annotations


class Events:
    __slots__ = ("pending", "fill_fault", "watch_trap", "stop_requested", "need_check_hook",
                 "code_write", "flush_tlb")

    def __init__(self) -> None:
        self.pending = None          # ('stop', RunResult) | ('tagfault', ...) | ('watch', hit)
                                     # | ('error', exception)
        self.fill_fault = None       # (va, access, dfsc, el): a translation the fill refused
        self.watch_trap = None       # va of a refused write to a watched page
        self.stop_requested = False  # request_stop(): end the run at the next block
        self.need_check_hook = False  # a page needs the tag-check hook, which is not added yet
        self.code_write = None       # va of a refused write to a page code was fetched from
        self.flush_tlb = False       # a page became code while writable TLB entries may map it

    def clear_run(self) -> None:
        """Before each emu_start."""
        self.pending = None
        self.fill_fault = None
        self.watch_trap = None
        self.code_write = None

    def take(self):
        ev, self.pending = self.pending, None
        return ev
