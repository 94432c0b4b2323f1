"""Watchpoints, reverse execution and tag provenance through the GDB stub: the raw protocol
(Z2/Z3/Z4, bs/bc, O console text) against the real machine, and gdb-multiarch itself (skipped
where it is not installed).

GDB treats AArch64 watchpoints as non-continuable (gdbarch have_nonsteppable_watchpoint): the
stub stops BEFORE the access, with PC at the accessing instruction, GDB removes the watchpoint,
steps the access itself and reports the change. Going back it is the mirror image: the stub stops
right AFTER the access and GDB's step (backwards) lands before it.
"""
from __future__ import annotations

import re
import threading
from functools import partial
from pathlib import Path

import pytest

from aarch64mte.assembler import assemble
from aarch64mte.debug.gdb.server import GdbServer
from aarch64mte.debug.gdb.target_xml import PC_REGNUM
from aarch64mte.debug.session import Session
from aarch64mte.machine import Machine

import gdb_support
from gdb_support import StubProcess, needs_gdb
from test_gdb_protocol import Client

ROOT = Path(__file__).resolve().parent.parent
gdb = partial(gdb_support.gdb, timeout=120)

# `counter` is written once, at `store`, in the third of 20 iterations; `other` (the same
# 1 KiB page) and `far` (another page) are written every iteration; `reader` reads counter.
LOOP = """
    .text
    .globl _start
_start:
    adr     x0, counter
    adr     x1, other
    adr     x5, far
    mov     x2, #0
loop:
    add     x2, x2, #1
    str     x2, [x1]
    str     x2, [x5]
    cmp     x2, #3
    b.ne    skip
store:
    str     x2, [x0]
skip:
    cmp     x2, #20
    b.ne    loop
reader:
    ldr     x3, [x0]
    ret
    .data
    .balign 16
counter: .quad 7
other:   .quad 0
    .balign 4096
far:     .quad 0
"""


@pytest.fixture
def loop_server():
    img = assemble(LOOP)
    m = Machine()
    m.load_image(img)
    srv = GdbServer(Session(m), port=0)
    port = srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield img.symbols, port, m
    srv.close()
    t.join(timeout=5)


def stop_pc(reply: bytes) -> int:
    m = re.search(rb"%02x:([0-9a-f]{16});" % PC_REGNUM, reply)
    return int.from_bytes(bytes.fromhex(m.group(1).decode()), "little")


def read_stop(c: Client) -> tuple[list[str], bytes]:
    """Console text (O packets) and the stop reply that follows them."""
    out = []
    while True:
        p = c.read_packet()
        if p.startswith(b"O") and not p.startswith(b"OK"):
            out.append(bytes.fromhex(p[1:].decode()).decode())
            continue
        return out, p


def resume(c: Client, packet: str):
    c.send(packet)
    assert c.read_ack() == b"+"
    return read_stop(c)


def test_write_watchpoint_stops_before_the_store_once(loop_server):
    sym, port, m = loop_server
    c = Client(port)
    assert "ReverseStep+;ReverseContinue+" in c.cmd("qSupported:multiprocess+").decode()
    counter = sym["counter"]
    assert c.cmd("Z2,%x,8" % counter) == b"OK"
    _, stop = resume(c, "vCont;c")
    assert stop.startswith(b"T05") and b"watch:%x;" % counter in stop
    assert stop_pc(stop) == sym["store"]                  # before the store: it has not run
    assert c.cmd("m%x,8" % counter) == (7).to_bytes(8, "little").hex().encode()
    # GDB's next moves: remove, step the store, put back, continue
    assert c.cmd("z2,%x,8" % counter) == b"OK"
    _, stop = resume(c, "vCont;s")
    assert stop_pc(stop) == sym["skip"]
    assert c.cmd("m%x,8" % counter) == (3).to_bytes(8, "little").hex().encode()
    assert c.cmd("Z2,%x,8" % counter) == b"OK"
    _, stop = resume(c, "vCont;c")
    assert stop.startswith(b"W00")                       # no second stop: written once
    c.close()


def test_continuing_without_removing_the_watchpoint_does_not_stop_twice(loop_server):
    sym, port, m = loop_server
    c = Client(port)
    c.cmd("qSupported:multiprocess+")
    assert c.cmd("Z2,%x,8" % sym["counter"]) == b"OK"
    _, stop = resume(c, "vCont;c")
    assert stop_pc(stop) == sym["store"]
    _, stop = resume(c, "vCont;c")
    assert stop.startswith(b"W00")
    assert m.read_mem(sym["counter"], 8) == (3).to_bytes(8, "little")
    c.close()


def test_read_and_access_watchpoints(loop_server):
    sym, port, m = loop_server
    c = Client(port)
    c.cmd("qSupported:multiprocess+")
    counter = sym["counter"]
    assert c.cmd("Z3,%x,8" % counter) == b"OK"            # read: only the final load
    _, stop = resume(c, "vCont;c")
    assert b"rwatch:%x;" % counter in stop and stop_pc(stop) == sym["reader"]
    assert c.cmd("z3,%x,8" % counter) == b"OK"
    assert c.cmd("Z4,%x,4" % (counter + 4)) == b"OK"       # access, overlapping its top half
    m.set_reg("pc", sym["_start"])
    m.set_reg("x2", 0)
    _, stop = resume(c, "vCont;c")
    assert b"awatch:%x;" % (counter + 4) in stop and stop_pc(stop) == sym["store"]
    _, stop = resume(c, "vCont;c")
    assert b"awatch:" in stop and stop_pc(stop) == sym["reader"]
    assert c.cmd("Z2,%x,0" % counter) == b"E22"            # no length
    c.close()


def test_reverse_step_and_continue_packets(loop_server):
    sym, port, m = loop_server
    c = Client(port)
    c.cmd("qSupported:multiprocess+")
    assert c.cmd("Z0,%x,4" % sym["skip"]) == b"OK"
    resume(c, "vCont;c")
    resume(c, "vCont;c")
    assert m.reg("x2") == 2
    _, stop = resume(c, "bc")                               # back to the first iteration
    assert stop_pc(stop) == sym["skip"] and b"swbreak:;" in stop and m.reg("x2") == 1
    _, stop = resume(c, "bs")
    assert stop_pc(stop) == sym["skip"] - 8         # the b.ne that branched over the store
    assert c.cmd("z0,%x,4" % sym["skip"]) == b"OK"
    out, stop = resume(c, "bc")
    assert b"replaylog:begin;" in stop and stop_pc(stop) == sym["_start"]
    assert any("start of the recorded history" in o for o in out)
    c.close()


def test_fault_stop_prints_the_tag_writer():
    img = assemble((ROOT / "asm" / "use_after_free.S").read_text())
    m = Machine()
    m.load_image(img)
    srv = GdbServer(Session(m), port=0)
    port = srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        c = Client(port)
        c.cmd("qSupported:multiprocess+")
        out, stop = resume(c, "vCont;c")
        assert stop.startswith(b"T0b")                      # SIGSEGV
        text = "".join(out)
        assert "tag-check fault: allocation tag 0x5 set by stg x10, [x10] at _start+0x2c " \
               "(insn #12, EL1); before that 0xe by stg x0, [x0] at _start+0xc (insn #4, EL1)" \
               in text, text
        c.close()
    finally:
        srv.close()
        t.join(timeout=5)


# --- gdb-multiarch ---------------------------------------------------------------------------

@pytest.fixture
def loop_stub(tmp_path):
    src = tmp_path / "loop.S"
    src.write_text(LOOP)
    stub = StubProcess(tmp_path, src, "-v", cwd=tmp_path)
    yield stub, assemble(LOOP).symbols
    stub.close()


@needs_gdb
def test_gdb_write_watchpoint_stops_once_before_the_store(loop_stub):
    stub, sym = loop_stub
    out = gdb(stub.port, "watch *(long *)&counter", "continue", "p $pc", "continue", "kill")
    assert out.count("Hardware watchpoint 1: *(long *)&counter") == 2, out   # set, then hit
    assert "Old value = 7\nNew value = 3" in out, out
    assert out.count("Old value") == 1
    assert f"$1 = (void (*)()) {sym['skip']:#x} <skip>" in out, out   # after GDB's step
    assert "exited normally" in out
    log = stub.packets()
    stops = re.findall(r"-> b'(T05[^']*watch:[0-9a-f]+;)'", log)
    assert len(stops) == 1, log
    assert stop_pc(stops[0].encode()) == sym["store"]
    after = log[log.index(stops[0]):]
    read = re.search(r"<- b'm%x,8'\n.*-> b'([^']*)'" % sym["counter"], after)
    assert read.group(1).startswith("07"), read.group(0)      # the old value, still in memory


@needs_gdb
def test_gdb_read_watchpoint(loop_stub):
    stub, sym = loop_stub
    out = gdb(stub.port, "rwatch *(long *)&counter", "continue", "p $pc", "kill")
    assert "Hardware read watchpoint 1: *(long *)&counter\n\nValue = 3" in out, out
    assert f"$1 = (void (*)()) {sym['reader'] + 4:#x}" in out, out


@needs_gdb
def test_gdb_access_watchpoint(loop_stub):
    stub, sym = loop_stub
    out = gdb(stub.port, "awatch *(long *)&counter", "continue", "continue", "kill")
    assert "Hardware access (read/write) watchpoint 1: *(long *)&counter\n\n" \
           "Old value = 7\nNew value = 3" in out, out
    assert "Hardware access (read/write) watchpoint 1: *(long *)&counter\n\nValue = 3" in out


@needs_gdb
def test_gdb_reverse_execution(loop_stub):
    stub, sym = loop_stub
    out = gdb(stub.port, f"break *{sym['skip']:#x}", "continue", "continue", "p $x2",
              "reverse-continue", "p $x2", "reverse-stepi", "p $pc", "delete",
              f"break *{sym['reader']:#x}", "continue",
              "watch *(long *)&counter", "reverse-continue", "p $pc", "p $x2",
              "p *(long *)&counter", "reverse-continue", "kill")
    assert "$1 = 2" in out and "$2 = 1" in out, out
    assert f"$3 = (void (*)()) {sym['skip'] - 8:#x}" in out, out
    assert "Old value = 3\nNew value = 7" in out, out         # the store undone ...
    assert f"$4 = (void (*)()) {sym['store']:#x} <store>" in out, out   # ... stopped at it
    assert "$5 = 3" in out and "$6 = 7" in out
    assert "No more reverse-execution history." in out


@needs_gdb
def test_gdb_tag_watch_and_writer_commands(tmp_path):
    stub = StubProcess(tmp_path, ROOT / "asm" / "use_after_free.S", "-v", cwd=tmp_path)
    try:
        heap = assemble((ROOT / "asm" / "use_after_free.S").read_text()).symbols["heap"]
        out = gdb(stub.port, f"monitor watch-tag {heap:#x}", "continue", "p $pc",
                  "continue", "continue", f"monitor writer {heap:#x}",
                  f"monitor history {heap:#x}", f"monitor reverse-to-tag-write {heap:#x}",
                  "maintenance flush register-cache", "p $pc", "x/i $pc", "kill")
        assert f"watching the allocation tags of {heap:#x}..{heap + 15:#x}" in out, out
        assert "tag watch 0x40081000: tags now e; allocation tag 0xe set by stg x0, [x0] at " \
               "_start+0xc (insn #4, EL1); before that 0x0, the tag it started with" in out, out
        assert "$1 = (void (*)()) 0x40080010 <_start+16>" in out       # after the STG
        assert "Program received signal SIGSEGV" in out
        assert "tag-check fault: allocation tag 0x5 set by stg x10, [x10] at _start+0x2c" in out
        assert "granule 0x40081000: 2 tag writes, newest first" in out
        assert "back at instruction #11, pc 0x4008002c <_start+0x2c>: next, stg x10, [x10] " \
               "sets granule 0x40081000 from 0xe to 0x5" in out, out
        assert "$2 = (void (*)()) 0x4008002c <_start+44>" in out, out
    finally:
        stub.close()
