"""The devices of QEMU's ``virt`` board that bare-metal programs talk to.

- PL011 UART at 0x0900_0000: a write to UARTDR (offset 0) prints a byte; UARTFR (0x18) reads
  TXFE | RXFE (transmit FIFO empty, never full; nothing to receive).
- Arm semihosting through ``HLT #0xF000`` (AArch64): w0 = operation, x1 = parameter (a pointer
  to a parameter block for most operations), result in x0 ("Semihosting for AArch32 and
  AArch64", Arm ABI). Its clocks (SYS_CLOCK, SYS_TIME, SYS_ELAPSED,
  SYS_TICKFREQ) come from the machine's instruction count (``hostinputs``), so a run repeats
  exactly.

Whatever a guest passes, a semihosting call ends in a guest-visible result, never a host error.
A block, buffer or string the call needs that is not in guest memory (unmapped, or mapped to an
address with neither RAM nor a device behind it) is, in ``Board.semihost`` alone:
- for a call that can report failure, its failure result: -1 in x0 (a SYS_WRITE or SYS_READ
  buffer: the byte count, nothing transferred) and SYS_ERRNO = EFAULT, as QEMU's
  arm-compat-semi.c gives it;
- for a call the specification gives no failure result (SYS_WRITEC, SYS_WRITE0, SYS_HEAPINFO,
  SYS_EXIT, SYS_EXIT_EXTENDED), a ``SemihostingError`` naming the call and the address: the run
  stops with that one line. (QEMU 10 instead writes 0xdeadbeef or -1 to x0 and runs on.)
Bytes reach the console as they are (latin-1 characters, as the UART's do). A transfer moves at
most ``MAX_TRANSFER`` bytes per call, QEMU's bound (the rest is reported not written, which the
specification allows), and only once its whole buffer is known to be guest memory; a run's
semihosting output stops at ``OUTPUT_LIMIT``.
"""
from __future__ import annotations

import errno
import struct

from .hostinputs import TICKFREQ

from unicorn import UcError

from ..errors import MteError

HLT_SEMIHOST = 0xD45E0000            # HLT #0xF000

SYS_OPEN, SYS_CLOSE, SYS_WRITEC, SYS_WRITE0, SYS_WRITE = 0x01, 0x02, 0x03, 0x04, 0x05
SYS_READ, SYS_READC, SYS_ISTTY, SYS_SEEK, SYS_FLEN = 0x06, 0x07, 0x09, 0x0A, 0x0C
SYS_CLOCK, SYS_TIME, SYS_ERRNO, SYS_GET_CMDLINE = 0x10, 0x11, 0x13, 0x15
SYS_HEAPINFO, SYS_EXIT, SYS_ELAPSED, SYS_TICKFREQ, SYS_EXIT_EXTENDED = 0x16, 0x18, 0x30, 0x31, 0x20
ADP_STOPPED_APPLICATION_EXIT = 0x20026

NAMES = {SYS_OPEN: "SYS_OPEN", SYS_CLOSE: "SYS_CLOSE", SYS_WRITEC: "SYS_WRITEC",
         SYS_WRITE0: "SYS_WRITE0", SYS_WRITE: "SYS_WRITE", SYS_READ: "SYS_READ",
         SYS_ISTTY: "SYS_ISTTY", SYS_HEAPINFO: "SYS_HEAPINFO", SYS_EXIT: "SYS_EXIT",
         SYS_EXIT_EXTENDED: "SYS_EXIT_EXTENDED"}
# The calls whose specification has no failure result ("None. The RETURN REGISTER is
# corrupted.", "No return is expected", SYS_HEAPINFO's "the data block has been updated").
NO_FAILURE_RESULT = frozenset({SYS_WRITEC, SYS_WRITE0, SYS_HEAPINFO, SYS_EXIT,
                               SYS_EXIT_EXTENDED})

MINUS_ONE = (1 << 64) - 1
CONSOLE_HANDLES = (0, 1, 2)          # stdin, stdout, stderr: ":tt" and the preopened streams
OUTPUT_HANDLES = (1, 2)
MAX_TRANSFER = 0x7FFF_FFFF           # bytes one SYS_WRITE or SYS_READ moves at most (QEMU's)
CHUNK = 1 << 20                      # a transfer reaches the console this much at a time
MAX_STRING = 1 << 20                 # SYS_WRITE0 prints at most this much of a string
OUTPUT_LIMIT = 64 << 20              # semihosting output of one machine, at most
PAGE = 0x1000

UARTDR, UARTFR = 0x00, 0x18
UARTFR_TXFE, UARTFR_RXFE = 1 << 7, 1 << 4


class SemihostExit(Exception):
    """The program asked to stop (SYS_EXIT / SYS_EXIT_EXTENDED) with this exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class SemihostingError(MteError):
    """A semihosting call the machine cannot complete and cannot report to the guest (the call
    has no failure result), or output past ``OUTPUT_LIMIT``: the run stops with this message."""


class _NotInMemory(Exception):
    """Guest memory a call needs is not there. ``result`` is what x0 gets where the call can
    report it; ``va`` is the first address that failed, ``start`` where the object begins."""

    def __init__(self, what: str, start: int, va: int, result: int = MINUS_ONE) -> None:
        super().__init__(what)
        self.what, self.start, self.va, self.result = what, start, va, result

    def describe(self) -> str:
        if self.va >= 1 << 64:
            return (f"the {self.what} at {self.start:#x} runs past the top of the address "
                    f"space")
        if self.va == self.start:
            return f"the {self.what} at {self.start:#x} is not in guest memory"
        return (f"the {self.what} at {self.start:#x} runs into {self.va:#x}, which is not in "
                f"guest memory")


# what a guest-virtual access raises where there is no memory: a translation fault
# (ValueError from the machine's accessors) or no RAM or device at the address (UcError)
_NO_MEMORY = (ValueError, UcError, OverflowError)


class Board:
    """Console output plus the semihosting calls, over guest-virtual memory accessors."""

    def __init__(self, read_mem, write_mem, output, clock, heap=(0, 0, 0, 0)) -> None:
        self.read_mem = read_mem           # (va, n) -> bytes
        self.write_mem = write_mem         # (va, bytes)
        self.output = output               # (str) -> None
        self.clock = clock                 # hostinputs.HostInputs
        self.heap = heap                   # SYS_HEAPINFO answer
        self.errno = 0                     # SYS_ERRNO: set by the last call that failed
        self.written = 0                   # bytes of semihosting output so far

    # --- PL011 ------------------------------------------------------------------------------
    def uart_read(self, offset: int, size: int) -> int:
        if offset == UARTFR:
            return UARTFR_TXFE | UARTFR_RXFE
        return 0

    def uart_write(self, offset: int, size: int, value: int) -> None:
        if offset == UARTDR:
            self.output(chr(value & 0xFF))

    # --- semihosting ------------------------------------------------------------------------
    def semihost(self, op: int, arg: int) -> int:
        """Perform one call; returns x0. Raises SemihostExit for the exit calls and
        SemihostingError where the run must stop."""
        call = _CALLS.get(op)
        if call is None:
            return MINUS_ONE
        try:
            return call(self, arg)
        except _NotInMemory as bad:
            name = NAMES.get(op, f"operation {op:#x}")
            if op in NO_FAILURE_RESULT:
                raise SemihostingError(f"semihosting {name}: {bad.describe()}; the call has "
                                       f"no failure result, so the run stops") from None
            self.errno = errno.EFAULT
            return bad.result

    # guest memory: every access a call makes goes through _access
    def _access(self, va: int, n: int, what: str, result: int, op):
        """Apply ``op(address, length)`` to each page-sized piece of [va, va + n); yields what
        each returns. A piece that is not in guest memory (or past the top of the address
        space) raises _NotInMemory naming its address."""
        a, end = va, va + n
        while a < end:
            if a >= 1 << 64:
                raise _NotInMemory(what, va, a, result)
            k = min(end - a, PAGE - (a & (PAGE - 1)))
            try:
                piece = op(a, k)
            except _NO_MEMORY:
                raise _NotInMemory(what, va, a, result) from None
            yield piece
            a += k

    def _read(self, va: int, n: int, what: str, result: int = MINUS_ONE) -> bytes:
        return b"".join(self._access(va, n, what, result, self.read_mem))

    def _write(self, va: int, data: bytes, what: str) -> None:
        for _ in self._access(va, len(data), what, MINUS_ONE,
                              lambda a, k: self.write_mem(a, data[a - va:a - va + k])):
            pass

    def _probe(self, va: int, n: int, what: str, result: int) -> None:
        """Check that [va, va + n) is all guest memory (a byte of each page), before a call
        transfers any of it."""
        for _ in self._access(va, n, what, result, lambda a, k: self.read_mem(a, 1)):
            pass

    def _fields(self, block: int, n: int) -> tuple:
        return struct.unpack(f"<{n}Q", self._read(block, 8 * n, "parameter block"))

    def _cstring(self, va: int, what: str, limit: int = MAX_STRING) -> bytes:
        """The NUL-terminated string at ``va`` (at most ``limit`` bytes of it)."""
        out = bytearray()
        for chunk in self._access(va, limit, what, MINUS_ONE, self.read_mem):
            i = chunk.find(b"\0")
            if i >= 0:
                return bytes(out + chunk[:i])
            out += chunk
        return bytes(out)

    def _print(self, data: bytes) -> None:
        self.written += len(data)
        if self.written > OUTPUT_LIMIT:
            raise SemihostingError(f"semihosting output passed {OUTPUT_LIMIT >> 20} MiB; the "
                                   f"run stops")
        self.output(data.decode("latin-1"))

    # --- the calls (each: (board, x1) -> x0) -------------------------------------------------
    def _writec(self, arg: int) -> int:
        self._print(self._read(arg, 1, "character"))
        return 0

    def _write0(self, arg: int) -> int:
        self._print(self._cstring(arg, "string"))
        return 0

    def _sys_write(self, arg: int) -> int:
        handle, buf, n = self._fields(arg, 3)
        if handle not in OUTPUT_HANDLES:
            self.errno = errno.EBADF
            return n
        k = min(n, MAX_TRANSFER)
        self._probe(buf, k, "buffer", n)
        for off in range(0, k, CHUNK):
            self._print(self._read(buf + off, min(CHUNK, k - off), "buffer", n))
        return n - k

    def _sys_read(self, arg: int) -> int:
        # the board has no input: every read is at end of file (nothing read)
        handle, buf, n = self._fields(arg, 3)
        if handle not in CONSOLE_HANDLES:
            self.errno = errno.EBADF
            return n
        self._probe(buf, min(n, MAX_TRANSFER), "buffer", n)
        return n

    def _exit(self, arg: int) -> int:
        reason, sub = self._fields(arg, 2)
        raise SemihostExit(sub & 0xFFFFFFFF if reason == ADP_STOPPED_APPLICATION_EXIT else 1)

    def _heapinfo(self, arg: int) -> int:
        (block,) = self._fields(arg, 1)
        self._write(block, struct.pack("<4Q", *self.heap), "heap information block")
        return 0

    def _clock(self, arg: int) -> int:
        return self.clock.centiseconds()

    def _time(self, arg: int) -> int:
        return self.clock.seconds_since_epoch()

    def _elapsed(self, arg: int) -> int:
        self._write(arg, struct.pack("<Q", self.clock.elapsed_ticks()), "elapsed-ticks block")
        return 0

    def _tickfreq(self, arg: int) -> int:
        return TICKFREQ

    def _errno(self, arg: int) -> int:
        return self.errno

    def _istty(self, arg: int) -> int:
        (handle,) = self._fields(arg, 1)
        if handle in CONSOLE_HANDLES:
            return 1
        self.errno = errno.EBADF
        return MINUS_ONE

    def _open(self, arg: int) -> int:
        # ":tt" is the console; files are not offered.
        name_va, mode, _length = self._fields(arg, 3)
        name = self._cstring(name_va, "file name", PAGE)
        if mode >= 12:                      # not one of the twelve fopen() modes
            self.errno = errno.EINVAL
            return MINUS_ONE
        if name == b":tt":
            return 1
        self.errno = errno.ENOENT
        return MINUS_ONE

    def _close(self, arg: int) -> int:
        (handle,) = self._fields(arg, 1)
        if handle in CONSOLE_HANDLES:
            return 0
        self.errno = errno.EBADF
        return MINUS_ONE


_CALLS = {SYS_WRITEC: Board._writec, SYS_WRITE0: Board._write0, SYS_WRITE: Board._sys_write,
          SYS_READ: Board._sys_read, SYS_EXIT: Board._exit, SYS_EXIT_EXTENDED: Board._exit,
          SYS_HEAPINFO: Board._heapinfo, SYS_CLOCK: Board._clock, SYS_TIME: Board._time,
          SYS_ELAPSED: Board._elapsed, SYS_TICKFREQ: Board._tickfreq,
          SYS_ERRNO: Board._errno, SYS_ISTTY: Board._istty, SYS_OPEN: Board._open,
          SYS_CLOSE: Board._close}
