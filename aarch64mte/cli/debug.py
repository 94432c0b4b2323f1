"""`aarch64mte debug PROGRAM [run options]`: step-debug a program at the instruction level.

Interactive by default (history, completion; `help` lists the commands). `-x FILE` runs the
commands in FILE first; `--batch` runs them (or standard input) with each command echoed, then
exits: status 0 if every command worked, 1 if one failed, N for `quit N`, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import sys

from aarch64mte.errors import MteError, read_text

STATUS_USAGE = 2


def add_machine_options(parser: argparse.ArgumentParser) -> None:
    """PROGRAM and the `run` options that build the machine (profile, EL, TCF, GMID BS, entry,
    --set, limit, seed)."""
    from aarch64mte.cli import run
    run.add_machine_arguments(parser)


def build_machine(args: argparse.Namespace):
    """A loaded machine with the run options applied; raises MteError for bad input."""
    from aarch64mte.cli import run
    return run.machine_from_args(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_machine_options(parser)
    parser.add_argument("-x", dest="scripts", action="append", default=[], metavar="FILE",
                        help="run the debugger commands in FILE first (repeatable)")
    parser.add_argument("--batch", action="store_true",
                        help="run the -x files (or standard input) and exit, echoing each "
                             "command; exit status 1 if any command failed")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the output (default: when writing to a terminal)")


def _console(args):
    from rich.console import Console
    force = {"always": True, "never": False}.get(args.color)
    if force is False or (force is None and not sys.stdout.isatty()):
        return Console(highlight=False, no_color=True, force_terminal=False, width=200,
                       emoji=False)
    return Console(highlight=False, force_terminal=force, emoji=False)


def main(args: argparse.Namespace) -> int:
    from aarch64mte.debug.commands import Debugger, Quit, run_batch
    from aarch64mte.debug.session import Session

    try:
        machine = build_machine(args)
    except MteError as exc:
        print(f"aarch64mte debug: error: {exc}", file=sys.stderr)
        return STATUS_USAGE
    session = Session(machine, max_insns=getattr(args, "max_insns", None) or 10_000_000)
    debugger = Debugger(session, console=_console(args))
    from aarch64mte.debug.repl import input_lines, repl
    lines = []
    try:
        for path in args.scripts:
            lines.extend(read_text(path).splitlines(keepends=True))
        if args.batch:
            if not args.scripts:
                lines = input_lines(sys.stdin.buffer)   # run as they are read
            status = run_batch(debugger, lines)
            sys.stdout.flush()
            return status
    except MteError as exc:
        print(f"aarch64mte debug: error: {exc}", file=sys.stderr)
        return STATUS_USAGE
    if lines:
        for line in lines:
            try:
                debugger.execute(line)
            except Quit as q:
                return q.status or 0
    debugger.show_pc_line()
    try:
        return repl(debugger)
    except MteError as exc:
        print(f"aarch64mte debug: error: {exc}", file=sys.stderr)
        return STATUS_USAGE


def _standalone(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="aarch64mte debug", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
