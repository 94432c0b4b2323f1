"""Errors while assembling a statement, and turning them into an InputError at its line."""
from __future__ import annotations

from contextlib import contextmanager

from .. import isa
from ..errors import InputError
from . import base as base_asm
from .expr import ExprError


class _Err(Exception):
    """Internal: an error at the statement being processed (file:line added by the caller)."""


@contextmanager
def at_line(ln):
    """Report what a statement's handling raises as an InputError at `ln`'s file and line."""
    try:
        yield
    except InputError:
        raise
    except (_Err, ExprError, base_asm.BaseAsmError, isa.EncodeError, ValueError) as e:
        raise InputError(str(e), ln.file, ln.line) from None
