"""`aarch64mte disasm FILE [--base ADDR]` or `aarch64mte disasm --word 0xd9200820`

FILE is an AArch64 ELF (its executable segments), an assembly source (.s/.S, assembled
first), a raw binary (loaded at --base), or a hex instruction word.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from ..errors import InputError, read_input
from ..image import DEFAULT_BASE

_HEXWORD = re.compile(r"^(0x)?[0-9a-fA-F]{1,8}$")


def _int(text: str) -> int:
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a 64-bit address")
    return value


def _word(text: str) -> int:
    t = text.strip().replace("_", "")
    if not _HEXWORD.match(t):
        raise argparse.ArgumentTypeError(f"not a 32-bit hex word: {text!r}")
    return int(t, 16)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="*", metavar="FILE",
                   help="ELF, .s/.S source, raw binary, or hex instruction word(s)")
    p.add_argument("--base", type=_int, default=DEFAULT_BASE, metavar="ADDR",
                   help=f"load address of a raw binary (default {DEFAULT_BASE:#x})")
    p.add_argument("-w", "--word", type=_word, action="append", default=[], metavar="HEX",
                   help="disassemble this instruction word (repeatable)")
    p.add_argument("--all", action="store_true",
                   help="disassemble every segment, not only executable ones")


def main(args: argparse.Namespace) -> int:
    from ..disasm import decode_word, listing
    words = list(args.word)
    files = []
    for f in args.file:
        if not os.path.exists(f) and _HEXWORD.match(f.replace("_", "")):
            words.append(int(f.replace("_", ""), 16))
        else:
            files.append(f)
    if not words and not files:
        raise InputError("nothing to disassemble: give a FILE or --word HEX")
    for w in words:
        print(f"{w:08x}\t{decode_word(w)}")
    for path in files:
        image = _load(path, args.base)
        if len(files) > 1:
            print(f"\n{path}:")
        segs = [s for s in image.segments if args.all or "x" in s.flags] or image.segments[:1]
        for s in segs:
            data = s.data
            if s.name == ".text" and image.text_end and s.addr < image.text_end <= s.end and not args.all:
                data = data[:image.text_end - s.addr]
            print(f"\nDisassembly of {s.name or 'segment'} at {s.addr:#x}:\n")
            sys.stdout.write(listing(data, s.addr, image.symbols))
    return 0


def _load(path: str, base: int):
    from ..elf import parse_elf
    from ..image import Image
    data = read_input(path)                 # a regular file, bounded, or one InputError
    if data[:4] == b"\x7fELF":
        return parse_elf(data, path)
    if path.endswith((".s", ".S", ".asm")):
        from ..assembler import assemble_file
        return assemble_file(path, base=base)
    if not data:
        raise InputError("empty file", path)
    if base + len(data) > 1 << 64:
        raise InputError(f"{len(data):,} bytes from --base {base:#x} pass the end of the 64-bit "
                         f"address space", path)
    return Image.from_binary(data, base)
