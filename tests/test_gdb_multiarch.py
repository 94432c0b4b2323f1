"""`aarch64mte gdbserver` against the real gdb-multiarch (skipped where it is not installed), and
the command's own behaviour: port in use, reconnection after a client vanishes."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from gdb_support import DEMO, ROOT, StubProcess, gdb, needs_gdb


@pytest.fixture
def stub(tmp_path):
    s = StubProcess(tmp_path)
    yield s
    s.close()


@needs_gdb
def test_breakpoints_stepping_registers_memory(stub):
    out = gdb(stub.port,
              "break loop", "continue", "info registers pc",
              "stepi", "info registers pc", "nexti", "p/x $pc",
              "p $x0", "set {unsigned char}0x40081001 = 0x5a", "x/4xb &buf",
              "p/x $tag_ctl", "set $x5 = 0x1234", "p/x $x5", "kill")
    assert "Breakpoint 1, 0x0000000040080010 in loop ()" in out, out
    assert re.search(r"pc\s+0x40080010\s+0x40080010 <loop>", out), out
    assert re.search(r"pc\s+0x40080014\s+0x40080014 <loop\+4>", out), out
    assert "$1 = 0x40080018" in out, out          # nexti ran through the BL
    assert "$2 = 0" in out
    assert re.search(r"0x40081000( <buf>)?:\s+0x00\s+0x5a\s+0x00\s+0x00", out), out
    assert "$3 = 0x7fffb" in out        # tag_ctl: sync TCF, tagged addresses, all tags allowed
    assert "$4 = 0x1234" in out


@needs_gdb
def test_memory_tag_commands(stub):
    out = gdb(stub.port,
              "break checked", "continue", "p/x $x20",
              "memory-tag print-logical-tag $x20",
              "memory-tag print-allocation-tag $x20",
              "memory-tag print-allocation-tag $x20+64",
              "memory-tag check $x20",
              "memory-tag check $x20+64",
              "memory-tag set-allocation-tag $x20+64 32 0e",
              "memory-tag print-allocation-tag $x20+80",
              "memory-tag check $x20+64",
              "memory-tag set-allocation-tag $x20+96 16 03",
              "memory-tag print-allocation-tag $x20+96",
              "kill")
    assert "$1 = 0xe00000040081000" in out, out
    assert "$2 = 0xe" in out and "$3 = 0xe" in out, out
    assert "$4 = 0x0" in out, out
    assert "Memory tags for address 0xe00000040081000 match (0xe)." in out, out
    assert re.search(r"Logical tag \(0xe\) does not match the allocation tag \(0x0\) "
                     r"for address 0xe00000040081040", out), out
    assert "Allocation tag(s) updated successfully." in out
    assert "$5 = 0xe" in out, out
    assert "Memory tags for address 0xe00000040081040 match (0xe)." in out, out
    assert "$6 = 0x3" in out, out


@needs_gdb
def test_stop_on_tag_check_fault_shows_tags(stub):
    out = gdb(stub.port, "continue", "p $_siginfo.si_code", "x/i $pc", "kill")
    assert "Program received signal SIGSEGV" in out, out
    assert "Memory tag violation while accessing address 0x0e00000040081040" in out, out
    assert "Allocation tag 0x0" in out and "Logical tag 0xe" in out, out
    assert "$1 = 9" in out                                   # SEGV_MTESERR
    assert "<bad_load>" in out


@needs_gdb
def test_gdb_reconnects_after_disconnect(stub):
    out1 = gdb(stub.port, "break loop", "continue", "disconnect")
    assert "Breakpoint 1," in out1, out1
    out2 = gdb(stub.port, "p/x $pc", "p $x0", "kill")
    assert "$1 = 0x40080010" in out2, out2


def test_port_in_use_exits_2():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        r = subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", "gdbserver", str(DEMO),
                            "--port", str(port)], capture_output=True, text=True, timeout=30,
                           env=env)
        assert r.returncode == 2
        assert f"port {port}" in r.stderr and "already in use" in r.stderr
    finally:
        blocker.close()


def test_stub_survives_hostile_client(stub):
    s = socket.create_connection(("127.0.0.1", stub.port), timeout=5)
    s.sendall(b"$qSupported#37$m40080000,4#59")
    data = b""
    while data.count(b"#") < 2:
        data += s.recv(4096)
    assert b"memory-tagging+" in data
    s.sendall(b"$qMemTags:40081000,fffffffff:1#00")         # wrong checksum
    assert s.recv(1) == b"-"
    s.sendall(b"$vFile:pread:5")                            # vanish mid-packet
    s.close()
    s = socket.create_connection(("127.0.0.1", stub.port), timeout=5)
    body = b"qMemTags:40081000,10:1"
    s.sendall(b"$" + body + b"#%02x" % (sum(body) & 0xFF))
    data = b""
    while b"#" not in data or len(data) < data.index(b"#") + 3:
        data += s.recv(4096)
    assert data.startswith(b"+$m00#"), data
    s.close()
    assert stub.proc.poll() is None
