"""One Unicorn engine in the state the machine gives a guest, used to translate (or run) single
instruction words.

Unicorn translates a whole block before it runs any of it, so an instruction word that makes its
translator abort kills the process whatever hook is installed. The harness lays each word out as
``word; BRK #0`` (the BRK ends the block) at its own address and asks Unicorn to translate the
block that starts there (``UC_CTL_TB_REQUEST_CACHE``): that runs the same translator, with the
same CPU-state flags, as ``emu_start`` does, but executes nothing. ``run`` mode executes the word
instead (``emu_start`` with ``count=1``), for crashes that happen at run time.

The engine is configured as ``aarch64mte.machine`` configures it (MAX CPU, virtual TLB, SCR_EL3 =
0x401, HCR_EL2.RW, the same kinds of hooks: TLB fill, interrupt, MRS/MSR/SYS instruction hooks,
a block hook), in one of the states of ``STATES``: the exception level and the FP/SVE enables in
CPACR_EL1 are the state the translator's decisions depend on (``fp_access_check``,
``sve_access_check``).
"""
from __future__ import annotations

import ctypes
import os
import struct
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from unicorn import (UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_TLB_FILL,  # noqa: E402
                     UcError)
from unicorn.unicorn_const import UC_CTL_TB_REQUEST_CACHE  # noqa: E402
from unicorn.unicorn_py3.unicorn import uc_tb  # noqa: E402

from aarch64mte.machine.adapter import A, Engine  # noqa: E402
from aarch64mte.machine.native import new_core  # noqa: E402
from aarch64mte.machine.sysregs import ENCODINGS  # noqa: E402

BRK0 = 0xD4200000
NOP = 0xD503201F
CODE_BASE = 0x4000_0000
DATA_BASE = 0x8000_0000
DATA_SIZE = 0x10_0000
CHUNK = 1 << 14                 # words laid out (and translated) per code refill

CPACR_FPEN = 3 << 20
CPACR_ZEN = 3 << 16
SCTLR_RESET = 0x30D00800        # aarch64mte.machine.profiles.SCTLR_RESET
ZCR_EL1, ZCR_EL2, ZCR_EL3 = (3, 0, 1, 2, 0), (3, 4, 1, 2, 0), (3, 6, 1, 2, 0)
CPTR_EL3, CPTR_EZ = (3, 6, 1, 1, 2), 1 << 8


@dataclass(frozen=True)
class State:
    """The CPU state a word is translated in."""
    name: str
    el: int                     # 0, 1 or 2
    cpacr: int                  # CPACR_EL1
    sve: bool = False           # CPTR_EL3.EZ = 1: SVE not trapped to EL3 (reset: trapped)
    zcr_len: int = 0            # ZCR_ELx.LEN (SVE vector length / 128 - 1)
    code_hook: bool = False     # a global code hook, as emu_start(count=...) and stepping add
    aarch32: str = ""           # "a32" or "t32": EL0 in AArch32, entered by an ERET from EL1


# The states the machine can be in at EL0/EL1: the snippet profile enables FP (CPACR.FPEN = 3),
# the virt profile starts with CPACR_EL1 = 0, and EL1 code may set FPEN and ZEN itself.
STATES = {s.name: s for s in (
    State("el1", 1, CPACR_FPEN),
    State("el0", 0, CPACR_FPEN),
    State("el1-nofp", 1, 0),
    State("el0-nofp", 0, 0),
    State("el1-sve", 1, CPACR_FPEN | CPACR_ZEN, sve=True),
    State("el0-sve", 0, CPACR_FPEN | CPACR_ZEN, sve=True),
    State("el1-sve2048", 1, CPACR_FPEN | CPACR_ZEN, sve=True, zcr_len=15),
    State("el1-step", 1, CPACR_FPEN, code_hook=True),
    State("el2", 2, CPACR_FPEN),            # should guest code ever run at EL2 in the engine
    # Unicorn's MAX CPU lets EL1 ERET to AArch32 EL0 (ID_AA64PFR0_EL1.EL0 = 2): a guest can
    # put it in these states, where A32/T32 words are translated instead of A64 ones.
    State("el0-a32", 0, CPACR_FPEN, aarch32="a32"),
    State("el0-t32", 0, CPACR_FPEN, aarch32="t32"),
)}

# what ends the block after each word: BRK #0, A32 "b .", T32 "b .; b ."
TERMINATOR = {"": BRK0, "a32": 0xEAFFFFFE, "t32": 0xE7FEE7FE}

_REQ = (3 << 30) | (2 << 26) | UC_CTL_TB_REQUEST_CACHE     # UC_CTL_READ_WRITE, two arguments


class Harness:
    """An engine ready to translate words; build it once, then fork children that use it."""

    def __init__(self, state: State) -> None:
        self.state = state
        eng = self.eng = Engine(new_core())
        uc = self.uc = eng.uc
        uc.hook_add(UC_HOOK_TLB_FILL, self._fill)
        eng.cp_write(*ENCODINGS["SCR_EL3"], (1 << 10) | 1)
        eng.cp_write(*ENCODINGS["HCR_EL2"], 1 << 31)
        eng.cp_write(*ENCODINGS["SCTLR_EL1"], SCTLR_RESET)
        eng.cp_write(*ENCODINGS["CPACR_EL1"], state.cpacr)
        if state.sve:
            eng.cp_write(*CPTR_EL3, CPTR_EZ)
        for zcr in (ZCR_EL3, ZCR_EL2, ZCR_EL1):
            eng.cp_write(*zcr, state.zcr_len)
        eng.hook_intr(self._intr)
        uc.hook_add(UC_HOOK_INSN, self._sys, aux1=A.UC_ARM64_INS_MRS)
        uc.hook_add(UC_HOOK_INSN, self._sys, aux1=A.UC_ARM64_INS_MSR)
        uc.hook_add(UC_HOOK_INSN, self._sys, aux1=A.UC_ARM64_INS_SYS)
        uc.hook_add(UC_HOOK_BLOCK, self._block)
        if state.code_hook:
            uc.hook_add(UC_HOOK_CODE, self._code)
        uc.mem_map(CODE_BASE, CHUNK * 8)
        uc.mem_map(DATA_BASE, DATA_SIZE)
        self._set_el(state.el)
        if state.aarch32:
            self._enter_aarch32(state.aarch32 == "t32")
        self._ctx = None
        self._tb = uc_tb()
        self._ptb = ctypes.byref(self._tb)
        self._uc_ctl = ctypes.CDLL(_libname()).uc_ctl

    # hooks: present because their presence changes what the translator emits
    @staticmethod
    def _fill(uc, vaddr, access, entry, ud) -> bool:
        entry.paddr = vaddr & ~0x3FF & 0xFFFF_FFFF_FFFF
        entry.perms = 7
        return True

    def _intr(self, handle, intno, ud) -> None:
        self.eng.emu_stop()

    @staticmethod
    def _sys(uc, reg, cp_reg, ud) -> int:
        return 0

    @staticmethod
    def _block(uc, addr, size, ud) -> None:
        pass

    @staticmethod
    def _code(uc, addr, size, ud) -> None:
        pass

    def _set_el(self, el: int) -> None:
        eng = self.eng
        eng.wr(A.UC_ARM64_REG_PSTATE, 0x3C1 | el << 2 if el else 0x000)
        tcr = ENCODINGS["TCR_EL1"]
        eng.cp_write(*tcr, eng.cp_read(*tcr))      # makes Unicorn rebuild its cached flags

    def _enter_aarch32(self, thumb: bool) -> None:
        """ERET from EL1 to AArch32 User mode at CODE_BASE (SPSR.M = 0b10000, T = bit 5)."""
        eng = self.eng
        stub = struct.pack("<III", 0xD5184003, 0xD5184024, 0xD69F03E0)  # msr spsr_el1, x3;
        self.uc.mem_write(DATA_BASE, stub)                          # msr elr_el1, x4; eret
        eng.wr(A.UC_ARM64_REG_X3, 0x10 | (0x20 if thumb else 0))
        eng.wr(A.UC_ARM64_REG_X4, CODE_BASE)
        self._set_el(1)
        self.uc.emu_start(DATA_BASE, 0, 0, 3)

    def layout(self, words) -> None:
        """Write ``word; terminator`` pairs from CODE_BASE and drop every translated block."""
        t = TERMINATOR[self.state.aarch32]
        self.uc.mem_write(CODE_BASE, b"".join(struct.pack("<II", w, t) for w in words))
        self.uc.ctl_flush_tb()

    def translate(self, i: int) -> int:
        """Translate the block at slot ``i`` of the layout; Unicorn's error code (0: fine)."""
        return self._uc_ctl(self.eng.handle, _REQ, ctypes.c_uint64(CODE_BASE + 8 * i), self._ptb)

    def run(self, i: int) -> int:
        """Execute the word at slot ``i`` (one instruction) from the state the harness was
        built in (restored before each word); Unicorn's error code (0: fine)."""
        eng = self.eng
        if self._ctx is None:
            self._ctx = self.uc.context_save()
        else:
            self.uc.context_restore(self._ctx)
        for r in range(29):
            eng.wr(A.UC_ARM64_REG_X0 + r, DATA_BASE + DATA_SIZE // 2)
        eng.wr(A.UC_ARM64_REG_X29, DATA_BASE + DATA_SIZE // 2)
        eng.wr(A.UC_ARM64_REG_X30, DATA_BASE + DATA_SIZE // 2)
        eng.wr(A.UC_ARM64_REG_SP, DATA_BASE + DATA_SIZE // 2)
        self._set_el(self.state.el)
        try:
            self.uc.emu_start(CODE_BASE + 8 * i, 0, 0, 1)
        except UcError as e:
            return e.errno
        return 0


def _libname() -> str:
    from unicorn.unicorn_py3.unicorn import uclib
    return uclib._name
