"""Register and memory packets' helpers: register bytes, `M`/`X` writes, breakpoints."""
from __future__ import annotations

from aarch64mte.debug import regs as regaccess
from aarch64mte.debug.gdb import packets as pk
from aarch64mte.debug.session import MASK64, strip_tag

#: Breakpoints a client may set: each is an engine hook, so a runaway client is refused more.
MAX_BREAKPOINTS = 4096


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
                self.m.write_mem(strip_tag(addr), raw)
        except Exception:
            return "E14"
        return "OK"

    def breakpoint_packet(self, insert: bool, args: str) -> str:
        kind, _, rest = args.partition(",")
        if kind not in ("0", "1"):
            return ""                           # watchpoints: GDB falls back to stepping
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
