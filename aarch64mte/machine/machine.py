"""The Machine: Unicorn for ordinary A64, Python for everything MTE, one run loop.

This module holds construction, loading, the public memory/tag API and the run loop; the rest
of ``Machine`` comes from one module per concern:

- ``registers.py``  registers by name, system registers, PSTATE and SP banking
- ``cpu.py``        the ``Cpu`` protocol the MTE semantics run against
- ``tlb.py``        the TLB fill hook: stage-1 walk, plain mapping or tag alias per page
- ``tagcheck.py``   the tag-check memory hook and precise synchronous faults
- ``traps.py``      MTE instructions and system registers, DC ZVA, semihosting, BRK, SVC
- ``exception_entry.py``  exception entry in Python, ERET and PSTATE.TCO
- ``blocks.py``     instruction, class and data-byte counting per executed block
- ``debugging.py``  breakpoints and watches
- ``results.py``    ``RunResult``, ``WatchHit``

How an MTE-relevant event reaches the semantics:
- MTE instructions, MTE system registers and DC G*VA are UNDEFINED in Unicorn and arrive at the
  interrupt hook (intno 1) with PC at the instruction: decode (``isa``), run the semantics
  against this machine as their ``Cpu``, PC += 4. The hook reads X0-X30, SP, PC and PSTATE in
  one call; while the semantics run, EL and register reads come from that copy (writes go to
  both), and their tag accesses translate through a one-entry software TLB per access kind,
  dropped with the rest of the translation-derived state (``Tlb._invalidate``).
- Loads and stores: the translation (fill hook) sends a page to the plain RAM mapping when no
  access through that pointer tag can fail a check (Untagged, unchecked, or every granule holds
  the pointer's tag), otherwise to the tag alias, where the tag-check hook checks the whole
  footprint of the instruction granule by granule at its first access.
- DC ZVA is executed natively by Unicorn without memory hooks: the SYS hook catches it.
- Exceptions are entered in Python; ERET runs natively, with a code hook on each ERET restoring
  PSTATE.TCO from SPSR_EL1 bit 25; the ERETs are found at load and in each page an instruction
  fetch fills (code copied or written at run time too).
- A run ends at the end of .text through a code hook bounded to that address (the engine has
  no exit address: Unicorn would halt there with a WFI, which traps at EL0).
"""
from __future__ import annotations

import os
import threading
from typing import Dict, List, Optional

from unicorn import (UcError, UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INSN,
                     UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_HOOK_TLB_FILL)
from unicorn import arm64_const as A

from ..semantics.tags import TagStorage
from . import profiles
from .adapter import Engine
from .blocks import Blocks
from .board import Board
from .counters import Counters
from .cpu import CpuProtocol
from .debugging import Debugging
from .exception_entry import NO_VECTORS, ExceptionEntry
from .exceptions import ExceptionRecord, TagFault
from .memory import RAM_BASE, RAM_SIZE_DEFAULT, UART_BASE, UART_SIZE, Ram, PAGE
from .registers import MASK64, Registers
from .results import RunResult, WatchHit
from .sysregs import ENCODINGS, MteRegs
from .tagcheck import TagCheck
from .tlb import Tlb
from .translation import READ, WRITE, Regime, Stage1, WalkFault, strip_tag
from .traps import Traps

__all__ = ["Machine", "RunResult", "WatchHit"]


class Machine(Registers, CpuProtocol, Tlb, TagCheck, Traps, ExceptionEntry, Blocks, Debugging):
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
        self._setup_fast_regs()
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
        self._trap_el: Optional[int] = None   # EL while an MTE instruction's semantics run
        self._stlb_r = self._stlb_w = None    # last tag-access translations (cpu.py)
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
        self._eret_hooks: Dict[int, int] = {}   # hooked ERET address -> hook
        self._eret_scanned = set()          # (VA page, PA page) fetched from, scanned for ERETs
        self._eret_scanned_pa = set()       # their PA pages
        self._end_hook = None
        self._blocks: Dict[bytes, tuple] = {}   # block code -> decoded classes and bytes
        self._class_block = None                # (addr, size, entries) of the last block
        self._in_fault = False
        self._cursor = [-1, -1, 0, -1, 0, 0]
        self._rng_state = (seed or 0x5EED) & MASK64
        self._setup_engine()
        self._reset_common()

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
        eng.hook_intr(self._on_intr)
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

    def translate(self, va: int, write: bool = False) -> Optional[int]:
        """The PA the current stage-1 translation gives ``va`` (tag bits ignored), or None."""
        t = self.stage1.translate(va, self.el, WRITE if write else READ, self._regs())
        return None if isinstance(t, WalkFault) else t.pa

    def _debug_translate(self, va: int):
        """The stage-1 translation of ``va`` for the debugger's accesses: EL1 permissions,
        the pointer's tag bits ignored whatever TBI says."""
        r = self._regs()
        return self.stage1.translate(strip_tag(va, r.tcr | (3 << 37)), 1, READ, r)

    def _pa_of(self, va: int, physical: bool) -> int:
        if physical:
            return va
        t = self._debug_translate(va)
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
        while off < len(data):
            a = va + off
            k = min(len(data) - off, (a | 0xFFF) + 1 - a)
            pa = self._pa_of(a, physical)
            if self.ram.contains(pa, k):
                self.ram.write(pa, data[off:off + k])
            else:
                self.eng.mem_write(pa, data[off:off + k])
            if self._eret_scanned_pa:
                for p in range(pa & ~(PAGE - 1), pa + k, PAGE):
                    if p in self._eret_scanned_pa:
                        written = written or set()
                        written.add(p)
            off += k
        if written:
            self._rescan_erets(written)         # fetched code may now hold other ERETs

    def _tag_pa(self, va: int) -> Optional[int]:
        t = self._debug_translate(va)
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

    def request_stop(self) -> None:
        """Thread-safe: the current run (or, if none is running, the next one) returns with
        reason 'interrupt'."""
        self._stop_requested = True
        self.eng.counter.limit = 0          # the block counter stops the next block
        self.eng.emu_stop()

    def run(self, max_insns: int = 10_000_000) -> RunResult:
        return self._run(max_insns, step=False)

    def step(self, n: int = 1) -> RunResult:
        """Execute exactly n instructions (an exception entry counts as one)."""
        return self._run(n, step=True)

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
                if step_alone:                   # watched pages are read-only again
                    step_alone = False
                    self._watch_pass = False
                    self._invalidate()
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
