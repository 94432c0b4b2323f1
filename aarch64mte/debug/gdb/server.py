"""A GDB remote-serial-protocol stub over a debugging Session: the listening socket.

One client at a time; after a disconnect (clean or not) the server accepts the next one with the
machine as it was left.
"""
from __future__ import annotations

import errno
import select
import socket
import threading
from typing import Callable, Optional

from aarch64mte.debug.gdb.connection import Connection
from aarch64mte.debug.session import Session


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
            try:        # an ack and its reply are two small writes: Nagle would hold the second
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
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
