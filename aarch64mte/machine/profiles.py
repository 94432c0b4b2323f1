"""Reset states.

``snippet`` (assembly sources): EL1 (or EL0 with an emulator-provided EL1), the MMU on with an
identity map of RAM as Normal Tagged (MAIR attribute 0xF0) built by the machine in the top
64 KiB of RAM, the UART mapped as Device, TBI0 and TBI1 set, SCTLR_EL1.ATA = ATA0 = 1,
TCF = TCF0 per the ``tcf`` option, GCR_EL1 = 0, a fixed RGSR_EL1 seed, a stack, LR = the end of
.text (so a final ``ret`` ends the run) and no guest vectors.

``virt`` (ELF programs): the reset state of QEMU's ``virt`` board CPU entering a ``-kernel`` ELF
at EL1: MMU off, SCTLR_EL1 = 0x30d00800, PSTATE = EL1h with DAIF masked; the program sets up
everything else.
"""
from __future__ import annotations

import struct

from .memory import UART_BASE

TCF_CODES = {"none": 0, "sync": 1, "async": 2, "asymm": 3, "asym": 3, "asymmetric": 3}

SCTLR_RESET = 0x30D00800
SCTLR_M, SCTLR_C, SCTLR_I = 1 << 0, 1 << 2, 1 << 12
SCTLR_ATA0, SCTLR_ATA = 1 << 42, 1 << 43

# MAIR_EL1: attr0 Normal Tagged, attr1 Device-nGnRnE, attr2 Normal (untagged) write-back
SNIPPET_MAIR = 0xF0 | (0x00 << 8) | (0xFF << 16)
# TCR_EL1: T0SZ = T1SZ = 25 (39-bit VA, walks start at level 1), 4 KiB granules, inner/outer
# write-back, inner shareable, EPD1 (no TTBR1 walks), IPS = 40 bits, TBI0, TBI1.
SNIPPET_TCR = (25 | (1 << 8) | (1 << 10) | (3 << 12) | (25 << 16) | (1 << 23) | (2 << 30)
               | (2 << 32) | (1 << 37) | (1 << 38))
TABLES_SIZE = 0x10000            # page tables live in the top 64 KiB of RAM
STACK_GAP = 0x1000
SNIPPET_SEED = 0x1234

AF = 1 << 10
SH_INNER = 3 << 8
AP_EL0_RW = 1 << 6


def snippet_tables(ram_base: int, ram_size: int, el0: bool):
    """(table PA, bytes) of the level-1 table: 1 GiB blocks, identity. Block 0 (UART, the
    rest of the low GiB) is Device; the blocks covering RAM are Normal Tagged."""
    table_pa = ram_base + ram_size - TABLES_SIZE
    entries = [0] * 512
    ap = AP_EL0_RW if el0 else 0
    entries[UART_BASE >> 30] = (UART_BASE & ~((1 << 30) - 1)) | AF | ap | (1 << 2) | 1 \
        | (1 << 54) | (1 << 53)
    for gib in range(ram_base >> 30, (ram_base + ram_size + (1 << 30) - 1) >> 30):
        entries[gib] = (gib << 30) | AF | SH_INNER | ap | (0 << 2) | 1
    return table_pa, struct.pack("<512Q", *entries)


# SCTLR_EL2 as QEMU resets it for an EL2 that does not run E2H (its RES1 bits), and HCR_EL2
SCTLR_EL2_RESET = 0x30C50830
HCR_EL2_RESET = 0
# TCR_EL2 (E2H = 0 layout) for the snippet profile booting at EL2: T0SZ = 25, 4 KiB granule,
# inner/outer write-back, inner shareable, PS = 40 bits (18:16 = 2), TBI (20)
SNIPPET_TCR_EL2 = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (2 << 16) | (1 << 20) | (1 << 31) \
    | (1 << 23)


def snippet_sctlr_el2(tcf: int) -> int:
    """SCTLR_EL2 (E2H = 0) for the snippet profile: MMU, caches, ATA, TCF."""
    return SCTLR_EL2_RESET | SCTLR_M | SCTLR_C | SCTLR_I | SCTLR_ATA | (tcf << 40)


def snippet_sctlr(tcf: int) -> int:
    return (SCTLR_RESET | SCTLR_M | SCTLR_C | SCTLR_I | SCTLR_ATA | SCTLR_ATA0
            | (tcf << 40) | (tcf << 38))
