"""The words that abort Unicorn's A64 translator: the predicate, its page scan, what the
architecture and the oracles say the words are, and the engine itself dying on them.

Encodings are the Arm ARM's (DDI 0487, A64 encoding index) "Advanced SIMD three same (FP16)"
and "Advanced SIMD [scalar] two-register miscellaneous (FP16)" groups; the abort sites are in
Unicorn 2.1.4's qemu/target/arm/translate-a64.c (see docs/engine-words.md).
"""
from __future__ import annotations

import os
import random
import re
import signal
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, requires_tool, tool

from aarch64mte.machine.engine_words import (CLASSES, UNDEFINED, aborting_offsets,
                                             architectural_result, is_undefined,
                                             translator_aborts, word_class)

TOOLS = os.path.join(ROOT, "tools", "engine_words")

THREE_SAME, TWO_MISC = CLASSES

# Words seen to abort the engine; FAMIN, FSCALE, FAMAX are what llvm-mc 19 makes of three
KNOWN = {
    0x4E562DBA: UNDEFINED,            # three same FP16, U=0 a=0 opcode=101
    0x0E422C20: UNDEFINED,
    0x2EC21C20: "FAMIN",              # U=1 a=1 opcode=011: FEAT_FAMINMAX
    0x6EC23C20: "FSCALE",             # U=1 a=1 opcode=111: FEAT_FP8
    0x0EC21C20: "FAMAX",              # U=0 a=1 opcode=011: FEAT_FAMINMAX
    0x0EF9FAE9: UNDEFINED,            # two-reg misc FP16 vector FRECPX (scalar only)
    0x5EF8FB50: UNDEFINED,            # two-reg misc FP16 scalar FABS (vector only)
    0x7EF9F99E: UNDEFINED,            # two-reg misc FP16 scalar FSQRT (vector only)
    0x5E780B0A: UNDEFINED,            # two-reg misc FP16 scalar, opcode 0 (unallocated)
}

# Real FP16 instructions right beside them that the engine runs (as GNU objdump decodes them)
GOOD = [
    0x4E421420,     # fadd v0.8h, v1.8h, v2.8h
    0x0EC21420,     # fsub v0.4h, v1.4h, v2.4h
    0x6E421C20,     # fmul v0.8h, v1.8h, v2.8h
    0x6E423C20,     # fdiv v0.8h, v1.8h, v2.8h
    0x2EC21420,     # fabd v0.4h, v1.4h, v2.4h
    0x4EF8F820,     # fabs v0.8h, v1.8h
    0x6EF9F820,     # fsqrt v0.8h, v1.8h
    0x5EF9F820,     # frecpx h0, h1
    0x5EF9D820,     # frecpe h0, h1
    0x1EE0C020,     # fabs h0, h1 (scalar FP: S=1, Q=0 goes to the FP decoder)
    0x5E421C20,     # fmulx h0, h1, h2
    0xD503201F,     # nop
    0x00000000,     # udf #0
]


def sample_per_key(n: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [v | (rng.getrandbits(32) & ~c.mask) for c in CLASSES
            for v in sorted(c.results) for _ in range(n)]


# --- the predicate -------------------------------------------------------------------------

def test_known_words_abort_and_their_architectural_meaning():
    for w, meaning in KNOWN.items():
        assert translator_aborts(w), hex(w)
        result = architectural_result(w)
        if meaning == UNDEFINED:
            assert result == UNDEFINED and is_undefined(w)
        else:
            assert result.startswith(meaning + " ") and not is_undefined(w)


def test_real_instructions_beside_them_do_not():
    for w in GOOD:
        assert not translator_aborts(w), hex(w)
        assert word_class(w) is None
        with pytest.raises(ValueError):
            architectural_result(w)


def test_class_sizes():
    # three same FP16: 8 of the 32 fpopcodes U:a:opcode abort, with Q, Rm, Rn, Rd free
    assert len(THREE_SAME.results) == 8
    assert bin(THREE_SAME.mask).count("1") == 16
    # two-reg misc FP16: 98 unlisted fpops in each of (S,Q) = (0,0), (0,1), (1,1), plus FRECPX
    # in the vector form and FABS, FSQRT in the scalar form
    assert len(TWO_MISC.results) == 3 * 98 + 2 + 2 == 298
    total = sum(len(c.results) << (32 - bin(c.mask).count("1")) for c in CLASSES)
    assert total == 8 * 2 ** 16 + 298 * 2 ** 10 == 829_440


def test_features_named_are_the_three_non_undefined_three_same_opcodes():
    named = {architectural_result(v).split()[0] for c in CLASSES for v in c.results
             if architectural_result(v) != UNDEFINED}
    assert named == {"FAMAX", "FAMIN", "FSCALE"}


def test_every_key_sampled():
    for w in sample_per_key(3):
        assert translator_aborts(w) and word_class(w) is not None, hex(w)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2 ** 32 - 1))
def test_table_lookup_equals_the_class_definitions(w):
    assert translator_aborts(w) == (word_class(w) is not None)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sample_per_key(1)), st.integers(0, 31))
def test_flipping_a_fixed_bit_leaves_the_key(w, bit):
    c = word_class(w)
    flipped = w ^ (1 << bit)
    if not (c.mask >> bit) & 1:
        assert translator_aborts(flipped)            # a free field: still the same key
    else:
        assert (flipped & c.mask) != (w & c.mask)


word_lists = st.lists(st.one_of(st.integers(0, 2 ** 32 - 1), st.sampled_from(sample_per_key(1)),
                                st.sampled_from(GOOD)), max_size=200)


@settings(max_examples=100, deadline=None)
@given(word_lists, st.integers(0, 3), st.integers(0, 3))
def test_page_scan_equals_the_word_test(words, lead, tail):
    code = bytes(lead) + b"".join(struct.pack("<I", w) for w in words) + bytes(tail)
    expect = [lead + 4 * i for i, w in enumerate(words) if translator_aborts(w)]
    assert aborting_offsets(code, lead) == expect
    assert aborting_offsets(memoryview(code), lead) == expect
    assert aborting_offsets(bytearray(code), lead) == expect


def test_page_scan_edges():
    assert aborting_offsets(b"") == []
    assert aborting_offsets(b"\xba\x2d\x56") == []          # a partial word is not a word
    page = struct.pack("<I", 0x4E562DBA) * 1024
    assert aborting_offsets(page) == list(range(0, 4096, 4))


def test_module_needs_no_unicorn():
    path = os.path.join(ROOT, "aarch64mte", "machine", "engine_words.py")
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('ew', {path!r})\n"
            "m = sys.modules['ew'] = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(m)\n"
            "assert m.translator_aborts(0x4e562dba)\n"
            "assert 'unicorn' not in sys.modules, 'unicorn imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the oracles ---------------------------------------------------------------------------

def _llvm19():
    return tool("llvm-mc-19")


@pytest.mark.skipif(_llvm19() is None, reason="oracle tool missing: llvm-mc-19 (llvm-19)")
def test_llvm_mc_19_agrees_on_what_each_key_is():
    """llvm-mc 19 with every feature: the keys called UNDEFINED do not disassemble; the others
    disassemble to the instruction named."""
    keys = [(v, architectural_result(v)) for c in CLASSES for v in sorted(c.results)]
    text = "".join("0x%02x,0x%02x,0x%02x,0x%02x\n" % tuple(struct.pack("<I", v | 0x41))
                   for v, _ in keys)
    for (v, meaning), line in zip(keys, _llvm_lines(text)):
        if meaning == UNDEFINED:
            assert line is None, (hex(v), line)
        else:
            assert line is not None and line.split()[0].upper() == meaning.split()[0], hex(v)


def _llvm_lines(text: str) -> list:
    """One disassembly per input line (None where llvm-mc reports an invalid encoding)."""
    r = subprocess.run([_llvm19(), "--disassemble", "-triple=aarch64", "-mattr=+all"],
                       input=text, capture_output=True, text=True, timeout=120)
    invalid = {int(m) for m in re.findall(r"<stdin>:(\d+):\d+: warning: invalid instruction",
                                           r.stderr)}
    insns = iter(ln.strip() for ln in r.stdout.splitlines()
                 if ln.startswith("\t") and not ln.strip().startswith("."))
    return [None if n in invalid else next(insns) for n in range(1, len(text.splitlines()) + 1)]


@requires_tool("aarch64-linux-gnu-objdump")
def test_objdump_calls_the_undefined_keys_undefined(tmp_path):
    keys = [v for c in CLASSES for v in sorted(c.results) if architectural_result(v) == UNDEFINED]
    blob = tmp_path / "keys.bin"
    blob.write_bytes(b"".join(struct.pack("<I", v) for v in keys))
    r = subprocess.run([tool("aarch64-linux-gnu-objdump"), "-D", "-b", "binary", "-m", "aarch64",
                        str(blob)], capture_output=True, text=True, check=True, timeout=60)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()[:1].isalnum() and ":\t" in ln]
    assert len(lines) == len(keys)
    assert all("undefined" in ln for ln in lines)


@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld", "qemu-system-aarch64")
def test_qemu_10_max_cpu_takes_undefined_on_every_key():
    """QEMU 10 -cpu max implements none of these (not FEAT_FAMINMAX, not FEAT_FP8): every key
    takes an exception with EC 0 (Unknown reason), where Unicorn aborts."""
    sys.path.insert(0, TOOLS)
    try:
        from qemu_probe import probe
    finally:
        sys.path.remove(TOOLS)
    keys = [v | 0x22 for c in CLASSES for v in sorted(c.results)] + [0x4E421420]
    esrs = probe(keys)
    assert all(e is not None and e >> 26 == 0 for e in esrs[:-1])
    assert esrs[-1] is None                          # fadd v2.8h, v1.8h, v2.8h executes


# --- the engine ----------------------------------------------------------------------------

RAW = r"""
import sys
from unicorn import Uc, UcError, UC_ARCH_ARM64, UC_MODE_ARM
from unicorn import arm64_const as A
uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
uc.mem_map(0x10000, 0x10000)
for i, w in enumerate(int(x, 16) for x in sys.argv[1:]):
    addr = 0x10000 + 8 * i
    uc.mem_write(addr, w.to_bytes(4, "little") + (0xD4200000).to_bytes(4, "little"))
    try:
        uc.emu_start(addr, addr + 8, count=1)
    except UcError:
        pass
print("survived")
"""


def _raw(words: list[int]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RAW, *(f"{w:x}" for w in words)],
                          capture_output=True, text=True, timeout=120)


def test_predicted_words_abort_raw_unicorn():
    """One word from each abort site, each in its own process: Unicorn dies with SIGABRT."""
    for w in (0x4E562DBA, 0x2EC21C20, 0x0EF9FAE9, 0x5EF8FB50, 0x5E780B0A):
        r = _raw([w])
        assert r.returncode == -signal.SIGABRT, (hex(w), r.returncode, r.stdout, r.stderr)
        assert "should not be reached" in r.stdout + r.stderr


def test_one_bit_neighbours_that_are_not_predicted_run():
    rng = random.Random(5)
    neighbours = []
    for w in sample_per_key(1):
        for bit in rng.sample(range(32), 4):
            n = w ^ (1 << bit)
            if not translator_aborts(n):
                neighbours.append(n)
    neighbours += GOOD
    r = _raw(neighbours)
    assert r.returncode == 0 and "survived" in r.stdout, (r.returncode, r.stderr[-500:])


@pytest.mark.long
def test_exhaustive_against_the_engine():
    """Every word of both encoding regions that the predicate does not name translates
    (at EL1 and EL0); 8 words of every key abort."""
    sys.path.insert(0, TOOLS)
    try:
        from verify import verify
    finally:
        sys.path.remove(TOOLS)
    r = verify(["el1", "el0"], per_key=8)
    assert r["false_negatives"] == []
    assert r["false_positives"] == []
    assert sum(x["tested"] for x in r["regions"]) == 2 * (2 ** 21 + 2 ** 19 - 829_440)


@pytest.mark.long
def test_exhaustive_table_lookup_over_the_regions():
    for c, (value, mask) in zip(CLASSES, ((0x0E400400, 0x9F60C400), (0x0E780800, 0x8F7E0C00))):
        free = [b for b in range(32) if not (mask >> b) & 1]
        count = 0
        for n in range(1 << len(free)):
            w = value
            for k, b in enumerate(free):
                if (n >> k) & 1:
                    w |= 1 << b
            hit = translator_aborts(w)
            assert hit == (word_class(w) is not None)
            count += hit
        assert count == len(c.results) << (32 - bin(c.mask).count("1"))


# --- where the machine can catch them ------------------------------------------------------

def _tools():
    if TOOLS not in sys.path:
        sys.path.insert(0, TOOLS)


def test_stored_aborting_word_kills_the_engine_without_a_new_fetch_fill():
    """A guest that overwrites code it has run with an aborting word: Unicorn translates the new
    word (and dies) although the page was fetched, and scanned, only before the store."""
    _tools()
    from runtime_probe import PROBES, run_probe
    probe = next(p for p in PROBES if p.name == "smc-aborting-word-el1")
    assert run_probe(probe) == "CRASH SIGABRT"


def test_fill_hook_that_never_grants_write_and_execute_sees_the_stored_word():
    """With fetch entries R|X and write entries R|W, the page comes back through a fetch fill
    after the store, the scan sees the word there, and the run stops with PC on it."""
    _tools()
    from fill_scan_demo import run
    log = run("wx").splitlines()
    assert log[-1].startswith("stopped:") and log[-1].endswith("PC 0x40001000")
    assert "write fill 0x40001000" in log
    assert log.index("fetch fill 0x40001000: aborting words at [0]") > log.index(
        "write fill 0x40001000")
