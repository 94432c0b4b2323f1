"""Errors a user can cause: each names where the problem is and what it is, never a traceback."""
from __future__ import annotations


class MteError(Exception):
    """Base of every error the command line reports as a message with exit status 2."""


class InputError(MteError):
    """Bad input: a source line, a file, an option. `file` and `line` locate it when known."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        return f"{where}{self.message}"
