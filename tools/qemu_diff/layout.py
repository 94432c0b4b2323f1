"""The machine layout the harness sets up, and the register values a test carries.

These numbers must agree with harness/harness.c (AREA, ALIAS, the desc structure and the
harness's own SCTLR/TCR) and harness/link.ld.
"""
from __future__ import annotations

AREA = 0x4060_0000            # test area: two 4 KiB pages, Normal Tagged (MAIR attr 0xF0)
AREA_SIZE = 0x2000
PAGE = 0x1000
ALIAS = 0x4000_0000           # AREA + ALIAS maps the same RAM Untagged (MAIR attr 0xFF)
GRANULES = AREA_SIZE // 16
END_SVC = 0x7E57              # `svc #0x7e57` ends a test body
MAX_RECORDS = 16

# SCTLR_EL1: RES1 bits of QEMU's reset value, M, C, I, DZE (EL0 DC ZVA/GVA/GZVA), UCT.
SCTLR_BASE = 0x30D0_0800 | 1 | (1 << 2) | (1 << 12) | (1 << 14) | (1 << 15)
SCTLR_A = 1 << 1
SCTLR_ATA0, SCTLR_ATA = 1 << 42, 1 << 43
TCF_SHIFT, TCF0_SHIFT = 40, 38

# TCR_EL1: T0SZ = 25 (walks start at level 1), 4 KiB granule, WB, inner shareable, EPD1,
# IPS = 40 bits; TBI0 and TCMA0 per test.
TCR_BASE = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (2 << 32)
TCR_TBI0, TCR_TCMA0 = 1 << 37, 1 << 57

TCF_NAMES = {0: "none", 1: "sync", 2: "async", 3: "asymm"}

# SPSR for entering a body: EL0t (0b0000) or EL1t (0b0100), DAIF masked.
SPSR_DAIF = 0xF << 6
SPSR_TCO = 1 << 25


def sctlr(tcf: int, tcf0: int, ata: int, ata0: int, align: int) -> int:
    return (SCTLR_BASE | (tcf << TCF_SHIFT) | (tcf0 << TCF0_SHIFT) | (SCTLR_ATA if ata else 0)
            | (SCTLR_ATA0 if ata0 else 0) | (SCTLR_A if align else 0))


def tcr(tbi0: int, tcma0: int) -> int:
    return TCR_BASE | (TCR_TBI0 if tbi0 else 0) | (TCR_TCMA0 if tcma0 else 0)


def spsr(el: int, nzcv: int, tco: int) -> int:
    return (0b0100 if el else 0) | SPSR_DAIF | (nzcv << 28) | (SPSR_TCO if tco else 0)


def area_words(seed: int) -> list[int]:
    """The area's initial 64-bit words before pokes: the harness's xorshift64 stream."""
    out, x = [], seed
    m = (1 << 64) - 1
    for _ in range(AREA_SIZE // 8):
        x ^= (x << 13) & m
        x ^= x >> 7
        x ^= (x << 17) & m
        out.append(x)
    return out
