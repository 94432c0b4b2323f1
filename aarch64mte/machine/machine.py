"""The Machine: Unicorn for ordinary A64, the machine's parts for everything MTE, one run loop.

The machine is a composition of parts, each owning its state and calling the others only
through what they are given at construction:

- ``Engine`` (adapter.py)        the Unicorn instance and fast accessors; the one PC writer
- ``Core`` (native.py)           state shared with the native hooks: MTE registers, counters,
                                 block counter, soft TLB
- ``Ram`` (memory.py)            guest RAM and its tag aliases in the engine
- ``RegisterFile`` (registers.py)  registers by name, PSTATE, SP banking, system registers
- ``Mmu`` (mmu.py)               translation regime, stage 1, the TLB fill hook, caches
- ``TagUnit`` (tagunit.py)       allocation tags, fast pages, the tag check
- ``CpuView``/``MteUnit`` (cpu.py, mteunit.py)  MTE instructions and registers
- ``ExceptionUnit`` (exception_entry.py)  exception entry, ERET and PSTATE.TCO, the log
- ``Traps`` (traps.py)           the interrupt and system-instruction hooks
- ``CodeScanner`` (codescan.py)  words found in fetched code: ERETs, exits before words the
                                 engine cannot translate, the slow path's hooks
- ``SlowPath`` (slowpath.py)     instructions the engine gets wrong (alignment, signed
                                 LD<op>), finished in Python (atomics.py)
- ``Board`` (board.py)           PL011 UART and semihosting
- ``Counting`` (blocks.py)       instructions, classes and data bytes per block
- ``Debugging`` (debugging.py)   breakpoints and watches
- ``Provenance`` (provenance.py) who last wrote each granule's allocation tag, and a history
- ``HostInputs`` (hostinputs.py) the clocks and random numbers, as functions of the run

This module holds construction, loading, the public memory/tag/register API and the run loop.
Hooks report to the run loop through ``Events``. A run ends at the end of .text through a code
hook bounded to that address; the engine's exit addresses are the words it cannot translate.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

from unicorn import UcError, UC_HOOK_CODE
from unicorn import arm64_const as A

from ..semantics import faults, syndrome
from . import checks, engine_words, profiles
from . import native as native_lib
from .adapter import Engine
from .blocks import Counting
from .board import Board
from .codescan import CodeScanner
from .counters import Counters
from .cpu import CpuView
from .debugging import Debugging
from .events import Events
from .exception_entry import NO_VECTORS, ExceptionUnit
from .exceptions import ExceptionRecord
from .memory import PAGE, RAM_BASE, RAM_SIZE_DEFAULT, UART_BASE, UART_SIZE, HostMemory, Ram
from .mmu import Mmu
from .hostinputs import HostInputs
from .mteunit import MteUnit
from .provenance import DEFAULT_ENTRIES, SOURCES, Provenance
from .stage2 import Stage2
from .registers import MASK64, RegisterFile
from .results import RunResult, WatchHit, _Stop
from .slowpath import SlowPath
from .sysregs import ENCODINGS, ID_AA64PFR1_MTE3, CoreMteRegs, MteRegs
from .tagunit import TagUnit
from .translation import MAIR_NORMAL_TAGGED, PROT_R, READ, WRITE, Translation, WalkFault
from .traps import Traps

__all__ = ["Machine", "RunResult", "WatchHit"]

SLICE = 5_000_000                   # instructions per emu_start at most


class Machine:
    """One AArch64 CPU with FEAT_MTE3 on the ``virt`` board memory map."""

    def __init__(self, profile: Optional[str] = "snippet", el: int = 1, tcf="sync",
                 gmid_bs: int = 4, seed: int = 0, count_classes: bool = False,
                 ram_size: int = RAM_SIZE_DEFAULT, native: Optional[bool] = None,
                 el2: Optional[str] = None, hcr: Optional[dict] = None, stage2=None,
                 el2_handler=None, provenance: bool = True,
                 history: int = DEFAULT_ENTRIES) -> None:
        if profile not in (None, "snippet", "virt"):
            raise ValueError(f"unknown profile {profile!r} (snippet, virt)")
        if el not in (0, 1, 2):
            raise ValueError("el must be 0, 1 or 2")
        if el == 2 and el2 is None:
            el2 = "native"
        if el2 not in (None, "native", "shim"):
            raise ValueError(f"unknown el2 {el2!r} (native, shim)")
        if el == 2 and el2 != "native":
            raise ValueError("booting at EL2 runs the program's own EL2 code (el2='native')")
        self.el2 = el2                      # None: no EL2 (QEMU virt without virtualization)
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
        lib = None if native is False else native_lib.library()
        if native and lib is None:
            raise RuntimeError("the native extension is not built")
        self.native = lib is not None
        self.core = core = native_lib.new_core()
        self.eng = eng = Engine(core)
        self.uc = eng.uc
        self.events = events = Events()
        self.counters = Counters()
        self.ram = Ram(eng, RAM_BASE, ram_size)
        # the MTE registers live where the code that uses them most can reach them fastest
        self.mte = CoreMteRegs(core, gmid_bs) if lib is not None else MteRegs(gmid_bs)
        self.mte.rng = (seed or 0x5EED) & MASK64
        self.mmu = mmu = Mmu(eng, core, self.ram, events, lib, el2=el2 is not None)
        self.host_memory = HostMemory() if el2 == "shim" else None
        if el2 is not None:
            mmu.stage2 = Stage2(self._read_descriptor, lambda name: eng.cp_read(*ENCODINGS[name]))
        self.regs = regs = RegisterFile(eng, self.mte, mmu.invalidate, self._id_values(), mmu)
        self.tagunit = TagUnit(eng, core, self.ram, mmu, events, self.mte, lib)
        self.tags = self.tagunit.tags
        self.provenance = Provenance(core, self.ram, self.tags, history) if provenance else None
        self.exc = ExceptionUnit(eng, regs, mmu, events, self.counters, self.mte)
        self._console: List[str] = []
        self.on_output = None               # optional callable(str): live console output
        self.host_inputs = HostInputs(eng, lambda: self.counting.counter, seed)
        self.board = Board(self.read_mem, self.write_mem, self._output, self.host_inputs)
        self.cpu = CpuView(eng, core, regs, mmu, self.ram, self.tagunit,
                           on_data_write=lambda pa, n: self.debugging.note_data_write(pa, n))
        self.cpu.provenance = self.provenance
        self.mteunit = MteUnit(eng, core, mmu, self.cpu, lib)
        self.debugging = Debugging(eng, mmu, events, self.read_tags,
                                   lambda va: self._pa_of(va, False))
        self.counting = Counting(eng, core, self.counters,
                                 lambda pc: mmu.fetch_word(pc, regs.el), events, lib,
                                 count_classes)
        self.tagunit.counter = self.counting.counter
        self.debugging.counter = self.counting.counter
        self.debugging.mteunit = self.mteunit
        self.debugging.core = self.core
        if self.provenance is not None:
            self.provenance.counter = self.counting.counter
            self.provenance.where = lambda: (eng.pc(), self.regs.el)
        self.traps = Traps(eng, core, regs, mmu, self.tagunit, self.mteunit, self.exc,
                           self.board, events, self.debugging, lib, count_classes)
        self.traps.host_inputs = self.host_inputs
        self.slowpath = SlowPath(self)
        self.code = CodeScanner(eng, mmu, self.exc.on_eret, self.slowpath.on_emulate,
                                self.slowpath.on_check, self._alignment_enforced)
        self.traps.code = self.code
        self.traps.slowpath = self.slowpath
        self.exc.monitor = self.slowpath.monitor
        self._tagged_cache = None
        mmu.on_invalidate.append(self._forget_tagged_regions)
        self.image = None
        self.symbols: Dict[str, int] = {}
        self.text_end = 0
        self._limit = MASK64                 # the running budget's end (`_run`)
        self._end_hook = None
        self._setup_engine()
        self._reset_common()
        self.shim = None
        if el2 == "shim":
            from ..el2.shim import Shim
            self.shim = Shim(self, hcr, stage2, el2_handler)
            self.shim.install()
        elif hcr or stage2 is not None or el2_handler is not None:
            raise ValueError("hcr, stage2 and el2_handler are the shim's (el2='shim')")

    def _alignment_enforced(self) -> bool:
        """SCTLR_ELx.A = 1 in a regime the program can run in: every load and store is then
        alignment checked (``codescan``)."""
        cp = self.eng.cp_read
        a = cp(*ENCODINGS["SCTLR_EL1"]) >> 1 & 1
        if self.el2 is not None:
            a |= cp(*ENCODINGS["SCTLR_EL2"]) >> 1 & 1
        return bool(a)

    def _id_values(self) -> dict:
        """The ID registers as this machine implements them, where they differ from the
        engine's (its MAX CPU has no MTE, and EL2 and EL3 exist in it whatever the board)."""
        cp = self.eng.cp_read
        pfr0 = cp(*ENCODINGS["ID_AA64PFR0_EL1"])
        # no EL3; EL2 only on a board with it (QEMU virt's virtualization=on); EL0 and EL1
        # AArch64 only: the machine runs A64 alone, so an ERET to AArch32 is illegal (EL2's
        # field stays the engine's: without EL3 nothing can enter EL2 in AArch32)
        pfr0 &= ~(0xF << 12) & ~(0 if self.el2 is not None else 0xF << 8) & ~0xFF
        pfr0 |= 0x11
        pfr1 = (cp(*ENCODINGS["ID_AA64PFR1_EL1"]) & ~(0xF << 8)) | ID_AA64PFR1_MTE3
        # FEAT_LSE2 (ID_AA64MMFR2_EL1.AT): the alignment rules of ``semantics.alignment``;
        # FEAT_S2FWB (.FWB): stage 2's HCR_EL2.FWB encodings
        mmfr2 = (cp(*ENCODINGS["ID_AA64MMFR2_EL1"]) & ~(0xF << 32) & ~(0xF << 40)) \
            | (1 << 32) | (1 << 40)
        # FEAT_MTE_PERM (ID_AA64PFR2_EL1.MTEPERM): stage 2's NoTagAccess
        return {"ID_AA64PFR0_EL1": pfr0, "ID_AA64PFR1_EL1": pfr1, "ID_AA64MMFR2_EL1": mmfr2,
                "ID_AA64PFR2_EL1": 1}

    def _setup_engine(self) -> None:
        uc, eng = self.uc, self.eng
        # TBI needs EL1 to be non-secure AArch64 with EL2 set to AArch64 for EL1. With EL2 the
        # program (or the shim) owns HCR_EL2 and HVC reaches EL2 (SCR_EL3.HCE); without it
        # nothing may trap to an EL2 that is not there (HCR_EL2.API/APK).
        eng.cp_write(*ENCODINGS["SCR_EL3"], (1 << 10) | 1 | ((1 << 8) if self.el2 else 0))
        eng.cp_write(*ENCODINGS["HCR_EL2"], (1 << 31) | (0 if self.el2 else (3 << 40)))
        uc.mmio_map(UART_BASE, UART_SIZE,
                    lambda u, off, size, ud: self.board.uart_read(off, size), None,
                    lambda u, off, size, val, ud: self.board.uart_write(off, size, val), None)
        self.core.dczid_bytes = 4 << (eng.cp_read(*ENCODINGS["DCZID_EL0"]) & 0xF)

    def _read_descriptor(self, pa: int):
        """A translation table entry from RAM or host memory (None where there is neither)."""
        if self.ram.contains(pa):
            return self.ram.read_descriptor(pa)
        if self.host_memory is not None:
            return self.host_memory.read_descriptor(pa)
        return None

    def _reset_common(self) -> None:
        eng = self.eng
        self.mte.gcr_el1 = 0
        self.mte.rgsr_el1 = ((self.seed & 0xFFFF) or profiles.SNIPPET_SEED) << 8
        self.mte.tfsr_el1 = self.mte.tfsre0_el1 = 0
        self.mte.tco = 0
        eng.cp_write(*ENCODINGS["SCTLR_EL1"], profiles.SCTLR_RESET)
        eng.cp_write(*ENCODINGS["CPACR_EL1"], 3 << 20)
        eng.wr(A.UC_ARM64_REG_VBAR_EL1, NO_VECTORS)
        if self.el2 is not None:
            self.mte.tfsr_el2 = 0
            eng.cp_write(*ENCODINGS["SCTLR_EL2"], profiles.SCTLR_EL2_RESET)
            eng.wr(A.UC_ARM64_REG_VBAR_EL2, NO_VECTORS)
        self.regs.set_pstate(self._boot_pstate())

    def _boot_pstate(self) -> int:
        """ELxh with DAIF masked: EL2 when the program boots there, else EL1 (EL0t for the
        snippet profile's EL0 programs, set by _apply_snippet)."""
        return 0x3C9 if self.start_el == 2 else 0x3C5

    # --- loading ---------------------------------------------------------------------------------
    def load(self, path: str):
        """Load an assembly source (.S/.s: assembled) or an ELF file; returns the Image."""
        ext = os.path.splitext(path)[1]
        if ext in (".s", ".S", ".asm"):
            from ..assembler import assemble_file
            image = assemble_file(path)
            kind = "snippet"
        else:
            from ..elf import load_elf
            image = load_elf(path, max_bytes=self.ram.size)
            kind = "virt"
        if self.profile is None:
            self.profile = kind
        self.load_image(image)
        return image

    def load_image(self, image) -> None:
        """Place the image's segments, set PC to its entry and apply the profile."""
        if self.profile is None:
            self.profile = "snippet"
        from ..placement import fit            # every segment in RAM, or an InputError
        tables = self.ram.end - profiles.TABLES_SIZE if self.profile == "snippet" else None
        image = fit(image, self.ram.base, self.ram.end, tables,
                    "the snippet profile builds its page tables")
        self.image = image
        self.symbols = dict(image.symbols)
        self.text_end = image.text_end
        self._hook_text_end()
        for seg in image.segments:
            self.write_mem(seg.addr, seg.data, physical=True)
            self.code.scan_image(seg.addr, seg.data)
        if self.profile == "snippet":
            self._apply_snippet()
        else:
            self._apply_virt()
        self.eng.set_pc(image.entry)
        if self.shim is not None:
            self.shim.install()
        self.mmu.invalidate()

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
        if self.start_el == 2:
            # the same identity map for the EL2 regime, and EL1 left AArch64 for the program
            eng.cp_write(*ENCODINGS["MAIR_EL2"], profiles.SNIPPET_MAIR)
            eng.cp_write(*ENCODINGS["TCR_EL2"], profiles.SNIPPET_TCR_EL2)
            eng.cp_write(*ENCODINGS["TTBR0_EL2"], table_pa)
            eng.cp_write(*ENCODINGS["SCTLR_EL2"], profiles.snippet_sctlr_el2(self.tcf))
            self.mmu.set_hcr(1 << 31)
            self.regs.set_pstate(0x3C9)          # EL2h, DAIF masked
            eng.wr(A.UC_ARM64_REG_SP, stack)
        elif self.start_el == 0:
            eng.wr(A.UC_ARM64_REG_SP_EL1, stack)
            eng.wr(A.UC_ARM64_REG_SP_EL0, stack - 0x10_0000)
            self.regs.set_pstate(0x000)          # EL0t
            eng.wr(A.UC_ARM64_REG_SP, stack - 0x10_0000)
        else:
            self.regs.set_pstate(0x3C5)          # EL1h, DAIF masked
            eng.wr(A.UC_ARM64_REG_SP, stack)

    def _apply_virt(self) -> None:
        eng = self.eng
        eng.cp_write(*ENCODINGS["SCTLR_EL1"], profiles.SCTLR_RESET)
        eng.cp_write(*ENCODINGS["TCR_EL1"], 0)
        eng.cp_write(*ENCODINGS["MAIR_EL1"], 0)
        eng.cp_write(*ENCODINGS["CPACR_EL1"], 0)
        if self.el2 is not None:
            eng.cp_write(*ENCODINGS["SCTLR_EL2"], profiles.SCTLR_EL2_RESET)
            eng.cp_write(*ENCODINGS["TCR_EL2"], 0)
            eng.cp_write(*ENCODINGS["MAIR_EL2"], 0)
            self.mmu.set_hcr(profiles.HCR_EL2_RESET)
        self.regs.set_pstate(self._boot_pstate())
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

    # --- registers -------------------------------------------------------------------------------
    def reg(self, name: str) -> int:
        return self.regs.reg(name)

    def set_reg(self, name: str, value: int) -> None:
        self.regs.set_reg(name, value)

    def sysreg(self, name: str) -> int:
        return self.regs.sysreg(name)

    def set_sysreg(self, name: str, value: int) -> None:
        self.regs.set_sysreg(name, value)

    @property
    def el(self) -> int:
        return self.regs.el

    # --- memory and tags -------------------------------------------------------------------------
    def translate(self, va: int, write: bool = False) -> Optional[int]:
        """The PA the current stage-1 translation gives ``va`` (tag bits ignored), or None."""
        t = self.mmu.translate(va, self.el, WRITE if write else READ)
        return None if isinstance(t, WalkFault) else t.pa

    def _pa_of(self, va: int, physical: bool) -> int:
        if physical:
            return va
        t = self.mmu.debug_translate(va)
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
        written = None
        scanned = self.code.scanned_pages
        while off < len(data):
            a = va + off
            k = min(len(data) - off, (a | 0xFFF) + 1 - a)
            pa = self._pa_of(a, physical)
            if self.ram.contains(pa, k):
                self.ram.write(pa, data[off:off + k])
            else:
                self.eng.mem_write(pa, data[off:off + k])
            if scanned:
                for p in range(pa & ~(PAGE - 1), pa + k, PAGE):
                    if p in scanned:
                        written = written or set()
                        written.add(p)
            off += k
        if written:
            self.code.code_written(written)      # fetched code may hold other words now

    def _tag_pa(self, va: int) -> Optional[int]:
        t = self.mmu.debug_translate(va)
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

    def write_tags(self, va: int, tags, source: str = "host") -> None:
        """Set the allocation tags of consecutive granules from ``va``'s (Untagged ones are
        skipped); ``source`` ('host', 'debugger', 'gdb') is what provenance names as writer."""
        if source not in SOURCES:
            raise ValueError(f"unknown tag writer {source!r} ({', '.join(SOURCES)})")
        g0 = va & ~0xF
        prov = self.provenance
        pc, el = (self.eng.pc(), self.el) if prov is not None else (0, 0)
        for i, t in enumerate(tags):
            pa = self._tag_pa(g0 + 16 * i)
            if pa is not None:
                if prov is not None:
                    prov.record_host(pa, t, source, pc, el)
                self.tags.set(pa, t)

    def tag_writers(self, va: int, before: Optional[int] = None):
        """(last write, the write before it) of the allocation tag of the granule holding
        ``va``, among those made before instruction count ``before`` if given
        (``provenance.TagWrite``s; None where unknown, and both None without provenance or
        for Untagged memory)."""
        pa = self._tag_pa(va & ~0xF)
        if self.provenance is None or pa is None:
            return None, None
        return self.provenance.writers(pa, before)

    def tag_history(self, va: int, n: int = 16):
        """Up to ``n`` writes of the tag of the granule holding ``va``, newest first."""
        pa = self._tag_pa(va & ~0xF)
        if self.provenance is None or pa is None:
            return []
        return self.provenance.history(pa, n)

    def is_tagged(self, va: int) -> bool:
        return self._tag_pa(va) is not None

    def _forget_tagged_regions(self) -> None:
        self._tagged_cache = None

    def tagged_regions(self) -> List[tuple]:
        """[(va_start, va_end), ...]: the virtual ranges the current translation (both stages
        behind stage 2) maps as Tagged memory onto RAM (empty with stage 1 off). Cached until
        the next run or translation change."""
        if self._tagged_cache is None:
            out = []
            r = self.mmu.regime()
            leaves = self.mmu.stage1.leaves(r)
            if r.stage2 is not None:
                leaves = self._through_stage2(leaves, r.stage2)
            for va, size, pa, tagged in leaves:
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

    @staticmethod
    def _through_stage2(leaves, stage2):
        """Stage-1 leaves (va, size, ipa, tagged) cut where stage 2 changes, as (va, size, pa,
        tagged of the combined attributes). A stage-2 fault skips its whole level's range."""
        for va, size, ipa, tagged in leaves:
            if not tagged:
                continue
            s1 = Translation(ipa, PROT_R, MAIR_NORMAL_TAGGED, True, 3, size)
            off = 0
            while off < size:
                t = stage2(ipa + off, READ, s1)
                if isinstance(t, WalkFault):
                    span = 1 << (12 + 9 * (3 - max(t.level, 0)))
                    off = min(size, (((ipa + off) // span) + 1) * span - ipa)
                    continue
                s2 = t.s2_size or 4096
                step = min(size - off, s2 - ((ipa + off) & (s2 - 1)))
                yield va + off, step, t.pa, t.tagged
                off += step

    def symbolize(self, addr: int) -> Optional[str]:
        best = None
        for name, a in self.symbols.items():
            if a <= addr and (best is None or a > best[1]):
                best = (name, a)
        if best is None or addr - best[1] > 0x10000:
            return None
        return best[0] if addr == best[1] else f"{best[0]}+{addr - best[1]:#x}"

    # --- logs ------------------------------------------------------------------------------------
    @property
    def console(self) -> str:
        return "".join(self._console)

    def _output(self, text: str) -> None:
        self._console.append(text)
        if self.on_output is not None:
            self.on_output(text)

    @property
    def exception_log(self) -> List[ExceptionRecord]:
        return self.exc.log

    @property
    def tag_faults(self):
        return self.tagunit.faults

    @property
    def stop_on_exception(self) -> bool:
        return self.exc.stop_on_exception

    @stop_on_exception.setter
    def stop_on_exception(self, value: bool) -> None:
        self.exc.stop_on_exception = bool(value)

    # --- debugging -------------------------------------------------------------------------------
    def add_breakpoint(self, addr: int) -> None:
        self.debugging.add_breakpoint(addr)

    def remove_breakpoint(self, addr: int) -> None:
        self.debugging.remove_breakpoint(addr)

    @property
    def breakpoints(self):
        return self.debugging.breakpoints

    def add_watch(self, va: int, length: int = 1, kind: str = "tag", when: str = "after") -> None:
        self.debugging.add_watch(va, length, kind, when)

    def remove_watch(self, va: int, length: Optional[int] = None,
                     kind: Optional[str] = None) -> None:
        self.debugging.remove_watch(va, length, kind)

    @property
    def watches(self):
        return self.debugging.list_watches()

    # --- running ---------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Thread-safe: the current run (or, if none is running, the next one) returns with
        reason 'interrupt'."""
        self.events.stop_requested = True
        self.counting.counter.limit = 0     # the block counter stops the next block
        self.eng.emu_stop()

    def run(self, max_insns: int = 10_000_000) -> RunResult:
        return self._run(max_insns, step=False)

    def step(self, n: int = 1) -> RunResult:
        """Execute exactly n instructions (an exception entry counts as one)."""
        return self._run(n, step=True)

    def _run(self, budget: int, step: bool) -> RunResult:
        eng, core, events = self.eng, self.core, self.events
        counting, debugging = self.counting, self.debugging
        cnt = counting.counter
        limit = cnt.insns + max(0, budget)
        self._limit = limit
        self._tagged_cache = None
        result = None
        until = self.text_end if self.text_end else MASK64
        finishing = step          # count instruction by instruction (Unicorn's count)
        limit_reason = "step" if step else "insn-limit"
        step_alone = False        # run one instruction with watched pages writable
        try:
            while result is None:
                pc = eng.pc()
                # the limit first: a request_stop from now on lowers it and is not lost
                # at most SLICE instructions per emu_start: between them Python runs its
                # signal handlers (Ctrl-C, SIGTERM), which it cannot while native hooks run
                sliced = min(limit, cnt.insns + SLICE)
                cnt.limit = MASK64 if finishing else sliced
                if events.stop_requested:
                    result = RunResult("interrupt", None, None, pc)
                    break
                remaining = limit - cnt.insns
                if remaining <= 0:
                    result = RunResult(limit_reason, None, None, pc)
                    break
                if self.text_end and pc == until:
                    result = RunResult("end", None, None, pc)
                    break
                self.code.refresh()
                cnt.hit_limit = 0
                cnt.last_size = 0
                events.clear_run()
                if debugging.has_breakpoint(pc):
                    debugging.bp_skip = pc
                err = None
                try:
                    eng.emu_start(pc, 1 if step_alone else remaining if finishing else 0)
                except UcError as e:
                    err = e
                debugging.bp_skip = None
                core.refuse_fills = 0
                if step_alone:                   # watched pages are read-only again
                    step_alone = False
                    self._end_passes()
                pc = eng.pc()
                ev = events.take()
                if ev is not None:
                    kind = ev[0]
                    if kind == "error":
                        raise ev[1]
                    if kind == "tagfault":
                        self._deliver_tag_fault(ev)
                        result = self._take_stop()
                        continue
                    if kind == "stop":
                        res = ev[1]
                        if res.reason == "semihost-exit":
                            counting.fix_count(pc - 4, True)
                        elif res.exception is not None:
                            counting.fix_count(res.exception.pc, True, completed=False)
                        else:
                            counting.fix_count(pc, False)
                        res.pc = eng.pc()
                        result = res
                        break
                    if kind == "watch":
                        counting.fix_count(pc, False)
                        result = RunResult("watchpoint", None, None, pc, ev[1])
                        break
                    if kind == "insn":
                        result = self._finish_slow(ev[1], ev[2])
                        continue
                    if kind == "retranslate":
                        counting.fix_count(pc, False)
                        continue
                if events.flush_tlb:
                    events.flush_tlb = False
                    self.mmu.invalidate()
                if err is not None and events.code_write is not None:
                    # a write to fetched code: run it alone, writable; the page is then
                    # fetched, so scanned, again (the invalidate after the step)
                    events.code_write = None
                    counting.fix_count(pc, False)
                    self.mmu.code_write_pass = True
                    self.mmu.invalidate()
                    step_alone = True
                    continue
                if err is not None and events.watch_trap is not None:
                    # an access to a watched page: stop before it, or run it alone and look
                    events.watch_trap = None
                    counting.fix_count(pc, False)
                    hit = debugging.on_refused_access(pc, self.mmu.fetch_word(pc, self.el),
                                                      eng.rd, self.el)
                    if hit is not None:
                        result = RunResult("watchpoint", None, None, pc, hit)
                        break
                    debugging.watch_pass = True
                    debugging.watch_step_pc = pc
                    self.mmu.invalidate()
                    step_alone = True
                    continue
                if err is not None and events.need_check_hook:
                    events.need_check_hook = False
                    self.tagunit.ensure_hook()
                    counting.fix_count(pc, False)                  # it runs again
                    self.mmu.invalidate()
                    continue
                if err is not None and events.fill_fault is not None and \
                        events.fill_fault[2].tagaccess and not self._tag_checked_at(pc):
                    # NoTagAccess memory, but this instruction is not tag checked: it runs
                    # alone with the fill allowed
                    events.fill_fault = None
                    counting.fix_count(pc, False)
                    self.mmu.nta_pass = True
                    self.mmu.invalidate()
                    step_alone = True
                    continue
                if err is not None and events.fill_fault is not None:
                    if cnt.insns >= limit and not counting.began(pc):
                        # the budget ran out before this instruction's fetch (it faults
                        # again when the run goes on)
                        events.fill_fault = None
                        counting.fix_count(pc, False)
                        result = RunResult(limit_reason, None, None, pc)
                        break
                    counting.fix_count(pc, True, completed=False)
                    self.exc.take_fill_fault(pc)
                    result = self._take_stop()
                    continue
                if events.stop_requested:
                    counting.fix_count(pc, False)
                    result = RunResult("interrupt", None, None, pc)
                    break
                if err is not None:
                    counting.fix_count(pc, True, completed=False)
                    rec = ExceptionRecord("engine", 0, 0, None, self.el, self.el, pc)
                    rec.error = str(err)
                    self.exc.log.append(rec)
                    result = RunResult("exception", None, rec, pc)
                    break
                if cnt.hit_limit == 2:
                    # a block at a misaligned PC: the PC alignment fault (EC 0x22, FAR = PC)
                    if cnt.insns >= limit:
                        result = RunResult(limit_reason, None, None, pc)
                        break
                    cnt.insns += 1
                    try:
                        self.traps.arch_fault(faults.PCAlignmentFault(pc), pc)
                    except _Stop:
                        pass
                    result = self._take_stop()
                    continue
                if cnt.hit_limit:
                    if sliced < limit:
                        continue             # only the slice ended: go on
                    finishing = True         # the next block would pass the budget
                    continue
                # emu_start returned on its own: PC reached `until` or an exit, or the count ran
                # out
                counting.fix_count(pc, False)
                if pc in self.code.exits and cnt.insns < limit:
                    result = self._at_exit(pc)
                    continue
                if self.text_end and pc == until:
                    result = RunResult("end", None, None, pc)
                elif cnt.insns >= limit:
                    result = RunResult(limit_reason, None, None, pc)
        finally:
            events.stop_requested = False          # consumed by this run (or left by none)
            core.in_fault = 0
            if debugging.watch_pass or self.mmu.nta_pass or self.mmu.code_write_pass:
                self._end_passes()
            counting.publish(self.tagunit, self.mteunit)
        return result

    def _end_passes(self) -> None:
        """An instruction run alone is done: what it was let through (a watched page, a
        NoTagAccess page, a write to code) is refused again."""
        self.debugging.watch_pass = False
        self.mmu.nta_pass = False
        self.mmu.code_write_pass = False
        self.mmu.invalidate()

    def _tag_checked_at(self, pc: int) -> bool:
        """Is the load/store at ``pc`` a tag-checked one (DecodeTagChecked: not an SP base
        with an immediate offset and no writeback)?"""
        info = checks.analyse(self.mmu.fetch_word(pc, self.regs.el))
        return info is not None and info.checked

    def _finish_slow(self, pc: int, why: str) -> Optional[RunResult]:
        """An instruction the slow path stopped before (``slowpath``): run it or take its
        fault."""
        counting = self.counting
        if why == "eret-il":
            return self._eret_with_il(pc)
        debugging = self.debugging
        if why in ("emulate", "exclusive", "engine-align") and debugging.watches:
            # a watch that stops before the access stops before it here too
            el = self.regs.el
            hit = debugging.on_refused_access(pc, self.mmu.fetch_word(pc, el), self.eng.rd, el)
            if hit is not None:
                counting.fix_count(pc, False)
                return RunResult("watchpoint", None, None, pc, hit)
        f = self.slowpath.finish(pc, why)
        if f is None:
            if self.eng.pc() != pc:
                counting.fix_count(pc, True)            # performed here
                if debugging.watches:
                    debugging.check_after(pc)           # the writes it made (note_data_write)
                    ev = self.events.take()
                    if ev is not None and ev[0] == "watch":
                        return RunResult("watchpoint", None, None, self.eng.pc(), ev[1])
            else:
                counting.fix_count(pc, False)           # runs in the engine next
            return None
        if isinstance(f, faults.IllegalState):          # the ERET ran; the next one faults
            counting.fix_count(pc, True, completed=False)
            return self._illegal_state_at(self.eng.pc())
        counting.fix_count(pc, True, completed=False)
        at = pc
        try:
            self.traps.arch_fault(f, at)
        except _Stop:
            pass
        return self._take_stop()

    def _eret_with_il(self, pc: int) -> Optional[RunResult]:
        """An ERET whose SPSR has IL = 1: the return is done in Python (the engine drops
        PSTATE.IL), then the instruction it returns to takes its first exception."""
        self.counting.fix_count(pc, False)              # the ERET has not run yet
        self.exc.return_with_il()
        self.counting.counter.insns += 1
        return self._illegal_state_at(self.eng.pc())

    def _illegal_state_at(self, pc: int) -> Optional[RunResult]:
        """The instruction at ``pc`` runs with PSTATE.IL = 1. A PC alignment fault and an
        Instruction Abort on its fetch come before the Illegal Execution state exception
        (the synchronous exception priority order, Arm ARM D1.3): for those the engine's own
        fetch at ``pc`` takes them (None: run on); otherwise the instruction takes EC 0x0E."""
        if pc & 3 or not self.mmu.fetchable(pc, self.regs.el) \
                or self.counting.counter.insns >= self._limit:
            return None                                 # (or the budget ends before it)
        self.counting.counter.insns += 1                # counted as any faulting instruction
        try:
            self.traps.arch_fault(faults.IllegalState(), pc)
        except _Stop:
            pass
        return self._take_stop()

    def _at_exit(self, pc: int) -> Optional[RunResult]:
        """The engine stopped before a word it cannot translate: the word is UNDEFINED on this
        CPU (unallocated, or of a feature its ID registers do not advertise: FEAT_FAMINMAX,
        FEAT_FP8; see ``engine_words``). An exit whose word has changed since is dropped."""
        try:
            word = self.mmu.fetch_word(pc, self.regs.el)
        except Exception:
            word = None
        if word is None or not engine_words.translator_aborts(word):
            self.code.drop_exit(pc)
            return None
        self.counting.counter.insns += 1
        try:
            self.traps.arch_fault(faults.Undefined(engine_words.architectural_result(word)), pc)
        except _Stop:
            pass
        return self._take_stop()

    def _deliver_tag_fault(self, ev) -> None:
        """A synchronous tag-check fault stopped the engine: undo the access, take the abort."""
        f = self.tagunit.undo_faulting_access(ev)
        self.counting.fix_count(f.pc, True, completed=False)
        f.insns = self.counting.counter.insns
        try:
            self.exc.take("data_abort", lambda same: syndrome.tag_check_fault_esr(f.write, same),
                          f.va, f.pc, f.pc, tag_fault=f)
        except _Stop:
            pass

    def _take_stop(self) -> Optional[RunResult]:
        ev = self.events.pending
        if ev is not None and ev[0] == "stop":
            self.events.pending = None
            ev[1].pc = self.eng.pc()
            return ev[1]
        return None
