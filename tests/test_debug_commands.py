"""The debugger's command set in batch mode, against the fake machine."""
from __future__ import annotations

import io

from rich.console import Console

from aarch64mte.debug.commands import Debugger, run_batch
from aarch64mte.debug.expr import Evaluator, ExprError
from aarch64mte.debug.session import Session

from test_debug_fake import SYMBOLS, make

import pytest


def debugger(machine=None):
    out = io.StringIO()
    console = Console(file=out, highlight=False, no_color=True, width=200, emoji=False)
    return Debugger(Session(machine or make()), console=console), out


def batch(script, machine=None):
    d, out = debugger(machine)
    status = run_batch(d, script.strip().splitlines())
    return status, out.getvalue()


def test_expressions():
    regs = {"x0": 3, "x1": 0x10, "pc": 0x1000, "sp": 0x8000}
    ev = Evaluator(lambda n: regs[n], lambda: {"loop": 0x2000, "x1sym": 5},
                   lambda a: 0x1234)
    assert ev("loop+0x10") == 0x2010
    assert ev("x0 == 3") == 1
    assert ev("x0 == 3 && x1 > 0xf") == 1
    assert ev("$pc - 4") == 0xFFC
    assert ev("-1") == (1 << 64) - 1
    assert ev("(x0 + 1) * 2 << 1") == 16
    assert ev("*sp") == 0x1234
    assert ev("w1") == 0x10 and ev("lr" if "x30" in regs else "x1sym") == 5
    with pytest.raises(ExprError):
        ev("nosuch + 1")
    with pytest.raises(ExprError):
        ev("1 +")


def test_break_on_symbol_step_registers_memory():
    status, out = batch("""
        break inc
        continue
        registers x0 pc
        step
        registers
        x/4xb inc
        mem buf 16
        next
        info breakpoints
        continue
        continue
    """)
    assert status == 0, out
    assert "Breakpoint 1 at 0x40080018 <inc>" in out
    assert "Breakpoint 1, 0x40080018 <inc>" in out
    assert "x0 0x0000000000000001*" in out             # changed by the step: highlighted
    assert "0x40080018 <inc>:  0x00  0x04  0x00  0x91" in out
    assert "Program exited with code 2" in out


def test_conditional_breakpoint_and_assert():
    status, out = batch("""
        break inc if x0 == 1
        continue
        assert x0 == 1
        assert pc == inc
        print x0 + 0x10
        delete
        continue
    """)
    assert status == 0, out
    assert "0x11 (17)" in out and "with code 2" in out


def test_failed_command_gives_status_1_and_quit_status():
    status, out = batch("""
        print nosuch
        registers
    """)
    assert status == 1 and "error: no register or symbol named 'nosuch'" in out
    status, out = batch("quit 7")
    assert status == 7


def test_tags_tagmap_and_fault_display():
    m = make()
    m.regs["x2"] = (3 << 56) | SYMBOLS["buf"]
    m.write_tags(SYMBOLS["buf"] - 0x20, [1, 2, 5, 6])
    status, out = batch("""
        tags x2 32
        tagmap buf-0x40 0x100
        continue
        faults
        sysregs
    """, m)
    assert status == 0, out
    assert "pointer 0x0300000040001000: logical tag 0x3" in out
    assert "granule 0x40001000: allocation tag 0x5  MISMATCH" in out
    assert "0x40000fc0: 0 0 1 2 5 6 0 0" in out
    assert "Tag-check fault (sync, read)" in out
    assert "logical tag  0x3   allocation tag 0x5" in out
    assert "[5]" in out                                   # the faulting granule, bracketed
    assert "ldr x1, [x2]" in out
    assert "TCF=1 (sync)" in out and "GMID_EL1" in out and "Exclude=0x0001 (0)" in out
    assert "RRND=1" in out


def test_until_finish_and_disassembly():
    status, out = batch("""
        until 0x4008000c
        assert pc == 0x4008000c
        disas inc 2
        set x0 = 41
        step 3
        assert x0 == 41
    """)
    assert status == 0, out
    assert "inc:" in out and "add x0, x0, #1" in out and "ret" in out


def test_set_tag_and_watch():
    status, out = batch("""
        set tag buf+0x10 = 9
        tags buf+0x10
        watch tag buf
        watches
    """)
    assert status == 0, out
    assert "allocation tag 0x9" in out and "watch 1: tag 0x40001000 len 16" in out


def test_help_lists_commands():
    status, out = batch("help\nhelp tags")
    assert status == 0 and "tagmap" in out and "logical tag" in out
