"""The EL2 shim: Python plays the hypervisor for a guest that runs at EL1/EL0.

The machine has EL2 (HCR_EL2, stage 2 and every trap act as the architecture says) but runs no
code there: every exception the architecture takes to EL2 becomes a ``VmExit`` handed to a
Python handler, with the syndrome EL2 would have seen (ESR_EL2, FAR_EL2, HPFAR_EL2's IPA). The
handler answers with what a hypervisor does next:

- ``Resume()``: return to the guest at the preferred return address (HVC: after it; an abort or
  a trap: the instruction again, e.g. after mapping the page); ``Resume(skip=True)`` resumes
  after the instruction instead (an emulated MMIO access or register);
- ``Inject(esr, far=None)``: take a synchronous exception to the guest's EL1 with that syndrome
  (as KVM injects one);
- ``Stop()``: end the run (reason ``vm-exit``).

The default handler stops and reports. Stage 2 is a ``Stage2Map`` written as real descriptors
into host memory outside the guest's reach (``Machine.host_memory``); ``map``/``unmap`` change it
while the guest runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from ..semantics import systraps
from ..semantics.syndrome import EC_DABT_LOWER, EC_HVC64, EC_IABT_LOWER, EC_SMC64, EC_SYSREG
from . import hcr as hcr_fields
from .stage2map import VTCR, Stage2Map, TableWriter

REASONS = {EC_DABT_LOWER: "stage2-abort", EC_IABT_LOWER: "stage2-abort",
           EC_SYSREG: "sysreg-trap", EC_HVC64: "hvc", systraps.EC_WFX: "wfi",
           EC_SMC64: "smc"}
DEFAULT_HCR = {"RW": 1, "VM": 1, "ATA": 1}


@dataclass
class VmExit:
    reason: str              # stage2-abort | sysreg-trap | hvc | wfi | smc | exception
    esr_el2: int
    far_el2: Optional[int]
    ipa: Optional[int]       # stage-2 aborts: the faulting IPA (what HPFAR_EL2 holds)
    pc: int                  # the guest instruction that exited
    preferred_return: int    # where Resume() continues
    register: Optional[str] = None   # sysreg-trap: the register (or op0_op1_Cn_Cm_op2)
    write: Optional[bool] = None     # sysreg-trap: MSR; stage2-abort: WnR
    insn: int = 0            # the instruction word
    index: int = 0           # 0-based number of the exit in this run

    @property
    def ec(self) -> int:
        return (self.esr_el2 >> 26) & 0x3F

    @property
    def iss(self) -> int:
        return self.esr_el2 & 0x1FFFFFF

    def as_dict(self) -> dict:
        d = {"reason": self.reason, "esr_el2": self.esr_el2, "far_el2": self.far_el2,
             "ipa": self.ipa, "pc": self.pc}
        if self.register is not None:
            d["register"] = self.register
        if self.write is not None:
            d["write"] = self.write
        return d


@dataclass(frozen=True)
class Resume:
    skip: bool = False


@dataclass(frozen=True)
class Inject:
    esr: int
    far: Optional[int] = None


@dataclass(frozen=True)
class Stop:
    reason: str = "vm-exit"


def stop_handler(vm_exit: VmExit):
    """The default: stop and report."""
    return Stop()


@dataclass
class ShimConfig:
    hcr: Dict[str, int] = field(default_factory=dict)   # fields over DEFAULT_HCR
    stage2: Optional[object] = None                      # Stage2Map, a TOML path, or mappings
    handler: Optional[Callable] = None


class Shim:
    """Attached to a Machine built with ``el2="shim"`` (the machine makes one)."""

    def __init__(self, machine, hcr: Optional[Dict[str, int]] = None, stage2=None,
                 handler: Optional[Callable] = None) -> None:
        self.m = machine
        self.handler = handler or stop_handler
        self.exits: List[VmExit] = []
        fields = dict(DEFAULT_HCR)
        fields.update({k.upper(): v for k, v in (hcr or {}).items()})
        self.hcr_value = hcr_fields.with_fields(0, fields)
        host = machine.host_memory
        self.writer = TableWriter(host.base, host.size, host.write)
        if stage2 is None:
            ram = machine.ram
            stage2 = Stage2Map([(dict(ipa=ram.base, pa=ram.base, size=ram.size))],
                               pa_ok=self.pa_ok, source="<identity map of RAM>")
        elif isinstance(stage2, str):
            stage2 = Stage2Map.from_toml(stage2, pa_ok=self.pa_ok)
        elif not isinstance(stage2, Stage2Map):
            stage2 = Stage2Map(stage2, pa_ok=self.pa_ok)
        self.stage2 = stage2
        machine.exc.to_el2 = self._exit

    def pa_ok(self, pa: int, size: int, attr: str) -> bool:
        """A stage-2 mapping must land on RAM (Normal attributes), or RAM or the UART
        (device)."""
        m = self.m
        if m.ram.contains(pa, size):
            return True
        from ..machine.memory import UART_BASE, UART_SIZE
        return attr == "device" and UART_BASE <= pa and pa + size <= UART_BASE + UART_SIZE

    # --- programming EL2 --------------------------------------------------------------------
    def install(self) -> None:
        """HCR_EL2, the stage-2 tables, VTTBR_EL2 and VTCR_EL2 (after a load or a reset)."""
        m = self.m
        m.set_sysreg("HCR_EL2", self.hcr_value)
        self._write_tables()

    def _write_tables(self) -> None:
        m = self.m
        self.writer.build(self.stage2, bool(self.hcr_value >> 46 & 1))
        m.set_sysreg("VTTBR_EL2", self.writer.vttbr)
        m.set_sysreg("VTCR_EL2", VTCR)
        m.mmu.invalidate()                      # what TLBI VMALLS12E1 does

    def set_hcr(self, **fields: int) -> None:
        self.hcr_value = hcr_fields.with_fields(self.hcr_value, fields)
        self.m.set_sysreg("HCR_EL2", self.hcr_value)
        self._write_tables()                    # MemAttr encodings follow FWB

    def map(self, ipa: int, pa: int, size: int, attr: str = "normal-wb",
            perm: str = "rwx") -> None:
        self.stage2.add(ipa, pa, size, attr, perm)
        self._write_tables()

    def unmap(self, ipa: int, size: int = 0x1000) -> None:
        self.stage2.remove(ipa, size)
        self._write_tables()

    # --- exits ------------------------------------------------------------------------------
    def _exit(self, rec, preferred_return: int) -> None:
        """ExceptionUnit hands over every exception aimed at EL2 (may raise _Stop)."""
        from ..machine.results import RunResult, _Stop
        m = self.m
        word = m.mmu.fetch_word(rec.pc, rec.from_el)
        vm_exit = VmExit(REASONS.get(rec.ec, "exception"), rec.esr, rec.far, rec.ipa, rec.pc,
                         preferred_return, insn=word, index=len(self.exits))
        if rec.ec == EC_SYSREG:
            iss = rec.esr & 0x1FFFFFF
            vm_exit.register = _sysreg_name(iss)
            vm_exit.write = not iss & 1
        elif rec.ec in (EC_DABT_LOWER,):
            vm_exit.write = bool(rec.esr >> 6 & 1)
        self.exits.append(vm_exit)
        action = self.handler(vm_exit)
        if action is None:
            action = Stop()
        if isinstance(action, Resume):
            m.eng.set_pc(rec.pc + 4 if action.skip else preferred_return)
            return
        if isinstance(action, Inject):
            m.exc.enter(1, action.esr, action.far, rec.pc)
            return
        rec.vm_exit = vm_exit
        m.events.pending = ("stop", RunResult(getattr(action, "reason", "vm-exit"), None, rec,
                                              rec.pc))
        m.eng.set_pc(rec.pc)
        raise _Stop


def _sysreg_name(iss: int) -> str:
    """The register an EC 0x18 ISS names (Op0 21:20, Op2 19:17, Op1 16:14, CRn 13:10,
    CRm 4:1)."""
    op0, op2, op1 = (iss >> 20) & 3, (iss >> 17) & 7, (iss >> 14) & 7
    crn, crm = (iss >> 10) & 15, (iss >> 1) & 15
    from ..isa.table import SYSREG_BY_KEY
    from ..machine.sysregs import BY_ENCODING
    key = (op0, op1, crn, crm, op2)
    r = SYSREG_BY_KEY.get(key)
    if r is not None:
        return r.name
    return BY_ENCODING.get(key) or f"S{op0}_{op1}_C{crn}_C{crm}_{op2}"
