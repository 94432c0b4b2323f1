"""FEAT_PAuth instructions and the EL2 system registers and operations a hypervisor uses, which
Keystone does not know: the generated corpora (tools/gen_mte_corpus.py) assemble to the same
bytes as GNU as and llvm-mc, both backends agree, `aarch64mte disasm` names them as objdump
does, and illegal operands get one clear error at their line."""
from __future__ import annotations

import importlib.util
import os
import re

import pytest

from aarch64mte.assembler import assemble, assemble_file
from aarch64mte.errors import InputError
from conftest import requires_tool, section_bytes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAUTH = os.path.join(HERE, "corpus", "pauth.s")
EL2 = os.path.join(HERE, "corpus", "el2_sysregs.s")
# corpus -> (GNU as flags, llvm-mc flags), as in each file's header
FLAGS = {PAUTH: (["-march=armv8.3-a"], ["-mattr=+pauth"]),
         EL2: (["-march=armv8.5-a+memtag"], ["-mattr=+v8.5a,+mte"])}


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_mte_corpus", os.path.join(ROOT, "tools", "gen_mte_corpus.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def _lines(path: str) -> list[str]:
    with open(path) as f:
        return [l.strip() for l in f if l.startswith("        ") and not l.strip().startswith(".")]


def _ours(path: str) -> bytes:
    image = assemble_file(path)
    text = image.segment(".text")
    return text.data[:image.text_end - text.addr]


def _compare(ours: bytes, theirs: bytes, lines: list[str], tool: str) -> None:
    assert len(ours) == len(theirs) == 4 * len(lines), (len(ours), len(theirs), len(lines))
    bad = [f"{lines[i // 4]}: ours {ours[i:i + 4][::-1].hex()} {tool} {theirs[i:i + 4][::-1].hex()}"
           for i in range(0, len(ours), 4) if ours[i:i + 4] != theirs[i:i + 4]]
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("path,generator", [(PAUTH, "pauth_lines"), (EL2, "el2_lines")],
                         ids=["pauth", "el2"])
def test_corpus_is_current(path, generator):
    assert getattr(_generator(), generator)() == _lines(path), "run tools/gen_mte_corpus.py"


def test_pauth_corpus_covers_every_form():
    mnemonics = {l.split()[0].lower() for l in _lines(PAUTH)}
    from aarch64mte.assembler.pauth import MNEMONICS
    assert mnemonics == set(MNEMONICS)
    assert len(MNEMONICS) == 46


@requires_tool("aarch64-linux-gnu-as")
@pytest.mark.parametrize("path", [PAUTH, EL2], ids=["pauth", "el2"])
def test_identical_to_gnu_as(oracle, tmp_path, path):
    obj = tmp_path / "gnu.o"
    oracle.run("aarch64-linux-gnu-as", *FLAGS[path][0], "-o", str(obj), path)
    _compare(_ours(path), section_bytes(str(obj), ".text"), _lines(path), "GNU as")


@requires_tool("llvm-mc")
@pytest.mark.parametrize("path", [PAUTH, EL2], ids=["pauth", "el2"])
def test_identical_to_llvm_mc(oracle, tmp_path, path):
    obj = tmp_path / "llvm.o"
    oracle.run("llvm-mc", "-triple=aarch64", *FLAGS[path][1], "-filetype=obj", "-o", str(obj),
               path)
    _compare(_ours(path), section_bytes(str(obj), ".text"), _lines(path), "llvm-mc")


@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")
@pytest.mark.parametrize("path", [PAUTH, EL2], ids=["pauth", "el2"])
def test_builtin_and_gnu_backends_agree(path):
    a, b = assemble_file(path), assemble_file(path, backend="gnu")
    assert a.read(a.start, a.end - a.start) == b.read(b.start, b.end - b.start)


@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-objdump")
@pytest.mark.parametrize("path", [PAUTH, EL2], ids=["pauth", "el2"])
def test_disasm_names_them_as_objdump_does(oracle, tmp_path, path):
    # Capstone 5 decodes FEAT_PAuth and the VHE/EL2 names. It differs from objdump only in
    # spelling: `[x1, #0]!` for `[x1]!`, and decimal for hexadecimal immediates.
    from aarch64mte.disasm import listing
    obj = tmp_path / "gnu.o"
    oracle.run("aarch64-linux-gnu-as", *FLAGS[path][0], "-o", str(obj), path)
    dump = oracle.run("aarch64-linux-gnu-objdump", "-d", str(obj)).stdout
    theirs = [l.split("\t", 2)[2].strip() for l in dump.splitlines()
              if re.match(r"\s+[0-9a-f]+:\t", l)]
    code = _ours(path)
    ours = [l.split("\t", 2)[2].strip() for l in listing(code, 0x4008_0000, {}).splitlines()
            if re.match(r"\s*[0-9a-f]+:\t", l)]

    def same(a: str) -> str:
        a = re.sub(r"#0x([0-9a-f]+)", lambda m: f"#{int(m.group(1), 16)}", a)
        return re.sub(r", #0\]!", "]!", a).replace("\t", " ")
    assert len(ours) == len(theirs) == len(_lines(path))
    bad = [f"{x!r} vs objdump {y!r}" for x, y in zip(ours, theirs) if same(x) != same(y)]
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("src,msg", [
    ("ldraa x0, [x1, #12]", "ldraa: offset 12 is not a multiple of 8"),
    ("ldrab x0, [x1, #4096]!", "ldrab: offset 4096 is out of range -4096..4088"),
    ("ldraa x0, [x1, #-4104]", "out of range -4096..4088"),
    ("ldraa w0, [x1]", "'w0' is not allowed here (expected x0-x30 or xzr)"),
    ("ldraa x0, [xzr]", "'xzr' is not allowed here (expected x0-x30 or sp)"),
    ("ldraa x0, [x1], #8", "ldraa needs: Xt, [Xn|SP{, #simm}]{!}"),
    ("pacia x0, xzr", "'xzr' is not allowed here (expected x0-x30 or sp)"),
    ("pacia sp, x1", "'sp' is not allowed here (expected x0-x30 or xzr)"),
    ("pacia w0, x1", "'w0' is not allowed here"),
    ("paciza x0, x1", "paciza needs: Xd"),
    ("pacga x0, sp, x1", "'sp' is not allowed here"),
    ("braa x0, xzr", "'xzr' is not allowed here (expected x0-x30 or sp)"),
    ("blraaz v0", "'v0' is not a register"),
    ("retaa x30", "retaa takes no operands"),
    ("paciasp x0", "paciasp takes no operands"),
    ("msr pan, #2", "msr pan: immediate 2 is out of range 0..1"),
    ("mrs w0, ttbr1_el2", "'w0' is not allowed here"),
    ("msr ttbr1_el2, sp", "'sp' is not allowed here"),
    ("tlbi alle1os, x0", "tlbi alle1os takes no register"),
    ("at s1e1rp", "at s1e1rp needs a register"),
])
def test_illegal_operands_are_one_clear_error(src, msg):
    with pytest.raises(InputError) as e:
        assemble(f"nop\n{src}\n", "pa.S")
    assert (e.value.file, e.value.line) == ("pa.S", 2), str(e.value)
    assert msg in e.value.message, str(e.value)


@requires_tool("aarch64-linux-gnu-as")
@pytest.mark.parametrize("src", ["ldraa x0, [x1, #12]", "ldrab x0, [x1, #4096]!",
                                 "ldraa w0, [x1]", "pacia x0, xzr", "braa x0, xzr",
                                 "pacga x0, sp, x1", "retaa x30", "msr pan, #2"])
def test_gnu_as_refuses_them_too(oracle, tmp_path, src):
    path = tmp_path / "bad.s"
    path.write_text(src + "\n")
    r = oracle.run("aarch64-linux-gnu-as", "-march=armv8.3-a", "-o", str(tmp_path / "bad.o"),
                   str(path), check=False)
    assert r.returncode != 0, f"GNU as accepts {src!r}"
