"""The guest's console output reaches the user byte for byte: `run`'s text report and the
debugger's `output` command print what the program wrote through the PL011 UART and
semihosting, with no wrapping at the terminal width, no rich markup or emoji codes interpreted,
and bytes that are not UTF-8 passed through unchanged (as QEMU's serial console passes them)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LONG = (b"FAIL tag_check case=17 addr=0x0000000040081000 pointer=0x0e00000040081000 "
        b"got=0x0e want=0x05 [bold]not markup[/bold] [red]x[/] :smile: done")
RAW = bytes([0xFF, 0xFE, 0xC3, 0xA9, 0x80, 0x1B, 0x5B, 0x30, 0x6D])   # invalid UTF-8, é, ESC[0m

# Writes LONG + "\n" through semihosting SYS_WRITE0, then RAW + "\n" byte by byte to the UART
# data register (PL011 UARTDR at 0x0900_0000), then exits with status 0.
PROGRAM = f"""
        .text
        .globl _start
_start: adr     x1, msg
        mov     x0, #4                  // SYS_WRITE0
        hlt     #0xf000
        adr     x2, raw
        adr     x6, raw_end
        mov     x3, #0x09000000
1:      ldrb    w4, [x2], #1
        strb    w4, [x3]
        cmp     x2, x6
        b.ne    1b
        adr     x1, exit_block
        mov     x0, #0x18               // SYS_EXIT
        hlt     #0xf000
        .data
msg:    .asciz "{LONG.decode()}\\n"
raw:    .byte {", ".join(str(b) for b in RAW)}, 10
raw_end:
        .balign 8
exit_block: .quad 0x20026, 0
"""


def cli(*args, stdin=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               COLUMNS="80")
    return subprocess.run([sys.executable, "-m", "aarch64mte.cli.main", *map(str, args)],
                          input=stdin, capture_output=True, timeout=120, env=env)


def test_run_report_prints_guest_output_byte_for_byte(tmp_path):
    src = tmp_path / "print.S"
    src.write_text(PROGRAM)
    r = cli("run", src)
    assert r.returncode == 0, r.stderr
    # the long line arrives whole (not re-wrapped at 80 columns), markup and emoji codes as
    # written, then the raw bytes exactly
    assert b"\n" + LONG + b"\n" + RAW + b"\n" in r.stdout, r.stdout


def test_debugger_output_command_prints_guest_output_byte_for_byte(tmp_path):
    src = tmp_path / "print.S"
    src.write_text(PROGRAM)
    r = cli("debug", src, "--batch", stdin=b"continue\noutput\n")
    assert r.returncode == 0, r.stderr
    assert LONG + b"\n" + RAW + b"\n" in r.stdout, r.stdout
    assert b"Traceback" not in r.stderr


def test_debugger_echo_and_errors_print_brackets_literally(tmp_path):
    src = tmp_path / "print.S"
    src.write_text(PROGRAM)
    r = cli("debug", src, "--batch", stdin=b"echo [bold]x[/bold] :smile:\nprint [red]\n")
    assert b"[bold]x[/bold] :smile:" in r.stdout
    assert r.returncode == 1 and b"error:" in r.stdout
