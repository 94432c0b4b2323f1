"""`aarch64mte gdbserver PROGRAM --port N [run options]`: serve the program to gdb-multiarch.

Connect with `gdb-multiarch PROGRAM -ex 'target remote :N'`. The stub serves MTE allocation tags
(`memory-tag` commands), stops with SIGSEGV on tag-check faults, and keeps listening after a
client disconnects; `kill` in GDB ends it. Exit status 2 for a usage error or a port in use.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from aarch64mte.errors import MteError

STATUS_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from aarch64mte.cli.debug import add_machine_options
    add_machine_options(parser)
    parser.add_argument("--port", type=int, default=1234,
                        help="TCP port to listen on (default 1234; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="log every packet to standard error")


def _exec_file(args, machine) -> str:
    """An ELF GDB can read symbols from: the program itself, or the assembled image written out."""
    path = os.path.abspath(args.program)
    if not path.endswith((".S", ".s")):
        return path
    image = getattr(machine, "image", None)
    if image is None:
        return path
    try:
        from aarch64mte.elf import write_elf
        fd, out = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".elf")
        os.close(fd)
        write_elf(image, out)
        return out
    except Exception:
        return path


def main(args: argparse.Namespace) -> int:
    from aarch64mte.cli.debug import build_machine
    from aarch64mte.debug.gdb.server import GdbServer, PortInUse
    from aarch64mte.debug.session import Session

    if not 0 <= args.port <= 65535:
        print(f"aarch64mte gdbserver: error: bad port {args.port}", file=sys.stderr)
        return STATUS_USAGE
    try:
        machine = build_machine(args)
    except MteError as exc:
        print(f"aarch64mte gdbserver: error: {exc}", file=sys.stderr)
        return STATUS_USAGE

    def log(text):
        print(f"gdbserver: {text}", file=sys.stderr, flush=True)

    exec_file = _exec_file(args, machine)
    session = Session(machine, max_insns=getattr(args, "max_insns", None) or 10_000_000)
    server = GdbServer(session, host=args.host, port=args.port, exec_file=exec_file, log=log,
                       verbose=args.verbose)
    try:
        port = server.bind()
    except PortInUse as exc:
        print(f"aarch64mte gdbserver: error: {exc.strerror}", file=sys.stderr)
        return STATUS_USAGE
    except OSError as exc:
        print(f"aarch64mte gdbserver: error: cannot listen on {args.host}:{args.port}: "
              f"{exc.strerror}", file=sys.stderr)
        return STATUS_USAGE
    log(f"listening on {args.host}:{port} for {args.program} (symbols: {exec_file})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.close()
        return 130
    finally:
        if exec_file != os.path.abspath(args.program):
            try:
                os.unlink(exec_file)
            except OSError:
                pass
    return 0


def _standalone(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="aarch64mte gdbserver",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
