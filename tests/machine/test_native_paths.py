"""The native hooks and the Python hooks are two implementations of the same machine: both are
chosen correctly, and every example program ends in the same state under both."""
import importlib.util
import os
import pathlib

import pytest

from aarch64mte.assembler import assemble_file
from aarch64mte.machine import Machine, native

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILT = importlib.util.find_spec("aarch64mte.machine._native") is not None
needs_native = pytest.mark.skipif(native.library() is None,
                                  reason="the native extension is not built here")


def test_the_extension_loads_where_it_is_built():
    """A built extension whose core_t layout differed from native.Core would be refused and
    every run would quietly take the Python paths."""
    if os.environ.get("AARCH64MTE_REQUIRE_NATIVE") == "1":
        assert BUILT, "AARCH64MTE_REQUIRE_NATIVE=1 but aarch64mte.machine._native is not built"
    if BUILT and os.environ.get("AARCH64MTE_NATIVE") != "0":
        assert native.library() is not None, "the extension is built but its layout differs"


@needs_native
def test_native_and_python_hooks_are_the_ones_used():
    prog = ROOT / "asm" / "tag_buffer.S"
    m = Machine(native=True)
    m.load(str(prog))
    m.run()
    assert m.native and m.core.native_traps > 0
    p = Machine(native=False)
    p.load(str(prog))
    p.run()
    assert not p.native and p.core.native_traps == 0


def _state(m, r):
    regs = {f"x{i}": m.reg(f"x{i}") for i in range(31)}
    regs.update(sp=m.reg("sp"), pc=m.reg("pc"), nzcv=m.reg("nzcv"), el=m.reg("el"),
                tco=m.reg("tco"))
    for name in ("gcr_el1", "rgsr_el1", "tfsr_el1", "tfsre0_el1", "esr_el1", "far_el1",
                 "elr_el1"):
        regs[name] = m.reg(name)
    tags = {base: m.tags.get_range(base, size // 16) for base, size in m.tags.ranges}
    data = {s.addr: m.read_mem(s.addr, len(s.data), physical=True) for s in m.image.segments}
    c = m.counters
    counts = (c.insns, c.mte_insns, c.tag_granules_read, c.tag_granules_written,
              c.exceptions_taken, c.exception_returns)
    exc = [(e.kind, e.esr, e.far, e.pc) for e in m.exception_log]
    return r.reason, r.code, regs, tags, data, counts, exc, m.console


PROGRAMS = sorted(p.name for p in (ROOT / "asm").glob("*.S"))


@needs_native
@pytest.mark.parametrize("name", PROGRAMS)
def test_every_example_ends_the_same_under_both(name):
    image = assemble_file(str(ROOT / "asm" / name))
    out = []
    for flag in (True, False):
        m = Machine(native=flag)
        m.load_image(image)
        r = m.run(2_000_000)
        out.append(_state(m, r))
    assert out[0] == out[1]
