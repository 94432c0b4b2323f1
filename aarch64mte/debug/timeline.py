"""The debugger's commands that look back in time: who wrote a granule's allocation tag and when
(``history``), and going back (``reverse-step``, ``reverse-continue``, ``reverse-to-tag-write``,
``goto``), with the recording's state (``record``). They extend ``commands.Debugger``."""
from __future__ import annotations

from rich.markup import escape

from aarch64mte.debug import view
from aarch64mte.debug.session import GRANULE, ReverseError, strip_tag

DEFAULT_HISTORY = 16
MAX_HISTORY = 1 << 16


def register(d) -> None:
    from aarch64mte.debug.commands import MAX_STEPS, CommandError

    c = d.command

    def need_provenance():
        if getattr(d.m, "provenance", None) is None:
            raise CommandError("this machine keeps no tag provenance")

    def tagged_granule(text: str) -> int:
        va = strip_tag(d.value(text))
        try:
            tagged = bool(d.m.is_tagged(va))
        except Exception:
            tagged = False
        if not tagged:
            raise CommandError(f"{va:#x} is not Tagged memory: it has no allocation tag")
        return va & ~(GRANULE - 1)

    def describe(w) -> str:
        if not w.by_instruction:
            return f"the {w.kind} (at {view.fmt_addr(w.pc, d.symbolize)})"
        word = d._word(w.pc)
        text = view.disassemble_word(word, w.pc, d._symbols()) if word is not None else "?"
        return f"{escape(text)}  at {view.fmt_addr(w.pc, d.symbolize)}"

    def back(fn):
        try:
            stop = fn()
        except ReverseError as exc:
            raise CommandError(str(exc)) from None
        d.report_stop(stop)
        return stop

    @c(("history",), "history tag ADDR [N]",
       f"the last N writes (default {DEFAULT_HISTORY}) of the allocation tag of the granule at "
       f"ADDR, newest first: instruction count, old -> new tag, EL, writer")
    def _history(arg):
        need_provenance()
        words = arg.split()
        if words and words[0] in ("tag", "tags"):
            words = words[1:]
        if not words or len(words) > 2:
            raise CommandError("usage: history tag ADDR [N]")
        va = tagged_granule(words[0])
        n = d.count(words[1] if len(words) > 1 else "", DEFAULT_HISTORY, 1, MAX_HISTORY, "N")
        writes = d.m.tag_history(va, n)
        d.out(view.tag_history(va, writes, describe))
        prov = d.m.provenance
        if len(writes) < n and not prov.complete():
            d.out(f"  (the history holds the last {prov.entries:,} tag writes of all granules; "
                  f"earlier ones are gone)")
        last, _ = d.m.tag_writers(va)
        if last is not None and (not writes or writes[0].insns != last.insns):
            d.out(f"  last write: #{last.insns:,} 0x{last.previous:x} -> 0x{last.tag:x}  "
                  f"EL{last.el}  {describe(last)}")

    @c(("reverse-step", "reverse-stepi", "rs", "rsi"), "reverse-step [N]",
       "go back N instructions (default 1), as far as the recorded history reaches")
    def _reverse_step(arg):
        n = d.count(arg, 1, 1, MAX_STEPS, "step count")
        back(lambda: d.session.reverse_step(n))

    @c(("reverse-continue", "rc"), "reverse-continue",
       "go back to the last breakpoint or watch hit before now (or the start of the history)")
    def _reverse_continue(arg):
        back(d.session.reverse_continue)

    @c(("reverse-to-tag-write", "rtw"), "reverse-to-tag-write ADDR",
       "go back to just before the instruction (or host write) that last set the allocation "
       "tag of the granule at ADDR")
    def _reverse_to_tag_write(arg):
        need_provenance()
        if not arg:
            raise CommandError("usage: reverse-to-tag-write ADDR")
        va = strip_tag(d.value(arg))
        try:
            stop, w = d.session.reverse_to_tag_write(va)
        except ReverseError as exc:
            raise CommandError(str(exc)) from None
        d.report_stop(stop)
        d.out(f"before #{w.insns:,}: {describe(w)} sets granule 0x{va & ~(GRANULE - 1):x} "
              f"from 0x{w.previous:x} to 0x{w.tag:x}")

    @c(("goto",), "goto N", "go back to the state after N instructions (within the recorded "
       "history)")
    def _goto(arg):
        if not arg:
            raise CommandError("usage: goto N")
        n = d.count(arg, 0, 0, 1 << 62, "instruction count")
        back(lambda: d.session.goto(n))

    @c(("record",), "record", "the recording that going back uses: snapshots, memory, bounds")
    def _record(arg):
        rec = d.session.recorder
        if rec is None:
            d.out("not recording: going back is not possible")
            return
        st = rec.status()
        d.out(f"recording since instruction {st['earliest']:,}; now at {d.session._insns():,}\n"
              f"  {st['snapshots']} snapshots (at most {st['max_snapshots']}), "
              f"{st['bytes'] / (1 << 20):.1f} MiB of pages (at most "
              f"{st['budget'] / (1 << 20):.0f} MiB), one every {st['interval']:,} instructions")
        prov = getattr(d.m, "provenance", None)
        if prov is not None:
            d.out(f"  tag writes recorded: {prov.seq:,}; history holds the last "
                  f"{prov.entries:,}")
