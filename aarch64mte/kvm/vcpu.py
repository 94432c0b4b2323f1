"""A vCPU: its register context, the world switch that loads it onto the host CPU, KVM_RUN, and
the exits KVM handles itself.

The context is what KVM saves and restores around a guest (and what KVM_GET_ONE_REG exposes):
X0-X30, SP_EL0, SP_EL1, PC, PSTATE (with PSTATE.TCO in bit 25, as SPSR holds it), the SIMD&FP
registers, and the EL1 system registers, the MTE ones included (GCR_EL1, RGSR_EL1, TFSR_EL1,
TFSRE0_EL1). Exits KVM handles without the VMM: stage-2 faults (``fault.py``), trapped ID
registers (HCR_EL2.TID3: a VM without MTE reads ID_AA64PFR1_EL1.MTE as 0), the MTE registers
of a VM without MTE (HCR_EL2.ATA = 0 traps them; KVM hides them, so they are UNDEFINED), PSCI
calls by HVC, and MMIO to a device the VMM registered. The others return from ``run``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Set

from ..el2 import Inject, Resume, Stop, VmExit
from ..machine.exceptions import ExceptionRecord
from ..machine.results import RunResult as MachineRunResult
from ..machine import profiles
from ..semantics import syndrome
from .errors import KvmError
from .fault import RETRY_LIMIT, guest_abort
from .mmio import MmioAccess, decode, load_value

GPRS = [f"x{i}" for i in range(31)]
SIMD = [f"v{i}" for i in range(32)]
SYSREGS = ["sctlr_el1", "actlr_el1", "cpacr_el1", "ttbr0_el1", "ttbr1_el1", "tcr_el1",
           "mair_el1", "vbar_el1", "contextidr_el1", "spsr_el1", "elr_el1", "esr_el1",
           "far_el1", "par_el1", "tpidr_el1", "tpidr_el0", "tpidrro_el0",
           "gcr_el1", "rgsr_el1", "tfsr_el1", "tfsre0_el1"]
REGISTERS = GPRS + ["sp_el0", "sp_el1", "pc", "pstate", "fpsr", "fpcr"] + SIMD + SYSREGS
PSTATE_TCO = 1 << 25
PSTATE_MASK = 0xFFFF_FFFF

PSCI_VERSION, PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET = 0x8400_0000, 0x8400_0008, 0x8400_0009
SMCCC_NOT_SUPPORTED = (1 << 64) - 1


@dataclass
class RunResult(MachineRunResult):
    """Machine RunResult plus KVM's exit: ``mmio`` (reason 'mmio'), ``system_event``
    ('shutdown' | 'reset', reason 'system-event'), ``exit`` (the VmExit behind an exit to the
    VMM), ``insns`` (guest instructions this run)."""
    exit: Optional[VmExit] = None
    mmio: Optional[MmioAccess] = None
    system_event: Optional[str] = None
    insns: int = 0
    message: Optional[str] = None


def reset_context() -> Dict[str, int]:
    """A vCPU after KVM_ARM_VCPU_INIT: EL1h with DAIF masked, SCTLR_EL1 at its reset value."""
    ctx = {name: 0 for name in REGISTERS}
    ctx["pstate"] = 0x3C5
    ctx["sctlr_el1"] = profiles.SCTLR_RESET
    return ctx


class Vcpu:
    def __init__(self, vm, index: int) -> None:
        self.vm = vm
        self.index = index
        self.name = f"{vm.name}/vcpu{index}"
        self.ctx: Dict[str, int] = reset_context()
        self.rng = 0x5EED                    # the IRG random source (GCR_EL1.RRND = 1)
        self.text_end = 0
        self.pending_mmio: Optional[MmioAccess] = None
        self.defer_faults: Set[int] = set()  # IPA pages whose faults the race scheduler runs
        self.deferred = None
        self._stop: Optional[dict] = None
        self._retries = 0

    # --- registers --------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.vm.host.current is self

    def reg(self, name: str) -> int:
        n = name.lower()
        if self.loaded:
            return self.vm.host.machine.reg(n)
        if n in self.ctx:
            return self.ctx[n]
        if n == "tco":
            return (self.ctx["pstate"] >> 25) & 1
        if n == "sp":
            return self.ctx["sp_el1" if self.ctx["pstate"] & 0xD == 0x5 else "sp_el0"]
        raise KvmError("KVM_GET_ONE_REG", "ENOENT", f"{self.name}: no register {name!r}")

    def set_reg(self, name: str, value: int) -> None:
        n = name.lower()
        if self.loaded:
            self.vm.host.machine.set_reg(n, value)
            return
        if n == "tco":
            self.ctx["pstate"] = (self.ctx["pstate"] & ~PSTATE_TCO) | ((value & 1) << 25)
        elif n == "sp":
            self.ctx["sp_el1" if self.ctx["pstate"] & 0xD == 0x5 else "sp_el0"] = value
        elif n in self.ctx:
            self.ctx[n] = value
        else:
            raise KvmError("KVM_SET_ONE_REG", "ENOENT", f"{self.name}: no register {name!r}")

    def state(self) -> Dict[str, int]:
        """Every register of the context (KVM_GET_ONE_REG over KVM_GET_REG_LIST)."""
        if self.loaded:
            self._save()
        return dict(self.ctx)

    # --- world switch -----------------------------------------------------------------------------
    def load(self) -> None:
        """vcpu_load: put the running vCPU's registers away, load ours and our VM's EL2
        state (HCR_EL2, VTTBR_EL2), and invalidate the TLBs."""
        host = self.vm.host
        cur = host.current
        if cur is self:
            return
        if cur is not None:
            cur._save()
            host.current = None
        self._restore()
        host.current = self

    def _save(self) -> None:
        m = self.vm.host.machine
        ctx = self.ctx
        for name in REGISTERS:
            ctx[name] = m.reg(name)
        self.rng = m.mte.rng

    def _restore(self) -> None:
        vm = self.vm
        m = vm.host.machine
        ctx = self.ctx
        m.shim.hcr_value = vm.hcr
        m.set_sysreg("HCR_EL2", vm.hcr)
        m.set_sysreg("VTTBR_EL2", vm.stage2.tables.vttbr)
        m.regs.set_pstate(ctx["pstate"] & PSTATE_MASK & ~PSTATE_TCO)
        m.set_reg("tco", (ctx["pstate"] >> 25) & 1)
        for name in REGISTERS:
            # a write of a translation register drops the machine's derived state: only the
            # ones that differ are written
            if name not in ("pstate", "pc") and m.reg(name) != ctx[name]:
                m.set_reg(name, ctx[name])
        m.set_reg("pc", ctx["pc"])
        m.mte.rng = self.rng
        if m.text_end != self.text_end:
            m.text_end = self.text_end
            m._hook_text_end()
        m.mmu.invalidate()

    # --- KVM_RUN ----------------------------------------------------------------------------------
    def run(self, max_insns: int = 1_000_000) -> RunResult:
        """Run the guest until something the VMM must see: the end of the program's text, an
        exception the guest has no vectors for, an MMIO access no device claims, a PSCI
        system event, or the instruction limit."""
        if not isinstance(max_insns, int) or max_insns < 0:
            raise KvmError("KVM_RUN", "EINVAL", f"max_insns must be a non-negative integer, "
                           f"not {max_insns!r}")
        if self.deferred is not None:
            raise KvmError("KVM_RUN", "EBUSY", f"{self.name} has a stage-2 fault in progress")
        self.load()
        self.complete_mmio()
        self.vm.host.frames.flush_code()
        m = self.vm.host.machine
        m.shim.exits.clear()                 # the model keeps its own counts
        start = m.counters.insns
        self._stop = None
        self._retries = 0
        r = m.run(max_insns)
        out = RunResult(r.reason, r.code, r.exception, r.pc, r.watch,
                        insns=m.counters.insns - start)
        stop = self._stop
        self._stop = None
        if stop is not None:
            out.reason = stop["reason"]
            out.exit = stop.get("exit")
            out.mmio = stop.get("mmio")
            out.system_event = stop.get("system_event")
            out.message = stop.get("message")
            if "exception" in stop:
                out.exception = stop["exception"]
            if "pc" in stop:
                m.set_reg("pc", stop["pc"])
            out.pc = m.reg("pc")
            if "error" in stop:
                raise stop["error"]
        return out

    def complete_mmio(self, data: Optional[int] = None) -> None:
        """Finish the MMIO access the last run returned for (kvm_handle_mmio_return): a read
        puts ``data`` (else ``mmio.data``) in its register; the guest goes on after it."""
        a = self.pending_mmio
        if a is None:
            return
        self.pending_mmio = None
        if data is not None:
            a.data = data
        if not a.write and a.register != 31:
            self.set_reg(f"x{a.register}", load_value(a, a.data))
        self.set_reg("pc", a.pc + 4)
        a.completed = True

    # --- exits KVM handles ------------------------------------------------------------------------
    def handle_exit(self, e: VmExit):
        """The shim's handler while this vCPU is loaded: an el2 action (Resume, Inject, Stop)."""
        if e.reason == "stage2-abort":
            action = guest_abort(self, e)
        elif e.reason == "sysreg-trap":
            action = self._sysreg(e)
        elif e.reason == "hvc":
            action = self._hvc(e)
        elif e.reason == "smc":
            action = self.inject_undefined(e)
        else:
            action = self.internal_error(e, f"unexpected exit to EL2 ({e.reason}, ESR_EL2 "
                                            f"{e.esr_el2:#x})")
        return action

    def too_many_retries(self, retry: bool) -> bool:
        """The guest will take the same fault again: count it; True once that has happened
        RETRY_LIMIT times in a row (a loop that makes no progress)."""
        self._retries = self._retries + 1 if retry else 0
        return self._retries > RETRY_LIMIT

    def _stop_with(self, reason: str, **info):
        self._stop = dict(reason=reason, **info)
        return Stop(reason)

    def internal_error(self, e: VmExit, message: str):
        """KVM_EXIT_INTERNAL_ERROR: the run ends and says why (``RunResult.message``)."""
        return self._stop_with("internal-error", exit=e, message=f"{self.name}: {message}")

    def _sysreg(self, e: VmExit):
        vm = self.vm
        vm.stats.sysreg_traps += 1
        iss = e.esr_el2 & 0x1FFFFFF
        op0, op2, op1 = (iss >> 20) & 3, (iss >> 17) & 7, (iss >> 14) & 7
        crn, crm, rt = (iss >> 10) & 15, (iss >> 1) & 15, (iss >> 5) & 31
        is_read = bool(iss & 1)
        if (op0, op1, crn) == (3, 0, 0) and 1 <= crm <= 7 and is_read:
            value = vm.id_register(e.register, (op0, op1, crn, crm, op2))
            if rt != 31:
                vm.host.machine.set_reg(f"x{rt}", value)
            return Resume(skip=True)
        # GCR_EL1, RGSR_EL1, TFSR_EL1, TFSRE0_EL1 trap while HCR_EL2.ATA = 0: a VM without
        # MTE has no such registers (mte_visibility hides them): UNDEFINED; so is anything
        # else KVM does not emulate
        return self.inject_undefined(e)

    def _hvc(self, e: VmExit):
        vm = self.vm
        vm.stats.hypercalls += 1
        m = vm.host.machine
        fn = m.reg("x0") & 0xFFFF_FFFF
        if fn in (PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET):
            event = "shutdown" if fn == PSCI_SYSTEM_OFF else "reset"
            return self._stop_with("system-event", exit=e, system_event=event,
                                   pc=e.preferred_return)
        m.set_reg("x0", 0x1_0001 if fn == PSCI_VERSION else SMCCC_NOT_SUPPORTED)
        return Resume()

    def mmio_exit(self, e: VmExit, ipa: int):
        vm = self.vm
        vm.stats.mmio_exits += 1
        m = vm.host.machine
        access = decode(e.esr_el2, ipa, m.reg, e.pc)
        if access is None:
            return self._stop_with("mmio-nisv", exit=e)
        device = vm.device_at(ipa)
        if device is not None:
            if access.write:
                device.write(ipa, access.size, access.data)
            else:
                value = device.read(ipa, access.size)
                if access.register != 31:
                    m.set_reg(f"x{access.register}", load_value(access, value))
            return Resume(skip=True)
        self.pending_mmio = access
        return self._stop_with("mmio", exit=e, mmio=access)

    def inject_undefined(self, e: VmExit):
        self.vm.stats.injected_exceptions += 1
        return self._inject(e, "undefined", syndrome.undefined_esr(), None)

    def inject_external_abort(self, e: VmExit, fetch: bool):
        """kvm_inject_pabt / kvm_inject_dabt: a synchronous external abort at the guest's EL,
        FAR = the faulting address."""
        self.vm.stats.injected_exceptions += 1
        m = self.vm.host.machine
        same = m.el == 1
        esr = (syndrome.instruction_abort_esr(syndrome.FSC_SYNC_EXTERNAL, same) if fetch
               else syndrome.data_abort_esr(syndrome.FSC_SYNC_EXTERNAL, False, same))
        far = e.far_el2
        return self._inject(e, "instruction_abort" if fetch else "data_abort", esr, far)

    def _inject(self, e: VmExit, kind: str, esr: int, far: Optional[int]):
        m = self.vm.host.machine
        if m.exc.has_vectors(1):
            return Inject(esr, far)
        # the snippet profile's guests have no vectors: the run stops and reports it
        rec = ExceptionRecord(kind, (esr >> 26) & 0x3F, esr, far, 1, m.el, e.pc)
        m.exception_log.append(rec)
        return self._stop_with("exception", exit=e, exception=rec, pc=e.pc)
