"""One GDB client: reading packets, acks, replies, and running the machine.

`c`/`vCont;c` run the machine in a worker thread so that the client's Ctrl-C (a 0x03 byte) can
stop it through `request_stop()`.
"""
from __future__ import annotations

import select
import socket
import threading
from typing import TYPE_CHECKING, Optional

from aarch64mte.debug.gdb import packets as pk
from aarch64mte.debug.gdb.dispatch import DispatchMixin
from aarch64mte.debug.gdb.linux_process import LinuxProcessMixin
from aarch64mte.debug.gdb.memory_tags import MemoryTagsMixin
from aarch64mte.debug.gdb.monitor import MonitorMixin
from aarch64mte.debug.gdb.registers_memory import RegistersMemoryMixin
from aarch64mte.debug.gdb.stop_replies import StopRepliesMixin
from aarch64mte.debug.session import SIGINT, SIGTRAP, Stop

if TYPE_CHECKING:
    from aarch64mte.debug.gdb.server import GdbServer


class Connection(DispatchMixin, RegistersMemoryMixin, MemoryTagsMixin, LinuxProcessMixin,
                 StopRepliesMixin, MonitorMixin):
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
        self.gdb_watches: set = set()        # (addr, length, kind) from Z2/Z3/Z4

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
            for addr, length, kind in self.gdb_watches:      # a client gone without z2/z3/z4
                try:
                    self.m.remove_watch(addr, length, kind)
                except Exception:
                    pass
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
        except ValueError as exc:               # a malformed argument: hex, a field missing
            if self.server.verbose:
                self.server.log(f"malformed packet {data[:40]!r}: {exc}")
            answer = "E01"
        except Exception as exc:                # a handler bug must not end the connection
            self.server.log(f"internal error answering {data[:40]!r}: {exc}")
            answer = "E01"
        if answer is not None:
            self.reply(*answer) if isinstance(answer, tuple) else self.reply(answer)

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
            self.announce(stop)
            self.reply(self.stop_reply(stop))

    def console(self, text: str) -> None:
        """Text GDB prints on its console (an `O` packet: only while the target runs, before
        the stop reply)."""
        for i in range(0, len(text), 1024):
            self.reply("O" + text[i:i + 1024].encode().hex())

    def announce(self, stop: Stop) -> None:
        """What a stop means beyond its signal: who set the tag a fault met, a tag watch's
        change, the start of the recorded history."""
        try:
            text = self.stop_message(stop)
        except Exception as exc:                # the stop itself must still be reported
            text = None
            self.server.log(f"cannot describe the stop: {exc!r}")
        if text:
            self.console(text if text.endswith("\n") else text + "\n")

    def _stop_worker(self) -> None:
        if self.worker is not None:
            self.session.request_stop()
            if self.worker.ident is not None:      # a signal may come before it started
                self.worker.join(timeout=10)
            self.worker = None

    def resume(self, action: str, addr: Optional[int] = None):
        if addr is not None:
            self.session.host_change()
            self.m.set_reg("pc", addr)
        if self.session.exited:
            return self.stop_reply(self.session.exited)
        if action == "s":
            stop = self.session.step()
            self.announce(stop)
            return self.stop_reply(stop)
        self._start_worker(self.session.cont)
        return None

    def reverse(self, action: str):
        """`bs` / `bc`: one instruction back, or back to the last breakpoint or watch hit."""
        from aarch64mte.debug.session import ReverseError
        if self.session.recorder is None:
            return "E01"
        if action == "s":
            try:
                stop = self.session.reverse_step(1)
            except ReverseError as exc:
                self.console(f"cannot go back: {exc}\n")
                return "E01"
            self.announce(stop)
            return self.stop_reply(stop)

        def back():
            try:
                return self.session.reverse_continue(access_then_step=True)
            except ReverseError as exc:
                return Stop(reason="error", pc=self.m.reg("pc"), message=str(exc))
        self._start_worker(back)
        return None
