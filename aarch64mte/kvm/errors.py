"""KvmError: what an ioctl of the KVM model refuses, with the errno KVM returns and the rule.

Every refusal names the operation (as the KVM ioctl or kernel path it models), the rule that
refuses it and the errno, in one line, so a VMM developer can match it against the kernel. It is
an ``InputError``, so the command-line front ends report it as one line with exit status 2.
"""
from __future__ import annotations

import errno as _errno

from ..errors import InputError


class KvmError(InputError):
    """``op``: the ioctl or path (``KVM_ARM_MTE_COPY_TAGS``); ``errno_name``: ``'EINVAL'``...;
    ``.errno``: its number, as the ioctl would return it negated."""

    def __init__(self, op: str, errno_name: str, message: str) -> None:
        self.op = op
        self.errno_name = errno_name
        self.errno = getattr(_errno, errno_name)
        super().__init__(f"{op}: {message} [{errno_name}]")


class VmmTagCheckFault(Exception):
    """A tag-checked access by the VMM (through a PROT_MTE mapping, PSTATE.TCO = 0) whose
    pointer tag differs from a granule's allocation tag: the SIGSEGV (SEGV_MTESERR) the VMM
    thread would take. Nothing of the access is done (synchronous TCF)."""

    def __init__(self, address: int, logical_tag: int, allocation_tag: int, write: bool) -> None:
        self.address = address
        self.logical_tag = logical_tag
        self.allocation_tag = allocation_tag
        self.write = write
        super().__init__(f"SIGSEGV (SEGV_MTESERR): VMM {'write' if write else 'read'} at "
                         f"{address:#x}: pointer tag {logical_tag:#x}, allocation tag "
                         f"{allocation_tag:#x}")
