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
- ``Stop()``: end the run (reason ``vm-exit``); ``Stop(code=N)`` ends it as the guest's own
  exit would (reason ``el2-exit``, N the exit status ``run`` reports), e.g. when a hypercall
  says the guest is done.

The default handler stops and reports. Stage 2 is a ``Stage2Map`` written as real descriptors
into host memory outside the guest's reach (``Machine.host_memory``); ``map``/``unmap`` change it
while the guest runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Union

from ..errors import InputError
from ..semantics import systraps
from ..semantics.syndrome import EC_DABT_LOWER, EC_HVC64, EC_IABT_LOWER, EC_SMC64, EC_SYSREG
from . import hcr as hcr_fields
from ..machine.translation import WalkFault
from .stage2map import VTCR, Stage2Map, TableWriter

REASONS = {EC_DABT_LOWER: "stage2-abort", EC_IABT_LOWER: "stage2-abort",
           EC_SYSREG: "sysreg-trap", EC_HVC64: "hvc", systraps.EC_WFX: "wfi",
           EC_SMC64: "smc"}
DEFAULT_HCR = {"RW": 1, "VM": 1, "ATA": 1}
EXIT_REASON = "el2-exit"        # a Stop with an exit status: the guest's run is over
EXITS_KEPT = 10_000             # VM exits kept in Shim.exits (the oldest go first)


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
        d = {"index": self.index, "reason": self.reason, "esr_el2": self.esr_el2,
             "far_el2": self.far_el2, "ipa": self.ipa, "pc": self.pc}
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
    reason: Optional[str] = None     # default: 'el2-exit' with a code, else 'vm-exit'
    code: Optional[int] = None       # the run's exit status (as a semihosting exit code is)

    def __post_init__(self) -> None:
        if self.code is not None and (not isinstance(self.code, int)
                                      or isinstance(self.code, bool)):
            raise TypeError(f"Stop code must be an int, not {self.code!r}")
        if self.reason is None:
            object.__setattr__(self, "reason", "vm-exit" if self.code is None else EXIT_REASON)


def stop_handler(vm_exit: VmExit):
    """The default: stop and report."""
    return Stop()


class Shim:
    """Attached to a Machine built with ``el2="shim"`` (the machine makes one). ``stage2`` is a
    Stage2Map, a TOML file or a list of mappings (default: RAM mapped onto itself);
    ``handler`` a callable, or a Python file whose make_handler(shim) returns one."""

    def __init__(self, machine, hcr: Optional[Dict[str, int]] = None, stage2=None,
                 handler: Union[Callable, str, os.PathLike, None] = None) -> None:
        self.m = machine
        self.handler = stop_handler
        self.handler_source: Optional[str] = None    # the file the handler came from
        self.exits: List[VmExit] = []                # the latest EXITS_KEPT
        self.exit_count = 0
        fields = dict(DEFAULT_HCR)
        fields.update({k.upper(): v for k, v in (hcr or {}).items()})
        self.hcr_value = hcr_fields.with_fields(0, fields)
        host = machine.host_memory
        self.writer = TableWriter(host.base, host.size, host.write)
        if stage2 is None:
            ram = machine.ram
            stage2 = Stage2Map([(dict(ipa=ram.base, pa=ram.base, size=ram.size))],
                               pa_ok=self.pa_ok, source="<identity map of RAM>")
        elif isinstance(stage2, (str, os.PathLike)):
            stage2 = Stage2Map.from_toml(os.fspath(stage2), pa_ok=self.pa_ok)
        elif not isinstance(stage2, Stage2Map):
            stage2 = Stage2Map(stage2, pa_ok=self.pa_ok)
        self.stage2 = stage2
        if isinstance(handler, (str, os.PathLike)):
            from .handler_file import load
            load(self, handler)
        elif handler is not None:
            self.handler = handler
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
        self.writer.build(self.stage2, bool(hcr_fields.field_value(self.hcr_value, "FWB")))
        m.set_sysreg("VTTBR_EL2", self.writer.vttbr)
        m.set_sysreg("VTCR_EL2", VTCR)
        m.mmu.invalidate()                      # what TLBI VMALLS12E1 does

    def set_hcr(self, **fields: int) -> None:
        self.hcr_value = hcr_fields.with_fields(self.hcr_value, fields)
        self.m.set_sysreg("HCR_EL2", self.hcr_value)
        self._write_tables()                    # MemAttr encodings follow FWB

    def map(self, ipa: int, pa: int, size: int, attr: str = "normal-wb",
            perm: str = "rwx") -> None:
        """Add a mapping (InputError, and stage 2 unchanged, if it is not a valid one)."""
        before = list(self.stage2.mappings)
        self.stage2.add(ipa, pa, size, attr, perm)
        try:
            self._write_tables()
        except InputError:
            self.stage2.mappings = before          # the tables did not fit: as it was
            self._write_tables()
            raise

    def unmap(self, ipa: int, size: int = 0x1000) -> None:
        self.stage2.remove(ipa, size)
        self._write_tables()

    # --- what a hypervisor reaches besides the tables -----------------------------------------
    def write_console(self, text: str) -> None:
        """Print on the machine's console (what ``run`` shows and its JSON's "console" holds),
        as a hypervisor prints on its own UART."""
        self.m.board.output(text)

    def stage1_ipa(self, va: int) -> Optional[int]:
        """The IPA the guest's EL1&0 stage 1 gives ``va`` for a read at EL1 -- what AT S1E1R
        leaves in PAR_EL1 -- or None where stage 1 faults (or stage 2 faults on its walk).
        HPFAR_EL2 is UNKNOWN for a stage-2 Permission fault; a hypervisor finds the IPA so."""
        m = self.m
        t = m.mmu.stage1.translate(va, 1, "r", m.mmu.regime(1))
        if isinstance(t, WalkFault):
            # a fault at the final stage-2 lookup: stage 1 succeeded and gave t.ipa
            return t.ipa if t.stage == 2 and not t.s1ptw else None
        return t.pa if t.ipa is None else t.ipa

    # --- exits ------------------------------------------------------------------------------
    def _exit(self, rec, preferred_return: int) -> None:
        """ExceptionUnit hands over every exception aimed at EL2 (may raise _Stop)."""
        from ..machine.results import RunResult, _Stop
        m = self.m
        word = m.mmu.fetch_word(rec.pc, rec.from_el)
        vm_exit = VmExit(REASONS.get(rec.ec, "exception"), rec.esr, rec.far, rec.ipa, rec.pc,
                         preferred_return, insn=word, index=self.exit_count)
        if rec.ec == EC_SYSREG:
            iss = rec.esr & 0x1FFFFFF
            vm_exit.register = _sysreg_name(iss)
            vm_exit.write = not iss & 1
        elif rec.ec in (EC_DABT_LOWER,):
            vm_exit.write = bool(rec.esr >> 6 & 1)
        self.exit_count += 1
        self.exits.append(vm_exit)
        if len(self.exits) > EXITS_KEPT:
            del self.exits[:len(self.exits) - EXITS_KEPT]
        try:
            action = self.handler(vm_exit)
        except Exception as e:
            raise self._handler_error(vm_exit, e) from e
        if action is None:
            action = Stop()
        if isinstance(action, Resume):
            m.eng.set_pc(rec.pc + 4 if action.skip else preferred_return)
            return
        if isinstance(action, Inject):
            m.exc.enter(1, action.esr, action.far, rec.pc)
            return
        if not isinstance(action, Stop):
            raise InputError(f"the EL2 handler returned {action!r} at VM exit "
                             f"{self._which(vm_exit)}: not Resume, Inject, Stop or None",
                             self.handler_source)
        rec.vm_exit = vm_exit
        m.events.pending = ("stop", RunResult(action.reason, action.code, rec, rec.pc))
        m.eng.set_pc(rec.pc)
        raise _Stop


    def _which(self, e: VmExit) -> str:
        return f"#{e.index} ({e.reason}, ESR_EL2 {e.esr_el2:#x}, pc {e.pc:#x})"

    def _handler_error(self, e: VmExit, exc: Exception) -> InputError:
        """The handler failed: the user's code, so one line naming it (and its line)."""
        if isinstance(exc, InputError):
            return exc
        from .handler_file import describe, failure_line
        src = self.handler_source
        line = failure_line(exc, src) if src else None
        return InputError(f"the EL2 handler failed at VM exit {self._which(e)}: "
                          f"{describe(exc)}", src, line=line)


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
