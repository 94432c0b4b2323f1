"""`aarch64mte` console script: argparse subcommands, each in its own module
`aarch64mte/cli/<name>.py` exposing `add_arguments(parser)` and `main(args) -> int`.

Only the chosen command's module is imported. Errors the user can cause (errors.MteError)
are printed as `aarch64mte: <message>` with exit status 2 and no traceback; argparse usage
errors also exit with 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import MteError

PROG = "aarch64mte"
COMMANDS: dict[str, str] = {
    "asm": "assemble GNU-as source (with MTE) to an ELF or raw binary",
    "disasm": "disassemble an ELF, a raw binary or instruction words",
    "run": "run an assembly source or AArch64 ELF and report how it ended",
    "debug": "step-debug a program (REPL with tag views)",
    "gdbserver": "serve a program to GDB over the remote protocol (with MTE tags)",
    "bench": "compare LDG-loop and LDGM/STGM tag-copy cost",
}
EXIT_USAGE = 2


class _CommandMissing(Exception):
    pass


def load_command(name: str):
    """The module implementing a subcommand; _CommandMissing if it is not installed."""
    modname = f"{__package__}.{name}"
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name in (modname, __package__ + "." + name):
            raise _CommandMissing(name) from None
        raise
    if not hasattr(mod, "add_arguments") or not hasattr(mod, "main"):
        raise _CommandMissing(name)
    return mod


def build_parser(selected: str | None = None) -> tuple[argparse.ArgumentParser, object]:
    parser = argparse.ArgumentParser(
        prog=PROG, description="AArch64 emulator with the Memory Tagging Extension's exact "
                               "architectural behaviour")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    module = None
    for name, help_text in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = load_command(name)
            module.add_arguments(sp)
    return parser, module


def _selected(argv: list[str]) -> str | None:
    for a in argv:
        if a in COMMANDS:
            return a
        if not a.startswith("-"):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _selected(argv)
    try:
        parser, module = build_parser(name)
    except _CommandMissing:
        print(f"{PROG}: the '{name}' command is not available in this installation "
              f"(module {__package__}.{name} is missing)", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    try:
        return int(module.main(args) or 0)
    except MteError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None  # type: ignore[assignment]
        except Exception:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
