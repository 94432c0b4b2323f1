"""What a run returns: ``RunResult`` (why it stopped, where, and the exception or watch that
stopped it), and the internal ``_Stop`` a hook raises to end the current run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .exceptions import ExceptionRecord


@dataclass
class WatchHit:
    """The watch that stopped a run and the instruction whose access hit it."""
    va: int
    length: int
    kind: str             # 'data' (writes) | 'read' | 'access' | 'tag'
    pc: int               # address of the accessing instruction
    before: bool = False  # stopped before that instruction (it has not run)
    addr: Optional[int] = None   # the first watched address it accessed
    access: str = ""      # 'read' | 'write' (data watches)


@dataclass
class RunResult:
    reason: str
    code: Optional[int] = None
    exception: Optional[ExceptionRecord] = None
    pc: int = 0
    watch: Optional[WatchHit] = None


class _Stop(Exception):
    """Raised inside a hook: the run loop collects the pending result."""
