"""Stop replies (`T`, `W`) and the thread id they name, and the console text that explains a
stop (`Connection.announce`)."""
from __future__ import annotations

from aarch64mte.debug.gdb.linux_process import PID, THREAD, TID
from aarch64mte.debug.gdb.target_xml import PC_REGNUM, REGISTERS, SP_REGNUM
from aarch64mte.debug.session import GRANULE, Stop, strip_tag

#: The stop reason GDB reads for each watch kind (`watch:ADDR;` ...).
WATCH_REASONS = {"data": "watch", "read": "rwatch", "access": "awatch"}


class StopRepliesMixin:
    def thread_id(self) -> str:
        return THREAD if self.multiprocess else f"{TID:x}"

    def stop_reply(self, stop: Stop) -> str:
        if stop.exited:
            code = f"W{stop.exit_code & 0xFF:02x}"
            return code + (f";process:{PID:x}" if self.multiprocess else "")
        parts = [f"T{stop.signal & 0xFF:02x}"]
        try:
            for regnum in (PC_REGNUM, SP_REGNUM):
                parts.append(f"{regnum:02x}:{self.reg_hex(REGISTERS[regnum])};")
        except Exception:
            pass
        parts.append(f"thread:{self.thread_id()};")
        if stop.reason == "breakpoint":
            parts.append("swbreak:;")
        w = stop.watch
        if stop.reason == "watchpoint" and w is not None and w.kind in WATCH_REASONS:
            parts.append(f"{WATCH_REASONS[w.kind]}:{w.addr if w.addr is not None else w.va:x};")
        if stop.reason == "history-start":
            parts.append("replaylog:begin;")
        return "".join(parts)

    def stop_message(self, stop: Stop):
        """Console text for a stop, or None."""
        if stop.tag_fault is not None and getattr(self.m, "provenance", None) is not None:
            from aarch64mte.report import tag_writers, writers_text
            tf = stop.tag_fault
            data = tag_writers(self.m, tf.va, getattr(tf, "insns", None))
            return "tag-check fault: " + writers_text(data, tf.allocation_tag)
        w = stop.watch
        if stop.reason == "watchpoint" and w is not None and w.kind == "tag":
            va = strip_tag(w.va) & ~(GRANULE - 1)
            tags = " ".join(f"{t:x}" for t in self.m.read_tags(va, w.length))
            last, _ = self.m.tag_writers(va)
            by = ""
            if last is not None:
                from aarch64mte.report import tag_writers, writers_text
                by = "; " + writers_text(tag_writers(self.m, va))
            return f"tag watch {va:#x}: tags now {tags}{by}"
        if stop.reason == "history-start":
            return (f"at the start of the recorded history (instruction "
                    f"{self.session._insns():,})")
        if stop.reason == "error" and stop.message:
            return f"cannot go back: {stop.message}"
        return None
