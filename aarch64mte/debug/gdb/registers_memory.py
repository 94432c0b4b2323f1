"""Register and memory packets' helpers: register bytes, `M`/`X` writes, breakpoints."""
from __future__ import annotations

from aarch64mte.debug import regs as regaccess
from aarch64mte.debug.gdb import packets as pk
from aarch64mte.debug.session import MASK64, strip_tag

#: Breakpoints a client may set: each is an engine hook, so a runaway client is refused more.
MAX_BREAKPOINTS = 4096
#: Watchpoints (each an engine hook per tag alias of each page it spans) and their length.
MAX_WATCHPOINTS = 64
MAX_WATCH_LEN = 1 << 16
#: Z2/Z3/Z4: the machine's watch kind. They stop before the access, with PC at the accessing
#: instruction, as AArch64 hardware watchpoints do (GDB steps the access itself).
WATCH_KINDS = {"2": "data", "3": "read", "4": "access"}


class RegistersMemoryMixin:
    def reg_hex(self, r) -> str:
        value = regaccess.read(self.m, r.name) & ((1 << r.bits) - 1)
        return value.to_bytes(r.bits // 8, "little").hex()

    def set_reg_bytes(self, r, raw: bytes) -> None:
        regaccess.write(self.m, r.name, int.from_bytes(raw, "little"))

    def _addr_len(self, text: str) -> tuple[int, int]:
        a, _, n = text.partition(",")
        return pk.parse_hex(a) & MASK64, pk.parse_hex(n)

    def _write_mem(self, addr: int, raw: bytes) -> str:
        if len(raw) > pk.MAX_PACKET:
            return "E22"
        try:
            if raw:
                self.session.host_change()
                self.m.write_mem(strip_tag(addr), raw)
        except Exception:
            return "E14"
        return "OK"

    def breakpoint_packet(self, insert: bool, args: str) -> str:
        kind, _, rest = args.partition(",")
        if kind in WATCH_KINDS:
            return self.watchpoint_packet(insert, WATCH_KINDS[kind], rest)
        if kind not in ("0", "1"):
            return ""
        addr_text, _, _ = rest.partition(",")
        addr = pk.parse_hex(addr_text) & MASK64
        s = self.session
        existing = [bp for bp in s.breakpoints.values() if bp.addr == addr and bp.label == "gdb"]
        if insert:
            if not existing:
                if len(s.breakpoints) >= MAX_BREAKPOINTS:
                    return "E28"                # ENOSPC
                s.add_breakpoint(addr, label="gdb")
        else:
            for bp in existing:
                s.delete_breakpoint(bp.number)
        return "OK"

    def watchpoint_packet(self, insert: bool, kind: str, args: str) -> str:
        addr_text, _, len_text = args.partition(",")
        addr = strip_tag(pk.parse_hex(addr_text) & MASK64)
        length = pk.parse_hex(len_text.partition(";")[0])
        if not 1 <= length <= MAX_WATCH_LEN:
            return "E22"
        mine = self.gdb_watches
        key = (addr, length, kind)
        if insert:
            if key in mine:
                return "OK"
            if len(mine) >= MAX_WATCHPOINTS:
                return "E28"                    # ENOSPC
            try:
                self.m.add_watch(addr, length, kind=kind, when="before")
            except Exception:
                return "E14"
            mine.add(key)
        elif key in mine:
            mine.discard(key)
            self.m.remove_watch(addr, length, kind)
        return "OK"
