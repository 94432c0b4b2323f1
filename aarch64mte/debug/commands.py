"""The debugger's command set, shared by the interactive prompt and batch mode.

`Debugger.execute(line)` runs one command and returns True on success; it prints through a rich
Console. Errors are printed as `error: ...` and make the command fail (batch mode turns any failed
command into exit status 1).

Every number a command takes is checked against what it can mean (a count, a length, a tag, a
register's width) and refused when out of range, never cut to fit; every access to the program's
memory goes through `read_mem` / `read_tags`, which turn the machine's failures into one message
saying what could not be read where.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from rich.console import Console
from rich.markup import escape

from aarch64mte.debug import regs as regaccess
from aarch64mte.debug import stages
from aarch64mte.debug import timeline
from aarch64mte.debug import view
from aarch64mte.debug.expr import Evaluator, ExprError
from aarch64mte.debug.session import GRANULE, Session, Stop, strip_tag
from aarch64mte.report import unreadable, write_guest_output

GPRS = [f"x{i}" for i in range(31)] + ["sp", "pc", "nzcv", "el", "tco"]
MAX_STEPS = 1_000_000_000       # step/next counts (Ctrl-C stops a long one)
MAX_DUMP = 1 << 16              # bytes shown or watched at once
MAX_TAGMAP = 1 << 20
MAX_DISAS = 4096                # instructions listed at once
PRINT_FORMATS = "xduotcaz"


def access_error(verb: str, addr: int, n: int, exc: Exception) -> str:
    """What a failed access to the program's memory means, without the machine's exception
    names (report.unreadable)."""
    where = f"{addr:#x}" if n <= 1 else f"{addr:#x}..{addr + n - 1:#x}"
    return f"cannot {verb} {where}: {unreadable(exc)}"


def write_tags(machine, va: int, tags, source: str) -> None:
    """``machine.write_tags`` naming the writer for the machine's tag provenance (a machine
    without provenance takes no ``source``)."""
    if getattr(machine, "provenance", None) is not None:
        machine.write_tags(va, tags, source=source)
    else:
        machine.write_tags(va, tags)


class CommandError(Exception):
    pass


class Quit(Exception):
    def __init__(self, status: Optional[int] = None):
        self.status = status


@dataclass
class Command:
    names: tuple[str, ...]
    func: Callable
    usage: str
    help: str


@dataclass
class Watch:
    number: int
    addr: int
    length: int
    kind: str
    old: object


class Debugger:
    def __init__(self, session: Session, console: Optional[Console] = None):
        self.session = session
        self.m = session.machine
        self.console = console or Console(highlight=False, emoji=False)
        self.eval = Evaluator(self._reg, self._symbols, self._read64)
        session.condition_eval = self.eval
        self.snapshot = self._regs()
        self.changed: set[str] = set()
        self.watches: dict[int, Watch] = {}
        self._next_watch = 1
        self.failed = False
        self.commands: dict[str, Command] = {}
        self._register_all()

    # --- helpers -----------------------------------------------------------------------------
    def out(self, text: str = "") -> None:
        self.console.print(text, soft_wrap=True)

    def _reg(self, name: str) -> int:
        return self.m.reg(name)

    def _symbols(self) -> dict:
        return getattr(self.m, "symbols", {}) or {}

    def _read64(self, addr: int) -> int:
        try:
            return int.from_bytes(self.read_mem(addr, 8), "little")
        except CommandError as exc:
            raise ExprError(str(exc)) from None

    def read_mem(self, addr: int, n: int) -> bytes:
        """n bytes at a (possibly tagged) address, or a CommandError saying why not."""
        va = strip_tag(addr)
        try:
            data = bytes(self.m.read_mem(va, n))
        except Exception as exc:
            raise CommandError(access_error("read", va, n, exc)) from None
        if len(data) != n:
            raise CommandError(f"cannot read {va:#x}: only {len(data)} of {n} bytes there")
        return data

    def read_tags(self, va: int, n: int) -> list[int]:
        try:
            return list(self.m.read_tags(va, n))
        except Exception as exc:
            raise CommandError(access_error("read the tags of", va, n, exc)) from None

    def exact(self, text: str) -> int:
        """An expression's exact value (-2^63..2^64-1): for counts and tags, where -1 is not a
        huge number."""
        try:
            return self.eval.exact(text)
        except ExprError as exc:
            raise CommandError(str(exc)) from None

    def count(self, text: str, default: int, lo: int, hi: int, what: str) -> int:
        """A count or length argument: `default` when absent, else lo..hi or an error."""
        if not text:
            return default
        n = self.exact(text)
        if not lo <= n <= hi:
            raise CommandError(f"{what} must be {lo}..{hi:,}, not {n}")
        return n

    def symbolize(self, addr: int) -> Optional[str]:
        try:
            return self.m.symbolize(addr)
        except Exception:
            return None

    def _regs(self) -> dict[str, int]:
        values = {}
        for name in GPRS:
            try:
                values[name] = self.m.reg(name)
            except Exception:
                pass
        return values

    def value(self, text: str) -> int:
        try:
            return self.eval(text)
        except ExprError as exc:
            raise CommandError(str(exc)) from None

    def _word(self, addr: int) -> Optional[int]:
        try:
            return int.from_bytes(self.m.read_mem(strip_tag(addr), 4), "little")
        except Exception:
            return None

    def _sysreg(self, name: str) -> Optional[int]:
        try:
            return int(self.m.reg(name))
        except Exception:
            return None

    # --- dispatch ----------------------------------------------------------------------------
    def command(self, names, usage, help_text):
        def deco(func):
            cmd = Command(tuple(names), func, usage, help_text)
            for n in names:
                self.commands[n] = cmd
            return func
        return deco

    def complete_words(self) -> list[str]:
        words = set(self.commands)
        words.update(self._symbols())
        words.update(GPRS)
        words.update(["tag", "if", "breakpoints", "registers", "symbols"])
        return sorted(words)

    def execute(self, line: str) -> bool:
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        m = re.match(r"([A-Za-z_][A-Za-z_-]*)(/\S*)?\s*(.*)$", line)
        if not m:
            self.error(f"cannot read command {line!r}")
            return False
        name, suffix, rest = m.group(1), m.group(2) or "", m.group(3)
        cmd = self.commands.get(name)
        if cmd is None:
            candidates = sorted({c.names[0] for n, c in self.commands.items()
                                 if n.startswith(name)})
            if len(candidates) == 1:
                cmd = self.commands[candidates[0]]
            else:
                hint = f" (did you mean {', '.join(candidates)}?)" if candidates else \
                    " (try 'help')"
                self.error(f"unknown command {name!r}{hint}")
                return False
        try:
            if name == "x" or cmd.names[0] == "x":
                cmd.func(suffix, rest)
            else:
                cmd.func((suffix + " " + rest).strip() if suffix else rest)
            return True
        except Quit:
            raise
        except (CommandError, ExprError) as exc:
            self.error(str(exc))
        except Exception as exc:            # a machine error must not end the session
            self.error(f"{cmd.names[0]} failed: {exc}" if str(exc) else f"{cmd.names[0]} failed")
        return False

    def error(self, message: str) -> None:
        self.failed = True
        self.console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)

    # --- stops ----------------------------------------------------------------------------------
    def report_stop(self, stop: Stop) -> None:
        new = self._regs()
        self.changed = {k for k, v in new.items() if self.snapshot.get(k) != v}
        self.snapshot = new
        if stop.exited:
            self.out(f"[bold]Program exited[/] with code {stop.exit_code}"
                     + (" (ran off the end of its text)" if stop.reason == "end" else ""))
            return
        if stop.reason == "breakpoint" and stop.breakpoint is not None and \
                stop.breakpoint.label != "internal":
            bp = stop.breakpoint
            kind = "Temporary breakpoint" if bp.temporary else "Breakpoint"
            self.out(f"{kind} {bp.number}, {view.fmt_addr(stop.pc, self.symbolize)}")
        elif stop.reason == "watchpoint":
            w = stop.watch
            if w is not None and getattr(w, "before", False):
                self.out(f"Watchpoint: {w.access} of 0x{w.addr:x} by "
                         f"{view.fmt_addr(stop.pc, self.symbolize)}, stopped before it")
            else:
                self.out(f"Watchpoint hit at {view.fmt_addr(stop.pc, self.symbolize)}")
            self._report_watches()
        elif stop.tag_fault is not None:
            self.show_fault(stop)
        elif stop.reason == "history-start":
            self.out("Reached the start of the recorded history")
        elif stop.exception is not None:
            self.out(f"[bold red]Exception[/]: {escape(stop.message)}")
        elif stop.reason not in ("step", "breakpoint"):
            self.out(f"Stopped: {escape(stop.message)}")
        self.show_pc_line()

    def show_pc_line(self) -> None:
        pc = self.m.reg("pc")
        word = self._word(pc)
        text = view.disassemble_word(word, pc, self._symbols()) if word is not None else "<unreadable>"
        where = ""
        if getattr(self.m, "el2", None) is not None:
            try:
                where = f"   [{stages.regime_text(self.m)}]"
            except Exception:
                where = ""
        self.out(f"=> {view.fmt_addr(pc, self.symbolize)}:  {escape(text)}{escape(where)}")

    def show_fault(self, stop: Stop) -> None:
        tf = stop.tag_fault
        word = self._word(stop.pc)
        insn = view.disassemble_word(word, stop.pc, self._symbols()) if word is not None else "?"
        granule = strip_tag(tf.va) & ~(GRANULE - 1)
        base = max(0, granule - 8 * GRANULE)
        try:
            around = self.m.read_tags(base, 16 * GRANULE)
        except Exception:
            around = []
        self.out(view.fault_report(stop, insn, self.symbolize, around, base,
                                   self.writers_line(tf.va, getattr(tf, "insns", None))))

    def writers_line(self, va: int, before=None) -> Optional[str]:
        """Who set the allocation tag of the granule at ``va`` (and what it was before), or
        None where the machine keeps no provenance."""
        if getattr(self.m, "provenance", None) is None:
            return None
        from aarch64mte.report import tag_writers, writers_text
        try:
            tag = self.m.read_tags(strip_tag(va) & ~(GRANULE - 1), 1)[0]
        except Exception:
            tag = None
        return writers_text(tag_writers(self.m, strip_tag(va), before), tag)

    def _report_watches(self) -> None:
        for w in self.watches.values():
            now = self._watch_value(w)
            if now != w.old:
                self.out(f"  watch {w.number} ({w.kind} 0x{w.addr:x}): {w.old} -> {now}")
                w.old = now

    def _watch_value(self, w: Watch):
        try:
            if w.kind == "tag":
                return " ".join(f"{t:x}" for t in self.m.read_tags(w.addr, w.length))
            return self.m.read_mem(w.addr, w.length).hex()
        except Exception as exc:
            return f"<{exc}>"

    def _resume(self, fn) -> Stop:
        stop = fn()
        self.report_stop(stop)
        return stop

    # --- the commands -------------------------------------------------------------------------
    def _register_all(self) -> None:
        c = self.command

        @c(("help", "h", "?"), "help [COMMAND]", "list the commands, or describe one")
        def _help(arg):
            if arg:
                cmd = self.commands.get(arg.split()[0])
                if not cmd:
                    raise CommandError(f"no command {arg!r}")
                self.out(f"{escape(cmd.usage)}\n  {escape(cmd.help)}"
                         + (f"\n  aliases: {', '.join(cmd.names[1:])}" if cmd.names[1:] else ""))
                return
            seen = []
            for cmd in self.commands.values():
                if cmd not in seen:
                    seen.append(cmd)
            for cmd in seen:
                self.out(f"  {escape(cmd.usage):<34} {escape(cmd.help)}")

        @c(("continue", "c", "cont", "run", "r"), "continue", "run until a breakpoint, fault, "
           "watchpoint or the end")
        def _continue(arg):
            self._resume(self.session.cont)

        @c(("step", "s", "si", "stepi"), "step [N]", "execute N instructions (default 1), "
           "entering calls")
        def _step(arg):
            n = self.count(arg, 1, 1, MAX_STEPS, "step count")
            self._resume(lambda: self.session.step(n))

        @c(("next", "n", "ni", "nexti"), "next [N]", "like step, but run through a BL/BLR call")
        def _next(arg):
            n = self.count(arg, 1, 1, MAX_STEPS, "step count")
            stop = None
            for _ in range(n):
                stop = self.session.next()
                if stop.reason != "step":
                    break
            self.report_stop(stop)

        @c(("until", "u", "advance"), "until [LOCATION]",
           "run to LOCATION; without one, to the next instruction after the current one (leaves a "
           "backward loop)")
        def _until(arg):
            if arg:
                addr = self.value(arg)
                self._resume(lambda: self.session.run_to(addr))
                return
            start = self.m.reg("pc")

            def go():
                stop = self.session.next()
                for _ in range(1_000_000):
                    if stop.reason != "step" or stop.pc > start:
                        break
                    stop = self.session.next()
                return stop
            self._resume(go)

        @c(("finish", "fin"), "finish", "run until the current function returns (to LR)")
        def _finish(arg):
            lr = self.m.reg("x30")
            self._resume(lambda: self.session.run_to(lr))

        @c(("break", "b", "br"), "break LOCATION [if CONDITION]",
           "stop at an address or symbol, optionally only when CONDITION holds")
        def _break(arg):
            self._add_break(arg, temporary=False)

        @c(("tbreak",), "tbreak LOCATION [if CONDITION]", "a breakpoint deleted when first hit")
        def _tbreak(arg):
            self._add_break(arg, temporary=True)

        @c(("delete", "d"), "delete [N...]", "delete breakpoints (all without N)")
        def _delete(arg):
            nums = [self.exact(a) for a in arg.split()] if arg else list(self.session.breakpoints)
            for n in nums:
                if n not in self.session.breakpoints:
                    raise CommandError(f"no breakpoint number {n}")
                self.session.delete_breakpoint(n)
            if not arg:
                self.out("deleted all breakpoints")

        @c(("info", "i"), "info breakpoints|registers|watches|symbols|faults|sysregs",
           "show breakpoints, registers, watches, symbols, the exception log or MTE registers")
        def _info(arg):
            what, _, rest = arg.partition(" ")
            table = {"breakpoints": "breakpoints", "b": "breakpoints", "break": "breakpoints",
                     "registers": "registers", "r": "registers", "reg": "registers",
                     "watch": "watches", "watches": "watches", "watchpoints": "watches",
                     "symbols": "symbols", "faults": "faults", "exceptions": "faults",
                     "sysregs": "sysregs", "record": "record"}
            key = table.get(what)
            if key is None:
                raise CommandError(f"info what? ({', '.join(sorted(set(table.values())))})")
            self.commands[key].func(rest)

        @c(("breakpoints",), "breakpoints", "list breakpoints")
        def _breakpoints(arg):
            bps = [bp for bp in self.session.breakpoints.values()
                   if bp.label not in ("gdb", "internal")]
            if not bps:
                self.out("no breakpoints")
            for bp in bps:
                cond = f" if {bp.condition}" if bp.condition else ""
                self.out(f"  {bp.number:>3}  {view.fmt_addr(bp.addr, self.symbolize)}"
                         f"{escape(cond)}  hits {bp.hits}" + ("  (temporary)" if bp.temporary
                                                              else ""))

        @c(("registers", "regs", "reg"), "registers [NAME...]",
           "general registers (changed since the last stop marked *), or the named ones")
        def _registers(arg):
            names = arg.replace(",", " ").split() if arg else None
            values = self._regs()
            if names:
                values = {}
                for n in names:
                    n = n.lstrip("$").lower()
                    try:
                        values[n] = regaccess.read(self.m, n)
                    except Exception:
                        raise CommandError(f"no register {n!r}") from None
            self.out(view.registers(values, self.changed, names and list(values)))

        @c(("print", "p"), "print[/FMT] EXPR", "evaluate an expression (registers, symbols, "
           "*ADDR, C operators); FMT x d u o t c a z as in GDB")
        def _print(arg):
            fmt = ""
            m = re.match(r"/(\S*)\s*(.*)$", arg)
            if m:
                fmt, arg = m.group(1), m.group(2)
                if len(fmt) != 1 or fmt not in PRINT_FORMATS:
                    raise CommandError(f"bad format {'/' + fmt!r}: one of "
                                       f"{', '.join('/' + f for f in PRINT_FORMATS)}")
            if not arg:
                raise CommandError("print what?")
            v = self.value(arg)
            self.out(escape(self._formatted(v, fmt)))

        @c(("set",), "set REG = EXPR | set tag ADDR = TAG",
           "change a register or the allocation tag of a granule")
        def _set(arg):
            m = re.match(r"tag\s+(.+?)\s*=\s*(.+)$", arg)
            if m:
                self._set_tag(self.value(m.group(1)), self.exact(m.group(2)))
                return
            m = re.match(r"\$?(\w+)\s*=\s*(.+)$", arg)
            if not m:
                raise CommandError("usage: set REG = EXPR | set tag ADDR = TAG")
            name, v = m.group(1).lower(), self.exact(m.group(2))
            try:
                regaccess.read(self.m, name)
            except Exception:
                raise CommandError(f"no register {name!r}") from None
            problem = regaccess.check_value(name, v, getattr(self.m, "el2", None) == "native")
            if problem:
                raise CommandError(problem)
            self.session.host_change()
            regaccess.write(self.m, name, v)
            try:
                self.snapshot[name] = self.m.reg(name)
            except Exception:
                pass

        @c(("x",), "x/NFU ADDR", "examine memory: N units, format x/d/u/c/t/i, unit b/h/w/g "
           "(like GDB)")
        def _x(suffix, rest):
            m = re.fullmatch(r"/?(\d{0,7})([xduictgbhw]*)", suffix or "")
            if not m:
                raise CommandError(f"bad format {suffix!r}: x/NFU, N a count, F one of x d u i "
                                   f"c t, U one of b h w g")
            count = int(m.group(1) or 1)
            letters = m.group(2)
            fmt = next((l for l in letters if l in "xduict"), "x")
            size = {"b": 1, "h": 2, "w": 4, "g": 8}.get(
                next((l for l in letters if l in "bhwg"), "w"))
            if not rest:
                raise CommandError("x needs an address")
            addr = self.value(rest)
            if fmt == "i":
                if not 1 <= count <= MAX_DISAS:
                    raise CommandError(f"count must be 1..{MAX_DISAS}, not {count}")
                self._disas(addr, count)
                return
            if not 1 <= count * size <= MAX_DUMP:
                raise CommandError(f"x/{count}{fmt}: {count * size:,} bytes; 1..{MAX_DUMP:,} at "
                                   f"once")
            data = self.read_mem(addr, count * size)
            self.out(view.examine(addr, data, fmt, size, self.symbolize))

        @c(("mem", "dump"), "mem ADDR [LEN]", "hex dump of LEN bytes (default 64)")
        def _mem(arg):
            words = arg.split()
            if not words:
                raise CommandError("mem needs an address")
            if len(words) > 2:
                raise CommandError("usage: mem ADDR [LEN]")
            addr = self.value(words[0])
            n = self.count(words[1] if len(words) > 1 else "", 64, 1, MAX_DUMP, "length")
            self.out(view.hexdump(strip_tag(addr), self.read_mem(addr, n)))

        @c(("disassemble", "disas", "list", "l"), "disas [ADDR] [COUNT]",
           "disassemble around the PC (or from ADDR), with symbols")
        def _disassemble(arg):
            words = arg.split()
            if words:
                addr = self.value(words[0])
                count = self.count(words[1] if len(words) > 1 else "", 12, 1, MAX_DISAS, "count")
                self._disas(addr, count)
            else:
                pc = self.m.reg("pc")
                self._disas(max(0, pc - 16), 10)

        @c(("tags", "tag"), "tags ADDR [LEN]",
           "allocation tags of the granules under ADDR..ADDR+LEN, with the pointer's logical tag")
        def _tags(arg):
            words = arg.split()
            if not words:
                raise CommandError("tags needs an address")
            ptr = self.value(words[0])
            n = self.count(words[1] if len(words) > 1 else "", 1, 1, MAX_DUMP, "length")
            va = strip_tag(ptr)
            tags = self.read_tags(va & ~(GRANULE - 1), (va & (GRANULE - 1)) + n)
            try:
                tagged = bool(self.m.is_tagged(va))
            except Exception:
                tagged = None
            base = va & ~(GRANULE - 1)
            writers = None
            if getattr(self.m, "provenance", None) is not None and tagged:
                writers = [self._short_writer(base + i * GRANULE) for i in range(len(tags))]
            self.out(view.tag_list(ptr, list(tags), tagged, writers))

        @c(("tagmap", "tmap"), "tagmap ADDR [LEN]",
           "a map of allocation tags, one hex digit per 16-byte granule (default 1 KiB)")
        def _tagmap(arg):
            words = arg.split()
            if not words:
                raise CommandError("tagmap needs an address")
            va = strip_tag(self.value(words[0])) & ~(GRANULE - 1)
            n = self.count(words[1] if len(words) > 1 else "", 1024, 1, MAX_TAGMAP, "length")
            tags = self.read_tags(va, n)
            self.out(view.tag_map(va, tags))

        @c(("translate", "tr"), "translate ADDR [r|w|x] [el0|el1|el2]",
           "ADDR through stage 1 and stage 2: each stage's output, permissions and attributes, "
           "and whether the final memory is Tagged (default: a read at the current EL)")
        def _translate(arg):
            words = arg.split()
            if not words:
                raise CommandError("translate needs an address")
            try:
                access, el = stages.parse_options(words[1:])
                rep = stages.walk(self.m, self.value(words[0]), access, el)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            self.out(escape(rep.text()))

        @c(("regime",), "regime", "the current EL, its translation regime, and whether stage 1 "
           "and stage 2 are on")
        def _regime(arg):
            self.out(escape(stages.regime_text(self.m)))

        @c(("rwatch",), "rwatch ADDR [LEN]", "stop before an instruction reads LEN bytes")
        def _rwatch(arg):
            self._add_watch(arg.split(), "read", "before")

        @c(("awatch",), "awatch ADDR [LEN]",
           "stop before an instruction reads or writes LEN bytes")
        def _awatch(arg):
            self._add_watch(arg.split(), "access", "before")

        @c(("watch",), "watch tag ADDR | watch ADDR [LEN]",
           "stop after an access changes the tag of a granule, or touches LEN bytes")
        def _watch(arg):
            words = arg.split()
            if not words:
                raise CommandError("watch what?")
            kind = "data"
            if words[0] in ("tag", "granule"):
                kind, words = "tag", words[1:]
            self._add_watch(words, kind, "after")


        @c(("unwatch",), "unwatch N", "remove a watch")
        def _unwatch(arg):
            if not arg:
                raise CommandError("unwatch which? (a number from 'watches')")
            n = self.exact(arg)
            if n not in self.watches:
                raise CommandError(f"no watch number {n}")
            w = self.watches.pop(n)
            try:
                self.m.remove_watch(w.addr, w.length, kind=w.kind)
            except TypeError:
                self.m.remove_watch(w.addr)

        @c(("watches",), "watches", "list watches")
        def _watches(arg):
            if not self.watches:
                self.out("no watches")
            for w in self.watches.values():
                self.out(f"  {w.number:>3}  {w.kind} 0x{w.addr:x} len {w.length}: {w.old}")

        @c(("sysregs", "mte"), "sysregs", "the MTE system registers, decoded field by field")
        def _sysregs(arg):
            has_el2 = getattr(self.m, "el2", None) is not None
            self.out(view.mte_sysregs(lambda name: None if name.endswith("_el2") and not has_el2
                                      else self._sysreg(name)))

        @c(("faults", "exceptions", "log"), "faults",
           "the exception log and every tag-check failure")
        def _faults(arg):
            self.out(view.exception_log(list(getattr(self.m, "exception_log", []) or []),
                                        list(getattr(self.m, "tag_faults", []) or []),
                                        lambda tf: self.writers_line(tf.va,
                                                                     getattr(tf, "insns", None))))

        @c(("symbols", "syms"), "symbols [PATTERN]", "the program's symbols")
        def _symbols(arg):
            syms = sorted(self._symbols().items(), key=lambda kv: kv[1])
            for name, addr in syms:
                if not arg or arg in name:
                    self.out(f"  0x{addr:016x}  {escape(name)}")

        @c(("output", "console"), "output", "what the program has printed so far")
        def _output(arg):
            text = getattr(self.m, "console", "")
            if isinstance(text, (bytes, bytearray)):
                text = text.decode("latin-1")
            if text:
                write_guest_output(self.console, str(text))
            else:
                self.out("(no output)")

        @c(("assert", "expect"), "assert EXPR", "fail (batch exit status 1) unless EXPR is "
           "non-zero")
        def _assert(arg):
            if not self.value(arg):
                raise CommandError(f"assertion failed: {arg}")

        @c(("echo",), "echo TEXT", "print TEXT")
        def _echo(arg):
            self.out(escape(arg))

        @c(("quit", "q", "exit"), "quit [STATUS]", "leave the debugger")
        def _quit(arg):
            raise Quit(self.count(arg, None, 0, 255, "exit status") if arg else None)

        timeline.register(self)

    def _add_watch(self, words, kind: str, when: str) -> None:
        if not words:
            raise CommandError("watch needs an address")
        if len(words) > 2:
            raise CommandError("usage: watch ADDR [LEN]")
        addr = strip_tag(self.value(words[0]))
        length = self.count(words[1] if len(words) > 1 else "",
                            GRANULE if kind == "tag" else 8, 1, MAX_DUMP, "length")
        if kind == "tag":
            addr &= ~(GRANULE - 1)
        try:
            if when == "after":
                self.m.add_watch(addr, length, kind=kind)
            else:
                self.m.add_watch(addr, length, kind=kind, when=when)
        except Exception as exc:
            raise CommandError(access_error("watch", addr, length, exc)) from None
        w = Watch(self._next_watch, addr, length, kind, None)
        w.old = self._watch_value(w)
        self.watches[w.number] = w
        self._next_watch += 1
        self.out(f"watch {w.number}: {kind} 0x{addr:x} len {length}")

    def _add_break(self, arg: str, temporary: bool) -> None:
        if not arg:
            arg = f"0x{self.m.reg('pc'):x}"
        parts = re.split(r"\s+if\s+", arg, maxsplit=1)
        where = parts[0].strip()
        cond = parts[1].strip() if len(parts) > 1 else None
        addr = self.value(where)
        if cond:
            self.value(cond)        # check the syntax now; a false value is fine
        bp = self.session.add_breakpoint(addr, condition=cond, temporary=temporary)
        self.out(f"Breakpoint {bp.number} at {view.fmt_addr(addr, self.symbolize)}"
                 + (f" if {escape(cond)}" if cond else ""))

    def _formatted(self, v: int, fmt: str) -> str:
        """`print`'s output: GDB's /FMT letters, or hex and decimal with the symbol there."""
        signed = v - (1 << 64) if v >> 63 else v
        if fmt == "x":
            return f"{v:#x}"
        if fmt == "z":
            return f"0x{v:016x}"
        if fmt == "d":
            return str(signed)
        if fmt == "u":
            return str(v)
        if fmt == "o":
            return f"0{v:o}" if v else "0"
        if fmt == "t":
            return f"{v:b}"
        if fmt == "c":
            low = v & 0xFF
            return f"{low} {chr(low)!r}" if 32 <= low < 127 else f"{low} '\\x{low:02x}'"
        sym = self.symbolize(v)
        if fmt == "a":
            return f"{v:#x}" + (f" <{sym}>" if sym else "")
        return f"0x{v:x} ({v})" + (f" <{sym}>" if sym else "")

    def _set_tag(self, addr: int, tag: int) -> None:
        if not 0 <= tag <= 0xF:
            shown = f"{tag:#x}" if tag >= 0 else str(tag)
            raise CommandError(f"an allocation tag is 0..15 (0x0..0xf), not {shown}")
        va = strip_tag(addr) & ~(GRANULE - 1)
        is_tagged = getattr(self.m, "is_tagged", None)
        try:
            tagged = True if is_tagged is None else bool(is_tagged(va))
        except Exception as exc:
            raise CommandError(access_error("reach", va, 1, exc)) from None
        if not tagged:
            raise CommandError(f"{va:#x} is not Tagged memory: it has no allocation tag to set")
        self.session.host_change()
        try:
            write_tags(self.m, va, [tag], "debugger")
        except Exception as exc:
            raise CommandError(access_error("set the tag of", va, 1, exc)) from None

    def _short_writer(self, va: int) -> str:
        last, _ = self.m.tag_writers(va)
        if last is None:
            return "never written"
        if not last.by_instruction:
            return f"set by the {last.kind} (#{last.insns:,})"
        word = self._word(last.pc)
        text = view.disassemble_word(word, last.pc, self._symbols()) if word is not None else "?"
        return f"set by {escape(text)} at {view.fmt_addr(last.pc, self.symbolize)} " \
               f"(#{last.insns:,})"

    def _disas(self, addr: int, count: int) -> None:
        rows = [(a, self._word(a)) for a in range(addr & ~3, (addr & ~3) + 4 * min(count, 4096), 4)]
        bps = {bp.addr for bp in self.session.breakpoints.values()}
        self.out(view.disassembly(rows, self.m.reg("pc"), self.symbolize, bps, self._symbols()))


def run_batch(debugger: Debugger, lines, echo: bool = True) -> int:
    """Run commands in order, echoing each; stop at `quit`. Status: 0 if every command worked, 1 if
    any failed, or the `quit N` status."""
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if echo:
            debugger.out(f"(mte) {escape(line.strip())}")
        try:
            debugger.execute(line)
        except Quit as q:
            return q.status if q.status is not None else (1 if debugger.failed else 0)
    return 1 if debugger.failed else 0
