"""Translation for the engine: the TLB fill hook walks the guest's stage-1 tables and decides,
page by page, between the plain RAM mapping (no access through this pointer tag can fail a tag
check) and the tag alias that sends every access to the tag-check hook. Also the caches that
follow the translation and their invalidation, and instruction fetch for decoding."""
from __future__ import annotations

import struct

from unicorn import UC_MEM_FETCH, UC_MEM_WRITE
from unicorn import arm64_const as A

from ..semantics import syndrome
from . import checks
from .memory import UART_BASE, UART_SIZE, alias, PAGE
from .sysregs import ENCODINGS
from .translation import FETCH, READ, WRITE, PROT_W, Regime, WalkFault

PSTATE_UAO = 1 << 23                # LDTR/STTR at EL1 behave as ordinary accesses


class Tlb:
    """Part of ``Machine`` (see ``machine.py``)."""

    def _regs(self) -> Regime:
        r = self._regime
        if r is None:
            cp = self.eng.cp_read
            r = self._regime = Regime(cp(*ENCODINGS["SCTLR_EL1"]), cp(*ENCODINGS["TCR_EL1"]),
                                      cp(*ENCODINGS["TTBR0_EL1"]), cp(*ENCODINGS["TTBR1_EL1"]),
                                      cp(*ENCODINGS["MAIR_EL1"]))
        return r

    def _invalidate(self, flush: bool = True) -> None:
        """Forget everything derived from the translation (and the engine's TLB, unless the
        guest's own TLBI is flushing it)."""
        self._regime = None
        self._stlb_r = self._stlb_w = None
        self._tagged_cache = None
        self._code_pa.clear()
        self._fast_pages.clear()
        self._eret_scanned.clear()          # a fetch refills: its page is scanned again
        self._eret_scanned_pa.clear()
        if flush:
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
            if acc == FETCH and (vaddr & ~(PAGE - 1), page) not in self._eret_scanned:
                self._scan_erets(vaddr & ~(PAGE - 1), page)
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

    def _fetch_word(self, pc: int) -> int:
        vp = pc & ~0xFFF
        pp = self._code_pa.get(vp)
        if pp is None:
            t = self.stage1.translate(pc, self.el, FETCH, self._regs())
            if isinstance(t, WalkFault):
                return 0                        # UDF #0: nothing to decode there
            pp = self._code_pa[vp] = t.pa & ~0xFFF
        pa = pp | (pc & 0xFFF)
        if self.ram.contains(pa, 4):
            return struct.unpack_from("<I", self.ram.buf, pa - self.ram.base)[0]
        return int.from_bytes(self.eng.mem_read(pa, 4), "little")
