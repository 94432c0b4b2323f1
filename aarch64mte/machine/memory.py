"""The board's physical memory map and the tag aliases of RAM.

RAM is one anonymous host mapping, mapped into the engine once at its physical address (no
hooks: the fast path) and 16 more times at ``alias(pa, tag)``: the same bytes, seen through an
address whose bits 43:40 carry the pointer's logical tag and bit 44 marks "check me". Memory
hooks cover only the alias ranges, so an access the translation sends to the plain address costs
nothing extra, and one it sends to an alias arrives at the tag-check hook with its logical tag.
"""
from __future__ import annotations

import ctypes
import mmap
import struct

from unicorn import UC_PROT_ALL

RAM_BASE = 0x4000_0000
RAM_SIZE_DEFAULT = 128 << 20          # QEMU virt's default -m 128M
UART_BASE = 0x0900_0000
UART_SIZE = 0x1000

ALIAS_SHIFT = 40
ALIAS_FLAG = 1 << 44
PAGE_BITS = 10                        # Unicorn's target page (1 KiB) for ARM: TLB granularity
PAGE = 1 << PAGE_BITS


def alias(pa: int, tag: int) -> int:
    """The engine address that reaches ``pa`` and tells the hook the logical tag."""
    return pa | ALIAS_FLAG | (tag << ALIAS_SHIFT)


HOST_BASE = 0x1_0000_0000             # host-only memory: never mapped into the engine
HOST_SIZE = 1 << 20


class HostMemory:
    """Physical memory only the host (an EL2 played by Python) reaches: the stage-2 tables
    live here, where no guest access can land."""

    def __init__(self, base: int = HOST_BASE, size: int = HOST_SIZE) -> None:
        self.base = base
        self.size = size
        self.buf = bytearray(size)

    def contains(self, pa: int, n: int = 1) -> bool:
        return self.base <= pa and pa + n <= self.base + self.size

    def read_descriptor(self, pa: int):
        if pa & 7 or not self.contains(pa, 8):
            return None
        return struct.unpack_from("<Q", self.buf, pa - self.base)[0]

    def write(self, pa: int, data: bytes) -> None:
        o = pa - self.base
        self.buf[o:o + len(data)] = data


class Ram:
    """Guest RAM: host-backed bytes plus direct (engine-free) accessors for the walker."""

    def __init__(self, engine, base: int = RAM_BASE, size: int = RAM_SIZE_DEFAULT) -> None:
        self.base = base
        self.size = size
        self.end = base + size
        self.buf = mmap.mmap(-1, size)
        self._cbuf = ctypes.c_char.from_buffer(self.buf)
        ptr = self.host_ptr = ctypes.addressof(self._cbuf)
        engine.uc.mem_map_ptr(base, size, UC_PROT_ALL, ptr)
        for tag in range(16):
            engine.uc.mem_map_ptr(alias(base, tag), size, UC_PROT_ALL, ptr)
        self.alias_begin = alias(base, 0)
        self.alias_end = alias(base, 15) + size - 1

    def contains(self, pa: int, n: int = 1) -> bool:
        return self.base <= pa and pa + n <= self.end

    def read(self, pa: int, n: int) -> bytes:
        o = pa - self.base
        return self.buf[o:o + n]

    def write(self, pa: int, data: bytes) -> None:
        o = pa - self.base
        self.buf[o:o + len(data)] = data

    def read_descriptor(self, pa: int):
        """A translation table entry at ``pa``, or None where there is no RAM (the walk then
        takes a synchronous external abort)."""
        if pa & 7 or not self.base <= pa <= self.end - 8:
            return None
        return struct.unpack_from("<Q", self.buf, pa - self.base)[0]
