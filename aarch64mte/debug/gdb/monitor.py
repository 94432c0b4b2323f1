"""`monitor` commands (`qRcmd`): help, tags, faults."""
from __future__ import annotations

from aarch64mte.debug.session import GRANULE, strip_tag

MAX_TAGS_LEN = 1 << 16          # bytes whose tags one `monitor tags` shows


class MonitorMixin:
    def monitor(self, command: str) -> str:
        words = command.split()
        if not words:
            return "OK"
        if words[0] == "help":
            text = "monitor commands: help, tags ADDR [LEN], faults\n"
        elif words[0] == "tags" and len(words) >= 2:
            try:
                addr = int(words[1], 0)
                length = int(words[2], 0) if len(words) > 2 else GRANULE
            except ValueError:
                addr = length = -1
            if not 0 <= addr < 1 << 64 or not 1 <= length <= MAX_TAGS_LEN:
                text = f"error: expected tags ADDR [LEN]: ADDR 0..2^64-1, LEN 1..{MAX_TAGS_LEN}\n"
            else:
                try:
                    tags = self.m.read_tags(strip_tag(addr) & ~(GRANULE - 1), length)
                    text = " ".join(f"{t:x}" for t in tags) + "\n"
                except Exception:
                    text = f"error: cannot read the tags at {addr:#x}\n"
        elif words[0] == "faults":
            log = list(getattr(self.m, "exception_log", []) or [])
            from aarch64mte.debug.session import describe_exception
            text = "".join(describe_exception(r) + "\n" for r in log) or "no exceptions\n"
        else:
            text = f"unknown monitor command: {words[0]}\n"
        return text.encode().hex()
