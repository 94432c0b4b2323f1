"""The one thin layer over the Unicorn binding.

Hot paths (register and memory access from hooks) call libunicorn through ctypes directly: the
binding's generic ``reg_read``/``reg_write`` cost several microseconds a call, the bare C call
about a third of that. Everything else goes through the binding unchanged.

Instruction counting uses a tiny C block hook (``_blockcount.c``), compiled once with the host's
C compiler into a per-user cache; without a compiler a Python block hook does the same job,
only slower.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

from unicorn import (Uc, UcError, UC_ARCH_ARM64, UC_MODE_ARM, UC_HOOK_BLOCK, UC_HOOK_INTR,
                     UC_TLB_VIRTUAL)
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


class _CpReg(ctypes.Structure):
    _fields_ = [("crn", ctypes.c_uint32), ("crm", ctypes.c_uint32), ("op0", ctypes.c_uint32),
                ("op1", ctypes.c_uint32), ("op2", ctypes.c_uint32), ("val", ctypes.c_uint64)]


class BlockCounter(ctypes.Structure):
    _fields_ = [("insns", ctypes.c_uint64), ("last_addr", ctypes.c_uint64),
                ("last_size", ctypes.c_uint64), ("limit", ctypes.c_uint64),
                ("hit_limit", ctypes.c_uint64), ("stop", ctypes.c_void_p)]


_COUNTER_LIB = None
_COUNTER_TRIED = False


def _counter_library():
    """Load (building on first use) the C block counter, or None if no compiler is available."""
    global _COUNTER_LIB, _COUNTER_TRIED
    if _COUNTER_TRIED:
        return _COUNTER_LIB
    _COUNTER_TRIED = True
    src = os.path.join(os.path.dirname(__file__), "_blockcount.c")
    try:
        with open(src, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        cache = os.environ.get("AARCH64MTE_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
            "aarch64mte")
        so = os.path.join(cache, f"blockcount-{digest}.so")
        if not os.path.exists(so):
            cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
            if not cc:
                return None
            os.makedirs(cache, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
            os.close(fd)
            try:
                subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", tmp, src], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                os.replace(tmp, so)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        _COUNTER_LIB = ctypes.CDLL(so)
    except Exception:            # no compiler, read-only home, ...: fall back to Python
        _COUNTER_LIB = None
    return _COUNTER_LIB


class Engine:
    """A Unicorn AArch64 instance (MAX CPU, virtual-TLB mode) with fast accessors."""

    def __init__(self) -> None:
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
        self._cp = _CpReg()
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
        self.counter = BlockCounter()
        self.counter.limit = (1 << 64) - 1
        self.counter.stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p)
        self.native_counter = False
        self._counting = False
        self._keep = []

    # --- registers ------------------------------------------------------------------------
    def rd(self, reg: int) -> int:
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

    def install_counter(self, python_fallback) -> None:
        """Count executed instructions per block: natively if possible, else in Python."""
        lib = _counter_library()
        if lib is None:
            self.uc.hook_add(UC_HOOK_BLOCK, python_fallback)
            return
        h = uc_hook_h()
        err = uclib.uc_hook_add(self.handle, ctypes.byref(h), UC_HOOK_BLOCK,
                                ctypes.cast(lib.block_count, ctypes.c_void_p),
                                ctypes.cast(ctypes.byref(self.counter), ctypes.c_void_p),
                                ctypes.c_uint64(1), ctypes.c_uint64(0))
        if err:
            raise UcError(err)
        self._keep.append(h)
        self.native_counter = True

    def hook_intr(self, callback) -> None:
        """Add an interrupt hook that ctypes calls as ``callback(handle, intno, user_data)``
        with none of the binding's wrapper frames around it: ``callback`` handles its own
        exceptions (see ``Traps._on_intr``)."""
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

    def emu_stop(self) -> None:
        uclib.uc_emu_stop(self.handle)
