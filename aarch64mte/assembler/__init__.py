"""GNU-as-syntax AArch64 assembler: Keystone for base A64, the isa table for MTE.

    image = assemble(text, filename="<string>", base=0x4008_0000)   # raises errors.InputError
    image = assemble_file(path, backend="builtin" | "gnu", base=0x4008_0000)
"""
from __future__ import annotations

from ..errors import InputError
from ..image import DEFAULT_BASE, Image

__all__ = ["assemble", "assemble_file", "BACKENDS"]
BACKENDS = ("builtin", "gnu")


def assemble(text: str, filename: str = "<string>", base: int = DEFAULT_BASE,
             backend: str = "builtin") -> Image:
    """Assemble GNU-as source text into an Image laid out at `base`."""
    if backend == "gnu":
        from .gnu import assemble_gnu
        return assemble_gnu(text, filename, base)
    if backend != "builtin":
        raise InputError(f"unknown assembler backend '{backend}' (choose from {', '.join(BACKENDS)})")
    from .driver import Assembler
    from .errors import at_line
    from .source import Line
    with at_line(Line(filename, None, "")):
        return Assembler(filename, base).run(text)


def assemble_file(path: str, backend: str = "builtin", base: int = DEFAULT_BASE) -> Image:
    """Assemble a .s/.S file (no C preprocessor)."""
    from .source import SourceError, read_source
    try:
        text = read_source(path)
    except SourceError as e:
        raise InputError(str(e), path) from None
    return assemble(text, path, base, backend)
