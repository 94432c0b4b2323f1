"""Counting per executed block: instructions (the native block counter, or its Python fallback,
both in the shared core), and with ``count_classes`` the instruction classes and data bytes of
each decoded block; a stop that cuts a block short takes back what did not run."""
from __future__ import annotations

from unicorn import UC_HOOK_BLOCK
from unicorn.unicorn_py3.unicorn import HOOK_CODE_CFUNC

from .. import isa
from . import checks


class PyCounter:
    """The block counter's fields as Python attributes, for the Python block hook (the native
    one keeps them in the shared core under the same names)."""
    __slots__ = ("insns", "last_addr", "last_size", "limit", "hit_limit")

    def __init__(self) -> None:
        self.insns = self.last_addr = self.last_size = self.hit_limit = 0
        self.limit = (1 << 64) - 1


class Counting:
    def __init__(self, eng, core, counters, fetch_word, events, lib, count_classes: bool) -> None:
        self.eng = eng
        self.core = core
        # insns, last_addr, last_size, limit, hit_limit: where the block hook keeps them
        self.counter = core if lib is not None else PyCounter()
        self.counters = counters
        self.fetch_word = fetch_word          # (pc) -> word, at the current EL
        self.events = events
        self.count_classes = count_classes
        self.bytes_read = 0                   # data bytes of executed loads/stores (classes)
        self.bytes_written = 0
        self._blocks = {}                     # block code -> decoded classes and bytes
        self._class_block = None              # (addr, size, entries) of the last block
        if lib is not None:
            eng.hook_native(UC_HOOK_BLOCK, lib.mte_block_count, eng.core_ptr)
        else:
            eng.hook_raw(UC_HOOK_BLOCK, HOOK_CODE_CFUNC, self._py_block_counter)
        if count_classes:                     # after the counter: it reads its state
            eng.uc.hook_add(UC_HOOK_BLOCK, self._on_block_classes)

    def _py_block_counter(self, handle, addr, size, ud) -> None:
        c = self.counter
        n = size >> 2
        if addr & 3:                          # a misaligned PC (see blocks.c)
            c.hit_limit = 2
            c.last_addr, c.last_size = addr, 0
            self.eng.emu_stop()
            return
        if c.insns + n > c.limit:
            c.hit_limit = 1
            c.last_addr, c.last_size = addr, 0
            self.eng.emu_stop()
            return
        c.insns += n
        c.last_addr, c.last_size = addr, size

    def _on_block_classes(self, uc, addr, size, ud) -> None:
        """Count a block's instruction classes and the data bytes its loads and stores move,
        from the block's decoded instructions (``fix_count`` takes back what a stop cut)."""
        c = self.counter
        if c.last_addr != addr or c.last_size != size:
            return                                  # the counter stopped before this block
        try:
            entries, totals, rsum, wsum = self._block_info(addr, size)
        except Exception as e:
            self.events.pending = ("error", e)
            self.eng.emu_stop()
            return
        bc = self.counters.by_class
        for k, n in totals:
            bc[k] = bc.get(k, 0) + n
        self.bytes_read += rsum
        self.bytes_written += wsum
        self._class_block = (addr, size, entries)

    def _block_info(self, addr: int, size: int):
        code = b"".join(self.fetch_word(addr + i).to_bytes(4, "little")
                        for i in range(0, size, 4))
        hit = self._blocks.get(code)
        if hit is None:
            entries = tuple(static_class(int.from_bytes(code[i:i + 4], "little"))
                            for i in range(0, size, 4))
            totals = {}
            for k, _, _ in entries:
                totals[k] = totals.get(k, 0) + 1
            hit = self._blocks[code] = (entries, tuple(totals.items()),
                                        sum(e[1] for e in entries), sum(e[2] for e in entries))
        return hit

    def _uncount_classes(self, a: int, s: int, keep: int, completed: bool) -> None:
        """The block at ``a`` (``s`` bytes) ran only its first ``keep`` instructions; the last
        of them did not complete its accesses unless ``completed``."""
        cb = self._class_block
        if cb is None or cb[0] != a or cb[1] != s:
            return
        entries = list(cb[2])
        bc = self.counters.by_class
        for k, r, w in entries[keep:]:
            bc[k] -= 1
            if not bc[k]:
                del bc[k]
            self.bytes_read -= r
            self.bytes_written -= w
        del entries[keep:]
        if keep and not completed:
            k, r, w = entries[-1]
            self.bytes_read -= r
            self.bytes_written -= w
            entries[-1] = (k, 0, 0)
        self._class_block = (a, 4 * keep, entries)

    def began(self, pc: int) -> bool:
        """Did the block counter count the block holding ``pc`` (its fetch succeeded)?"""
        c = self.counter
        return bool(c.last_size) and c.last_addr <= pc < c.last_addr + c.last_size

    def fix_count(self, pc: int, executed_at_pc: bool, completed: bool = True) -> None:
        """The block counter counted the whole block that a stop cut short. The instruction
        at ``pc`` counts if ``executed_at_pc`` (an exception entry counts as one); its data
        accesses count only if it also ``completed``."""
        c = self.counter
        a, s = c.last_addr, c.last_size
        if self.began(pc):
            keep = (pc - a) // 4 + (1 if executed_at_pc else 0)
            c.insns -= s // 4 - keep
            c.last_size = 4 * keep
            if self.count_classes:
                self._uncount_classes(a, s, keep, completed or not executed_at_pc)
        elif executed_at_pc:
            # the instruction's block never began (its fetch faulted): the exception entry
            # still counts, so a loop of instruction aborts runs into the limit
            c.insns += 1
            c.last_size = 0

    def publish(self, tagunit, mteunit) -> None:
        """Machine.counters: the shared core's counts (native paths) plus the Python paths'."""
        c, out, cpu = self.core, self.counters, mteunit.cpu
        out.insns = self.counter.insns
        out.tag_checks = c.tag_checks + tagunit.tag_checks
        out.checked_granules_read = c.checked_granules_read + tagunit.checked_granules_read
        out.checked_granules_written = (c.checked_granules_written
                                        + tagunit.checked_granules_written)
        out.mte_insns = c.mte_insns + mteunit.mte_insns
        out.tag_granules_read = c.tag_granules_read + cpu.tag_granules_read
        out.tag_granules_written = c.tag_granules_written + cpu.tag_granules_written
        if self.count_classes:
            out.data_bytes_read = self.bytes_read
            out.data_bytes_written = (self.bytes_written + c.insn_bytes_written
                                      + cpu.insn_bytes_written)


def static_class(word: int):
    """(class, data bytes read, data bytes written) of one instruction word; MTE instructions
    and DC ZVA move their data in the machine (``Core.insn_bytes_written``)."""
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
