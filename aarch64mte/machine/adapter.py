"""The one thin layer over the Unicorn binding.

Hot paths (register and memory access from hooks) call libunicorn through ctypes directly: the
binding's generic ``reg_read``/``reg_write`` cost several microseconds a call, the bare C call
about a third of that. Native hooks (``native.py``) are added here too, with the shared core as
their user data. Everything else goes through the binding unchanged.
"""
from __future__ import annotations

import ctypes

from unicorn import Uc, UcError, UC_ARCH_ARM64, UC_MODE_ARM, UC_HOOK_INSN, UC_HOOK_INTR, UC_TLB_VIRTUAL
from unicorn import arm64_const as A
from unicorn.unicorn_const import UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE

from unicorn.unicorn_py3.unicorn import uclib, uc_hook_h  # the binding's own loaded library
from unicorn.unicorn_py3.unicorn import HOOK_INTR_CFUNC

__all__ = ["Engine", "UcError", "A"]

CP_REG = A.UC_ARM64_REG_CP_REG
_PC = A.UC_ARM64_REG_PC


def _bare(name: str):
    """The library's function ``name`` without declared argument types: ctypes then skips the
    per-argument conversion, which halves the cost of a register access. Callers pass only
    the engine handle (a c_void_p), a register id (a small int) and a byref pointer."""
    try:
        return getattr(ctypes.CDLL(uclib._name), name)
    except Exception:
        return getattr(uclib, name)


class CpReg(ctypes.Structure):
    """uc_arm64_cp_reg."""
    _fields_ = [("crn", ctypes.c_uint32), ("crm", ctypes.c_uint32), ("op0", ctypes.c_uint32),
                ("op1", ctypes.c_uint32), ("op2", ctypes.c_uint32), ("val", ctypes.c_uint64)]


class Engine:
    """A Unicorn AArch64 instance (MAX CPU, virtual-TLB mode) with fast accessors."""

    def __init__(self, core) -> None:
        uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        # No exit addresses: emu_start's ``until`` is ignored. Unicorn ends a run at ``until``
        # by executing a WFI (which traps at EL0 when SCTLR_EL1.nTWI = 0) and afterwards
        # translates ``until - 1`` to drop its cached code; the machine stops with a code hook.
        uc.ctl_exits_enabled(True)
        self.uc = uc
        self.handle = uc._uch
        self._u64 = ctypes.c_uint64()
        self._pu64 = ctypes.byref(self._u64)
        self._cp = CpReg()
        self._pcp = ctypes.byref(self._cp)
        self._reg_read = _bare("uc_reg_read")
        self._reg_write = _bare("uc_reg_write")
        # X0-X30, SP, PC and PSTATE in one call (what an MTE instruction's trap reads)
        ids = [A.UC_ARM64_REG_X0 + i for i in range(29)] + [
            A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30, A.UC_ARM64_REG_SP, A.UC_ARM64_REG_PC,
            A.UC_ARM64_REG_PSTATE]
        self.trap_regs = (ctypes.c_uint64 * len(ids))()
        self._trap_ids = (ctypes.c_int * len(ids))(*ids)
        base = ctypes.addressof(self.trap_regs)
        self._trap_ptrs = (ctypes.c_void_p * len(ids))(*[base + 8 * i for i in range(len(ids))])
        self._trap_n = len(ids)
        self._read_batch = _bare("uc_reg_read_batch")
        self._write_batch = _bare("uc_reg_write_batch")
        self._pc_val = ctypes.c_uint64()
        self._pc_id = (ctypes.c_int * 1)(_PC)
        self._pc_ptr = (ctypes.c_void_p * 1)(ctypes.addressof(self._pc_val))
        self._mem_read = uclib.uc_mem_read
        self._mem_write = uclib.uc_mem_write
        self.core = core                    # shared with the native hooks (native.Core)
        self.core_ptr = ctypes.addressof(core)
        self._counting = False
        self._keep = []

    # --- registers ------------------------------------------------------------------------
    def rd(self, reg: int) -> int:
        # cleared first: a 32-bit register (PSTATE, NZCV, FPCR, FPSR) fills only the low half
        self._u64.value = 0
        self._reg_read(self.handle, reg, self._pu64)
        return self._u64.value

    def wr(self, reg: int, value: int) -> None:
        """Write one register, never PC (``set_pc``)."""
        self._u64.value = value & 0xFFFFFFFFFFFFFFFF
        self._reg_write(self.handle, reg, self._pu64)

    def pc(self) -> int:
        self._reg_read(self.handle, _PC, self._pu64)
        return self._u64.value

    def set_pc(self, value: int) -> None:
        """The one way PC is written. ``uc_reg_write(PC)`` during a run sets Unicorn's
        ``skip_sync_pc_on_exit``: from then until the next ``emu_start`` every memory hook sees
        a stale PC (the block start) instead of the accessing instruction. A batched write
        leaves that flag alone, so memory hooks keep the exact PC the tag check relies on."""
        self._pc_val.value = value & 0xFFFFFFFFFFFFFFFF
        self._write_batch(self.handle, self._pc_id, self._pc_ptr, 1)

    def read_trap_regs(self) -> None:
        """``trap_regs``: X0-X30 at 0-30, SP at 31, PC at 32, PSTATE at 33."""
        self._read_batch(self.handle, self._trap_ids, self._trap_ptrs, self._trap_n)

    def rd128(self, reg: int) -> int:
        return self.uc.reg_read(reg)

    def wr128(self, reg: int, value: int) -> None:
        self.uc.reg_write(reg, value)

    def cp_read(self, op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
        cp = self._cp
        cp.crn, cp.crm, cp.op0, cp.op1, cp.op2, cp.val = crn, crm, op0, op1, op2, 0
        self._reg_read(self.handle, CP_REG, self._pcp)
        return cp.val

    def cp_write(self, op0: int, op1: int, crn: int, crm: int, op2: int, value: int) -> None:
        cp = self._cp
        cp.crn, cp.crm, cp.op0, cp.op1, cp.op2 = crn, crm, op0, op1, op2
        cp.val = value & 0xFFFFFFFFFFFFFFFF
        self._reg_write(self.handle, CP_REG, self._pcp)

    # --- memory (physical: the engine's address space) ------------------------------------
    def mem_read(self, pa: int, n: int) -> bytes:
        buf = ctypes.create_string_buffer(n)
        err = self._mem_read(self.handle, pa, buf, n)
        if err:
            raise UcError(err)
        return buf.raw

    def mem_write(self, pa: int, data: bytes) -> None:
        data = bytes(data)
        err = self._mem_write(self.handle, pa, data, len(data))
        if err:
            raise UcError(err)

    # --- control --------------------------------------------------------------------------
    def flush_tlb(self) -> None:
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)

    def hook_native(self, htype: int, fn, user: int, begin: int = 1, end: int = 0) -> int:
        """Add a hook implemented in C (``fn`` from the native library) with ``user`` as its
        user data; returns the hook handle."""
        h = uc_hook_h()
        err = uclib.uc_hook_add(self.handle, ctypes.byref(h), htype,
                                ctypes.cast(fn, ctypes.c_void_p), ctypes.c_void_p(user),
                                ctypes.c_uint64(begin), ctypes.c_uint64(end))
        if err:
            raise UcError(err)
        self._keep.append(h)
        return h.value

    def hook_native_insn(self, insn: int, fn, user: int) -> int:
        """Add an instruction hook (UC_HOOK_INSN for ``insn``) implemented in C."""
        h = uc_hook_h()
        err = uclib.uc_hook_add(self.handle, ctypes.byref(h), UC_HOOK_INSN,
                                ctypes.cast(fn, ctypes.c_void_p), ctypes.c_void_p(user),
                                ctypes.c_uint64(1), ctypes.c_uint64(0), ctypes.c_int(insn))
        if err:
            raise UcError(err)
        self._keep.append(h)
        return h.value

    def hook_raw(self, htype: int, cfunctype, callback, begin: int = 1, end: int = 0) -> int:
        """Add a Python hook that ctypes calls directly, with none of the binding's wrapper
        frames around it: ``callback`` must handle its own exceptions."""
        fn = cfunctype(callback)
        h = uc_hook_h()
        err = uclib.uc_hook_add(self.handle, ctypes.byref(h), htype,
                                ctypes.cast(fn, ctypes.c_void_p), None,
                                ctypes.c_uint64(begin), ctypes.c_uint64(end))
        if err:
            raise UcError(err)
        self._keep.append((fn, h))
        return h.value

    def hook_intr(self, callback) -> None:
        """Add an interrupt hook that ctypes calls as ``callback(handle, intno, user_data)``
        with none of the binding's wrapper frames around it: ``callback`` handles its own
        exceptions (see ``Traps.on_intr``)."""
        fn = HOOK_INTR_CFUNC(callback)
        h = uc_hook_h()
        err = uclib.uc_hook_add(self.handle, ctypes.byref(h), UC_HOOK_INTR,
                                ctypes.cast(fn, ctypes.c_void_p), None,
                                ctypes.c_uint64(1), ctypes.c_uint64(0))
        if err:
            raise UcError(err)
        self._keep.append((fn, h))

    def emu_start(self, begin: int, count: int = 0) -> None:
        # A count > 0 makes Unicorn add its counting code hook, which only code translated
        # afterwards calls: drop the cached code first (Unicorn itself flushes when it removes
        # the hook again, on the next run without a count).
        if count > 0 and not self._counting:
            self.uc.ctl_flush_tb()
        self._counting = count > 0
        self.uc.emu_start(begin, 0, 0, count)

    def set_exits(self, exits) -> None:
        """The addresses translation stops before (a run returns with PC there)."""
        self.uc.ctl_set_exits(sorted(exits))

    def emu_stop(self) -> None:
        uclib.uc_emu_stop(self.handle)
