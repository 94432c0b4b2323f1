"""`aarch64mte run`'s contract (options, JSON, exit status, errors) against a stand-in machine.

These tests exercise the command-line layer and the report alone; test_run_machine.py and
test_examples.py run real programs on the real Machine.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import pytest

from aarch64mte import report
from aarch64mte.cli import run as run_cli
from aarch64mte.errors import InputError


@dataclass
class Result:
    reason: str
    code: int | None = None
    exception: object = None
    pc: int = 0x40080010


@dataclass
class TagFault:
    va: int
    logical_tag: int
    allocation_tag: int
    write: bool
    mode: str = "sync"


@dataclass
class Record:
    kind: str
    ec: int
    esr: int
    far: int
    el: int
    from_el: int
    pc: int
    tag_fault: object = None


class FakeMachine:
    """Just enough of the machine contract for the CLI: registers, memory, tags, one result."""

    result = Result("end")
    created: list = []

    def __init__(self, **options):
        self.options = options
        self.regs = {f"x{i}": 0 for i in range(31)}
        self.regs.update(sp=0x40100000, pc=0, nzcv=0, el=1, sctlr_el1=0x30d00801,
                         gcr_el1=0, rgsr_el1=0, tfsr_el1=0, tfsre0_el1=0, gmid_el1=4,
                         tcr_el1=0, esr_el1=0, far_el1=0, elr_el1=0, spsr_el1=0)
        self.symbols = {}
        self.console = ""
        self.counters = {"insns": 0}
        self.tag_faults = []
        FakeMachine.created.append(self)

    def load(self, path):
        text = open(path).read()
        if "garbage" in text:
            raise InputError("unknown instruction 'garbage'", file=path, line=1)
        self.symbols = {"_start": 0x40080000, "buf": 0x40081000}
        self.regs["pc"] = 0x40080000

    def reg(self, name):
        return self.regs[name]

    def set_reg(self, name, value):
        if name not in self.regs:
            raise KeyError(name)
        self.regs[name] = value

    def run(self, max_insns):
        self.max_insns = max_insns
        self.counters["insns"] = 7
        self.regs["x0"] = 0x0700000040081000
        return self.result

    def request_stop(self):
        pass

    def read_mem(self, va, n):
        return bytes(range(n))

    def read_tags(self, va, length):
        first, last = va // 16, (va + length - 1) // 16
        return [(g & 0xF) for g in range(first, last + 1)]

    def symbolize(self, addr):
        return "_start+0x10" if addr == 0x40080010 else None


@pytest.fixture
def fake(monkeypatch):
    FakeMachine.created = []
    FakeMachine.result = Result("end")
    monkeypatch.setattr(run_cli, "make_machine", lambda **o: FakeMachine(**o))
    return FakeMachine


@pytest.fixture
def prog(tmp_path):
    path = tmp_path / "p.S"
    path.write_text("_start: nop\n")
    return str(path)


def parse(argv):
    parser = argparse.ArgumentParser(prog="aarch64mte run")
    run_cli.add_arguments(parser)
    return parser.parse_args(argv)


def invoke(argv, capsys):
    status = run_cli.main(parse(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_json_is_one_object_with_the_contract_keys(fake, prog, capsys):
    status, out, err = invoke([prog, "--json"], capsys)
    assert status == 0 and err == ""
    data = json.loads(out)
    assert set(data) >= {"exit", "exception", "regs", "sysregs", "tags", "mem", "console", "insns"}
    assert data["exit"] == {"reason": "end", "code": None, "status": 0}
    assert data["exception"] is None
    assert set(data["regs"]) == {f"x{i}" for i in range(31)} | {"sp", "pc", "nzcv", "el"}
    assert data["regs"]["x0"] == "0x700000040081000"       # 64-bit values: hex strings
    assert data["regs"]["el"] == 1
    assert set(data["sysregs"]) == set(report.SYSREGS)
    assert data["insns"] == 7


def test_defaults_passed_to_the_machine(fake, prog, tmp_path, capsys):
    invoke([prog, "--json"], capsys)
    m = fake.created[-1]
    assert m.options == {"profile": "snippet"}
    assert m.max_insns == 10_000_000
    elf = tmp_path / "prog.elf"
    elf.write_text("")
    invoke([str(elf), "--json", "--el", "0", "--tcf", "async", "--gmid-bs", "6", "--seed", "9",
            "--max-insns", "0x100"], capsys)
    m = fake.created[-1]
    assert m.options == {"profile": "virt", "el": 0, "tcf": "async", "gmid_bs": 6, "seed": 9}
    assert m.max_insns == 256


def test_entry_set_and_dumps_resolve_symbols(fake, prog, capsys):
    status, out, _ = invoke([prog, "--json", "--entry", "buf", "--set", "x1=buf+0x10",
                             "--set", "GCR_EL1=0x10001", "--set", "x2=-1",
                             "--tags", "buf:64", "--mem", "buf+16:4"], capsys)
    data = json.loads(out)
    m = fake.created[-1]
    assert m.regs["pc"] == 0x40081000
    assert m.regs["x1"] == 0x40081010 and m.regs["gcr_el1"] == 0x10001
    assert m.regs["x2"] == 2**64 - 1
    assert data["tags"] == {"0x40081000": [0, 1, 2, 3]}
    assert data["mem"] == {"0x40081010": "00010203"}


@pytest.mark.parametrize("result, status", [
    (Result("brk", 0x3e8), 0),
    (Result("semihost-exit", 3), 3),
    (Result("semihost-exit", 0), 0),
    (Result("insn-limit"), 1),
    (Result("exception", exception=Record("sync", 0x15, 0x56000000, 0, 1, 0, 0x40080010)), 1),
])
def test_exit_status(fake, prog, capsys, result, status):
    fake.result = result
    got, out, _ = invoke([prog, "--json"], capsys)
    data = json.loads(out)
    assert got == status
    assert data["exit"]["reason"] == result.reason
    assert data["exit"]["code"] == result.code


def test_tag_fault_detail(fake, prog, capsys):
    tf = TagFault(0x0300000040081020, 3, 2, False)
    fake.result = Result("exception", exception=Record(
        "sync", 0x25, 0x96000011, 0x0300000040081020, 1, 1, 0x40080010, tf))
    status, out, _ = invoke([prog, "--json"], capsys)
    exc = json.loads(out)["exception"]
    assert status == 1
    assert exc["ec"] == 0x25 and exc["esr"] == "0x96000011" and exc["far"] == "0x300000040081020"
    assert exc["fsc"] == 0x11 and exc["write"] is False
    assert exc["where"] == "_start+0x10"
    tfd = exc["tag_fault"]
    assert (tfd["pointer"], tfd["logical_tag"], tfd["allocation_tag"], tfd["write"]) == \
        ("0x300000040081020", 3, 2, False)
    here = [g for g in tfd["granules"] if g["here"]]
    assert here == [{"addr": "0x40081020", "tag": 2, "here": True}]   # tag bits stripped
    assert len(tfd["granules"]) == 2 * report.CONTEXT_GRANULES + 1


def test_summary_shows_the_fault(fake, prog, capsys):
    tf = TagFault(0x0300000040081020, 3, 2, True)
    fake.result = Result("exception", exception=Record(
        "sync", 0x25, 0x96000051, 0x0300000040081020, 1, 1, 0x40080010, tf))
    status, out, _ = invoke([prog, "--tags", "buf:32", "--mem", "buf:8"], capsys)
    assert status == 1
    for text in ("unhandled exception", "Data Abort, same EL", "Synchronous Tag Check Fault",
                 "(write)", "0x96000051", "_start+0x10", "logical 3", "allocation 2",
                 "<- fault", "tags at 0x40081000", "memory at 0x40081000", "x0 0x700000040081000"):
        assert text in out, text


@pytest.mark.parametrize("argv, message", [
    (["--set", "x99=1"], "unknown register 'x99'"),
    (["--tags", "nosuch:16"], "unknown symbol 'nosuch'"),
    (["--entry", "nosuch"], "unknown symbol 'nosuch'"),
    (["--mem", "buf+:4"], "cannot read address"),
])
def test_input_errors_are_one_message(fake, prog, capsys, argv, message):
    status, out, err = invoke([prog, *argv], capsys)
    assert status == 2 and out == ""
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_missing_file_and_bad_source(fake, tmp_path, capsys):
    status, _, err = invoke([str(tmp_path / "nope.S")], capsys)
    assert status == 2 and "no such file" in err
    bad = tmp_path / "bad.S"
    bad.write_text("garbage\n")
    status, _, err = invoke([str(bad)], capsys)
    assert status == 2 and f"{bad}:1: unknown instruction" in err


@pytest.mark.parametrize("argv", [
    ["--tcf", "maybe"], ["--gmid-bs", "7"], ["--gmid-bs", "1"], ["--el", "2"],
    ["--max-insns", "0"], ["--max-insns", "lots"], ["--set", "x0"], ["--tags", "buf"],
    ["--mem", "buf:0"], ["--profile", "linux"],
])
def test_bad_option_values_are_usage_errors(prog, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse([prog, *argv])
    assert exc.value.code == 2


def test_resolve():
    syms = {"buf": 0x1000, "end.x": 0x2000}
    assert run_cli.resolve("buf", syms) == 0x1000
    assert run_cli.resolve("buf+0x10", syms) == 0x1010
    assert run_cli.resolve("buf - 16", syms) == 0xFF0
    assert run_cli.resolve("end.x-buf", syms) == 0x1000
    assert run_cli.resolve("0x40080000", syms) == 0x40080000
    assert run_cli.resolve("-1", syms) == 2**64 - 1
    for bad in ("buf+", "buf buf", "", "nosuch"):
        with pytest.raises(InputError):
            run_cli.resolve(bad, syms)


def test_report_helpers():
    assert report.canonical(0x0A00_0000_4008_0000) == 0x4008_0000
    assert report.canonical(0x0AFF_8000_0000_0000) == 0xFFFF_8000_0000_0000
    assert report.dfsc_name(0x11) == "Synchronous Tag Check Fault"
    assert report.dfsc_name(0x07) == "Translation fault, level 3"
    assert report.ec_name(0x3C) == "BRK instruction"
