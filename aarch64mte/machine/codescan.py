"""Instructions the engine must not run as it would: found in the code before it runs.

Each 1 KiB code page is scanned when an instruction fetch fills it into the engine's TLB
(``Mmu.on_code_page``; again after a TLB flush, an IC instruction or a ``write_mem`` to it),
and these words get what they need:

- ERET, ERETAA, ERETAB: a code hook restores PSTATE.TCO from SPSR_ELx bit 25 (the engine
  knows no TCO);
- words that abort Unicorn's translator (``engine_words``): an exit address, so translation
  stops before them and the run loop takes the architectural result;
- LDSMAX/LDSMIN of bytes, halfwords and words (and STSMAX/STSMIN): the engine compares them
  unsigned; a code hook stops before each (``slowpath``);
- load-acquire/store-release forms (LDAR, STLR, LDLAR, STLLR, LDAPR, LDAPUR, STLUR), and every
  load and store while SCTLR_ELx.A = 1: a code hook checks their alignment, which the engine
  does not; store-exclusives get the same hook (``exclusives``).

Hooks are keyed by virtual address and check the word they find there when they fire, so code
that changed under them costs a look and nothing else. Unicorn retranslates code written under
it by itself, with no TLB fill, so the MMU keeps the engine's mappings of scanned pages
unwritable and of data pages unexecutable (``Mmu.code_pages``): a write to code runs alone and
its page is fetched, so scanned, again; a fetch from a page data fills mapped refills. Unicorn calls a code hook only from code
translated after it was added: a page is scanned before its first translation, and a change of
SCTLR_ELx.A drops all translated code.
"""
from __future__ import annotations

from typing import Callable, Dict, Set, Tuple

from unicorn import UC_HOOK_CODE

from . import checks, engine_words
from .memory import PAGE

ERET_WORDS = (0xD69F03E0, 0xD69F0BFF, 0xD69F0FFF)     # ERET, ERETAA, ERETAB


def is_signed_ldop_wrong(word: int) -> bool:
    """LD<op> with opc SMAX (100) or SMIN (101), o3 = 0, size B/H/W."""
    return (word & 0x3F200C00) == 0x38200000 and not (word >> 15) & 1 \
        and (word >> 12) & 7 in (4, 5) and (word >> 30) != 3


def is_ordered(word: int) -> bool:
    """Load-acquire / store-release of one register: LDAR, STLR, LDLAR, STLLR (and B/H),
    LDAPR (FEAT_LRCPC), LDAPUR/STLUR (FEAT_LRCPC2)."""
    if (word & 0x3F800000) == 0x08800000 and not (word >> 21) & 1:
        return True                                      # load/store ordered
    if (word & 0x3FFFFC00) == 0x38BFC000:
        return True                                      # LDAPR
    return (word & 0x3F200C00) == 0x19000000             # LDAPUR / STLUR


def is_store_exclusive(word: int) -> bool:
    """STXR, STLXR (B, H, W, X), STXP, STLXP; LDXP, LDAXP (pairs are all the slow path's); and
    CLREX and LDXR/LDAXR (which take the monitor from the slow path's)."""
    return ((word & 0x3FE07C00) == 0x08007C00 or (word & 0xBFE00000) == 0x88200000
            or (word & 0xBFFF0000) == 0x887F0000 or (word & 0xFFFFF0FF) == CLREX
            or is_load_exclusive(word))


def is_load_exclusive(word: int) -> bool:
    """LDXR, LDAXR (B, H, W, X): one the engine runs takes over the monitor."""
    return (word & 0x3FFF7C00) == 0x085F7C00


CLREX = 0xD503305F


FOUND_CACHE = 1024                      # pages whose scan results are kept

# the most significant byte of the words above (a first filter over a page)
_CANDIDATE = frozenset(b"\x08\x48\x88\xc8\x38\x78\xb8\xf8\x19\x59\x99\xd9\xd5")


class CodeScanner:
    def __init__(self, eng, mmu, on_eret: Callable, on_emulate: Callable, on_check: Callable,
                 strict: Callable[[], bool]) -> None:
        """``on_eret``, ``on_emulate`` and ``on_check`` are code hooks (uc, addr, size, ud);
        ``strict()`` says whether some regime has SCTLR_ELx.A = 1."""
        self.eng = eng
        self.mmu = mmu
        self.on_eret = on_eret
        self.on_emulate = on_emulate
        self.on_check = on_check
        self.strict = strict
        self._strict = False
        self._hooks: Dict[Tuple[int, Callable], int] = {}
        self._strict_hooks: Set[int] = set()    # check hooks on ordinary loads and stores
        self.exits: Set[int] = set()            # exit addresses (words the engine aborts on)
        self._scanned = set()                   # (VA page, PA page)
        self._scanned_pa = set()
        self._found: Dict[bytes, tuple] = {}    # page content -> what _find found in it
        mmu.on_code_page = self.page_fetched
        mmu.code_pages = self._scanned_pa
        mmu.on_invalidate.append(self.forget)

    # --- scanning ---------------------------------------------------------------------------
    def page_fetched(self, vpage: int, ppage: int) -> None:
        if (vpage, ppage) not in self._scanned:
            self._scan(vpage, ppage)

    def scan_image(self, addr: int, data: bytes) -> None:
        """A loaded segment: its words are found before any fetch (VA = PA at load)."""
        for off in range(0, len(data) - 3, PAGE):
            self._scan_bytes(addr + off, data[off:off + PAGE])

    def _scan(self, vpage: int, ppage: int) -> None:
        if ppage not in self._scanned_pa:
            self.mmu.became_code(vpage, ppage)
        self._scanned.add((vpage, ppage))
        self._scanned_pa.add(ppage)
        ram = self.mmu.ram
        if not ram.contains(ppage, PAGE):
            return
        o = ppage - ram.base
        self._scan_bytes(vpage, bytes(ram.buf[o:o + PAGE]))

    def _scan_bytes(self, va: int, code: bytes) -> None:
        found = self._found.get(code)
        if found is None:
            found = self._find(code)
            if len(self._found) >= FOUND_CACHE:
                self._found.clear()
            self._found[code] = found
        erets, exits, emulate, check = found
        for off in erets:
            self._hook(va + off, self.on_eret)
        new_exits = [va + off for off in exits]
        if new_exits and not self.exits.issuperset(new_exits):
            self.exits.update(new_exits)
            self.eng.set_exits(self.exits)
        if self._strict:
            self._scan_strict(va, code)
        for off in emulate:
            self._hook(va + off, self.on_emulate)
        for off in check:
            self._hook(va + off, self.on_check)

    @staticmethod
    def _find(code: bytes) -> tuple:
        """The offsets in ``code`` of ERETs, of words that abort the engine's translator, of
        signed LD<op>s the engine gets wrong, and of ordered and store-exclusive accesses. A
        page is scanned again after every TLB flush (an exception changing EL flushes), so
        the answer is kept per page content."""
        erets = []
        i = code.find(b"\x9f\xd6", 2)
        while i >= 0:
            w = i - 2
            if not w & 3 and int.from_bytes(code[w:w + 4], "little") in ERET_WORDS:
                erets.append(w)
            i = code.find(b"\x9f\xd6", i + 1)
        emulate, check = [], []
        for i, top in enumerate(code[3::4]):
            if top not in _CANDIDATE:
                continue
            off = 4 * i
            if off + 4 > len(code):
                break
            word = int.from_bytes(code[off:off + 4], "little")
            if is_signed_ldop_wrong(word):
                emulate.append(off)
            elif is_ordered(word) or is_store_exclusive(word):
                check.append(off)
        return (tuple(erets), tuple(engine_words.aborting_offsets(code)), tuple(emulate),
                tuple(check))

    def _scan_strict(self, va: int, code: bytes) -> None:
        for off in range(0, len(code) - 3, 4):
            word = int.from_bytes(code[off:off + 4], "little")
            if is_ordered(word) or is_store_exclusive(word):
                continue                # hooked for good below
            info = checks.analyse(word)
            if info is not None and info.align and info.base is not None:
                self._hook(va + off, self.on_check)
                self._strict_hooks.add(va + off)

    def _hook(self, addr: int, fn) -> None:
        if (addr, fn) not in self._hooks:
            self._hooks[(addr, fn)] = self.eng.uc.hook_add(UC_HOOK_CODE, fn, begin=addr,
                                                           end=addr)

    @property
    def strict_now(self) -> bool:
        """Whether the hooks follow SCTLR_ELx.A = 1 at the moment."""
        return self._strict

    def drop_exit(self, addr: int) -> None:
        """An exit whose word no longer aborts the engine (the code changed)."""
        self.exits.discard(addr)
        self.eng.set_exits(self.exits)

    def refresh(self) -> bool:
        """Between runs: follow a change of SCTLR_ELx.A (hook every load and store, or stop
        doing so). True if translated code was dropped."""
        strict = self.strict()
        if strict == self._strict:
            return False
        self._strict = strict
        if not strict:
            for a in self._strict_hooks:
                h = self._hooks.pop((a, self.on_check), None)
                if h is not None:
                    self.eng.uc.hook_del(h)
            self._strict_hooks.clear()
        self.eng.uc.ctl_flush_tb()
        self.mmu.invalidate()           # every page is fetched, so scanned, again
        return True

    def forget(self) -> None:
        self._scanned.clear()           # a fetch refills: its page is scanned again
        self._scanned_pa.clear()

    def code_written(self, ppages=None) -> None:
        """Code may have changed (IC, ``write_mem``): scan again the pages fetched from (those
        in ``ppages`` only, if given): their TLB entries may stay and refill nothing."""
        for vp, pp in list(self._scanned):
            if ppages is None or pp in ppages:
                self._scan(vp, pp)

    @property
    def scanned_pages(self):
        return self._scanned_pa
