"""`aarch64mte asm SRC -o OUT [--format bin|elf] [--base ADDR] [--backend builtin|gnu]`"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import InputError, check_input_file
from ..image import DEFAULT_BASE


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SRC", help="assembly source (.s or .S, GNU as syntax)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: SRC with .elf); format from its suffix")
    p.add_argument("--format", choices=("bin", "elf"),
                   help="output format (default: elf if OUT ends in .elf, else raw binary)")
    p.add_argument("--base", type=_int, default=DEFAULT_BASE, metavar="ADDR",
                   help=f"load address of .text (default {DEFAULT_BASE:#x})")
    p.add_argument("--backend", choices=("builtin", "gnu"), default="builtin",
                   help="builtin (Keystone + MTE table) or gnu (aarch64-linux-gnu-as and ld)")
    p.add_argument("-l", "--listing", action="store_true",
                   help="print a disassembly listing of .text")
    p.add_argument("-v", "--verbose", action="store_true", help="print what was written")


def main(args: argparse.Namespace) -> int:
    from ..assembler import assemble_file
    if args.base < 0 or args.base >= 1 << 48 or args.base % 4:
        raise InputError(f"--base {args.base:#x} must be a 4-byte aligned address below 2^48")
    check_input_file(args.source)
    image = assemble_file(args.source, backend=args.backend, base=args.base)
    out = args.output or os.path.splitext(args.source)[0] + ".elf"
    fmt = args.format or ("elf" if out.lower().endswith(".elf") else "bin")
    if os.path.abspath(out) == os.path.abspath(args.source):
        raise InputError("output would overwrite the source", out)
    if fmt == "elf":
        image.write_elf(out)
        size = os.path.getsize(out)
    else:
        try:
            base = image.write_binary(out)
        except OSError as e:
            raise InputError(f"cannot write: {e.strerror}", out) from None
        size = os.path.getsize(out)
        if args.verbose:
            print(f"raw binary loads at {base:#x}", file=sys.stderr)
    if args.verbose:
        print(f"wrote {out}: {fmt}, {size} bytes, entry {image.entry:#x}", file=sys.stderr)
    if args.listing:
        from ..disasm import listing
        text = image.segment(".text") or image.text()
        if text is not None:
            sys.stdout.write(listing(text.data[:image.text_end - text.addr], text.addr, image.symbols))
    return 0
