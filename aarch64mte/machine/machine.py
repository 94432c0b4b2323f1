"""The Machine: Unicorn for ordinary A64, Python for everything MTE, one run loop.

How an MTE-relevant event reaches the semantics:
- MTE instructions, MTE system registers and DC G*VA are UNDEFINED in Unicorn and arrive at the
  interrupt hook (intno 1) with PC at the instruction: decode (``isa``), run the semantics
  against this machine as their ``Cpu``, PC += 4.
- Loads and stores: the translation (fill hook) sends a page to the plain RAM mapping when no
  access through that pointer tag can fail a check (Untagged, unchecked, or every granule holds
  the pointer's tag), otherwise to the tag alias, where the tag-check hook checks the whole
  footprint of the instruction granule by granule at its first access.
- DC ZVA is executed natively by Unicorn without memory hooks: the SYS hook catches it.
- Exceptions are entered in Python; ERET runs natively, with a code hook on each ERET restoring
  PSTATE.TCO from SPSR_EL1 bit 25.
"""
from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional

from unicorn import (UcError, UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_INTR, UC_HOOK_MEM_READ,
                     UC_HOOK_MEM_WRITE, UC_HOOK_TLB_FILL, UC_MEM_FETCH, UC_MEM_WRITE)
from unicorn import arm64_const as A

from .. import isa
from ..semantics import faults, syndrome
from ..semantics.execute import execute as execute_mte
from ..semantics.tags import TagStorage, TagStorageError
from . import checks, profiles
from .adapter import Engine
from .board import Board, HLT_SEMIHOST, SemihostExit
from .counters import Counters
from .exceptions import ExceptionRecord, TagFault, vector_offset, EC_SVC64, EC_BRK, EC_UNKNOWN
from .memory import (ALIAS_FLAG, ALIAS_MASK, ALIAS_SHIFT, RAM_BASE, RAM_SIZE_DEFAULT,
                     UART_BASE, UART_SIZE, Ram, alias)
from .sysregs import (BY_ENCODING, ENCODINGS, ID_AA64PFR1_MTE3, MteRegs, UC_IDS)
from .translation import (FETCH, READ, WRITE, PROT_R, PROT_W, PROT_X, Regime, Stage1,
                          Translation, WalkFault, strip_tag, tbi_applies)

MASK64 = (1 << 64) - 1
PAGE_BITS = 10                      # Unicorn's target page (1 KiB) for ARM
PAGE = 1 << PAGE_BITS
ERET_WORDS = (0xD69F03E0, 0xD69F0BFF, 0xD69F0FFF)     # ERET, ERETAA, ERETAB
X_REGS = [A.UC_ARM64_REG_X0 + i for i in range(29)] + [A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30]
TRANSLATION_REGS = {ENCODINGS[n] for n in ("SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1",
                                           "MAIR_EL1")}
DC_ZVA = (1, 3, 7, 4, 1)
PSTATE_UAO = 1 << 23                # LDTR/STTR at EL1 behave as ordinary accesses
NO_VECTORS = 0                      # reset VBAR_EL1: "no guest vectors: stop and report"


@dataclass
class WatchHit:
    """The watch that stopped a run and the instruction whose access hit it."""
    va: int
    length: int
    kind: str             # 'data' | 'tag'
    pc: int               # address of the accessing instruction


@dataclass
class RunResult:
    reason: str
    code: Optional[int] = None
    exception: Optional[ExceptionRecord] = None
    pc: int = 0
    watch: Optional[WatchHit] = None


class _Stop(Exception):
    pass


class Machine:
    """One AArch64 CPU with FEAT_MTE3 on the ``virt`` board memory map."""

    def __init__(self, profile: Optional[str] = "snippet", el: int = 1, tcf="sync",
                 gmid_bs: int = 4, seed: int = 0, count_classes: bool = False,
                 ram_size: int = RAM_SIZE_DEFAULT) -> None:
        if profile not in (None, "snippet", "virt"):
            raise ValueError(f"unknown profile {profile!r} (snippet, virt)")
        if el not in (0, 1):
            raise ValueError("el must be 0 or 1")
        if isinstance(tcf, str):
            if tcf not in profiles.TCF_CODES:
                raise ValueError(f"unknown tcf {tcf!r} (none, sync, async, asymm)")
            tcf = profiles.TCF_CODES[tcf]
        if not 2 <= gmid_bs <= 6:
            raise ValueError("gmid_bs must be 2..6")
        self.profile = profile
        self.start_el = el
        self.tcf = tcf
        self.seed = seed
        self.count_classes = count_classes
        self.eng = Engine()
        self.uc = self.eng.uc
        self.ram = Ram(self.eng, RAM_BASE, ram_size)
        self.tags = TagStorage([(RAM_BASE, ram_size)], page_size=PAGE, on_change=self._tags_changed)
        self.mte = MteRegs(gmid_bs=gmid_bs)
        self.counters = Counters()
        self.exception_log: List[ExceptionRecord] = []
        self.tag_faults: List[TagFault] = []
        self._console: List[str] = []
        self.on_output = None               # optional callable(str): live console output
        self.stop_on_exception = False      # stop at the entry of every synchronous exception
        self._tagged_cache = None
        self.image = None
        self.symbols: Dict[str, int] = {}
        self.text_end = 0
        self.board = Board(self.read_mem, self.write_mem, self._output)
        self.stage1 = Stage1(self.ram.read64)
        self._regime: Optional[Regime] = None
        self._fast_pages = set()            # PA pages a plain mapping was given for, by tags
        self._code_pa: Dict[int, int] = {}  # VA page -> PA page for instruction fetches here
        self._pending = None                # event left by a hook for the run loop
        self._fill_fault = None
        self._stop_requested = False
        self._lock = threading.Lock()
        self._breakpoints: Dict[int, int] = {}
        self._bp_skip = None
        self._watches = []
        self._watch_pages = set()           # PA pages (1 KiB) holding a data watch
        self._watch_trap = None             # a write to one of them was refused
        self._watch_pass = False            # ... and now runs alone, writable
        self._watch_step_pc = 0             # the instruction that runs alone
        self._data_hit = None               # a watch hit by a write the machine made
        self._eret_hooks: Dict[int, int] = {}
        self._end_hook = None
        self._blocks: Dict[bytes, tuple] = {}   # block code -> decoded classes and bytes
        self._class_block = None                # (addr, size, entries) of the last block
        self._in_fault = False
        self._cursor = [-1, -1, 0, -1, 0, 0]
        self._rng_state = (seed or 0x5EED) & MASK64
        self._setup_engine()
        self._reset_common()

    # ======================================================================================
    # Setup
    # ======================================================================================
    def _setup_engine(self) -> None:
        uc, eng = self.uc, self.eng
        # TBI needs EL1 to be non-secure AArch64 with EL2 set to AArch64 for EL1.
        eng.cp_write(*ENCODINGS["SCR_EL3"], (1 << 10) | 1)
        eng.cp_write(*ENCODINGS["HCR_EL2"], 1 << 31)
        uc.mmio_map(UART_BASE, UART_SIZE,
                    lambda u, off, size, ud: self.board.uart_read(off, size), None,
                    lambda u, off, size, val, ud: self.board.uart_write(off, size, val), None)
        uc.hook_add(UC_HOOK_TLB_FILL, self._on_fill)
        # The tag-check hook is added the first time a page needs checking: any memory hook
        # slows every access, so programs that never need one run without it.
        self._check_hook = None
        self._need_check_hook = False
        uc.hook_add(UC_HOOK_INTR, self._on_intr)
        uc.hook_add(UC_HOOK_INSN, self._on_mrs, aux1=A.UC_ARM64_INS_MRS)
        uc.hook_add(UC_HOOK_INSN, self._on_msr, aux1=A.UC_ARM64_INS_MSR)
        uc.hook_add(UC_HOOK_INSN, self._on_sys, aux1=A.UC_ARM64_INS_SYS)
        eng.install_counter(self._py_block_counter)
        if self.count_classes:                      # after the counter: it reads its state
            uc.hook_add(UC_HOOK_BLOCK, self._on_block_classes)

    def _reset_common(self) -> None:
        eng = self.eng
        self.mte.gcr_el1 = 0
        self.mte.rgsr_el1 = ((self.seed & 0xFFFF) or profiles.SNIPPET_SEED) << 8
        self.mte.tfsr_el1 = self.mte.tfsre0_el1 = 0
        self.mte.tco = 0
        eng.cp_write(*ENCODINGS["SCTLR_EL1"], profiles.SCTLR_RESET)
        eng.cp_write(*ENCODINGS["CPACR_EL1"], 3 << 20)
        eng.wr(A.UC_ARM64_REG_VBAR_EL1, NO_VECTORS)
        self._set_pstate(0x3C5)

    def _py_block_counter(self, uc, addr, size, ud) -> None:
        c = self.eng.counter
        n = size >> 2
        if c.insns + n > c.limit:
            c.hit_limit = 1
            c.last_addr, c.last_size = addr, 0
            self.eng.emu_stop()
            return
        c.insns += n
        c.last_addr, c.last_size = addr, size

    # ======================================================================================
    # Loading
    # ======================================================================================
    def load(self, path: str):
        """Load an assembly source (.S/.s: assembled) or an ELF file; returns the Image."""
        ext = os.path.splitext(path)[1]
        if ext in (".s", ".S", ".asm"):
            from ..assembler import assemble_file
            image = assemble_file(path)
            kind = "snippet"
        else:
            from ..elf import load_elf
            image = load_elf(path)
            kind = "virt"
        if self.profile is None:
            self.profile = kind
        self.load_image(image)
        return image

    def load_image(self, image) -> None:
        """Place the image's segments, set PC to its entry and apply the profile."""
        if self.profile is None:
            self.profile = "snippet"
        self.image = image
        self.symbols = dict(image.symbols)
        self.text_end = image.text_end
        self._hook_text_end()
        for seg in image.segments:
            self.write_mem(seg.addr, seg.data, physical=True)
            self._hook_erets(seg.addr, seg.data)
        if self.profile == "snippet":
            self._apply_snippet()
        else:
            self._apply_virt()
        self.eng.wr(A.UC_ARM64_REG_PC, image.entry)
        self._invalidate()

    def _apply_snippet(self) -> None:
        eng = self.eng
        table_pa, table = profiles.snippet_tables(self.ram.base, self.ram.size, self.start_el == 0)
        self.ram.write(table_pa, table)
        eng.cp_write(*ENCODINGS["MAIR_EL1"], profiles.SNIPPET_MAIR)
        eng.cp_write(*ENCODINGS["TCR_EL1"], profiles.SNIPPET_TCR)
        eng.cp_write(*ENCODINGS["TTBR0_EL1"], table_pa)
        eng.cp_write(*ENCODINGS["TTBR1_EL1"], 0)
        eng.cp_write(*ENCODINGS["SCTLR_EL1"], profiles.snippet_sctlr(self.tcf))
        stack = table_pa - profiles.STACK_GAP
        eng.wr(A.UC_ARM64_REG_X30, self.text_end)
        if self.start_el == 0:
            eng.wr(A.UC_ARM64_REG_SP_EL1, stack)
            eng.wr(A.UC_ARM64_REG_SP_EL0, stack - 0x10_0000)
            self._set_pstate(0x000)          # EL0t
            eng.wr(A.UC_ARM64_REG_SP, stack - 0x10_0000)
        else:
            self._set_pstate(0x3C5)          # EL1h, DAIF masked
            eng.wr(A.UC_ARM64_REG_SP, stack)

    def _apply_virt(self) -> None:
        eng = self.eng
        eng.cp_write(*ENCODINGS["SCTLR_EL1"], profiles.SCTLR_RESET)
        eng.cp_write(*ENCODINGS["TCR_EL1"], 0)
        eng.cp_write(*ENCODINGS["MAIR_EL1"], 0)
        eng.cp_write(*ENCODINGS["CPACR_EL1"], 0)
        self._set_pstate(0x3C5)
        self.mte.rgsr_el1 = 0

    def _hook_text_end(self) -> None:
        """Stop at the end of .text with a code hook bounded to that address (the engine
        has no exit addresses: see ``Engine``)."""
        if self._end_hook is not None:
            self.uc.hook_del(self._end_hook)
            self._end_hook = None
        if self.text_end:
            a = self.text_end
            self._end_hook = self.uc.hook_add(UC_HOOK_CODE, self._on_text_end, begin=a, end=a)
        self.uc.ctl_flush_tb()

    def _on_text_end(self, uc, addr, size, ud) -> None:
        self.eng.emu_stop()

    def _hook_erets(self, addr: int, data: bytes) -> None:
        for off in range(0, len(data) - 3, 4):
            w = int.from_bytes(data[off:off + 4], "little")
            if w in ERET_WORDS and addr + off not in self._eret_hooks:
                a = addr + off
                self._eret_hooks[a] = self.uc.hook_add(UC_HOOK_CODE, self._on_eret, begin=a, end=a)

    # ======================================================================================
    # Registers
    # ======================================================================================
    def _pstate(self) -> int:
        return self.eng.rd(A.UC_ARM64_REG_PSTATE)

    def _set_pstate(self, value: int) -> None:
        eng = self.eng
        eng.wr(A.UC_ARM64_REG_PSTATE, value)
        tcr = ENCODINGS["TCR_EL1"]
        eng.cp_write(*tcr, eng.cp_read(*tcr))      # makes Unicorn rebuild its cached flags

    @property
    def el(self) -> int:
        return (self._pstate() >> 2) & 3

    def _sp_bank(self, pstate: int) -> int:
        """Unicorn id of the SP_ELx that holds the current SP for a PSTATE value."""
        if pstate & 1:
            return (A.UC_ARM64_REG_SP_EL0, A.UC_ARM64_REG_SP_EL1, A.UC_ARM64_REG_SP_EL2,
                    A.UC_ARM64_REG_SP_EL3)[(pstate >> 2) & 3]
        return A.UC_ARM64_REG_SP_EL0

    def reg(self, name: str) -> int:
        n = name.lower()
        eng = self.eng
        if n[0] == "x" and n[1:].isdigit():
            return eng.rd(X_REGS[int(n[1:])])
        if n[0] == "w" and n[1:].isdigit():
            return eng.rd(X_REGS[int(n[1:])]) & 0xFFFFFFFF
        if n in ("sp", "pc", "nzcv", "fpsr", "fpcr"):
            return eng.rd({"sp": A.UC_ARM64_REG_SP, "pc": A.UC_ARM64_REG_PC,
                           "nzcv": A.UC_ARM64_REG_NZCV, "fpsr": A.UC_ARM64_REG_FPSR,
                           "fpcr": A.UC_ARM64_REG_FPCR}[n])
        if n in ("lr", "fp"):
            return eng.rd(A.UC_ARM64_REG_X30 if n == "lr" else A.UC_ARM64_REG_X29)
        if n == "el":
            return self.el
        if n == "tco":
            return self.mte.tco
        if n == "pstate":
            return self._pstate() | (self.mte.tco << 25)
        if n == "spsel":
            return self._pstate() & 1
        if n in ("sp_el0", "sp_el1", "sp_el2"):
            uid = {"sp_el0": A.UC_ARM64_REG_SP_EL0, "sp_el1": A.UC_ARM64_REG_SP_EL1,
                   "sp_el2": A.UC_ARM64_REG_SP_EL2}[n]
            if self._sp_bank(self._pstate()) == uid:
                return eng.rd(A.UC_ARM64_REG_SP)
            return eng.rd(uid)
        if n[0] in "vq" and n[1:].isdigit():
            return eng.rd128(A.UC_ARM64_REG_Q0 + int(n[1:]))
        return self.sysreg(name.upper())

    def set_reg(self, name: str, value: int) -> None:
        n = name.lower()
        eng = self.eng
        if n[0] == "x" and n[1:].isdigit():
            eng.wr(X_REGS[int(n[1:])], value)
        elif n in ("sp", "pc", "nzcv", "fpsr", "fpcr"):
            eng.wr({"sp": A.UC_ARM64_REG_SP, "pc": A.UC_ARM64_REG_PC,
                    "nzcv": A.UC_ARM64_REG_NZCV, "fpsr": A.UC_ARM64_REG_FPSR,
                    "fpcr": A.UC_ARM64_REG_FPCR}[n], value)
        elif n in ("lr", "fp"):
            eng.wr(A.UC_ARM64_REG_X30 if n == "lr" else A.UC_ARM64_REG_X29, value)
        elif n == "el":
            ps = self._pstate()
            self._switch_pstate(ps, (ps & ~0xF) | ((value & 3) << 2) | (1 if value else 0))
        elif n == "tco":
            self.set_tco(value & 1)
        elif n == "spsel":
            ps = self._pstate()
            if ps & 0xC:                    # EL0 has only SP_EL0
                self._switch_pstate(ps, (ps & ~1) | (value & 1))
        elif n in ("sp_el0", "sp_el1", "sp_el2"):
            uid = {"sp_el0": A.UC_ARM64_REG_SP_EL0, "sp_el1": A.UC_ARM64_REG_SP_EL1,
                   "sp_el2": A.UC_ARM64_REG_SP_EL2}[n]
            if self._sp_bank(self._pstate()) == uid:
                eng.wr(A.UC_ARM64_REG_SP, value)
            else:
                eng.wr(uid, value)
        elif n[0] in "vq" and n[1:].isdigit():
            eng.wr128(A.UC_ARM64_REG_Q0 + int(n[1:]), value)
        else:
            self.set_sysreg(name.upper(), value)

    def _switch_pstate(self, old: int, new: int) -> None:
        """Write PSTATE with SP banking as an exception entry/return does."""
        eng = self.eng
        ob, nb = self._sp_bank(old), self._sp_bank(new)
        if ob != nb:
            eng.wr(ob, eng.rd(A.UC_ARM64_REG_SP))
            sp = eng.rd(nb)
            self._set_pstate(new)
            eng.wr(A.UC_ARM64_REG_SP, sp)
        else:
            self._set_pstate(new)
        self._invalidate()

    # --- system registers -----------------------------------------------------------------
    def sysreg(self, name: str) -> int:
        name = name.upper()
        if name in ("GCR_EL1", "RGSR_EL1", "TFSR_EL1", "TFSRE0_EL1", "GMID_EL1", "TCO"):
            return self.mte.read(name)
        if name == "ID_AA64PFR1_EL1":
            return (self.eng.cp_read(*ENCODINGS[name]) & ~(0xF << 8)) | ID_AA64PFR1_MTE3
        if name in UC_IDS:
            if name == "SP_EL0" or name == "SP_EL1":
                return self.reg(name)
            return self.eng.rd(UC_IDS[name])
        if name in ENCODINGS:
            return self.eng.cp_read(*ENCODINGS[name])
        raise KeyError(f"unknown system register {name}")

    def set_sysreg(self, name: str, value: int) -> None:
        name = name.upper()
        if name in ("GCR_EL1", "RGSR_EL1", "TFSR_EL1", "TFSRE0_EL1", "GMID_EL1", "TCO"):
            self.mte.write(name, value)
            if name == "TCO":
                self._invalidate()
            return
        if name in UC_IDS and name not in ("SP_EL0", "SP_EL1"):
            self.eng.wr(UC_IDS[name], value)
        elif name in ("SP_EL0", "SP_EL1"):
            self.set_reg(name, value)
        elif name in ENCODINGS:
            self.eng.cp_write(*ENCODINGS[name], value)
        else:
            raise KeyError(f"unknown system register {name}")
        if ENCODINGS.get(name) in TRANSLATION_REGS or name == "HCR_EL2":
            self._invalidate()

    # ======================================================================================
    # The Cpu protocol (semantics/cpu.py) over the engine
    # ======================================================================================
    def x(self, n: int) -> int:
        return 0 if n == 31 else self.eng.rd(X_REGS[n])

    def set_x(self, n: int, value: int) -> None:
        if n != 31:
            self.eng.wr(X_REGS[n], value)

    def sp(self) -> int:
        return self.eng.rd(A.UC_ARM64_REG_SP)

    def set_sp(self, value: int) -> None:
        self.eng.wr(A.UC_ARM64_REG_SP, value)

    def x_or_sp(self, n: int) -> int:
        return self.eng.rd(A.UC_ARM64_REG_SP if n == 31 else X_REGS[n])

    def set_x_or_sp(self, n: int, value: int) -> None:
        self.eng.wr(A.UC_ARM64_REG_SP if n == 31 else X_REGS[n], value)

    def set_nzcv(self, value: int) -> None:
        self.eng.wr(A.UC_ARM64_REG_NZCV, value)

    @property
    def tco(self) -> int:
        return self.mte.tco

    def set_tco(self, value: int) -> None:
        if self.mte.tco != value:
            self.mte.tco = value
            self._invalidate()

    def el2_enabled(self) -> bool:
        return False                 # the virt board without virtualization: no EL2

    def tag_access_enabled(self, el: int) -> bool:
        sctlr = self._regs().sctlr
        return bool((sctlr >> (42 if el == 0 else 43)) & 1)

    def _data_translate(self, va: int, write: bool, el: Optional[int] = None) -> Translation:
        t = self.stage1.translate(va, self.el if el is None else el, WRITE if write else READ,
                                  self._regs())
        if isinstance(t, WalkFault):
            raise faults.TranslationFault(va, write, t.dfsc)
        if not (self.ram.contains(t.pa) or UART_BASE <= t.pa < UART_BASE + UART_SIZE):
            raise faults.TranslationFault(va, write, syndrome.FSC_SYNC_EXTERNAL)
        return t

    def mem_tag_read(self, va: int) -> int:
        t = self._data_translate(va, False)
        if not t.tagged or not self.ram.contains(t.pa) or not self.tag_access_enabled(self.el):
            return 0
        return self.tags.get(t.pa)

    def mem_tag_write(self, va: int, tag: int) -> None:
        t = self._data_translate(va, True)
        if t.tagged and self.ram.contains(t.pa) and self.tag_access_enabled(self.el):
            self.tags.set(t.pa, tag)

    def mem_tags_read(self, va: int, count: int):
        return [self.mem_tag_read(va + 16 * i) for i in range(count)]

    def mem_tags_write(self, va: int, tags) -> None:
        # one translation per page, then the tags in bulk
        i, n = 0, len(tags)
        en = self.tag_access_enabled(self.el)
        while i < n:
            a = va + 16 * i
            t = self._data_translate(a, True)
            k = min(n - i, ((a | 0xFFF) + 1 - a + 15) // 16)
            if t.tagged and en and self.ram.contains(t.pa):
                self.tags.set_range(t.pa, tags[i:i + k])
            i += k

    def mem_write_unchecked(self, va: int, data: bytes) -> None:
        n, off = len(data), 0
        if self.count_classes:
            self.counters.data_bytes_written += n      # STGP, STZG, STZGM, DC GZVA
        while off < n:
            a = va + off
            k = min(n - off, (a | 0xFFF) + 1 - a)
            t = self._data_translate(a, True)
            if self._watch_pages:
                self._note_data_write(t.pa, k)
            if self.ram.contains(t.pa, k):
                self.ram.write(t.pa, data[off:off + k])
            else:
                self.eng.mem_write(t.pa, data[off:off + k])
            off += k

    def random_tag(self) -> int:
        # xorshift64: deterministic for a given seed
        x = self._rng_state
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        self._rng_state = x
        return x & 0xF

    # ======================================================================================
    # Memory and tags (the public API)
    # ======================================================================================
    def _regs(self) -> Regime:
        r = self._regime
        if r is None:
            cp = self.eng.cp_read
            r = self._regime = Regime(cp(*ENCODINGS["SCTLR_EL1"]), cp(*ENCODINGS["TCR_EL1"]),
                                      cp(*ENCODINGS["TTBR0_EL1"]), cp(*ENCODINGS["TTBR1_EL1"]),
                                      cp(*ENCODINGS["MAIR_EL1"]))
        return r

    def translate(self, va: int, write: bool = False) -> Optional[int]:
        """The PA the current stage-1 translation gives ``va`` (tag bits ignored), or None."""
        t = self.stage1.translate(va, self.el, WRITE if write else READ, self._regs())
        return None if isinstance(t, WalkFault) else t.pa

    def _pa_of(self, va: int, physical: bool) -> int:
        if physical:
            return va
        tcr = self._regs().tcr
        t = self.stage1.translate(strip_tag(va, tcr | (3 << 37)), 1, READ, self._regs())
        if isinstance(t, WalkFault):
            raise ValueError(f"address {va:#x} is not mapped ({t.kind} fault, level {t.level})")
        return t.pa

    def read_mem(self, va: int, n: int, physical: bool = False) -> bytes:
        out = bytearray()
        while n > 0:
            k = min(n, (va | 0xFFF) + 1 - va)
            pa = self._pa_of(va, physical)
            if self.ram.contains(pa, k):
                out += self.ram.read(pa, k)
            else:
                out += self.eng.mem_read(pa, k)
            va += k
            n -= k
        return bytes(out)

    def write_mem(self, va: int, data: bytes, physical: bool = False) -> None:
        data = bytes(data)
        off = 0
        while off < len(data):
            a = va + off
            k = min(len(data) - off, (a | 0xFFF) + 1 - a)
            pa = self._pa_of(a, physical)
            if self.ram.contains(pa, k):
                self.ram.write(pa, data[off:off + k])
            else:
                self.eng.mem_write(pa, data[off:off + k])
            off += k

    def _tag_pa(self, va: int) -> Optional[int]:
        tcr = self._regs().tcr
        t = self.stage1.translate(strip_tag(va, tcr | (3 << 37)), 1, READ, self._regs())
        if isinstance(t, WalkFault) or not t.tagged or not self.ram.contains(t.pa):
            return None
        return t.pa

    def read_tags(self, va: int, length: int) -> List[int]:
        """One allocation tag per granule covering [va, va + length) (0 for Untagged memory)."""
        g0 = va & ~0xF
        n = max(1, (va + max(length, 1) - g0 + 15) // 16)
        out = []
        for i in range(n):
            pa = self._tag_pa(g0 + 16 * i)
            out.append(0 if pa is None else self.tags.get(pa))
        return out

    def write_tags(self, va: int, tags) -> None:
        g0 = va & ~0xF
        for i, t in enumerate(tags):
            pa = self._tag_pa(g0 + 16 * i)
            if pa is not None:
                self.tags.set(pa, t)

    def is_tagged(self, va: int) -> bool:
        return self._tag_pa(va) is not None

    def tagged_regions(self) -> List[tuple]:
        """[(va_start, va_end), ...]: the virtual ranges the current stage-1 translation maps
        as Normal Tagged memory onto RAM (empty with the MMU off). Cached until the next run
        or translation change."""
        if self._tagged_cache is None:
            out = []
            for va, size, pa, tagged in self.stage1.leaves(self._regs()):
                if not tagged or not self.ram.contains(pa):
                    continue
                # clip a block to the part backed by RAM
                lo = max(pa, self.ram.base)
                hi = min(pa + size, self.ram.end)
                start, end = va + (lo - pa), va + (hi - pa)
                if out and out[-1][1] == start:
                    out[-1] = (out[-1][0], end)
                else:
                    out.append((start, end))
            self._tagged_cache = out
        return list(self._tagged_cache)

    def symbolize(self, addr: int) -> Optional[str]:
        best = None
        for name, a in self.symbols.items():
            if a <= addr and (best is None or a > best[1]):
                best = (name, a)
        if best is None or addr - best[1] > 0x10000:
            return None
        return best[0] if addr == best[1] else f"{best[0]}+{addr - best[1]:#x}"

    @property
    def console(self) -> str:
        return "".join(self._console)

    def _output(self, text: str) -> None:
        self._console.append(text)
        if self.on_output is not None:
            self.on_output(text)

    # ======================================================================================
    # Translation (fill hook) and the fast/checked decision
    # ======================================================================================
    def _invalidate(self) -> None:
        self._regime = None
        self._tagged_cache = None
        self._code_pa.clear()
        self._fast_pages.clear()
        self.eng.flush_tlb()

    def _tags_changed(self, page_pa: int) -> None:
        fp = self._fast_pages
        if page_pa in fp or (page_pa - PAGE) in fp:
            self._invalidate()

    def _checkable(self, va: int, el: int, r: Regime) -> bool:
        """Can an access through ``va`` at ``el`` be tag-checked at all (AccessIsTagChecked
        without the per-instruction part)?"""
        if self.mte.tco:
            return False
        tcr = r.tcr
        upper = (va >> 55) & 1
        if not (tcr >> (38 if upper else 37)) & 1:                 # TBI
            return False
        if (tcr >> (58 if upper else 57)) & 1:                     # TCMA1 / TCMA0
            top = (va >> 55) & 0x1F
            if top == (0x1F if upper else 0):
                return False
        sctlr = r.sctlr
        if not (sctlr >> (42 if el == 0 else 43)) & 1:             # ATA0 / ATA
            return False
        return ((sctlr >> (38 if el == 0 else 40)) & 3) != 0       # TCF0 / TCF

    def _on_fill(self, uc, vaddr, access, entry, ud) -> bool:
        try:
            ps = self.eng.rd(A.UC_ARM64_REG_PSTATE)
            el = (ps >> 2) & 3
            acc = FETCH if access == UC_MEM_FETCH else WRITE if access == UC_MEM_WRITE else READ
            if el == 1 and acc != FETCH and not ps & PSTATE_UAO and self._unprivileged_at_pc():
                el = 0          # LDTR/STTR: EL0 permissions and EL0 tag-check rules
            r = self._regs()
            t = self.stage1.translate(vaddr, el, acc, r)
            if isinstance(t, WalkFault):
                self._fill_fault = (vaddr, acc, t.dfsc, el)
                return False
            pa = t.pa
            page = pa & ~(PAGE - 1)
            if self.ram.contains(pa):
                if t.tagged and self._checkable(vaddr, el, r):
                    ltag = (vaddr >> 56) & 0xF
                    if self.tags.uniform_tag(page, PAGE) == ltag and \
                            self._next_page_ok(vaddr, page, ltag, el, r):
                        self._fast_pages.add(page)
                    else:
                        if self._check_hook is None:
                            self._need_check_hook = True
                            return False             # refused: retried once the hook exists
                        page = alias(page, ltag)
            elif not (UART_BASE <= pa < UART_BASE + UART_SIZE):
                self._fill_fault = (vaddr, acc, syndrome.FSC_SYNC_EXTERNAL, el)
                return False
            perms = t.perms
            if (pa & ~(PAGE - 1)) in self._watch_pages and not self._watch_pass:
                # data watch: writes here fill as writes and are refused, then run alone
                if acc == WRITE:
                    self._watch_trap = vaddr
                    return False
                perms &= ~PROT_W
            entry.paddr = page
            entry.perms = perms
            return True
        except Exception as e:                       # never let a bug look like a fault
            self._pending = ("error", e)
            return False

    def _unprivileged_at_pc(self) -> bool:
        """Is the data access being filled made by an LDTR/STTR-family instruction? The
        engine fills those into the EL0 TLB (they use the EL0 translation index), so their
        entries never serve the EL1 accesses; the hook has no index argument but PC is at the
        accessing instruction."""
        info = checks.analyse(self._fetch_word(self.eng.rd(A.UC_ARM64_REG_PC)))
        return info is not None and info.unpriv

    def _next_page_ok(self, vaddr, page, ltag, el, r) -> bool:
        """An access starting near the end of this page may run up to 64 bytes into the next:
        the plain mapping is safe only if those granules hold the same tag (or are not checked)."""
        nva = (vaddr & ~(PAGE - 1)) + PAGE
        if nva & 0xFFF:
            npa = page + PAGE
            tagged = True
        else:
            t = self.stage1.translate(nva, el, READ, r)
            if isinstance(t, WalkFault) or not self.ram.contains(t.pa):
                return True
            npa, tagged = t.pa, t.tagged
        if not tagged or not self.ram.contains(npa, 64):
            return True
        if self.tags.uniform_tag(npa, 64) == ltag:
            self._fast_pages.add(npa & ~(PAGE - 1))   # its tags decide this page's mapping
            return True
        return False

    # ======================================================================================
    # The tag-check hook (alias ranges only)
    # ======================================================================================
    def _fetch_word(self, pc: int) -> int:
        vp = pc & ~0xFFF
        pp = self._code_pa.get(vp)
        if pp is None:
            t = self.stage1.translate(pc, self.el, FETCH, self._regs())
            if isinstance(t, WalkFault):
                return self.uc.mem_read(pc, 4) and int.from_bytes(self.uc.mem_read(pc, 4), "little")
            pp = self._code_pa[vp] = t.pa & ~0xFFF
        pa = pp | (pc & 0xFFF)
        if self.ram.contains(pa, 4):
            return struct.unpack_from("<I", self.ram.buf, pa - self.ram.base)[0]
        return int.from_bytes(self.eng.mem_read(pa, 4), "little")

    def _on_tagged_access(self, uc, access, addr, size, value, ud) -> None:
        try:
            self._tag_check(access, addr, size)
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()

    def _tag_check(self, access, addr, size) -> None:
        if self._in_fault:
            return
        eng = self.eng
        pa = addr & ALIAS_MASK
        ltag = (addr >> ALIAS_SHIFT) & 0xF
        write = access == UC_MEM_WRITE
        c = self.counters
        found = self._locate_access(pa, ltag, size, write)
        if found is None:
            return                                   # a later access of a checked instruction
        pc, info, va = found
        if info.rmw and write:
            return                                   # checked at its read
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        el = (ps >> 2) & 3
        ael = 0 if info.unpriv and not ps & PSTATE_UAO else el
        r = self._regs()
        if not info.checked or not self._checkable(va, ael, r):
            return
        n = max(info.size, size)
        reading = not write or info.rmw
        # granule by granule over the whole footprint
        g = va & ~0xF
        end = va + n
        c.tag_checks += 1
        while g < end:
            gva = g if g > va else va
            if (gva ^ va) & ~(PAGE - 1) == 0:
                gpa = (pa & ~(PAGE - 1)) | (gva & (PAGE - 1))
                tagged = True
            else:
                t = self.stage1.translate(gva, ael, WRITE if write else READ, r)
                if isinstance(t, WalkFault):
                    break                            # the engine reports that fault itself
                gpa, tagged = t.pa, t.tagged and self.ram.contains(t.pa)
            if tagged:
                atag = self.tags.get(gpa)
                if write:
                    c.checked_granules_written += 1
                else:
                    c.checked_granules_read += 1
                if atag != ltag:
                    tcf = (r.sctlr >> (38 if ael == 0 else 40)) & 3
                    mode = checks.fault_mode(tcf, reading, write or info.rmw)
                    f = TagFault(gva, ltag, atag, write or info.rmw, mode, pc, ael)
                    self.tag_faults.append(f)
                    if mode == "sync":
                        self._sync_tag_fault(f, info, va, n, ael)
                        return
                    if mode == "async":
                        bit = 1 << ((gva >> 55) & 1)
                        if ael == 0:
                            self.mte.tfsre0_el1 |= bit
                        else:
                            self.mte.tfsr_el1 |= bit
                        return
            g += 16

    def _locate_access(self, pa: int, ltag: int, size: int, write: bool):
        """Which instruction of the current block makes this access (PC is not kept up to date
        inside memory hooks). Registers hold the state just before that instruction, so the
        first memory instruction from the block cursor whose effective address reaches this
        access, and that makes accesses of this kind, is it. Returns (pc, info, va) at the
        first access of an instruction, None for its later accesses."""
        c = self.eng.counter
        blk, n = c.last_addr, c.last_size >> 2
        cur = self._cursor
        if cur[0] != c.insns or cur[1] != blk:
            cur = self._cursor = [c.insns, blk, 0, -1, 0, 0]
        i = cur[2]
        rd = self.eng.rd
        off = pa & (PAGE - 1)
        while i < n:
            pc = blk + 4 * i
            info = checks.analyse(self._fetch_word(pc))
            if info is not None and info.base is not None and info.cls != "system" and \
                    (info.writes if write else info.reads):
                fp = max(info.size, size)
                if i == cur[2] and cur[3] >= 0:
                    # the instruction at the cursor: more of its accesses still to come?
                    if cur[3] < cur[4] and ((off - cur[5]) & (PAGE - 1)) < fp:
                        cur[3] += size
                        return None
                else:
                    va = checks.effective_address(info, rd)
                    if ((va >> 56) & 0xF) == ltag and ((off - va) & (PAGE - 1)) < fp:
                        self._cursor = [c.insns, blk, i, size, fp * (2 if info.rmw else 1), va]
                        return pc, info, va
            i += 1
        return None

    def _sync_tag_fault(self, f: TagFault, info, va: int, n: int, el: int) -> None:
        """Stop before the access has effect: save what the engine may still change."""
        eng = self.eng
        saved_mem = []
        a, end = va, va + n
        r = self._regs()
        while a < end:
            k = min(end - a, (a | (PAGE - 1)) + 1 - a)
            t = self.stage1.translate(a, el, READ, r)
            if not isinstance(t, WalkFault) and self.ram.contains(t.pa, k):
                saved_mem.append((t.pa, self.ram.read(t.pa, k)))
            a += k
        saved_regs = [(uid, wide, eng.rd128(uid) if wide else eng.rd(uid))
                      for uid, wide in info.written]
        self._in_fault = True
        self._pending = ("tagfault", f, saved_mem, saved_regs)
        eng.emu_stop()

    # ======================================================================================
    # Trapped instructions
    # ======================================================================================
    def _on_intr(self, uc, intno, ud) -> None:
        try:
            self._intr(intno)
        except _Stop:
            self.eng.emu_stop()
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()

    def _intr(self, intno: int) -> None:
        eng = self.eng
        pc = eng.rd(A.UC_ARM64_REG_PC)
        if intno == 1:                              # UNDEFINED in Unicorn
            word = self._fetch_word(pc)
            insn = isa.decode(word)
            if insn is not None:
                self._run_mte(insn, pc)
                return
            if word == HLT_SEMIHOST:
                self._semihost(pc)
                return
            self._exception("undefined", syndrome.esr(EC_UNKNOWN, 0), None, pc, pc)
        elif intno == 2:                            # SVC: PC is already past it
            word = self._fetch_word(pc - 4)
            imm = (word >> 5) & 0xFFFF
            self._exception("svc", syndrome.esr(EC_SVC64, imm), None, pc, pc - 4)
        elif intno == 7:                            # BRK
            word = self._fetch_word(pc)
            imm = (word >> 5) & 0xFFFF
            self._exception("brk", syndrome.esr(EC_BRK, imm), None, pc, pc, code=imm)
        else:
            self._pending = ("stop", RunResult("exception", None, None, pc))
            raise _Stop

    def _run_mte(self, insn, pc: int) -> None:
        self.counters.mte_insns += 1
        tags = self.tags
        r0, w0 = tags.granules_read, tags.granules_written
        try:
            execute_mte(insn, self)
        except faults.ArchFault as f:
            self._arch_fault(f, pc)
            return
        finally:
            # allocation-tag storage traffic of the instruction (tag checks count apart)
            self.counters.tag_granules_read += tags.granules_read - r0
            self.counters.tag_granules_written += tags.granules_written - w0
        self._advance(pc)
        if self._watches and self._pending is None:
            self._check_watches_after(pc)

    def _arch_fault(self, f, pc: int) -> None:
        el = self.el
        if isinstance(f, faults.Undefined):
            self._exception("undefined", syndrome.esr(EC_UNKNOWN, 0), None, pc, pc)
        elif isinstance(f, faults.AlignmentFault):
            self._exception("data_abort", syndrome.data_abort_esr(syndrome.FSC_ALIGNMENT, f.write,
                            el == 1), f.va, pc, pc)
        elif isinstance(f, faults.TranslationFault):
            self._exception("data_abort", syndrome.data_abort_esr(f.dfsc, f.write, el == 1),
                            f.va, pc, pc)
        elif isinstance(f, faults.TagCheckFault):
            self._exception("data_abort", syndrome.data_abort_esr(syndrome.FSC_TAG_CHECK, f.write,
                            el == 1), f.va, pc, pc)
        elif isinstance(f, faults.SysRegTrap):
            self._exception("sysreg_trap", syndrome.esr(syndrome.EC_SYSREG, f.iss), None, pc, pc,
                            target_el=f.target_el)
        elif isinstance(f, getattr(faults, "SPAlignmentFault", ())):
            self._exception("sp_alignment", syndrome.esr(syndrome.EC_SP_ALIGN, 0), None, pc, pc)
        else:
            self._exception("undefined", syndrome.esr(EC_UNKNOWN, 0), None, pc, pc)

    def _semihost(self, pc: int) -> None:
        eng = self.eng
        op = eng.rd(A.UC_ARM64_REG_X0) & 0xFFFFFFFF
        arg = eng.rd(A.UC_ARM64_REG_X1)
        try:
            ret = self.board.semihost(op, arg)
        except SemihostExit as e:
            eng.wr(A.UC_ARM64_REG_PC, pc + 4)
            self._pending = ("stop", RunResult("semihost-exit", e.code, None, pc + 4))
            raise _Stop
        eng.wr(A.UC_ARM64_REG_X0, ret)
        self._advance(pc)

    def _advance(self, pc: int) -> None:
        """PC = pc + 4 from a hook; Unicorn does not notice `until` after a PC write."""
        self.eng.wr(A.UC_ARM64_REG_PC, pc + 4)
        if pc + 4 == self.text_end:
            self.eng.emu_stop()

    def _mte_sysreg_name(self, cp) -> Optional[str]:
        return BY_ENCODING.get((cp.op0, cp.op1, cp.crn, cp.crm, cp.op2))

    def _on_mrs(self, uc, reg, cp, ud) -> int:
        try:
            name = self._mte_sysreg_name(cp)
            if name == "ID_AA64PFR1_EL1":
                if self.el == 0:
                    return 0                       # UNDEFINED at EL0 (Unicorn says so)
                pc = self.eng.rd(A.UC_ARM64_REG_PC)
                rt = self._fetch_word(pc) & 31
                self.set_x(rt, self.sysreg(name))
                self._advance(pc)
                return 1
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()
        return 0

    def _on_msr(self, uc, reg, cp, ud) -> int:
        key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if key in TRANSLATION_REGS:
            self._regime = None
            self._code_pa.clear()
            self._fast_pages.clear()
            self.eng.flush_tlb()
        return 0

    def _on_sys(self, uc, reg, cp, ud) -> int:
        try:
            key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
            if key == DC_ZVA:
                return self._dc_zva(cp.val)
            if cp.op0 == 1 and cp.crn == 8:          # TLBI: our caches follow the guest's
                self._regime = None
                self._code_pa.clear()
                self._fast_pages.clear()
        except _Stop:
            self.eng.emu_stop()
            return 1
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()
            return 1
        return 0

    def _dc_zva(self, va: int) -> int:
        """DC ZVA: a tag-checked write of the DCZID_EL0 block holding ``va``."""
        eng = self.eng
        pc = eng.rd(A.UC_ARM64_REG_PC)
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        el = (ps >> 2) & 3
        size = 4 << (eng.cp_read(*ENCODINGS["DCZID_EL0"]) & 0xF)
        if el == 0 and not (self._regs().sctlr >> 14) & 1:      # SCTLR_EL1.DZE
            return 0                                            # Unicorn raises the trap
        base = va & ~(size - 1)
        r = self._regs()
        try:
            t0 = self._data_translate(base, True, el)
        except faults.ArchFault as f:
            self._arch_fault(faults.TranslationFault(va, True, f.dfsc), pc)
            return 1
        if t0.tagged and self._checkable(va, el, r):
            ltag = (va >> 56) & 0xF
            self.counters.tag_checks += 1
            for i in range(size // 16):
                gpa = t0.pa + 16 * i
                if self.ram.contains(gpa):
                    atag = self.tags.get(gpa)
                    self.counters.checked_granules_written += 1
                    if atag != ltag:
                        tcf = (r.sctlr >> (38 if el == 0 else 40)) & 3
                        mode = checks.fault_mode(tcf, False, True)
                        f = TagFault(va, ltag, atag, True, mode, pc, el)
                        self.tag_faults.append(f)
                        if mode == "sync":
                            self._exception("data_abort", syndrome.data_abort_esr(
                                syndrome.FSC_TAG_CHECK, True, el == 1), va, pc, pc, tag_fault=f)
                            return 1
                        bit = 1 << ((va >> 55) & 1)
                        if el == 0:
                            self.mte.tfsre0_el1 |= bit
                        else:
                            self.mte.tfsr_el1 |= bit
                        break
        if self._watch_pages:
            self._note_data_write(t0.pa, size)
        if self.ram.contains(t0.pa, size):
            self.ram.zero(t0.pa, size)
        else:
            eng.mem_write(t0.pa, bytes(size))
        if self.count_classes:
            self.counters.data_bytes_written += size
        self._advance(pc)
        if self._watches and self._pending is None:
            self._check_watches_after(pc)
        return 1

    # ======================================================================================
    # Exception entry and return
    # ======================================================================================
    def _has_vectors(self) -> bool:
        return self.eng.rd(A.UC_ARM64_REG_VBAR_EL1) != NO_VECTORS

    def _exception(self, kind: str, esr: int, far: Optional[int], preferred_return: int,
                   insn_pc: int, code: Optional[int] = None, target_el: int = 1,
                   tag_fault: Optional[TagFault] = None) -> None:
        """Take a synchronous exception to EL1 (or stop the run if there are no vectors)."""
        eng = self.eng
        ps = eng.rd(A.UC_ARM64_REG_PSTATE)
        from_el = (ps >> 2) & 3
        rec = ExceptionRecord(kind, (esr >> 26) & 0x3F, esr, far, max(target_el, from_el, 1),
                              from_el, insn_pc, tag_fault)
        self.exception_log.append(rec)
        if target_el > 1 or not self._has_vectors():
            if kind == "brk":
                res = RunResult("brk", code, rec, preferred_return)
            else:
                res = RunResult("exception", None, rec, preferred_return)
            eng.wr(A.UC_ARM64_REG_PC, preferred_return)
            self._pending = ("stop", res)
            raise _Stop
        self.counters.exceptions_taken += 1
        spsr = (ps & 0xFFFFFFFF & ~(1 << 25)) | (self.mte.tco << 25)
        eng.wr(A.UC_ARM64_REG_ELR_EL1, preferred_return)
        eng.cp_write(*ENCODINGS["SPSR_EL1"], spsr)
        eng.wr(A.UC_ARM64_REG_ESR_EL1, esr)
        if far is not None:
            eng.wr(A.UC_ARM64_REG_FAR_EL1, far)
        new = (ps & 0xF0000000) | (0xF << 6) | 0x5       # EL1h, DAIF masked, NZCV kept
        self.mte.tco = 1
        self._switch_pstate(ps, new)
        vbar = eng.rd(A.UC_ARM64_REG_VBAR_EL1)
        vector = vbar + vector_offset(from_el, 1, ps & 1)
        eng.wr(A.UC_ARM64_REG_PC, vector)
        if self.stop_on_exception:
            # stop at the vector: resuming runs the guest's handler
            self._pending = ("stop", RunResult("exception", None, rec, vector))
            raise _Stop

    def _on_eret(self, uc, addr, size, ud) -> None:
        """Before an ERET at EL1: PSTATE.TCO comes back from SPSR_EL1 bit 25."""
        try:
            el = self.el
            if el == 0:
                return
            spsr = self.eng.cp_read(*ENCODINGS["SPSR_EL1"])
            self.counters.exception_returns += 1
            tco = (spsr >> 25) & 1
            if tco != self.mte.tco:
                self.mte.tco = tco
            self._regime = None
            self._fast_pages.clear()
            self._code_pa.clear()
            self.eng.flush_tlb()
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()

    # ======================================================================================
    # Instruction classes (count_classes=True)
    # ======================================================================================
    def _on_block_classes(self, uc, addr, size, ud) -> None:
        """Count a block's instruction classes and the data bytes its loads and stores move,
        from the block's decoded instructions (``_fix_count`` takes back what a stop cut)."""
        c = self.eng.counter
        if c.last_addr != addr or c.last_size != size:
            return                                  # the counter stopped before this block
        try:
            entries, totals, rsum, wsum = self._block_info(addr, size)
        except Exception as e:
            self._pending = ("error", e)
            self.eng.emu_stop()
            return
        bc = self.counters.by_class
        for k, n in totals:
            bc[k] = bc.get(k, 0) + n
        self.counters.data_bytes_read += rsum
        self.counters.data_bytes_written += wsum
        self._class_block = (addr, size, entries)

    def _block_info(self, addr: int, size: int):
        code = b"".join(self._fetch_word(addr + i).to_bytes(4, "little")
                        for i in range(0, size, 4))
        hit = self._blocks.get(code)
        if hit is None:
            entries = tuple(self._static_class(int.from_bytes(code[i:i + 4], "little"))
                            for i in range(0, size, 4))
            totals = {}
            for k, _, _ in entries:
                totals[k] = totals.get(k, 0) + 1
            hit = self._blocks[code] = (entries, tuple(totals.items()),
                                        sum(e[1] for e in entries), sum(e[2] for e in entries))
        return hit

    @staticmethod
    def _static_class(word: int):
        """(class, data bytes read, data bytes written) of one instruction word; MTE
        instructions move their data in the trap path (``mem_write_unchecked``)."""
        insn = isa.decode(word)
        if insn is not None:
            k = insn.name.lower().replace(" ", "_")
            if k == "cmpp":
                k = "subps"
            if insn.name in ("MRS", "MSR", "MSR TCO imm") or k.startswith("dc_c"):
                k = "system"
            return k, 0, 0
        info = checks.analyse(word)
        if info is None:
            return "other", 0, 0
        return info.cls, info.rbytes, info.wbytes

    def _uncount_classes(self, a: int, s: int, keep: int, completed: bool) -> None:
        """The block at ``a`` (``s`` bytes) ran only its first ``keep`` instructions; the last
        of them did not complete its accesses unless ``completed``."""
        cb = self._class_block
        if cb is None or cb[0] != a or cb[1] != s:
            return
        entries = list(cb[2])
        bc = self.counters.by_class
        cnt = self.counters
        for k, r, w in entries[keep:]:
            bc[k] -= 1
            if not bc[k]:
                del bc[k]
            cnt.data_bytes_read -= r
            cnt.data_bytes_written -= w
        del entries[keep:]
        if keep and not completed:
            k, r, w = entries[-1]
            cnt.data_bytes_read -= r
            cnt.data_bytes_written -= w
            entries[-1] = (k, 0, 0)
        self._class_block = (a, 4 * keep, entries)

    # ======================================================================================
    # Debugging
    # ======================================================================================
    def add_breakpoint(self, addr: int) -> None:
        if addr not in self._breakpoints:
            self._breakpoints[addr] = self.uc.hook_add(UC_HOOK_CODE, self._on_breakpoint,
                                                       begin=addr, end=addr)

    def remove_breakpoint(self, addr: int) -> None:
        h = self._breakpoints.pop(addr, None)
        if h is not None:
            self.uc.hook_del(h)

    @property
    def breakpoints(self):
        return sorted(self._breakpoints)

    def _on_breakpoint(self, uc, addr, size, ud) -> None:
        if self._bp_skip == addr:
            self._bp_skip = None
            return
        self._bp_skip = None
        self._pending = ("stop", RunResult("breakpoint", None, None, addr))
        self.eng.emu_stop()

    def add_watch(self, va: int, length: int = 1, kind: str = "tag") -> None:
        """Stop a run right after an instruction writes data into [va, va + length)
        (``kind='data'``) or changes an allocation tag there (``kind='tag'``)."""
        if kind not in ("tag", "data"):
            raise ValueError("watch kind is 'tag' or 'data'")
        w = {"va": va, "length": max(1, length), "kind": kind, "hook": None}
        if kind == "tag":
            w["tags"] = self.read_tags(va, length)
        else:
            pas = []
            a, end = va, va + w["length"]
            while a < end:
                k = min(end - a, (a | 0xFFF) + 1 - a)
                pas.append((self._pa_of(a, False), k))
                a += k
            w["pas"] = pas
            w["hook"] = [self.uc.hook_add(UC_HOOK_MEM_WRITE, self._on_data_watch, w,
                                          begin=base + pa, end=base + pa + k - 1)
                         for pa, k in pas
                         for base in [0] + [ALIAS_FLAG | (t << ALIAS_SHIFT) for t in range(16)]]
        self._watches.append(w)
        self._watch_pages_changed()

    def remove_watch(self, va: int, length: int = 1, kind: Optional[str] = None) -> None:
        keep = []
        for w in self._watches:
            if w["va"] == va and (kind is None or w["kind"] == kind):
                for h in w["hook"] or ():
                    self.uc.hook_del(h)
            else:
                keep.append(w)
        self._watches = keep
        self._watch_pages_changed()

    def _watch_pages_changed(self) -> None:
        pages = set()
        for w in self._watches:
            for pa, k in w.get("pas", ()):
                pages.update(range(pa & ~(PAGE - 1), pa + k, PAGE))
        self._watch_pages = pages
        self._invalidate()

    @property
    def watches(self):
        return [(w["va"], w["length"], w["kind"]) for w in self._watches]

    def _hit(self, w, pc: int) -> WatchHit:
        return WatchHit(w["va"], w["length"], w["kind"], pc)

    def _check_watches_after(self, pc: int) -> None:
        """After the trapped instruction at ``pc``: did it hit a watch?"""
        hit = self._data_hit
        if hit is not None:
            self._data_hit = None
            self._pending = ("watch", self._hit(hit, pc))
            self.eng.emu_stop()
            return
        for w in self._watches:
            if w["kind"] == "tag":
                now = self.read_tags(w["va"], w["length"])
                if now != w["tags"]:
                    w["tags"] = now
                    self._pending = ("watch", self._hit(w, pc))
                    self.eng.emu_stop()
                    return

    def _note_data_write(self, pa: int, n: int) -> None:
        """A write the machine makes itself (MTE instructions, DC ZVA) to [pa, pa + n)."""
        for w in self._watches:
            for wpa, k in w.get("pas", ()):
                if wpa < pa + n and pa < wpa + k:
                    self._data_hit = w
                    return

    def _on_data_watch(self, uc, access, addr, size, value, w) -> None:
        # only while the instruction that wrote to a watched page runs alone
        if self._pending is None:
            self._pending = ("watch", self._hit(w, self._watch_step_pc))

    def request_stop(self) -> None:
        """Thread-safe: the current run (or, if none is running, the next one) returns with
        reason 'interrupt'."""
        self._stop_requested = True
        self.eng.counter.limit = 0          # the block counter stops the next block
        self.eng.emu_stop()

    # ======================================================================================
    # The run loop
    # ======================================================================================
    def run(self, max_insns: int = 10_000_000) -> RunResult:
        return self._run(max_insns, step=False)

    def step(self, n: int = 1) -> RunResult:
        """Execute exactly n instructions (an exception entry counts as one)."""
        return self._run(n, step=True)

    def _fix_count(self, pc: int, executed_at_pc: bool, completed: bool = True) -> None:
        """The block counter counted the whole block that a stop cut short. The instruction
        at ``pc`` counts if ``executed_at_pc`` (an exception entry counts as one); its data
        accesses count only if it also ``completed``."""
        c = self.eng.counter
        a, s = c.last_addr, c.last_size
        if s and a <= pc < a + s:
            keep = (pc - a) // 4 + (1 if executed_at_pc else 0)
            c.insns -= s // 4 - keep
            c.last_size = 4 * keep
            if self.count_classes:
                self._uncount_classes(a, s, keep, completed or not executed_at_pc)

    def _sync_counters(self) -> None:
        self.counters.insns = self.eng.counter.insns

    def _run(self, budget: int, step: bool) -> RunResult:
        eng = self.eng
        c = eng.counter
        limit = c.insns + max(0, budget)
        self._tagged_cache = None
        result = None
        until = self.text_end if self.text_end else MASK64
        finishing = step          # count instruction by instruction (Unicorn's count)
        limit_reason = "step" if step else "insn-limit"
        step_alone = False        # run one instruction with watched pages writable
        try:
            while result is None:
                pc = eng.rd(A.UC_ARM64_REG_PC)
                # the limit first: a request_stop from now on lowers it and is not lost
                c.limit = MASK64 if finishing else limit
                if self._stop_requested:
                    result = RunResult("interrupt", None, None, pc)
                    break
                remaining = limit - c.insns
                if remaining <= 0:
                    result = RunResult(limit_reason, None, None, pc)
                    break
                if self.text_end and pc == until:
                    result = RunResult("end", None, None, pc)
                    break
                c.hit_limit = 0
                c.last_size = 0
                self._pending = None
                self._fill_fault = None
                self._watch_trap = None
                if pc in self._breakpoints:
                    self._bp_skip = pc
                err = None
                try:
                    eng.emu_start(pc, 1 if step_alone else remaining if finishing else 0)
                except UcError as e:
                    err = e
                self._bp_skip = None
                pc = eng.rd(A.UC_ARM64_REG_PC)
                ev = self._pending
                self._pending = None
                if ev is not None:
                    kind = ev[0]
                    if kind == "error":
                        raise ev[1]
                    if kind == "tagfault":
                        self._deliver_tag_fault(ev, pc)
                        result = self._take_stop()
                        continue
                    if kind == "stop":
                        res = ev[1]
                        if res.reason == "semihost-exit":
                            self._fix_count(pc - 4, True)
                        elif res.exception is not None:
                            self._fix_count(res.exception.pc, True, completed=False)
                        else:
                            self._fix_count(pc, False)
                        res.pc = eng.rd(A.UC_ARM64_REG_PC)
                        result = res
                        break
                    if kind == "watch":
                        self._fix_count(pc, False)
                        result = RunResult("watchpoint", None, None, pc, ev[1])
                        break
                if step_alone:
                    step_alone = False
                    self._watch_pass = False
                    self._invalidate()
                if err is not None and self._watch_trap is not None:
                    # a write to a watched page: run that instruction alone, then look
                    self._watch_trap = None
                    self._fix_count(pc, False)
                    self._watch_pass = True
                    self._watch_step_pc = pc
                    self._invalidate()
                    step_alone = True
                    continue
                if err is not None and self._need_check_hook:
                    self._need_check_hook = False
                    self._check_hook = self.uc.hook_add(
                        UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, self._on_tagged_access,
                        begin=self.ram.alias_begin, end=self.ram.alias_end)
                    self.uc.ctl_flush_tb()
                    self._fix_count(pc, False)                  # it runs again
                    self._invalidate()
                    continue
                if err is not None and self._fill_fault is not None:
                    self._fix_count(pc, True, completed=False)
                    self._deliver_fill_fault(pc)
                    result = self._take_stop()
                    continue
                if self._stop_requested:
                    self._fix_count(pc, False)
                    result = RunResult("interrupt", None, None, pc)
                    break
                if err is not None:
                    self._fix_count(pc, True, completed=False)
                    rec = ExceptionRecord("engine", 0, 0, None, self.el, self.el, pc)
                    rec.error = str(err)
                    self.exception_log.append(rec)
                    result = RunResult("exception", None, rec, pc)
                    break
                if c.hit_limit:
                    finishing = True         # the next block would pass the budget
                    continue
                # emu_start returned on its own: PC reached `until`, or the count ran out
                self._fix_count(pc, False)
                if self.text_end and pc == until:
                    result = RunResult("end", None, None, pc)
                elif c.insns >= limit:
                    result = RunResult(limit_reason, None, None, pc)
        finally:
            self._stop_requested = False          # consumed by this run (or left by none)
            self._in_fault = False
            if self._watch_pass:
                self._watch_pass = False
                self._invalidate()
            self._sync_counters()
        return result

    def _take_stop(self) -> Optional[RunResult]:
        ev = self._pending
        if ev is not None and ev[0] == "stop":
            self._pending = None
            ev[1].pc = self.eng.rd(A.UC_ARM64_REG_PC)
            return ev[1]
        return None

    def _deliver_tag_fault(self, ev, pc: int) -> None:
        _, f, saved_mem, saved_regs = ev
        eng = self.eng
        for pa, data in saved_mem:
            self.ram.write(pa, data)
        for uid, wide, v in saved_regs:
            if wide:
                eng.wr128(uid, v)
            else:
                eng.wr(uid, v)
        eng.wr(A.UC_ARM64_REG_PC, f.pc)
        self._in_fault = False
        self._fix_count(f.pc, True, completed=False)
        el = self.el
        esr = syndrome.data_abort_esr(syndrome.FSC_TAG_CHECK, f.write, el == 1)
        try:
            self._exception("data_abort", esr, f.va, f.pc, f.pc, tag_fault=f)
        except _Stop:
            pass

    def _deliver_fill_fault(self, pc: int) -> None:
        vaddr, acc, dfsc, el = self._fill_fault
        self._fill_fault = None
        cur = self.el
        try:
            if acc == FETCH:
                esr = syndrome.instruction_abort_esr(dfsc, cur == 1)
                self._exception("instruction_abort", esr, pc if vaddr >> 10 == pc >> 10 else vaddr,
                                pc, pc)
            else:
                far = vaddr
                info = checks.analyse(self._fetch_word(pc))
                if info is not None and info.base is not None:
                    va = checks.effective_address(info, self.eng.rd)
                    if (va ^ vaddr) & ~(PAGE - 1) == 0:
                        far = va
                esr = syndrome.data_abort_esr(dfsc, acc == WRITE, cur == 1)
                self._exception("data_abort", esr, far, pc, pc)
        except _Stop:
            pass
