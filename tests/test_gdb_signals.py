"""`aarch64mte gdbserver` ends cleanly on SIGTERM, SIGHUP and SIGINT -- idle, with a client, or
in the middle of a run -- and removes the temporary ELF it wrote for GDB's symbols."""
from __future__ import annotations

import signal

import pytest

from aarch64mte.debug.gdb import packets as pk
from gdb_support import DEMO, StubProcess
from test_gdb_fuzz import Client

SPIN = """
        .text
        .globl _start
_start: add x0, x0, #1
        b _start
"""


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                        (signal.SIGINT, 130)])
def test_signal_removes_the_temporary_elf(tmp_path, sig, status):
    stub = StubProcess(tmp_path, DEMO, "--max-insns", "200000")
    leftover = list(stub.tmp.iterdir())
    assert len(leftover) == 1 and leftover[0].suffix == ".elf"   # the symbols file GDB reads
    c = Client(stub.port)
    assert c.ask(b"qXfer:exec-file:read::0,1000").endswith(leftover[0].name.encode())
    stub.proc.send_signal(sig)
    assert stub.proc.wait(timeout=30) == status
    c.close()
    assert list(stub.tmp.iterdir()) == []
    assert "Traceback" not in stub.stderr()


def test_sigterm_during_a_run(tmp_path):
    src = tmp_path / "spin.S"
    src.write_text(SPIN)
    stub = StubProcess(tmp_path, src, "--max-insns", "1000000000")
    c = Client(stub.port)
    c.ask(b"qSupported")
    c.sock.sendall(pk.frame(b"c"))
    c.until(lambda ev: ev == pk.Ack(True))          # running now; no reply until it stops
    stub.proc.terminate()
    assert stub.proc.wait(timeout=30) == 143
    c.close()
    assert list(stub.tmp.iterdir()) == []
    assert "Traceback" not in stub.stderr()
