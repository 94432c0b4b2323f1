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


def write(m, name: str, value: int) -> None:
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
