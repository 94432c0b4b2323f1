"""`monitor` commands (`qRcmd`): tags, faults, and who wrote a tag (writer, history), a tag
watch, and going back to a tag write.

GDB does not know that `monitor reverse-to-tag-write` moved the program: its register and frame
caches then still show the old stop until `maintenance flush register-cache` (the output says
so). `monitor watch-tag` with `reverse-continue` reaches the same place with GDB following.
"""
from __future__ import annotations

from aarch64mte.debug import stages
from aarch64mte.debug.session import GRANULE, ReverseError, describe_exception, strip_tag

MAX_TAGS_LEN = 1 << 16          # bytes whose tags one `monitor tags` shows
MAX_HISTORY = 4096              # writes one `monitor history` lists
HELP = """monitor commands:
  tags ADDR [LEN]             allocation tags of the granules covering LEN bytes
  faults                      the exception log
  writer ADDR                 who set the allocation tag of the granule at ADDR, and when
  history ADDR [N]            the last N writes of that tag (default 16), newest first
  watch-tag ADDR [LEN]        stop when an instruction changes a tag there (LEN default 16)
  unwatch-tag ADDR            remove that tag watch
  reverse-to-tag-write ADDR   go back to just before the write that set that tag
                              (then: maintenance flush register-cache)
  record                      the recording that going back uses
  translate ADDR [r|w|x] [elN]  ADDR through stage 1 and stage 2, each stage's attributes,
                              and whether the memory is Tagged
  regime                      the current EL and its translation regime
"""


class MonitorError(Exception):
    pass


def _number(text: str, lo: int, hi: int, what: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise MonitorError(f"{what} must be a number, not {text!r}") from None
    if not lo <= v <= hi:
        raise MonitorError(f"{what} must be {lo:#x}..{hi:#x}, not {v:#x}")
    return v


class MonitorMixin:
    def monitor(self, command: str) -> str:
        words = command.split()
        if not words:
            return "OK"
        handler = {"help": self._m_help, "tags": self._m_tags, "faults": self._m_faults,
                   "writer": self._m_writer, "history": self._m_history,
                   "watch-tag": self._m_watch_tag, "unwatch-tag": self._m_unwatch_tag,
                   "reverse-to-tag-write": self._m_reverse_to_tag_write,
                   "record": self._m_record, "translate": self._m_translate,
                   "regime": self._m_regime}.get(words[0])
        if handler is None:
            text = f"unknown monitor command: {words[0]} (monitor help)\n"
        else:
            try:
                text = handler(words[1:])
            except MonitorError as exc:
                text = f"error: {exc}\n"
        return text.encode().hex()

    def _addr(self, words, usage: str) -> int:
        if not words:
            raise MonitorError(f"usage: {usage}")
        return strip_tag(_number(words[0], 0, (1 << 64) - 1, "ADDR"))

    def _m_translate(self, words) -> str:
        usage = "translate ADDR [r|w|x] [el0|el1|el2]"
        if not words or len(words) > 3:
            raise MonitorError(f"usage: {usage}")
        va = _number(words[0], 0, (1 << 64) - 1, "ADDR")
        try:
            access, el = stages.parse_options(words[1:])
            return stages.walk(self.m, va, access, el).text() + "\n"
        except ValueError as exc:
            raise MonitorError(str(exc)) from None

    def _m_regime(self, words) -> str:
        return stages.regime_text(self.m) + "\n"

    def _m_help(self, words) -> str:
        return HELP

    def _m_tags(self, words) -> str:
        if not words or len(words) > 2:
            raise MonitorError(f"expected tags ADDR [LEN]: ADDR 0..2^64-1, LEN 1..{MAX_TAGS_LEN}")
        addr = self._addr(words, "tags ADDR [LEN]")
        length = _number(words[1], 1, MAX_TAGS_LEN, "LEN") if len(words) > 1 else GRANULE
        try:
            tags = self.m.read_tags(addr & ~(GRANULE - 1), length)
        except Exception:
            raise MonitorError(f"cannot read the tags at {addr:#x}") from None
        return " ".join(f"{t:x}" for t in tags) + "\n"

    def _m_faults(self, words) -> str:
        log = list(getattr(self.m, "exception_log", []) or [])
        return "".join(describe_exception(r) + "\n" for r in log) or "no exceptions\n"

    def _tagged_granule(self, words, usage: str) -> int:
        if getattr(self.m, "provenance", None) is None:
            raise MonitorError("this machine keeps no tag provenance")
        addr = self._addr(words, usage)
        if not self.m.is_tagged(addr):
            raise MonitorError(f"{addr:#x} is not Tagged memory: it has no allocation tag")
        return addr & ~(GRANULE - 1)

    def _m_writer(self, words) -> str:
        from aarch64mte.report import tag_writers, writers_text
        va = self._tagged_granule(words, "writer ADDR")
        tag = self.m.read_tags(va, 1)[0]
        return f"granule {va:#x}: " + writers_text(tag_writers(self.m, va), tag) + "\n"

    def _m_history(self, words) -> str:
        from aarch64mte.report import disassemble, symbolize
        va = self._tagged_granule(words, "history ADDR [N]")
        n = _number(words[1], 1, MAX_HISTORY, "N") if len(words) > 1 else 16
        writes = self.m.tag_history(va, n)
        if not writes:
            return f"granule {va:#x}: no tag write recorded\n"
        lines = [f"granule {va:#x}: {len(writes)} tag writes, newest first"]
        for w in writes:
            if w.by_instruction:
                where = symbolize(self.m, w.pc) or f"{w.pc:#x}"
                who = f"{disassemble(self.m, w.pc) or w.kind} at {where}"
            else:
                who = f"the {w.kind}"
            lines.append(f"  #{w.insns:<10,} {w.previous:#x} -> {w.tag:#x}  EL{w.el}  {who}")
        return "\n".join(lines) + "\n"

    def _m_watch_tag(self, words) -> str:
        va = self._addr(words, "watch-tag ADDR [LEN]") & ~(GRANULE - 1)
        length = _number(words[1], 1, MAX_TAGS_LEN, "LEN") if len(words) > 1 else GRANULE
        try:
            self.m.add_watch(va, length, kind="tag")
        except Exception:
            raise MonitorError(f"cannot watch the tags at {va:#x}") from None
        return f"watching the allocation tags of {va:#x}..{va + length - 1:#x}\n"

    def _m_unwatch_tag(self, words) -> str:
        va = self._addr(words, "unwatch-tag ADDR") & ~(GRANULE - 1)
        if not any(w[0] == va and w[2] == "tag" for w in self.m.watches):
            raise MonitorError(f"no tag watch at {va:#x}")
        self.m.remove_watch(va, kind="tag")
        return f"no longer watching the tags of {va:#x}\n"

    def _m_reverse_to_tag_write(self, words) -> str:
        va = self._tagged_granule(words, "reverse-to-tag-write ADDR")
        try:
            _, w = self.session.reverse_to_tag_write(va)
        except ReverseError as exc:
            raise MonitorError(str(exc)) from None
        from aarch64mte.report import disassemble, symbolize
        pc = self.m.reg("pc")
        who = (f"{disassemble(self.m, w.pc) or w.kind}" if w.by_instruction
               else f"the {w.kind}'s write")
        return (f"back at instruction #{self.session._insns():,}, pc {pc:#x} "
                f"<{symbolize(self.m, pc) or '?'}>: next, {who} sets granule {va:#x} from "
                f"{w.previous:#x} to {w.tag:#x}\n"
                f"(GDB still shows the old stop: maintenance flush register-cache)\n")

    def _m_record(self, words) -> str:
        rec = self.session.recorder
        if rec is None:
            return "not recording: going back is not possible\n"
        st = rec.status()
        return (f"recording since instruction {st['earliest']:,}, now at "
                f"{self.session._insns():,}: {st['snapshots']} snapshots (at most "
                f"{st['max_snapshots']}), {st['bytes'] / (1 << 20):.1f} MiB (at most "
                f"{st['budget'] / (1 << 20):.0f} MiB)\n")
