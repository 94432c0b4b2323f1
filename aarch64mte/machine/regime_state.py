"""What the native hooks need to know of the translation regime, per EL, kept in the shared core.

The native TLB fill decides plain mapping or tag alias (TBI, TCMA, tag access, TCF, PSTATE.TCO)
and the native MTE trap decides whether an instruction may finish without Python (tag access,
and whether an MTE register access or DC G*VA would trap). Both read these fields; every change
to the translation registers marks them stale (``Mmu.invalidate``), which sends every fill and
every MTE instruction to Python until ``refresh`` has run again with the registers as they are
after the change.
"""
from __future__ import annotations

from .translation import Regime


def refresh(core, r: Regime, native: bool, watching: bool) -> tuple:
    """Fill the core's per-EL fields; returns AllocationTagAccessIsEnabled per EL (for the
    Python paths, which read it from a tuple rather than the core)."""
    sctlr, tcr = r.sctlr, r.tcr
    # EL1&0 regime: SCTLR_EL1 ATA0 (42) / ATA (43), TCF0 (39:38) / TCF (41:40);
    # TCR_EL1 TBI0 (37) / TBI1 (38), TCMA0 (57) / TCMA1 (58)
    core.tag_access[0] = (sctlr >> 42) & 1
    core.tag_access[1] = (sctlr >> 43) & 1
    core.tcf[0] = (sctlr >> 38) & 3
    core.tcf[1] = (sctlr >> 40) & 3
    for el in (0, 1):
        core.tbi[el][0] = (tcr >> 37) & 1
        core.tbi[el][1] = (tcr >> 38) & 1
        core.tcma[el][0] = (tcr >> 57) & 1
        core.tcma[el][1] = (tcr >> 58) & 1
    # no EL2: EL1 accesses to the MTE registers never trap; EL0 ones are UNDEFINED
    core.sysreg_direct[1] = core.gmid_direct[1] = core.dc_direct[1] = 1
    core.sysreg_direct[0] = core.gmid_direct[0] = 0
    core.dc_direct[0] = (sctlr >> 14) & 1                   # SCTLR_EL1.DZE
    for el in (2, 3):
        core.tag_access[el] = core.tcf[el] = 0
        core.sysreg_direct[el] = core.gmid_direct[el] = core.dc_direct[el] = 0
        core.tbi[el][0] = core.tbi[el][1] = core.tcma[el][0] = core.tcma[el][1] = 0
    fast = 1 if native and not watching else 0
    core.fast_traps = core.fast_fills = fast
    core.regime_valid = 1
    return tuple(bool(core.tag_access[el]) for el in range(4))
