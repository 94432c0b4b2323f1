"""The interactive prompt: prompt_toolkit with history, completion of commands, registers and
symbols, and Enter repeating the last command (as in GDB). Ctrl-C stops a running program."""
from __future__ import annotations

import os
import signal
import sys

from aarch64mte.debug.commands import Debugger, Quit
from aarch64mte.errors import InputError

PROMPT = "(mte) "
MAX_LINE = 1 << 16              # a command line longer than this is not a command


def input_lines(stream, name: str = "standard input"):
    """Command lines from a binary stream, read one at a time (so a script may be endless, and
    its commands run as they come), each at most MAX_LINE bytes and UTF-8: anything else is an
    InputError naming the line, not a traceback or an unbounded read."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            raise InputError(f"line longer than {MAX_LINE:,} bytes", name, number)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"not UTF-8 text (byte {raw[e.start]:#04x})", name, number) from None


def _history_path() -> str:
    return os.path.join(os.path.expanduser("~"), ".aarch64mte_history")


def _run_line(debugger: Debugger, line: str) -> None:
    def interrupt(signum, frame):
        debugger.session.request_stop()
    try:
        previous = signal.signal(signal.SIGINT, interrupt)
    except ValueError:
        previous = None
    try:
        debugger.execute(line)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def repl(debugger: Debugger) -> int:
    """Read commands until `quit` or end of input; returns the exit status."""
    if not sys.stdin.isatty():
        return _plain(debugger)
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    try:
        history = FileHistory(_history_path())
    except OSError:
        history = InMemoryHistory()
    completer = WordCompleter(debugger.complete_words, sentence=False,
                              pattern=None, ignore_case=True)
    prompt = PromptSession(history=history, completer=completer, complete_while_typing=False)
    last = ""
    while True:
        try:
            line = prompt.prompt(PROMPT)
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        if not line.strip():
            line = last
        else:
            last = line
        try:
            _run_line(debugger, line)
        except Quit as q:
            return q.status or 0


def _plain(debugger: Debugger) -> int:
    for line in input_lines(sys.stdin.buffer):
        try:
            _run_line(debugger, line)
        except Quit as q:
            return q.status or 0
    return 0
