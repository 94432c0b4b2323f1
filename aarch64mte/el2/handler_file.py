"""A VM-exit handler from a Python file (``run --el2-handler FILE.py``): the file defines
``make_handler(shim)``, which returns the handler. The file is the user's input: whatever goes
wrong loading it -- a syntax error, an exception at import or in make_handler, no make_handler,
a result that cannot be called -- is an InputError naming the file (and the line), never a
traceback.
"""
from __future__ import annotations

import importlib.util
import traceback

from ..errors import InputError, check_input_file

MODULE_NAME = "aarch64mte_el2_handler"


def failure_line(exc: BaseException, path: str):
    """The line of ``path`` where ``exc`` was raised (innermost), or None."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == path:
            line = frame.lineno
    return line


def describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load(shim, path) -> None:
    """Give ``shim`` the handler FILE's make_handler(shim) returns (InputError otherwise)."""
    path = str(path)
    check_input_file(path)
    try:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
        if spec is None or spec.loader is None:
            raise InputError("not a Python file", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        make = getattr(module, "make_handler", None)
        if not callable(make):
            raise InputError("defines no make_handler(shim)", path)
        handler = make(shim)
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot load the EL2 handler: {describe(e)}", path,
                         line=failure_line(e, path)) from None
    if not callable(handler):
        raise InputError(f"make_handler(shim) returned {type(handler).__name__}, not a "
                         f"callable VM-exit handler", path)
    shim.handler = handler
    shim.handler_source = path
