"""`aarch64mte gdbserver PROGRAM --port N [run options]`: serve the program to gdb-multiarch.

Connect with `gdb-multiarch PROGRAM -ex 'target remote :N'`. The stub serves MTE allocation tags
(`memory-tag` commands), stops with SIGSEGV on tag-check faults, and keeps listening after a
client disconnects; `kill` in GDB ends it. Exit status 2 for a usage error or a port in use.

For an assembly source the stub writes the assembled image to a temporary ELF file GDB reads
symbols from; it is removed however the stub ends: normally, by `kill`, Ctrl-C, SIGTERM or SIGHUP.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from contextlib import contextmanager

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


@contextmanager
def _exec_file(args, machine):
    """An ELF GDB can read symbols from: the program itself, or the assembled image written to
    a temporary file that is removed when the block ends (however it ends)."""
    path = os.path.abspath(args.program)
    image = getattr(machine, "image", None)
    if not path.endswith((".S", ".s")) or image is None:
        yield path
        return
    from aarch64mte.elf import write_elf
    out = None
    try:
        fd, out = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".elf")
        os.close(fd)
        write_elf(image, out)
        symbols = out
    except (OSError, MteError) as exc:
        print(f"aarch64mte gdbserver: note: no ELF file for GDB's symbols ({exc})", file=sys.stderr)
        symbols = path
    try:
        yield symbols
    finally:
        if out is not None:
            try:
                os.unlink(out)
            except OSError:
                pass


class _Terminated(BaseException):
    """SIGTERM or SIGHUP: end like Ctrl-C, through the clean-up path (a BaseException, so that
    no `except Exception` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise _Terminated(signum)


@contextmanager
def _terminate_cleanly():
    """SIGTERM and SIGHUP raise _Terminated in the main thread, so `finally` blocks run."""
    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            try:
                previous[sig] = signal.signal(sig, _raise_terminated)
            except ValueError:              # not the main thread
                pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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

    with _terminate_cleanly(), _exec_file(args, machine) as exec_file:
        session = Session(machine, max_insns=getattr(args, "max_insns", None) or 10_000_000)
        server = GdbServer(session, host=args.host, port=args.port, exec_file=exec_file,
                           log=log, verbose=args.verbose)
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
            return 130
        except _Terminated as t:
            log("terminated")
            return 128 + t.signum
        finally:
            server.close()
    return 0


def _standalone(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="aarch64mte gdbserver",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
