"""Counting per executed block: instructions (the C block counter, or its Python fallback),
and with ``count_classes`` the instruction classes and data bytes of each decoded block; a stop
that cuts a block short takes back what did not run."""
from __future__ import annotations

from .. import isa
from . import checks


class Blocks:
    """Part of ``Machine`` (see ``machine.py``)."""

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
