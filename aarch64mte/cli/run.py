"""`aarch64mte run PROGRAM`: run an assembly source or an AArch64 ELF and report how it ended.

Exit status: the semihosting exit code when the program made one, or the code the EL2 shim's
handler ended the run with; otherwise 0 when it fell off the end of its text or stopped at a
BRK, 1 for an unhandled exception, an unhandled VM exit or the instruction limit, 2 for a usage
or input error (reported as one message, never a traceback), 130 on Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import sys
from dataclasses import dataclass, field

from aarch64mte.errors import InputError, MteError, check_input_file, host_failures

SOURCE_SUFFIXES = (".S", ".s")
DEFAULT_MAX_INSNS = 10_000_000
TCF_MODES = ("none", "sync", "async", "asymm")
STATUS_USAGE = 2
STATUS_INTERRUPT = 130


# --- option types (checked by argparse, so a bad value is a usage error with status 2) -------

def parse_int(text: str) -> int:
    """An integer in C notation: 0x.., 0b.., 0o.. or decimal, optionally negative."""
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _bounded(lo: int, hi: int, what: str):
    def check(text: str) -> int:
        value = parse_int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be {lo}..{hi}, not {value}")
        return value
    return check


def _positive(text: str) -> int:
    value = parse_int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected REG=VALUE, not {text!r}")
    return name.strip().lower(), value.strip()


MAX_TAGS_LEN = 16 << 20         # --tags: a million granules at most
MAX_MEM_LEN = 1 << 20           # --mem: a 64 Ki-line hex dump at most


def _range(limit: int):
    def check(text: str) -> tuple[str, int]:
        where, sep, length = text.rpartition(":")
        if not sep or not where:
            raise argparse.ArgumentTypeError(f"expected ADDR:LEN, not {text!r}")
        n = parse_int(length)
        if not 1 <= n <= limit:
            raise argparse.ArgumentTypeError(f"LEN must be 1..{limit:#x} in {text!r}")
        return where.strip(), n
    return check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`run`'s options: those that build the machine, then the report's."""
    add_machine_arguments(parser)
    parser.add_argument("--tags", type=_range(MAX_TAGS_LEN), action="append", default=[],
                        metavar="ADDR:LEN",
                        help="after the run, show the allocation tags of LEN bytes at ADDR "
                             "(a number, symbol or symbol+offset; repeatable)")
    parser.add_argument("--mem", type=_range(MAX_MEM_LEN), action="append", default=[],
                        metavar="ADDR:LEN",
                        help="after the run, show LEN bytes of memory at ADDR (repeatable)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object describing the finished run")


def add_machine_arguments(parser: argparse.ArgumentParser) -> None:
    """PROGRAM and the options that build and start the machine; shared by `run`, `debug` and
    `gdbserver` so the three start a program the same way."""
    parser.add_argument("program", metavar="PROGRAM",
                        help="assembly source (.S or .s) or a static AArch64 ELF")
    parser.add_argument("--profile", choices=("snippet", "virt"),
                        help="starting state: 'snippet' (default for source) is a ready MTE "
                             "environment at EL1; 'virt' (default for ELF) is QEMU virt's reset "
                             "state")
    parser.add_argument("--el", type=int, choices=(0, 1), help="exception level to start at")
    parser.add_argument("--boot-el", type=int, choices=(1, 2), default=None,
                        help="2: the board has EL2 and the program starts there, like QEMU's "
                             "-M virt,virtualization=on (default 1: no EL2)")
    parser.add_argument("--el2", choices=("shim",), default=None,
                        help="shim: the board has EL2, played by Python; the program is the "
                             "guest at EL1/EL0 and every exception to EL2 is a VM exit")
    parser.add_argument("--hcr", action="append", default=[], metavar="FIELD=VALUE",
                        help="with --el2 shim: an HCR_EL2 field (repeatable; default RW=1 VM=1 "
                             "ATA=1), e.g. --hcr ATA=0 --hcr TID5=1")
    parser.add_argument("--stage2", metavar="FILE.toml",
                        help="with --el2 shim: the stage-2 map ([[map]] ipa, pa, size, attr, "
                             "perm); default an identity map of RAM, normal-wb rwx")
    parser.add_argument("--el2-handler", metavar="FILE.py",
                        help="with --el2 shim: a Python file whose make_handler(shim) returns "
                             "the VM-exit handler (default: stop at the first exit)")
    parser.add_argument("--tcf", choices=TCF_MODES,
                        help="tag-check fault mode for the starting EL (SCTLR_EL1.TCF/TCF0)")
    parser.add_argument("--gmid-bs", type=_bounded(2, 6, "GMID_EL1.BS"), metavar="N",
                        help="GMID_EL1.BS: LDGM/STGM move 4 << N bytes of tags (2..6)")
    parser.add_argument("--entry", metavar="SYMBOL|ADDR",
                        help="start here instead of the image's entry point")
    parser.add_argument("--set", type=_assignment, action="append", default=[],
                        metavar="REG=VALUE",
                        help="set a register (GPR, sp, pc, nzcv or a system register) before "
                             "running; VALUE may be a number or a symbol (repeatable)")
    parser.add_argument("--max-insns", type=_positive, default=DEFAULT_MAX_INSNS, metavar="N",
                        help=f"stop after N instructions (default {DEFAULT_MAX_INSNS:,})")
    parser.add_argument("--seed", type=_bounded(0, 2**64 - 1, "--seed"), metavar="N",
                        help="seed for IRG's random tags when GCR_EL1.RRND = 1")


# --- addresses and values that may name symbols -----------------------------------------------

_TERM = re.compile(r"\s*([+-]?)\s*([A-Za-z_.$][\w.$]*|0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*)\s*")


def resolve(expr: str, symbols: dict[str, int], what: str = "address") -> int:
    """Evaluate `sym`, `sym+0x10`, `0x40080000`, `buf-16`, ... against the program's symbols.
    The result must fit 64 bits (-2^63..2^64-1; a negative one is returned as its two's
    complement): anything else is an InputError, never a silent truncation."""
    pos, total, first = 0, 0, True
    text = expr.strip()
    if not text:
        raise InputError(f"empty {what}")
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or m.end() == pos or (not first and not m.group(1)):
            raise InputError(f"cannot read {what} {expr!r}")
        sign, atom = m.groups()
        if atom[0].isdigit():
            value = int(atom.replace("_", ""), 0)
        elif atom in symbols:
            value = symbols[atom]
        else:
            raise InputError(f"unknown symbol {atom!r} in {what} {expr!r}")
        total += -value if sign == "-" else value
        pos, first = m.end(), False
    if not -(1 << 63) <= total < 1 << 64:
        raise InputError(f"{what} {expr!r} is {total:#x}: out of range for 64 bits")
    return total & (2**64 - 1)


# --- running ----------------------------------------------------------------------------------

@dataclass
class Dump:
    """One --tags or --mem request, resolved to an address."""
    text: str
    addr: int
    length: int


@dataclass
class Outcome:
    machine: object
    result: object
    tag_dumps: list = field(default_factory=list)
    mem_dumps: list = field(default_factory=list)


def make_machine(**options):
    """Build the Machine (a separate function so tests can substitute one)."""
    from aarch64mte.machine import Machine
    return Machine(**options)


def is_source(path: str) -> bool:
    return path.endswith(SOURCE_SUFFIXES)


def machine_options(args: argparse.Namespace) -> dict:
    """The Machine's constructor arguments: only those the user chose, plus the profile."""
    options = {"profile": args.profile or ("snippet" if is_source(args.program) else "virt")}
    for name in ("el", "tcf", "gmid_bs", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if getattr(args, "boot_el", None) == 2:
        if getattr(args, "el", None) is not None:
            raise InputError("--boot-el 2 starts at EL2: leave out --el")
        if getattr(args, "el2", None):
            raise InputError("--boot-el 2 runs the program's own EL2; --el2 shim plays it "
                             "in Python: choose one")
        options["el"] = 2
    shim_opts = [o for o, v in (("--hcr", getattr(args, "hcr", None)),
                                ("--stage2", getattr(args, "stage2", None)),
                                ("--el2-handler", getattr(args, "el2_handler", None))) if v]
    if getattr(args, "el2", None) == "shim":
        from aarch64mte.el2 import hcr as hcr_fields
        options["el2"] = "shim"
        options["hcr"] = hcr_fields.parse_assignments(args.hcr)
        if args.stage2:
            check_input_file(args.stage2)
            options["stage2"] = args.stage2
    elif shim_opts:
        raise InputError(f"{shim_opts[0]} needs --el2 shim")
    return options


def _known_register(machine, name: str) -> bool:
    try:
        machine.reg(name)
    except (KeyError, ValueError, AttributeError, LookupError, MteError):
        return False
    return True


def load_program(machine, path: str, command: str = "run") -> None:
    """Load PROGRAM into the machine: the one way `run`, `debug` and `gdbserver` do it. The path
    must name a regular file; whatever the host then fails at (reading, parsing, placing the
    image) is one InputError naming the file. What the loader left out is said on stderr."""
    check_input_file(path)
    with host_failures(path, "cannot load"):
        machine.load(path)
    for note in getattr(getattr(machine, "image", None), "notes", None) or ():
        print(f"aarch64mte {command}: note: {path}: {note}", file=sys.stderr)


def prepare(args: argparse.Namespace):
    """Build the machine, load the program, apply --entry and --set. Raises InputError."""
    from aarch64mte.debug.regs import check_value, write as write_reg
    machine = make_machine(**machine_options(args))
    if getattr(args, "el2_handler", None):
        install_el2_handler(machine, args.el2_handler)
    load_program(machine, args.program, getattr(args, "command", None) or "run")
    symbols = dict(getattr(machine, "symbols", {}) or {})
    if args.entry is not None:
        machine.set_reg("pc", resolve(args.entry, symbols, "entry"))
    for name, text in args.set:
        if not _known_register(machine, name):
            raise InputError(f"unknown register {name!r} in --set {name}={text}")
        value = resolve(text, symbols, f"value for {name}")
        problem = check_value(name, value)
        if problem:
            raise InputError(f"--set {name}={text}: {problem}")
        try:
            write_reg(machine, name, value)
        except (KeyError, ValueError, LookupError) as exc:
            raise InputError(f"cannot set {name}: {exc}") from None
    tag_dumps = [Dump(t, resolve(t, symbols), n) for t, n in getattr(args, "tags", [])]
    mem_dumps = [Dump(t, resolve(t, symbols), n) for t, n in getattr(args, "mem", [])]
    return machine, tag_dumps, mem_dumps


def install_el2_handler(machine, path: str) -> None:
    """Load FILE.py and give the shim the handler its make_handler(shim) returns."""
    from aarch64mte.el2.handler_file import load
    load(machine.shim, path)


def machine_from_args(args: argparse.Namespace):
    """A loaded machine with --entry and --set applied (for `debug` and `gdbserver`)."""
    return prepare(args)[0]


def run_program(args: argparse.Namespace) -> Outcome:
    """Prepare and run; Ctrl-C stops the run cleanly (reason 'interrupt')."""
    machine, tag_dumps, mem_dumps = prepare(args)

    def stop(signum, frame):
        machine.request_stop()

    previous = None
    try:
        previous = signal.signal(signal.SIGINT, stop)
    except ValueError:          # not the main thread: no handler, Ctrl-C behaves as usual
        pass
    try:
        with host_failures(args.program, "the emulator failed running it"):
            result = machine.run(max_insns=args.max_insns)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return Outcome(machine, result, tag_dumps, mem_dumps)


def exit_status(result) -> int:
    reason = result.reason
    if reason in ("semihost-exit", "el2-exit"):     # the program's (or its EL2's) own code
        return int(result.code or 0) & 0xFF
    if reason in ("end", "brk"):
        return 0
    if reason == "interrupt":
        return STATUS_INTERRUPT
    return 1


def error(message: str) -> int:
    print(f"aarch64mte run: error: {message}", file=sys.stderr)
    return STATUS_USAGE


def main(args: argparse.Namespace) -> int:
    from aarch64mte import report

    try:
        outcome = run_program(args)
        data = report.collect(outcome.machine, outcome.result,
                              tag_dumps=outcome.tag_dumps, mem_dumps=outcome.mem_dumps)
    except MteError as exc:
        return error(str(exc))
    status = exit_status(outcome.result)
    data["exit"]["status"] = status
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        report.print_summary(data, program=args.program)
    sys.stdout.flush()
    return status


def _standalone(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="aarch64mte run", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
