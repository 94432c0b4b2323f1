"""Which handler answers a packet: the one-letter packets, `q`/`Q` queries and `v` packets."""
from __future__ import annotations

from aarch64mte.debug.gdb import packets as pk
from aarch64mte.debug.gdb.linux_process import PID
from aarch64mte.debug.gdb.packets import MAX_MEM
from aarch64mte.debug.gdb.target_xml import REGISTERS, registers_by_number
from aarch64mte.debug.session import SIGTRAP, Stop, strip_tag


class DispatchMixin:
    def has_el2(self) -> bool:
        return getattr(self.m, "el2", None) is not None

    def register_numbered(self, n: int):
        """The register with GDB number ``n`` in this machine's target description, or None."""
        return registers_by_number(self.has_el2()).get(n)

    def dispatch(self, data: bytes):
        if not data:
            return ""
        c = chr(data[0])
        text = data.decode("latin-1")
        if c == "?":
            stop = self.session.exited or self.session.last_stop or \
                Stop(reason="start", pc=self.m.reg("pc"), signal=SIGTRAP)
            if stop.reason == "breakpoint" and stop is not self.session.exited:
                stop = Stop(reason="start", pc=stop.pc, signal=SIGTRAP)
            return self.stop_reply(stop)
        if c == "g":
            return ("".join(self.reg_hex(r) for r in REGISTERS), True)
        if c == "G":
            raw = pk.unhex(text[1:])
            self.session.host_change()
            pos = 0
            for r in REGISTERS:
                n = r.bits // 8
                if pos + n > len(raw):
                    break
                self.set_reg_bytes(r, raw[pos:pos + n])
                pos += n
            return "OK"
        if c == "p":
            r = self.register_numbered(pk.parse_hex(text[1:]))
            if r is None:
                return "E45"
            try:
                return self.reg_hex(r)
            except Exception:
                return "E14"
        if c == "P":
            num, _, val = text[1:].partition("=")
            r = self.register_numbered(pk.parse_hex(num))
            if r is None:
                return "E45"
            raw = pk.unhex(val)
            if len(raw) != r.bits // 8:
                return "E22"
            self.session.host_change()
            try:
                self.set_reg_bytes(r, raw)
            except Exception:
                return "E14"
            return "OK"
        if c == "m":
            addr, length = self._addr_len(text[1:])
            if length > MAX_MEM:
                return "E22"
            try:
                return (self.m.read_mem(strip_tag(addr), length).hex(), True)
            except Exception:
                return "E14"
        if c == "M":
            head, _, hexdata = text[1:].partition(":")
            addr, length = self._addr_len(head)
            raw = pk.unhex(hexdata)
            if len(raw) != length:
                return "E22"
            return self._write_mem(addr, raw)
        if c == "X":
            colon = data.index(b":")
            addr, length = self._addr_len(text[1:colon])
            raw = pk.unescape(data[colon + 1:])
            if len(raw) != length:
                return "E22"
            return self._write_mem(addr, raw)
        if c in "Zz":
            return self.breakpoint_packet(c == "Z", text[1:])
        if c == "b" and text in ("bs", "bc"):
            return self.reverse(text[1])
        if c in "sc":
            addr = pk.parse_hex(text[1:]) if len(text) > 1 else None
            return self.resume(c, addr)
        if c in "SC":
            _, _, rest = text[1:].partition(";")
            return self.resume(c.lower(), pk.parse_hex(rest) if rest else None)
        if c == "H":
            return "OK"
        if c == "T":
            return "OK"
        if c == "k":
            self.server.killed = True
            self.done = True
            return None
        if c == "D":
            self.reply("OK")
            self.done = True
            return None
        if c == "!":
            self.extended = True
            return "OK"
        if c == "q":
            return self.query(text, data)
        if c == "Q":
            return self.set_query(text)
        if c == "v":
            return self.v_packet(text, data)
        return ""

    def query(self, text: str, data: bytes):
        if text.startswith("qSupported"):
            feats = text.partition(":")[2].split(";")
            self.multiprocess = "multiprocess+" in feats
            return (f"PacketSize={pk.PACKET_SIZE:x};QStartNoAckMode+;qXfer:features:read+;"
                    "qXfer:exec-file:read+;qXfer:siginfo:read+;swbreak+;hwbreak+;"
                    "vContSupported+;memory-tagging+"
                    + (";ReverseStep+;ReverseContinue+" if self.session.recorder else "")
                    + (";multiprocess+" if self.multiprocess else ""))
        if text == "qAttached" or text.startswith("qAttached:"):
            return "1"
        if text == "qC":
            return f"QC{self.thread_id()}"
        if text == "qfThreadInfo":
            return f"m{self.thread_id()}"
        if text == "qsThreadInfo":
            return "l"
        if text.startswith("qThreadExtraInfo"):
            return b"aarch64mte cpu".hex()
        if text == "qOffsets":
            return "Text=0;Data=0;Bss=0"
        if text.startswith("qSymbol"):
            return "OK"
        if text.startswith("qXfer:"):
            return self.xfer(text)
        if text.startswith("qMemTags:"):
            return self.fetch_tags(text[len("qMemTags:"):])
        if text.startswith("qIsAddressTagged:"):
            addr = pk.parse_hex(text.partition(":")[2])
            return "01" if self._tagged(addr) else "00"
        if text.startswith("qRcmd,"):
            return self.monitor(pk.unhex(text[6:]).decode("latin-1", "replace"))
        return ""

    def set_query(self, text: str):
        if text == "QStartNoAckMode":
            self.reply("OK")
            self.ack = False
            return None
        if text.startswith("QMemTags:"):
            return self.store_tags(text[len("QMemTags:"):])
        if text.startswith("QThreadEvents") or text.startswith("QPassSignals") or \
                text.startswith("QProgramSignals") or text.startswith("QNonStop:0"):
            return "OK"
        return ""

    def v_packet(self, text: str, data: bytes):
        if text == "vMustReplyEmpty":
            return ""
        if text == "vCont?":
            return "vCont;c;C;s;S;t"
        if text.startswith("vCont;"):
            return self.vcont(text[6:])
        if text.startswith("vKill"):
            self.server.killed = True
            self.reply("OK")
            self.done = True
            return None
        if text.startswith("vFile:"):
            return self.vfile(text[6:], data)
        if text == "vCtrlC":
            if self.worker is not None:
                self.session.request_stop()
            return "OK"
        return ""

    def vcont(self, actions: str):
        for action in actions.split(";"):
            act, _, thread = action.partition(":")
            if not act:
                continue
            if thread and thread not in (self.thread_id(), "-1", "p-1.-1", f"p{PID:x}.-1", "0"):
                continue
            kind = act[0]
            if kind in "sS":
                return self.resume("s")
            if kind in "cC":
                return self.resume("c")
            if kind == "t":
                return self.stop_reply(Stop(reason="interrupt", pc=self.m.reg("pc"),
                                            signal=0))
        return "E22"
