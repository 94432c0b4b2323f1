"""What the tag checks and the native hooks need to know of the translation regimes, per EL.

For each EL: whether allocation-tag access is enabled (AllocationTagAccessIsEnabled), its TCF
(EffectiveTCF), TBI and TCMA per VA half (EffectiveTBI/EffectiveTCMA, from the regime's TCR in
the EL1&0 layout), and whether an MTE register access or DC G*VA at that EL can finish without
the trap checks. The native TLB fill and MTE trap read these fields from the shared core, the
Python paths from ``RegimeState``. Every change to the translation registers marks them stale
(``Mmu.invalidate``), which sends every fill and every MTE instruction to Python until
``refresh`` has run again with the registers as they are after the change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from ..semantics.pseudocode import (HCR_ATA, HCR_E2H, HCR_TDZ, HCR_TGE, HCR_TID5, SCTLR_DZE,
                                    AllocationTagAccessIsEnabled, EffectiveTCF, ELIsInHost)
from .sysregs import ENCODINGS


@dataclass(frozen=True)
class RegimeState:
    tag_access: Tuple[bool, ...]          # per EL
    tcf: Tuple[int, ...]                  # per EL
    tbi: Tuple[Tuple[int, int], ...]      # per EL, per VA bit 55
    tcma: Tuple[Tuple[int, int], ...]


def refresh(core, mmu, native: bool, watching: bool) -> RegimeState:
    el2 = mmu.el2
    hcr = mmu.hcr()
    cp = mmu.eng.cp_read
    sctlr1 = cp(*ENCODINGS["SCTLR_EL1"])
    sctlr2 = cp(*ENCODINGS["SCTLR_EL2"]) if el2 else 0
    tag_access, tcf, tbi, tcma = [], [], [], []
    for el in range(4):
        if el == 3 or (el == 2 and not el2):
            tag_access.append(False)
            tcf.append(0)
            tbi.append((0, 0))
            tcma.append((0, 0))
            continue
        tcr = mmu.regime(el).tcr
        tag_access.append(AllocationTagAccessIsEnabled(el, sctlr1, hcr, el2, sctlr2))
        tcf.append(EffectiveTCF(el, sctlr1, sctlr2, hcr, el2))
        tbi.append(((tcr >> 37) & 1, (tcr >> 38) & 1))
        tcma.append(((tcr >> 57) & 1, (tcr >> 58) & 1))
    for el in range(4):
        core.tag_access[el] = tag_access[el]
        core.tcf[el] = tcf[el]
        core.tbi[el][0], core.tbi[el][1] = tbi[el]
        core.tcma[el][0], core.tcma[el][1] = tcma[el]
    # MTE register accesses the native trap may finish: EL1 unless HCR_EL2.ATA = 0 traps them
    # (GMID_EL1: unless HCR_EL2.TID5); EL2 unless E2H redirects TFSR_EL1 to TFSR_EL2; EL0 never
    # (UNDEFINED there).
    core.sysreg_direct[0] = core.gmid_direct[0] = 0
    core.sysreg_direct[1] = 0 if (el2 and not hcr & HCR_ATA) else 1
    core.gmid_direct[1] = 0 if (el2 and hcr & HCR_TID5) else 1
    core.sysreg_direct[2] = 1 if (el2 and not hcr & HCR_E2H) else 0
    core.gmid_direct[2] = 1 if el2 else 0
    # DC GVA/GZVA without a trap (see execute._check_dc_zero_allowed)
    if ELIsInHost(0, hcr, el2):
        dc0 = bool(sctlr2 & SCTLR_DZE)
    else:
        dc0 = bool(sctlr1 & SCTLR_DZE) and not (el2 and hcr & HCR_TDZ)
        if dc0 and el2 and hcr & HCR_TGE and not sctlr1 & SCTLR_DZE:
            dc0 = False
    core.dc_direct[0] = 1 if dc0 else 0
    core.dc_direct[1] = 0 if (el2 and hcr & HCR_TDZ) else 1
    core.dc_direct[2] = 1 if el2 else 0
    core.sysreg_direct[3] = core.gmid_direct[3] = core.dc_direct[3] = 0
    fast = 1 if native and not watching else 0
    core.fast_traps = core.fast_fills = fast
    core.regime_valid = 1
    return RegimeState(tuple(tag_access), tuple(tcf), tuple(tbi), tuple(tcma))
