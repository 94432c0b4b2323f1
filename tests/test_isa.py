"""The MTE encoding table: encode/decode round trips, rejection of unallocated and non-MTE
words, operand checks, and the reference listing of every form."""
from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings, strategies as st

from aarch64mte import isa
from aarch64mte.isa import EncodeError, Insn, decode, encode
from aarch64mte.isa.syntax import format_insn, parse
from aarch64mte.isa.table import DECODE_FORMS, FORMS, SYSREGS

ORACLE_LISTING = "/work/shared/oracles/asm/objdump_gas.txt"
HERE = os.path.dirname(os.path.abspath(__file__))


def _reference():
    """(word, objdump text) pairs from the GNU listing of every form (a copy ships in corpus/)."""
    path = os.path.join(HERE, "corpus", "objdump_gas.txt")
    if not os.path.exists(path):
        path = ORACLE_LISTING
    out = []
    with open(path) as f:
        for line in f:
            m = re.match(r"\s+[0-9a-f]+:\t([0-9a-f]{8}) \t(.*)$", line.rstrip("\n"))
            if m:
                out.append((int(m.group(1), 16), m.group(2)))
    return out


REFERENCE = _reference()


@pytest.mark.parametrize("word,text", REFERENCE, ids=[t for _, t in REFERENCE])
def test_reference_listing_decodes_encodes_and_prints_like_objdump(word, text):
    insn = decode(word)
    assert insn is not None
    assert encode(insn) == word
    assert format_insn(insn) == text
    mnemonic, _, operands = text.partition("\t")
    assert encode(parse(mnemonic, operands)) == word


def test_reference_covers_every_instruction_family():
    names = {decode(w).name for w, _ in REFERENCE}
    for n in ("IRG", "GMI", "ADDG", "SUBG", "SUBP", "SUBPS", "STG", "STZG", "ST2G", "STZ2G", "LDG",
              "STGP", "LDGM", "STGM", "STZGM", "DC GVA", "DC GZVA", "MSR TCO imm", "MRS", "MSR"):
        assert n in names


def test_every_form_is_described_completely():
    for f in FORMS:
        covered = f.mask
        for fld in f.fields:
            covered |= fld.mask
        assert covered == 0xFFFFFFFF, f
        assert f.syntax.split()[0] == f.mnemonic


def test_decode_forms_do_not_overlap():
    # a word matching two forms would make decode order-dependent
    for i, a in enumerate(DECODE_FORMS):
        for b in DECODE_FORMS[i + 1:]:
            common = a.mask & b.mask
            assert (a.fixed & common) != (b.fixed & common), (a.name, a.form, b.name, b.form)


# --- round trips -------------------------------------------------------------------------

def _operand_strategy(form):
    parts = {}
    for f in form.fields:
        if f.kind == "reg":
            parts[f.name] = st.integers(0, 31)
        elif f.kind == "sysreg":
            parts[f.name] = st.sampled_from([r.name for r in SYSREGS])
        else:
            lo, hi = f.lo_value // f.scale, f.hi_value // f.scale
            parts[f.name] = st.integers(lo, hi).map(lambda v, s=f.scale: v * s)
    return st.fixed_dictionaries(parts)


_INSNS = st.one_of(*[
    _operand_strategy(f).map(lambda ops, f=f: Insn(f.name, f.form, **ops)) for f in DECODE_FORMS])


@settings(max_examples=3000, deadline=None)
@given(_INSNS)
def test_decode_of_encode_is_identity(insn):
    assert decode(encode(insn)) == insn


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(DECODE_FORMS), st.integers(0, 0xFFFFFFFF))
def test_encode_of_decode_is_identity_for_every_word_of_a_form(form, bits):
    word = form.fixed | (bits & ~form.mask)
    insn = decode(word)
    if form.field("reg") is not None and insn is None:
        return  # a system register that is not an MTE register
    assert insn is not None and (insn.name, insn.form) == (form.name, form.form)
    assert encode(insn) == word


@settings(max_examples=5000, deadline=None)
@given(st.integers(0, 0xFFFFFFFF))
def test_any_word_decoded_encodes_back(word):
    insn = decode(word)
    if insn is not None:
        assert encode(insn) == word


def test_every_field_value_of_every_form_round_trips():
    for form in DECODE_FORMS:
        for f in form.fields:
            if f.kind == "sysreg":
                values = [r.name for r in SYSREGS]
            elif f.kind == "reg":
                values = range(32)
            else:
                values = range(f.lo_value, f.hi_value + 1, f.scale)
            for v in values:
                ops = {g.name: (v if g is f else (g.default if g.default is not None else
                                                    ("GCR_EL1" if g.kind == "sysreg" else 1 if g.kind == "reg" else g.lo_value)))
                       for g in form.fields}
                insn = Insn(form.name, form.form, **ops)
                assert decode(encode(insn)) == insn


# --- rejection -----------------------------------------------------------------------------

@pytest.mark.parametrize("word,why", [
    (0xD9201020, "STG-space op2=00 opc=00 with imm9 != 0 (STZGM needs imm9 = 0)"),
    (0xD9A01000, "STGM with imm9 != 0"),
    (0xD9E01020, "LDGM with imm9 != 0"),
    (0x91814C20, "ADDG with op3 (bits 15:14) != 00"),
    (0xD1804C20, "SUBG with op3 != 00"),
    (0xD503429F, "MSR TCO immediate with CRm = 2"),
    (0xD503439F, "MSR TCO immediate with CRm = 3"),
    (0xD5381000, "MRS SCTLR_EL1: not an MTE register"),
    (0xD50B7420, "DC ZVA: not an MTE operation"),
    (0xD503201F, "NOP"),
    (0x00000000, "UDF #0"),
    (0xA9BF7BFD, "STP"),
    (0x9AC00800, "UDIV"),
    (0x68C00C22, "LDPSW post-index (STGP space with L=1)"),
])
def test_decode_rejects(word, why):
    assert decode(word) is None, why


def test_decode_all_sysreg_names_and_keys():
    keys = {r.key for r in SYSREGS}
    assert len(keys) == len(SYSREGS)
    assert isa.sysreg_name(3, 0, 1, 0, 6) == "GCR_EL1"
    assert isa.sysreg_name(3, 0, 1, 0, 5) == "RGSR_EL1"
    assert isa.sysreg_name(3, 0, 5, 6, 0) == "TFSR_EL1"
    assert isa.sysreg_name(3, 0, 5, 6, 1) == "TFSRE0_EL1"
    assert isa.sysreg_name(3, 4, 5, 6, 0) == "TFSR_EL2"
    assert isa.sysreg_name(3, 5, 5, 6, 0) == "TFSR_EL12"
    assert isa.sysreg_name(3, 1, 0, 0, 4) == "GMID_EL1"
    assert isa.sysreg_name(3, 3, 4, 2, 7) == "TCO"
    assert isa.sysreg_name(3, 0, 1, 0, 0) is None
    assert not isa.SYSREG_BY_NAME["GMID_EL1"].writable


# --- operand checks ------------------------------------------------------------------------------

@pytest.mark.parametrize("insn,msg", [
    (Insn("ADDG", d=0, n=1, offset=8, tag_offset=1), "not a multiple of 16"),
    (Insn("ADDG", d=0, n=1, offset=1024, tag_offset=1), "out of range 0..1008"),
    (Insn("ADDG", d=0, n=1, offset=16, tag_offset=16), "out of range 0..15"),
    (Insn("STG", "offset", t=0, n=1, offset=-4112), "out of range -4096..4080"),
    (Insn("STG", "pre", t=0, n=1, offset=4096), "out of range"),
    (Insn("STGP", "offset", t=0, t2=1, n=2, offset=1024), "out of range -1024..1008"),
    (Insn("LDGM", t=0, n=1, offset=16), "takes no offset"),
    (Insn("STG", "bogus", t=0, n=1), "no form"),
    (Insn("FROB"), "unknown MTE instruction"),
    (Insn("IRG", d=32, n=1, m=2), "not 0..31"),
    (Insn("MRS", t=0, reg="SCTLR_EL1"), "not an MTE system register"),
    (Insn("MSR TCO imm", imm=2), "out of range 0..1"),
    (Insn("GMI", d=0, n=1), "missing"),
])
def test_encode_errors(insn, msg):
    with pytest.raises(EncodeError, match=msg):
        encode(insn)


@pytest.mark.parametrize("mn,ops,msg", [
    ("addg", "x0, x1, #8, #1", "not a multiple of 16"),
    ("stg", "x0, [x1, #-4112]", "out of range -4096..4080"),
    ("ldgm", "x0, [x1, #16]", "bad operands"),
    ("irg", "x0, x1, sp", "'sp' is not allowed here"),
    ("ldg", "sp, [x1]", "'sp' is not allowed here"),
    ("stgp", "x0, sp, [x1]", "'sp' is not allowed here"),
    ("gmi", "x0, xzr, x1", "'xzr' is not allowed here"),
    ("stg", "w0, [x1]", "'w0' is not allowed here"),
    ("irg", "x0", "bad operands"),
    ("msr", "tco, #2", "out of range 0..1"),
])
def test_parse_errors(mn, ops, msg):
    with pytest.raises(EncodeError, match=msg):
        parse(mn, ops)


def test_parse_leaves_base_instructions_alone():
    assert parse("dc", "zva, x0") is None
    assert parse("mrs", "x0, sctlr_el1") is None
    assert parse("msr", "daifset, #2") is None
    assert parse("add", "x0, x1, x2") is None


def test_cmpp_is_subps_with_xzr_destination():
    insn = parse("cmpp", "x1, x2")
    assert insn == Insn("SUBPS", d=31, n=1, m=2)
    assert format_insn(insn) == "cmpp\tx1, x2"
    assert format_insn(Insn("SUBPS", d=0, n=1, m=2)) == "subps\tx0, x1, x2"
