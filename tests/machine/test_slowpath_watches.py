"""Watches hold for the instructions the machine finishes in Python (``slowpath``): an
unaligned atomic inside 16 bytes (FEAT_LSE2), LDSMIN/LDSMAX of bytes, an exclusive pair. A
watch that stops before the access stops with PC at the instruction and memory unchanged; one
that stops after it stops once the write has landed."""
import pytest

from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine

PROGRAM = """
_start:
    adr  x0, buf
    movk x0, #0x0300, lsl #48      // buf is tagged 3 below
    mov  x1, #7
    mov  x9, #0xf1                 // LDSMINB: signed 0xf1 (-15) is below 0x41
    {body}
    brk  #0
    .data
    .balign 4096
buf: .skip 64
"""

BODIES = {
    "swp-unaligned": ("add x2, x0, #1\nf: swp x1, x3, [x2]", 1, 8),
    "ldsminb": ("add x2, x0, #0\nf: ldsminb w9, w3, [x2]", 0, 1),
    "stxp": ("add x2, x0, #16\nldxp x4, x5, [x2]\nf: stxp w6, x1, x9, [x2]", 16, 16),
}


@pytest.fixture(params=["native", "python"])
def path(request, monkeypatch):
    monkeypatch.setenv("AARCH64MTE_NATIVE", "1" if request.param == "native" else "0")
    return request.param


def _machine(body):
    m = Machine()
    m.load_image(assemble(PROGRAM.format(body=body)))
    m.write_tags(m.symbols["buf"], [3] * 4)
    m.write_mem(m.symbols["buf"], b"\x41")
    return m


@pytest.mark.parametrize("name", sorted(BODIES))
def test_watch_before_stops_before_the_slow_path_write(path, name):
    body, off, n = BODIES[name]
    m = _machine(body)
    buf = m.symbols["buf"]
    m.add_watch(buf + off, n, kind="data", when="before")
    before = m.read_mem(buf, 64)
    r = m.run(1000)
    assert r.reason == "watchpoint" and r.pc == m.symbols["f"]
    assert m.read_mem(buf, 64) == before             # nothing written yet
    r = m.run(1000)                                  # resuming performs it, once
    assert r.reason == "brk"
    assert m.read_mem(buf, 64) != before


@pytest.mark.parametrize("name", sorted(BODIES))
def test_watch_after_stops_after_the_slow_path_write(path, name):
    body, off, n = BODIES[name]
    m = _machine(body)
    buf = m.symbols["buf"]
    m.add_watch(buf + off, n, kind="data", when="after")
    before = m.read_mem(buf, 64)
    r = m.run(1000)
    assert r.reason == "watchpoint" and r.pc == m.symbols["f"] + 4
    assert m.read_mem(buf, 64) != before
    assert m.run(1000).reason == "brk"
