"""MMIO: a guest access to an IPA that no RAM memslot backs exits to the VMM (KVM_EXIT_MMIO),
decoded from the data abort's instruction syndrome as io_mem_abort does: ISV, SAS (size),
SSE (sign-extend), SRT (register), SF (64-bit register), WnR. Without ISV the access cannot be
emulated: KVM_EXIT_ARM_NISV.

A VMM device is a Python object with ``read(ipa, size) -> int`` and ``write(ipa, size,
value)``, registered on the VM for an IPA range; an access that no device claims returns from
``Vcpu.run`` with reason ``'mmio'``, and the VMM answers as it answers kvm_run->mmio.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

UART_BASE = 0x0900_0000


@dataclass
class MmioAccess:
    """kvm_run->mmio: ``data`` is what a write stored, or what the VMM sets for a read before
    the next run (0 unless it does)."""
    ipa: int
    size: int
    write: bool
    data: int
    register: int            # SRT (31: XZR/WZR)
    sign_extend: bool
    sixty_four: bool         # SF: the register is X (else W)
    pc: int
    completed: bool = False


def decode(esr: int, ipa: int, read_reg, pc: int) -> Optional[MmioAccess]:
    """The access a stage-2 data abort's ISS describes, or None when ISV = 0."""
    iss = esr & 0x1FFFFFF
    if not (iss >> 24) & 1:
        return None
    size = 1 << ((iss >> 22) & 3)
    srt = (iss >> 16) & 31
    write = bool((iss >> 6) & 1)
    data = 0
    if write and srt != 31:
        data = read_reg(f"x{srt}") & ((1 << (8 * size)) - 1)
    return MmioAccess(ipa, size, write, data, srt, bool((iss >> 21) & 1), bool((iss >> 15) & 1),
                      pc)


def load_value(access: MmioAccess, value: int) -> int:
    """The register value a completed read leaves (kvm_handle_mmio_return: sign extension to
    the register, W results zero-extended)."""
    bits = 8 * access.size
    value &= (1 << bits) - 1
    if access.sign_extend and value >> (bits - 1):
        value -= 1 << bits
    return value & ((1 << 64) - 1 if access.sixty_four else 0xFFFF_FFFF)


class Pl011:
    """The data register of QEMU virt's PL011 UART: bytes written go to the VM's console."""

    def __init__(self, out: List[str]) -> None:
        self.out = out

    def read(self, ipa: int, size: int) -> int:
        return 0

    def write(self, ipa: int, size: int, value: int) -> None:
        if ipa == UART_BASE:
            self.out.append(chr(value & 0xFF))
