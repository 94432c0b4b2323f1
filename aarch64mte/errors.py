"""Errors a user can cause: each names where the problem is and what it is, never a traceback.

`InputError` is the one kind the front ends report (one line, exit status 2). Host-side failures
that a user's input provokes -- an OSError opening a file, a struct.error or OverflowError from a
corrupt header, a pyelftools exception, a UcError placing bytes -- become an InputError in one
place, `host_failures`, which every input boundary (reading a file, parsing an ELF file, loading
an image into the machine) enters. `read_input` is the one way a user's file is read: a regular
file only, and never more than a bound, so a directory, a device or a FIFO gets a message instead
of a hang or an unbounded read.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
from contextlib import contextmanager
from typing import Iterator, Optional


class MteError(Exception):
    """Base of every error the command line reports as a message with exit status 2."""


class InputError(MteError):
    """Bad input: a source line, a file, an option. `file` and `line` (a source line) or
    `offset` (a byte offset in a binary file) locate it when known."""

    def __init__(self, message: str, file: Optional[str] = None, line: Optional[int] = None,
                 offset: Optional[int] = None):
        self.message = message
        self.file = file
        self.line = line
        self.offset = offset
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            if self.line is not None:
                where = f"{self.file}:{self.line}: "
            elif self.offset is not None:
                where = f"{self.file}: at offset {self.offset:#x}: "
            else:
                where = f"{self.file}: "
        elif self.offset is not None:
            where = f"at offset {self.offset:#x}: "
        return f"{where}{self.message}"

    def located(self, file: str) -> "InputError":
        """This error with `file` filled in when it named none (for checks that see only an
        image, not the file it came from)."""
        if self.file is None:
            self.file = file
            self.args = (str(self),)
        return self


# --- files ------------------------------------------------------------------------------------

#: Larger files are refused before reading: nothing this emulator loads comes near it (RAM is
#: 128 MiB), and it keeps a wrong argument (a disk image, a core file) from filling memory.
MAX_INPUT_BYTES = 1 << 30

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"))


def file_problem(path: str) -> Optional[str]:
    """Why `path` cannot be read as an input file (missing, a directory, a device, ...), or
    None when it is a regular file. Never opens the file."""
    try:
        st = os.stat(path)
    except OSError as e:
        return os_message(e)
    if stat.S_ISREG(st.st_mode):
        return None
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    return f"is {kind}, not a file" if not kind.startswith("not") else kind


def check_input_file(path: str) -> None:
    """Raise InputError naming `path` unless it is a regular file."""
    problem = file_problem(path)
    if problem is not None:
        raise InputError(problem, path)


def read_input(path: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a user's regular file (at most `limit`), or an InputError saying what it is
    instead. The type and size are checked on the open file, so a path swapped between the check
    and the read still cannot make this read a device."""
    check_input_file(path)                  # a FIFO would block in open()
    with host_failures(path):
        # O_NONBLOCK: should the path become a FIFO after the check, open() still returns
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                check_input_file(path)
                raise InputError("not a regular file", path)
            if st.st_size > limit:
                raise InputError(f"file is {st.st_size:,} bytes; inputs larger than "
                                 f"{limit:,} bytes are refused", path)
            data = f.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"file grew past {limit:,} bytes while being read", path)
    return data


def read_text(path: str, limit: int = MAX_INPUT_BYTES) -> str:
    """A user's text file (UTF-8), read as `read_input` does."""
    data = read_input(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not a UTF-8 text file (byte {data[e.start]:#04x})", path,
                         offset=e.start) from None


# --- the one translation of host-side failures -----------------------------------------------

_OS_MESSAGES = {errno.ENOENT: "no such file", errno.EISDIR: "is a directory, not a file",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                errno.ENOTDIR: "a component of the path is not a directory",
                errno.ENAMETOOLONG: "file name too long", errno.ELOOP: "too many symbolic links",
                errno.ENOSPC: "no space left on the device"}


def os_message(exc: OSError) -> str:
    """A short message for an OSError, without its Python spelling."""
    if exc.errno in _OS_MESSAGES:
        return _OS_MESSAGES[exc.errno]
    return exc.strerror.lower() if exc.strerror else str(exc)


def _host_failure_types() -> tuple:
    """The exception types a corrupt or unsuitable input makes the libraries underneath raise."""
    types = [OSError, struct.error, OverflowError, MemoryError, UnicodeError, RecursionError]
    try:
        from elftools.common.exceptions import ELFError
        types.append(ELFError)
    except ImportError:                 # pragma: no cover - a dependency
        pass
    try:
        from unicorn import UcError
        types.append(UcError)
    except ImportError:                 # pragma: no cover - a dependency
        pass
    return tuple(types)


_HOST_FAILURES: Optional[tuple] = None


def describe(exc: BaseException) -> str:
    """What a host-side failure means to the user, without Python's or Unicorn's names."""
    if isinstance(exc, OSError):
        return os_message(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (the input asks for more memory than this host gives)"
    if isinstance(exc, RecursionError):
        return "structure nested too deeply"
    if isinstance(exc, OverflowError):
        return "a size or an address is out of range"
    text = str(exc).strip() or "failed"
    if isinstance(exc, struct.error):
        return f"a record in it is cut short ({text})"
    return text


@contextmanager
def host_failures(file: Optional[str], what: str = "", also: tuple = ()) -> Iterator[None]:
    """Inside this block, a host-side failure caused by the input `file` becomes an InputError
    naming it (prefixed with `what`, e.g. "corrupt ELF file"); InputErrors pass through with
    `file` filled in. `also` adds exception types that mean bad input at this boundary (a parser
    that raises ValueError on malformed data)."""
    global _HOST_FAILURES
    try:
        yield
    except InputError as e:
        raise e.located(file) if file is not None else e
    except MteError:
        raise
    except Exception as e:
        if _HOST_FAILURES is None:
            _HOST_FAILURES = _host_failure_types()
        if not isinstance(e, _HOST_FAILURES + tuple(also)):
            raise
        message = describe(e)
        raise InputError(f"{what}: {message}" if what else message, file) from None
