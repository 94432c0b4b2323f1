"""Disassembly: every MTE word spelled as GNU objdump spells it; Capstone for the rest."""
from __future__ import annotations

import os
import random
import re

import pytest

from aarch64mte import isa
from aarch64mte.assembler import assemble_file
from aarch64mte.disasm import decode_word, disassemble, listing
from aarch64mte.isa.table import FORMS
from conftest import requires_tool

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus", "mte_corpus.s")
MTE_MNEMONICS = {"irg", "gmi", "addg", "subg", "subp", "subps", "cmpp", "stg", "stzg", "st2g",
                 "stz2g", "ldg", "stgp", "ldgm", "stgm", "stzgm"}
MTE_WORDS = ("tco", "gcr_el1", "rgsr_el1", "tfsr", "gmid_el1")


def _objdump_words(oracle, tmp_path, words: list[int]) -> dict[int, str]:
    path = tmp_path / "words.bin"
    path.write_bytes(b"".join(w.to_bytes(4, "little") for w in words))
    out = oracle.run("aarch64-linux-gnu-objdump", "-D", "-b", "binary", "-m", "aarch64",
                     str(path)).stdout
    result = {}
    for line in out.splitlines():
        m = re.match(r"\s+[0-9a-f]+:\t([0-9a-f]{8}) \t(.*)$", line)
        if m:
            result[int(m.group(1), 16)] = m.group(2).split("\t//")[0].rstrip()
    return result


def _is_mte_text(text: str) -> bool:
    mn, _, ops = text.partition("\t")
    if mn in MTE_MNEMONICS:
        return True
    if mn == "dc":
        return "g" in ops.split(",")[0]
    if mn in ("mrs", "msr"):
        return any(w in ops for w in MTE_WORDS)
    return False


def _neighbourhood(seed=1, per_form=40) -> list[int]:
    """Words of every form with random operands, and each with one fixed bit flipped."""
    rng = random.Random(seed)
    words = set()
    for f in FORMS:
        fixed_bits = [b for b in range(32) if f.mask >> b & 1]
        for _ in range(per_form):
            w = f.fixed | (rng.getrandbits(32) & ~f.mask)
            words.add(w)
            words.add(w ^ (1 << rng.choice(fixed_bits)))
    return sorted(words)


@requires_tool("aarch64-linux-gnu-objdump")
def test_mte_words_and_neighbours_match_objdump(oracle, tmp_path):
    words = _neighbourhood()
    od = _objdump_words(oracle, tmp_path, words)
    bad = []
    for w in words:
        theirs = od[w]
        ours = decode_word(w)
        decoded = isa.decode(w) is not None
        if decoded != _is_mte_text(theirs) or (decoded and ours != theirs):
            bad.append(f"{w:08x}: objdump '{theirs}' ours '{ours}' decode={decoded}")
    assert not bad, "\n".join(bad[:30])
    assert len(words) > 3000


@requires_tool("aarch64-linux-gnu-objdump", "aarch64-linux-gnu-as")
def test_corpus_listing_matches_objdump(oracle, tmp_path):
    image = assemble_file(CORPUS)
    text = image.segment(".text")
    words = [int.from_bytes(text.data[i:i + 4], "little") for i in range(0, len(text.data), 4)]
    od = _objdump_words(oracle, tmp_path, words)
    for a, w, t in disassemble(text.data, text.addr):
        assert t == od[w], f"{w:08x}"


@pytest.mark.parametrize("word,text", [
    (0x9ADF1020, "irg\tx0, x1"),
    (0xD9201C20, "stg\tx0, [x1, #16]!"),
    (0xD9201420, "stg\tx0, [x1], #16"),
    (0x69020C22, "stgp\tx2, x3, [x1, #64]"),          # Capstone 5 does not decode STGP
    (0xBAC2003F, "cmpp\tx1, x2"),                     # Capstone prints subps xzr, x1, x2
    (0xD503419F, "msr\ttco, #0x1"),
    (0xD503429F, "msr\ts0_3_c4_c2_4, xzr"),           # Capstone prints msr tco, #2
    (0xD5190080, "msr\tgmid_el1, x0"),                # Capstone prints s3_1_c0_c0_4
    (0xD5390080, "mrs\tx0, gmid_el1"),
    (0xD50B7480, "dc\tgzva, x0"),
    (0xD50876C0, "dc\tigdsw, x0"),
    (0x91814C20, ".inst\t0x91814c20 ; undefined"),
    (0xD503201F, "nop"),
    (0xA9BF7BFD, "stp\tx29, x30, [sp, #-16]!"),
])
def test_decode_word(word, text):
    assert decode_word(word) == text


def test_listing_labels_and_branch_targets():
    from aarch64mte.assembler import assemble
    image = assemble("_start: irg x0, sp\nloop: stg x0, [x0], #16\n b loop\n")
    text = image.segment(".text")
    out = listing(text.data, text.addr, image.symbols)
    assert "0000000040080000 <_start>:" in out
    assert "<loop>:" in out
    assert "b\t40080004 <loop>" in out
    assert "stg\tx0, [x0], #16" in out


def test_partial_trailing_word():
    rows = disassemble(bytes.fromhex("1f2003d5aabb"), 0x1000)
    assert rows[0] == (0x1000, 0xD503201F, "nop")
    assert rows[1][0] == 0x1004 and rows[1][2].startswith(".byte")
