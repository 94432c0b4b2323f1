"""The error a statement handler raises; the statement loop adds the file and line."""
from __future__ import annotations


class _Err(Exception):
    """Internal: an error at the statement being processed (file:line added by the caller)."""
