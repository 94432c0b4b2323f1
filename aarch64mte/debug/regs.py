"""Registers as a debugger presents them, over the machine's `reg`/`set_reg`.

Two are composed from machine state: `cpsr` (NZCV, TCO, EL and SPSel in their PSTATE bit positions,
as GDB's AArch64 `cpsr` register shows them) and `tag_ctl` (the Linux prctl view of MTE that GDB's
`org.gnu.gdb.aarch64.mte` feature carries: bit 0 tagged addresses, bits 2:1 TCF sync/async, bits
18:3 the IRG include mask, i.e. the complement of GCR_EL1.Exclude).
"""
from __future__ import annotations

MASK64 = (1 << 64) - 1

PR_TAGGED_ADDR_ENABLE = 1 << 0
PR_MTE_TCF_SYNC = 1 << 1
PR_MTE_TCF_ASYNC = 1 << 2
PR_MTE_TAG_SHIFT = 3

SCTLR_TCF0_SHIFT = 38
SCTLR_TCF_SHIFT = 40


def _get(m, name: str, default: int = 0) -> int:
    try:
        return int(m.reg(name))
    except Exception:
        return default


def read(m, name: str) -> int:
    if name == "cpsr":
        el = _get(m, "el", 1)
        spsel = _get(m, "spsel", 1 if el else 0)
        return ((_get(m, "nzcv") & 0xF0000000) | (_get(m, "tco") & 1) << 25 | (el & 3) << 2
                | (spsel & 1))
    if name == "tag_ctl":
        sctlr = _get(m, "sctlr_el1")
        shift = SCTLR_TCF0_SHIFT if _get(m, "el", 1) == 0 else SCTLR_TCF_SHIFT
        tcf = (sctlr >> shift) & 3
        value = PR_TAGGED_ADDR_ENABLE
        if tcf in (1, 3):
            value |= PR_MTE_TCF_SYNC
        if tcf in (2, 3):
            value |= PR_MTE_TCF_ASYNC
        include = ~_get(m, "gcr_el1") & 0xFFFF
        return value | include << PR_MTE_TAG_SHIFT
    return int(m.reg(name))


# Registers narrower than 64 bits, and those that hold only a few values: (limit, what).
_NARROW = {"nzcv": (None, "only bits 31:28 (N, Z, C, V)"), "el": (1, "0 or 1 (EL0 or EL1)"),
           "tco": (1, "0 or 1"), "spsel": (1, "0 or 1"), "fpsr": ((1 << 32) - 1, "32 bits"),
           "fpcr": ((1 << 32) - 1, "32 bits"), "cpsr": ((1 << 32) - 1, "32 bits")}


def width(name: str) -> int:
    """Bits a register holds (128 for V/Q registers, 32 for W, else 64)."""
    n = name.lower()
    if n[:1] in ("v", "q") and n[1:].isdigit():
        return 128
    if n[:1] == "w" and n[1:].isdigit():
        return 32
    return 64


def check_value(name: str, value: int, has_el2: bool = False) -> str | None:
    """Why `value` cannot be written to register `name`, or None. `value` is what the user
    wrote: an exact integer (negative ones stand for their two's complement in the register's
    width) or a 64-bit two's complement already. Out-of-range values are refused, never cut."""
    n = name.lower()
    if n == "el" and has_el2:
        return None if 0 <= value <= 2 else f"el holds 0, 1 or 2 (EL0..EL2), not {_shown(value)}"
    if n in _NARROW:
        limit, what = _NARROW[n]
        ok = value & ~0xF000_0000 == 0 if limit is None else 0 <= value <= limit
        return None if ok else f"{n} holds {what}, not {_shown(value)}"
    bits = width(n)
    if bits == 32 and (1 << 64) - (1 << 31) <= value < 1 << 64:
        return None                     # a negative 32-bit value as a 64-bit two's complement
    if -(1 << (bits - 1)) <= value < 1 << bits:
        return None
    return f"{_shown(value)} does not fit in {n} ({bits} bits)"


def _shown(value: int) -> str:
    return f"{value:#x}" if value >= 0 else str(value)


def write(m, name: str, value: int) -> None:
    """Write a register by name; `value` has passed check_value (negative: two's complement).
    A W register write zero-extends into its X register, as the architecture's does."""
    n = name.lower()
    if n[:1] == "w" and n[1:].isdigit():
        m.set_reg("x" + n[1:], value & 0xFFFF_FFFF)
        return
    value &= (1 << width(n)) - 1
    if name == "cpsr":
        m.set_reg("nzcv", value & 0xF0000000)
        try:
            m.set_reg("tco", (value >> 25) & 1)
        except Exception:
            pass
        return
    if name == "tag_ctl":
        sctlr = _get(m, "sctlr_el1")
        shift = SCTLR_TCF0_SHIFT if _get(m, "el", 1) == 0 else SCTLR_TCF_SHIFT
        tcf = {0: 0, PR_MTE_TCF_SYNC: 1, PR_MTE_TCF_ASYNC: 2,
               PR_MTE_TCF_SYNC | PR_MTE_TCF_ASYNC: 3}[value & 6]
        m.set_reg("sctlr_el1", (sctlr & ~(3 << shift)) | tcf << shift)
        gcr = _get(m, "gcr_el1")
        exclude = ~(value >> PR_MTE_TAG_SHIFT) & 0xFFFF
        m.set_reg("gcr_el1", (gcr & ~0xFFFF) | exclude)
        return
    m.set_reg(name, value & ((1 << 128) - 1))
