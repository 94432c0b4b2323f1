"""A GDB remote-serial-protocol stub over a debugging Session.

One client at a time; after a disconnect (clean or not) the server accepts the next one with the
machine as it was left. `c`/`vCont;c` run the machine in a worker thread so that the client's
Ctrl-C (a 0x03 byte) can stop it through `request_stop()`.

To let GDB 13's `memory-tag` commands work, the stub presents the program as Linux process 1:
multiprocess thread ids (`p1.1`), `qXfer:exec-file`, a `/proc/1/smaps` served over `vFile` that
marks Tagged memory with the `mt` VmFlag, and `qXfer:siginfo` with the kernel's si_code for tag
faults (SEGV_MTESERR, SEGV_MTEAERR), so GDB prints the logical and allocation tags itself.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import struct
import sys
import threading
from typing import Callable, Optional

from aarch64mte.debug import mapping
from aarch64mte.debug.gdb import packets as pk
from aarch64mte.debug.gdb.target_xml import REGISTERS, PC_REGNUM, SP_REGNUM, target_xml
from aarch64mte.debug.session import (GRANULE, MASK64, SIGINT, SIGTRAP, Session, Stop,
                                      strip_tag)
from aarch64mte.debug import regs as regaccess

PID = 1
TID = 1
THREAD = f"p{PID:x}.{TID:x}"
MAX_MEM = pk.PACKET_SIZE // 2 - 16      # largest m/qMemTags reply that still fits one packet
ALLOCATION_TAG_TYPE = 1                 # GDB's aarch64_memtag_type::mte_allocation
LOGICAL_TAG_TYPE = 0

# vFile errno values (GDB's fileio numbering)
FILEIO_ENOENT, FILEIO_EBADF, FILEIO_EACCES, FILEIO_EINVAL, FILEIO_ENOSYS = 2, 9, 13, 22, 88


class PortInUse(OSError):
    pass


class GdbServer:
    """Listen on host:port; serve clients one after another until killed (`k`) or closed."""

    def __init__(self, session: Session, host: str = "127.0.0.1", port: int = 1234,
                 exec_file: Optional[str] = None, log: Optional[Callable[[str], None]] = None,
                 verbose: bool = False):
        self.session = session
        self.host, self.port = host, port
        self.exec_file = exec_file
        self.log = log or (lambda text: None)
        self.verbose = verbose
        self.sock: Optional[socket.socket] = None
        self.killed = False
        self._closing = threading.Event()

    # --- listening ------------------------------------------------------------------------------
    def bind(self) -> int:
        """Bind and listen; returns the port (useful with port 0). Raises PortInUse."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.host, self.port))
        except OSError as exc:
            s.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(exc.errno, f"port {self.port} on {self.host} is already in use")
            raise
        s.listen(1)
        self.sock = s
        self.port = s.getsockname()[1]
        return self.port

    def serve_forever(self) -> None:
        if self.sock is None:
            self.bind()
        sock = self.sock
        while not self.killed and not self._closing.is_set():
            try:
                r, _, _ = select.select([sock], [], [], 0.2)
            except (OSError, ValueError):
                break
            if not r:
                continue
            try:
                conn, peer = sock.accept()
            except OSError:
                continue
            self.log(f"gdb connected from {peer[0]}:{peer[1]}")
            try:
                Connection(self, conn).serve()
            except Exception as exc:                    # never let one client end the server
                self.log(f"connection error: {exc!r}")
            finally:
                try:
                    conn.close()
                except OSError:
                    pass
            self.log("gdb disconnected" if not self.killed else "killed by gdb")
        self.close()

    def close(self) -> None:
        self._closing.set()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


class Connection:
    def __init__(self, server: GdbServer, conn: socket.socket):
        self.server = server
        self.session = server.session
        self.m = server.session.machine
        self.conn = conn
        self.reader = pk.PacketReader()
        self.ack = True
        self.worker: Optional[threading.Thread] = None
        self.worker_stop: Optional[Stop] = None
        self.wake_r, self.wake_w = socket.socketpair()
        self.files: dict[int, bytes] = {}
        self.next_fd = 3
        self.done = False
        self.multiprocess = False
        self.extended = False

    # --- I/O --------------------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        try:
            self.conn.sendall(data)
        except OSError:
            self.done = True

    def reply(self, body: bytes | str, rle: bool = False) -> None:
        if isinstance(body, str):
            body = body.encode("latin-1")
        if rle:
            body = pk.rle_encode(body)
        if self.server.verbose:
            self.server.log(f"-> {body[:200]!r}")
        self.send_raw(pk.frame(body))

    def serve(self) -> None:
        self.conn.setblocking(True)
        try:
            while not self.done and not self.server._closing.is_set():
                try:
                    r, _, _ = select.select([self.conn, self.wake_r], [], [], 0.2)
                except (OSError, ValueError):
                    break
                if self.wake_r in r:
                    try:
                        self.wake_r.recv(64)
                    except OSError:
                        pass
                    self._collect_worker()
                if self.conn in r:
                    try:
                        chunk = self.conn.recv(65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    for event in self.reader.feed(chunk):
                        self.handle_event(event)
                        if self.done:
                            break
        finally:
            self._stop_worker()
            self.wake_r.close()
            self.wake_w.close()

    def handle_event(self, event) -> None:
        if isinstance(event, pk.Interrupt):
            if self.worker is not None:
                self.session.request_stop()
            else:       # not running: GDB still wants a stop reply
                self.reply(self.stop_reply(Stop(reason="interrupt", pc=self.m.reg("pc"),
                                                signal=SIGINT)))
            return
        if isinstance(event, pk.Ack):
            return
        if isinstance(event, pk.BadPacket):
            if self.ack:
                self.send_raw(b"-")
            self.server.log(f"dropped a packet: {event.reason}")
            return
        if self.ack:
            self.send_raw(b"+")
        data = event.data
        if self.server.verbose:
            self.server.log(f"<- {data[:200]!r}")
        if self.worker is not None:
            # All-stop: nothing but Ctrl-C is valid while running; answer so GDB is not stuck.
            self.reply("E16")
            return
        try:
            answer = self.dispatch(data)
        except Exception as exc:                # a handler bug must not end the connection
            self.server.log(f"error handling {data[:40]!r}: {exc!r}")
            answer = "E01"
        if answer is not None:
            self.reply(*answer) if isinstance(answer, tuple) else self.reply(answer)

    # --- running --------------------------------------------------------------------------------
    def _start_worker(self, fn) -> None:
        def work():
            try:
                self.worker_stop = fn()
            except Exception as exc:
                self.server.log(f"run failed: {exc!r}")
                self.worker_stop = Stop(reason="error", pc=0, signal=SIGTRAP,
                                        message=str(exc))
            try:
                self.wake_w.send(b"!")
            except OSError:
                pass
        self.worker_stop = None
        self.worker = threading.Thread(target=work, name="aarch64mte-gdb-run", daemon=True)
        self.worker.start()

    def _collect_worker(self) -> None:
        if self.worker is None:
            return
        self.worker.join(timeout=5)         # it signalled just before returning
        if self.worker.is_alive():
            return
        self.worker = None
        stop = self.worker_stop
        if stop is not None:
            self.reply(self.stop_reply(stop))

    def _stop_worker(self) -> None:
        if self.worker is not None:
            self.session.request_stop()
            self.worker.join(timeout=10)
            self.worker = None

    def resume(self, action: str, addr: Optional[int] = None):
        if addr is not None:
            self.m.set_reg("pc", addr)
        if self.session.exited:
            return self.stop_reply(self.session.exited)
        if action == "s":
            return self.stop_reply(self.session.step())
        self._start_worker(self.session.cont)
        return None

    # --- stop replies -------------------------------------------------------------------------
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

    # --- registers ----------------------------------------------------------------------------
    def reg_hex(self, r) -> str:
        value = regaccess.read(self.m, r.name) & ((1 << r.bits) - 1)
        return value.to_bytes(r.bits // 8, "little").hex()

    def set_reg_bytes(self, r, raw: bytes) -> None:
        regaccess.write(self.m, r.name, int.from_bytes(raw, "little"))

    # --- dispatch -------------------------------------------------------------------------------
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
            pos = 0
            for r in REGISTERS:
                n = r.bits // 8
                if pos + n > len(raw):
                    break
                self.set_reg_bytes(r, raw[pos:pos + n])
                pos += n
            return "OK"
        if c == "p":
            n = pk.parse_hex(text[1:])
            if n >= len(REGISTERS):
                return "E45"
            return self.reg_hex(REGISTERS[n])
        if c == "P":
            num, _, val = text[1:].partition("=")
            n = pk.parse_hex(num)
            if n >= len(REGISTERS):
                return "E45"
            r = REGISTERS[n]
            raw = pk.unhex(val)
            if len(raw) != r.bits // 8:
                return "E22"
            self.set_reg_bytes(r, raw)
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
                s.add_breakpoint(addr, label="gdb")
        else:
            for bp in existing:
                s.delete_breakpoint(bp.number)
        return "OK"

    # --- queries -------------------------------------------------------------------------------
    def query(self, text: str, data: bytes):
        if text.startswith("qSupported"):
            feats = text.partition(":")[2].split(";")
            self.multiprocess = "multiprocess+" in feats
            return (f"PacketSize={pk.PACKET_SIZE:x};QStartNoAckMode+;qXfer:features:read+;"
                    "qXfer:exec-file:read+;qXfer:siginfo:read+;swbreak+;hwbreak+;"
                    "vContSupported+;memory-tagging+"
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

    def xfer(self, text: str):
        # qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH
        parts = text.split(":")
        if len(parts) != 5 or parts[2] != "read":
            return ""
        obj, annex = parts[1], parts[3]
        offset, length = self._addr_len(parts[4])
        if obj == "features":
            if annex != "target.xml":
                return "E00"
            content = target_xml().encode()
        elif obj == "exec-file":
            if not self.server.exec_file:
                return "E00"
            content = os.fsencode(self.server.exec_file)
        elif obj == "siginfo":
            content = self.siginfo()
        else:
            return ""
        chunk = content[offset:offset + min(length, MAX_MEM)]
        more = offset + len(chunk) < len(content)
        return (b"m" if more else b"l") + pk.escape(chunk)

    def siginfo(self) -> bytes:
        """Linux AArch64 siginfo_t (128 bytes): signo, errno, code, pad, then si_addr."""
        stop = self.session.last_stop
        signo = stop.signal if stop else SIGTRAP
        code = stop.si_code if stop else 0
        addr = stop.fault_addr if stop and stop.fault_addr is not None else 0
        return struct.pack("<iiiiQ", signo, 0, code, 0, addr & MASK64).ljust(128, b"\0")

    # --- memory tags ----------------------------------------------------------------------------
    def _tagged(self, addr: int) -> bool:
        try:
            return bool(self.m.is_tagged(strip_tag(addr)))
        except Exception:
            return False

    def fetch_tags(self, args: str) -> str:
        where, _, kind = args.rpartition(":")
        addr, length = self._addr_len(where)
        if int(kind, 16) != ALLOCATION_TAG_TYPE:
            return "E01"
        va = strip_tag(addr)
        first = va & ~(GRANULE - 1)
        end = va + max(length, 1)
        count = (end - first + GRANULE - 1) // GRANULE
        if count * 2 > MAX_MEM:
            return "E22"
        try:
            tags = self.m.read_tags(first, count * GRANULE)
        except Exception:
            return "E14"
        return "m" + bytes(t & 0xF for t in tags).hex()

    def store_tags(self, args: str) -> str:
        head, _, tag_hex = args.rpartition(":")
        where, _, kind = head.rpartition(":")
        addr, length = self._addr_len(where)
        if int(kind, 16) != ALLOCATION_TAG_TYPE:
            return "E01"
        pattern = pk.unhex(tag_hex)
        va = strip_tag(addr)
        first = va & ~(GRANULE - 1)
        end = va + max(length, 1)
        count = (end - first + GRANULE - 1) // GRANULE
        if count > pk.MAX_PACKET * 64:
            return "E22"
        if not pattern:
            return "E22" if length else "OK"
        tags = [pattern[i % len(pattern)] & 0xF for i in range(count)]
        try:
            self.m.write_tags(first, tags)
        except Exception:
            return "E14"
        return "OK"

    # --- v packets ------------------------------------------------------------------------------
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

    def vfile(self, text: str, data: bytes):
        op, _, args = text.partition(":")
        if op == "setfs":
            return "F0"
        if op == "open":
            name_hex, _, _ = args.partition(",")
            name = pk.unhex(name_hex).decode("latin-1", "replace")
            content = self.file_content(name)
            if content is None:
                return f"F-1,{FILEIO_ENOENT:x}"
            fd = self.next_fd
            self.next_fd += 1
            self.files[fd] = content
            return f"F{fd:x}"
        if op == "pread":
            fd_t, count_t, off_t = (args.split(",") + ["", "", ""])[:3]
            fd = pk.parse_hex(fd_t)
            if fd not in self.files:
                return f"F-1,{FILEIO_EBADF:x}"
            count, off = pk.parse_hex(count_t), pk.parse_hex(off_t)
            chunk = self.files[fd][off:off + min(count, MAX_MEM)]
            return (f"F{len(chunk):x};".encode() + pk.escape(chunk))
        if op == "close":
            fd = pk.parse_hex(args)
            if self.files.pop(fd, None) is None:
                return f"F-1,{FILEIO_EBADF:x}"
            return "F0"
        if op == "fstat":
            fd = pk.parse_hex(args)
            if fd not in self.files:
                return f"F-1,{FILEIO_EBADF:x}"
            return self.fstat_reply(len(self.files[fd]))
        if op in ("pwrite", "unlink", "readlink"):
            return f"F-1,{FILEIO_EACCES:x}"
        return ""

    def fstat_reply(self, size: int) -> bytes:
        # struct stat of GDB's File-I/O protocol: big-endian fields.
        st = struct.pack(">IIIIIIIQQQIII", 0, 1, 0o100444, 1, 0, 0, 0, size, 4096,
                         (size + 511) // 512, 0, 0, 0)
        return f"F{len(st):x};".encode() + pk.escape(st)

    def file_content(self, name: str) -> Optional[bytes]:
        proc = f"/proc/{PID}/"
        if name in (proc + "smaps", "/proc/self/smaps"):
            return mapping.smaps(self.m, self.server.exec_file).encode()
        if name in (proc + "maps", "/proc/self/maps"):
            return mapping.maps(self.m, self.server.exec_file).encode()
        if name in (proc + "cmdline",):
            return os.fsencode(self.server.exec_file or "program") + b"\0"
        if self.server.exec_file and os.path.abspath(name) == os.path.abspath(
                self.server.exec_file):
            try:
                with open(self.server.exec_file, "rb") as f:
                    return f.read()
            except OSError:
                return None
        return None

    # --- monitor commands -----------------------------------------------------------------------
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
                tags = self.m.read_tags(strip_tag(addr) & ~(GRANULE - 1), max(length, 1))
                text = " ".join(f"{t:x}" for t in tags) + "\n"
            except Exception as exc:
                text = f"error: {exc}\n"
        elif words[0] == "faults":
            log = list(getattr(self.m, "exception_log", []) or [])
            from aarch64mte.debug.session import describe_exception
            text = "".join(describe_exception(r) + "\n" for r in log) or "no exceptions\n"
        else:
            text = f"unknown monitor command: {words[0]}\n"
        return text.encode().hex()
