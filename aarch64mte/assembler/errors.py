"""Errors while assembling, and the one place they become an InputError at a file and line.

Every statement is handled inside `at_line`, and so is the whole assembly (with the file and
no line) for what happens outside a statement. Besides the assembler's own errors, it turns the
host failures an input could still provoke (deep recursion, exhausted memory, an integer too
large for the host, an unreadable file) into one message at the statement, worded by
errors.describe as everywhere else: the limits in `limits` are meant to stop every runaway
input before that, and this is the backstop.
"""
from __future__ import annotations

from contextlib import contextmanager

from .. import isa
from ..errors import InputError, describe
from . import base as base_asm
from .expr import ExprError


class _Err(Exception):
    """Internal: an error at the statement being processed (file:line added by the caller)."""


_OWN_ERRORS = (_Err, ExprError, base_asm.BaseAsmError, isa.EncodeError, ValueError)


@contextmanager
def at_line(ln):
    """Report what a statement's handling raises as an InputError at `ln`'s file and line
    (`ln.line` None: the file as a whole)."""
    try:
        yield
    except InputError as e:
        e.message = one_line(e.message)
        raise
    except _OWN_ERRORS as e:
        raise InputError(one_line(str(e)), ln.file, ln.line) from None
    except (RecursionError, MemoryError, OverflowError, OSError, UnicodeError) as e:
        raise InputError(one_line(describe(e)), ln.file, ln.line) from None

def one_line(message: str) -> str:
    """The message with every character that is not printable (line and paragraph
    separators, control characters) written as an escape: source text quoted in a message
    must not break it into several lines."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)
