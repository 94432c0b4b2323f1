"""Stop replies (`T`, `W`) and the thread id they name."""
from __future__ import annotations

from aarch64mte.debug.gdb.linux_process import PID, THREAD, TID
from aarch64mte.debug.gdb.target_xml import PC_REGNUM, REGISTERS, SP_REGNUM
from aarch64mte.debug.session import Stop


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
        return "".join(parts)
