"""The devices of QEMU's ``virt`` board that bare-metal programs talk to.

- PL011 UART at 0x0900_0000: a write to UARTDR (offset 0) prints a byte; UARTFR (0x18) reads
  TXFE | RXFE (transmit FIFO empty, never full; nothing to receive).
- Arm semihosting through ``HLT #0xF000`` (AArch64): w0 = operation, x1 = parameter (a pointer
  to a parameter block for most operations), result in x0. Its clocks (SYS_CLOCK, SYS_TIME,
  SYS_ELAPSED, SYS_TICKFREQ) come from the machine's instruction count (``hostinputs``), so a
  run repeats exactly.
"""
from __future__ import annotations

import struct

from .hostinputs import TICKFREQ

HLT_SEMIHOST = 0xD45E0000            # HLT #0xF000

SYS_OPEN, SYS_CLOSE, SYS_WRITEC, SYS_WRITE0, SYS_WRITE = 0x01, 0x02, 0x03, 0x04, 0x05
SYS_READ, SYS_READC, SYS_ISTTY, SYS_SEEK, SYS_FLEN = 0x06, 0x07, 0x09, 0x0A, 0x0C
SYS_CLOCK, SYS_TIME, SYS_ERRNO, SYS_GET_CMDLINE = 0x10, 0x11, 0x13, 0x15
SYS_HEAPINFO, SYS_EXIT, SYS_ELAPSED, SYS_TICKFREQ, SYS_EXIT_EXTENDED = 0x16, 0x18, 0x30, 0x31, 0x20
ADP_STOPPED_APPLICATION_EXIT = 0x20026

UARTDR, UARTFR = 0x00, 0x18
UARTFR_TXFE, UARTFR_RXFE = 1 << 7, 1 << 4


class SemihostExit(Exception):
    """The program asked to stop (SYS_EXIT / SYS_EXIT_EXTENDED) with this exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Board:
    """Console output plus the semihosting calls, over guest-virtual memory accessors."""

    def __init__(self, read_mem, write_mem, output, clock, heap=(0, 0, 0, 0)) -> None:
        self.read_mem = read_mem           # (va, n) -> bytes
        self.write_mem = write_mem         # (va, bytes)
        self.output = output               # (str) -> None
        self.clock = clock                 # hostinputs.HostInputs
        self.heap = heap                   # SYS_HEAPINFO answer

    # --- PL011 ------------------------------------------------------------------------------
    def uart_read(self, offset: int, size: int) -> int:
        if offset == UARTFR:
            return UARTFR_TXFE | UARTFR_RXFE
        return 0

    def uart_write(self, offset: int, size: int, value: int) -> None:
        if offset == UARTDR:
            self.output(chr(value & 0xFF))

    # --- semihosting ------------------------------------------------------------------------
    def _u64(self, va: int, i: int) -> int:
        return struct.unpack("<Q", self.read_mem(va + 8 * i, 8))[0]

    def _cstring(self, va: int) -> bytes:
        out = bytearray()
        while len(out) < 1 << 20:
            chunk = self.read_mem(va + len(out), 64 - ((va + len(out)) & 63))
            i = chunk.find(b"\0")
            if i >= 0:
                out += chunk[:i]
                return bytes(out)
            out += chunk
        return bytes(out)

    def semihost(self, op: int, arg: int) -> int:
        """Perform one call; returns x0. Raises SemihostExit for the exit calls."""
        if op == SYS_WRITEC:
            self.output(self.read_mem(arg, 1).decode("latin-1"))
            return 0
        if op == SYS_WRITE0:
            self.output(self._cstring(arg).decode("utf-8", "replace"))
            return 0
        if op == SYS_WRITE:
            handle, buf, n = self._u64(arg, 0), self._u64(arg, 1), self._u64(arg, 2)
            if handle in (1, 2):
                self.output(self.read_mem(buf, n).decode("utf-8", "replace"))
                return 0
            return n
        if op in (SYS_EXIT, SYS_EXIT_EXTENDED):
            reason, sub = self._u64(arg, 0), self._u64(arg, 1)
            raise SemihostExit(sub & 0xFFFFFFFF if reason == ADP_STOPPED_APPLICATION_EXIT else 1)
        if op == SYS_HEAPINFO:
            block = self._u64(arg, 0)
            self.write_mem(block, struct.pack("<4Q", *self.heap))
            return 0
        if op == SYS_CLOCK:
            return self.clock.centiseconds()
        if op == SYS_TIME:
            return self.clock.seconds_since_epoch()
        if op == SYS_ELAPSED:
            self.write_mem(arg, struct.pack("<Q", self.clock.elapsed_ticks()))
            return 0
        if op == SYS_TICKFREQ:
            return TICKFREQ
        if op == SYS_ERRNO:
            return 0
        if op == SYS_ISTTY:
            return 1 if self._u64(arg, 0) in (0, 1, 2) else 0
        if op == SYS_OPEN:
            # ":tt" is the console; files are not offered.
            name = self._cstring(self._u64(arg, 0))
            return 1 if name == b":tt" else 0xFFFFFFFFFFFFFFFF
        if op == SYS_CLOSE:
            return 0
        return 0xFFFFFFFFFFFFFFFF
