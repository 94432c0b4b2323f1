"""The builtin assembler against GNU as and llvm-mc: the MTE corpus, directives, sections,
symbols and literal pools, the shipped asm/ programs; and its error messages."""
from __future__ import annotations

import glob
import os

import pytest

from aarch64mte.assembler import assemble, assemble_file
from aarch64mte.errors import InputError
from conftest import requires_tool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus", "mte_corpus.s")
DIRECTIVES = os.path.join(HERE, "corpus", "directives.S")
ATOMICS = os.path.join(HERE, "corpus", "atomics.s")
PROGRAMS = sorted(glob.glob(os.path.join(ROOT, "asm", "**", "*.S"), recursive=True) +
                  glob.glob(os.path.join(ROOT, "asm", "**", "*.s"), recursive=True))


def _corpus_lines() -> list[str]:
    with open(CORPUS) as f:
        return [l.strip() for l in f if l.startswith("        ") and not l.strip().startswith(".")]


def _builtin_text(path: str) -> bytes:
    image = assemble_file(path)
    return image.segment(".text").data[:image.text_end - image.segment(".text").addr]


def _compare(ours: bytes, theirs: bytes, lines: list[str], tool: str) -> None:
    assert len(ours) == len(theirs) == 4 * len(lines)
    bad = [f"{lines[i // 4]}: ours {ours[i:i + 4][::-1].hex()} {tool} {theirs[i:i + 4][::-1].hex()}"
           for i in range(0, len(ours), 4) if ours[i:i + 4] != theirs[i:i + 4]]
    assert not bad, "\n".join(bad[:20])


def test_corpus_is_large_and_current():
    import importlib.util
    spec = importlib.util.spec_from_file_location("gen", os.path.join(ROOT, "tools", "gen_mte_corpus.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.lines() == _corpus_lines(), "run tools/gen_mte_corpus.py"
    assert len(_corpus_lines()) >= 500


@requires_tool("aarch64-linux-gnu-as")
def test_corpus_identical_to_gnu_as(oracle, tmp_path):
    with open(CORPUS) as f:
        theirs = oracle.gnu_as_bytes(f.read(), tmp_path)
    _compare(_builtin_text(CORPUS), theirs, _corpus_lines(), "GNU as")


@requires_tool("llvm-mc")
def test_corpus_identical_to_llvm_mc(oracle, tmp_path):
    with open(CORPUS) as f:
        theirs = oracle.llvm_mc_bytes(f.read(), tmp_path)
    _compare(_builtin_text(CORPUS), theirs, _corpus_lines(), "llvm-mc")


def _same_image(a, b):
    lo, hi = min(a.start, b.start), max(a.end, b.end)
    da, db = a.read(lo, hi - lo), b.read(lo, hi - lo)
    for i in range(0, len(da), 4):
        assert da[i:i + 4] == db[i:i + 4], f"{lo + i:#x}: builtin {da[i:i + 4].hex()} gnu {db[i:i + 4].hex()}"
    assert a.symbols == b.symbols
    assert (a.entry, a.text_end) == (b.entry, b.text_end)


@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")
@pytest.mark.parametrize("path", [DIRECTIVES, CORPUS, ATOMICS] + PROGRAMS,
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_builtin_and_gnu_backends_agree(path):
    _same_image(assemble_file(path), assemble_file(path, backend="gnu"))


@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")
def test_backends_agree_at_another_base():
    a = assemble_file(DIRECTIVES, base=0x8000_0000)
    b = assemble_file(DIRECTIVES, backend="gnu", base=0x8000_0000)
    _same_image(a, b)
    assert a.segment(".text").addr == 0x8000_0000


# --- layout and symbols (no oracle needed) ---------------------------------------------------

def test_layout_sections_symbols_entry():
    image = assemble_file(DIRECTIVES)
    names = [s.name for s in image.segments]
    assert names == [".text", ".rodata", ".data", ".bss"]
    for s in image.segments:
        assert s.addr % 0x1000 == 0
    text = image.segment(".text")
    assert text.addr == 0x4008_0000 and text.flags == "rx"
    assert image.entry == image.symbols["_start"] == text.addr  # .text.boot first
    assert image.symbols["message"] == image.segment(".rodata").addr
    assert image.segment(".bss").data == bytes(len(image.segment(".bss").data))
    assert image.text_end == text.end


def test_literal_pool_and_local_labels():
    src = """
_start: ldr x0, =0x1122334455667788
        ldr w1, =7
        b 1f
1:      b 1b
"""
    image = assemble(src)
    t = image.segment(".text")
    # pool after the code: the 4-byte entry first (offset 16), then the 8-byte one aligned
    assert t.data[16:20] == (7).to_bytes(4, "little")
    assert t.data[24:32] == (0x1122334455667788).to_bytes(8, "little")
    assert image.word(0x4008_0000) == 0x58000000 | (24 // 4) << 5  # ldr x0, pc+24
    assert image.word(0x4008_0008) == 0x14000001
    assert image.word(0x4008_000C) == 0x14000000


def test_entry_without_start_is_text_and_labels_are_symbols():
    image = assemble("foo: nop\nbar: ret\n", base=0x1000)
    assert image.entry == 0x1000 and image.symbols == {"foo": 0x1000, "bar": 0x1004}
    assert image.text_end == 0x1008


def test_comments_and_separators():
    image = assemble("# a comment line\n  nop // trailing\n nop /* inline */ ; nop\n/* multi\nline */ nop\n")
    assert image.segment(".text").data == bytes.fromhex("1f2003d5") * 4


def test_macro_rept_irp_and_conditionals():
    src = """
        .macro M reg, val=3
        mov \\reg, #\\val
        .endm
        M x0
        M x1, 5
        .rept 2
        nop
        .endr
        .irp r, x2, x3
        mov \\r, #0
        .endr
        .set N, 2
        .if N == 2
        irg x0, x1
        .else
        udf #0
        .endif
"""
    words = [int.from_bytes(assemble(src).segment(".text").data[i:i + 4], "little") for i in range(0, 28, 4)]
    assert words == [0xD2800060, 0xD28000A1, 0xD503201F, 0xD503201F, 0xD2800002, 0xD2800003, 0x9ADF1020]


# --- errors: one message naming file:line and the problem ------------------------------------

@pytest.mark.parametrize("src,line,msg", [
    ("nop\nfrobnicate x0, x1\n", 2, "unknown mnemonic 'frobnicate'"),
    ("addg x0, x1, #8, #1\n", 1, "addg: offset: 8 is not a multiple of 16"),
    ("nop\nnop\nstg x0, [x1, #-4112]\n", 3, "out of range -4096..4080"),
    ("ldgm x0, [x1, #16]\n", 1, "ldgm: bad operands"),
    ("irg x0, x1, sp\n", 1, "'sp' is not allowed here"),
    ("b nowhere\n", 1, "undefined symbol 'nowhere'"),
    ("ldr x0, =missing\n", 1, "undefined symbol 'missing'"),
    ("a: nop\na: nop\n", 2, "symbol 'a' is already defined"),
    ("b 1b\n", 1, "local label '1'"),
    (".frob 1\n", 1, "unknown directive '.frob'"),
    ("add x0, x0, #0x12345\n", 1, "cannot assemble"),
    ("tbz x0, #1, far\n.space 0x10000\nfar: nop\n", 1, "out of range"),
    (".byte 1\nnop\n", 2, "not 4-byte aligned"),
    (".rept 2\nnop\n", 1, "missing .endr"),
    (".macro M\nnop\n", 1, "missing .endm"),
    (".bss\nnop\n", 2, "in a .bss section"),
    (".word undefined_thing\n", 1, "undefined symbol"),
    ("stg x0, [x1, #bogus]\n", 1, "undefined symbol 'bogus'"),
    ("nop\nldapur x0, [x1, #256]\n", 2, "out of range -256..255"),
    ("casp x1, x2, x4, x5, [x0]\n", 1, "register pairs"),
])
def test_errors_name_file_line_and_problem(src, line, msg):
    with pytest.raises(InputError) as e:
        assemble(src, "prog.S")
    assert e.value.file == "prog.S" and e.value.line == line, str(e.value)
    assert msg in str(e.value)
    assert str(e.value).startswith(f"prog.S:{line}: ")


def test_keystone_gaps_are_encoded():
    # LSE and RCpc forms Keystone 0.9.2 rejects; words checked against GNU as
    image = assemble("ldapur x0, [x1, #-8]\ncasal x0, x1, [x2]\nldaddal w0, w1, [sp]\nstlur w2, [x3]\n")
    words = [image.word(0x4008_0000 + 4 * i) for i in range(4)]
    assert words == [0xD95F8020, 0xC8E0FC41, 0xB8E003E1, 0x99000062]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        assemble_file(str(tmp_path / "nope.S"))


@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")
def test_gnu_backend_reports_errors_with_location():
    with pytest.raises(InputError, match=r"prog.S:2: Error"):
        assemble("nop\nfrobnicate x0\n", "prog.S", backend="gnu")
