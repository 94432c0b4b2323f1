"""The machine: the only package that talks to Unicorn."""
from .machine import Machine, RunResult
from .exceptions import ExceptionRecord, TagFault

__all__ = ["Machine", "RunResult", "ExceptionRecord", "TagFault"]
