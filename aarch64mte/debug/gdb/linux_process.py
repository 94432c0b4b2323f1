"""The program as GDB sees it: Linux process 1.

To let GDB 13's `memory-tag` commands work, the stub presents the program as Linux process 1:
multiprocess thread ids (`p1.1`), `qXfer:exec-file`, a `/proc/1/smaps` served over `vFile` that
marks Tagged memory with the `mt` VmFlag, and `qXfer:siginfo` with the kernel's si_code for tag
faults (SEGV_MTESERR, SEGV_MTEAERR), so GDB prints the logical and allocation tags itself.
"""
from __future__ import annotations

import os
import struct
from typing import Optional

from aarch64mte.debug import mapping
from aarch64mte.debug.gdb import packets as pk
from aarch64mte.debug.gdb.packets import MAX_MEM
from aarch64mte.debug.gdb.target_xml import target_xml
from aarch64mte.debug.session import MASK64, SIGTRAP

PID = 1
TID = 1
THREAD = f"p{PID:x}.{TID:x}"

# vFile errno values (GDB's fileio numbering)
FILEIO_ENOENT, FILEIO_EBADF, FILEIO_EACCES, FILEIO_EINVAL, FILEIO_ENOSYS = 2, 9, 13, 22, 88


class LinuxProcessMixin:
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
            content = target_xml(with_el2=self.has_el2()).encode()
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
