"""Instruction words that make Unicorn 2.1.4's A64 translator abort the whole process.

Unicorn translates a block of guest code before it runs any of it. For a few encodings its
translator (QEMU 5.0's ``target/arm/translate-a64.c``) reaches ``g_assert_not_reached()``
instead of raising UNDEFINED: the process dies with SIGABRT, whatever hooks are installed and
whatever the instruction would have done, and whether or not the guest was about to execute
it: every word from the start of a block to its end is translated. Such a word must never reach
the translator (``docs/engine-words.md`` says where the machine can look: code pages when they
are fetched, and again after they are written).

``translator_aborts(word)`` is exact: in the engine every word of both encoding regions that it
does not name translates, and every (mask, value) key it names aborts (sampled with random free
fields), at EL0, EL1 and with SVE enabled; scans of the whole 32-bit space found no other
aborting word (figures in the doc; tools in ``tools/engine_words/``). None of the aborts depends
on the CPU state: the FP16 decoders look only at the encoding before they reach the assertion
(and Unicorn's ``fp_exception_el`` always returns 0, so an FP access check never stops them).

``architectural_result(word)`` says what the Arm architecture makes of such a word: most are
unallocated encodings (UNDEFINED); three groups are real instructions of features that neither
Unicorn's nor QEMU 10's ``-cpu max`` implements (FEAT_FAMINMAX, FEAT_FP8).

This module imports nothing from Unicorn: it is data and bit tests only.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UNDEFINED", "EngineWordClass", "CLASSES", "translator_aborts", "aborting_offsets",
           "architectural_result", "word_class", "is_undefined"]

UNDEFINED = "UNDEFINED"


@dataclass(frozen=True)
class EngineWordClass:
    """One group of aborting words: ``word & mask`` is a key of ``results``."""
    name: str
    encoding: str           # the Arm ARM encoding group, with its fields
    site: str               # where Unicorn's translator aborts
    mask: int
    results: dict           # masked value -> architectural result (UNDEFINED or the instruction)

    def matches(self, word: int) -> bool:
        return (word & self.mask) in self.results


def _three_same_fp16() -> EngineWordClass:
    """AdvSIMD three same (FP16), vector: 0 Q U 01110 a 10 Rm 00 opcode 1 Rn Rd.

    ``disas_simd_three_reg_same_fp16`` switches on fpopcode = U:a:opcode and its default case
    is ``g_assert_not_reached()`` (translate-a64.c line 11975): the eight fpopcodes no case
    names abort, for every Q, Rm, Rn, Rd (the table entry 0x0e400400/0x9f60c400 routes all of
    them here; no earlier entry of ``data_proc_simd`` matches bit 21 = 0 with bits 15:14 = 00).
    """
    base, mask = 0x0E400400, 0x9F60C400 | (1 << 29) | (1 << 23) | (7 << 11)
    arch = {
        0x05: UNDEFINED,
        0x0B: "FAMAX <Vd>.<T>, <Vn>.<T>, <Vm>.<T> (half-precision): FEAT_FAMINMAX",
        0x0C: UNDEFINED,
        0x0D: UNDEFINED,
        0x11: UNDEFINED,
        0x19: UNDEFINED,
        0x1B: "FAMIN <Vd>.<T>, <Vn>.<T>, <Vm>.<T> (half-precision): FEAT_FAMINMAX",
        0x1F: "FSCALE <Vd>.<T>, <Vn>.<T>, <Vm>.<T> (half-precision): FEAT_FP8",
    }
    results = {base | (f >> 4) << 29 | ((f >> 3) & 1) << 23 | (f & 7) << 11: r
               for f, r in arch.items()}
    return EngineWordClass(
        "asimd-three-same-fp16",
        "Advanced SIMD three same (FP16): 0 Q U 01110 a 10 Rm 00 opcode 1 Rn Rd",
        "translate-a64.c disas_simd_three_reg_same_fp16: default case, g_assert_not_reached",
        mask, results)


# fpop = U:a:opcode values that disas_simd_two_reg_misc_fp16's first switch accepts
_TWO_MISC_FP16_OPS = frozenset((
    0x1D, 0x5D,                           # SCVTF, UCVTF
    0x2C, 0x2D, 0x2E, 0x6C, 0x6D,         # FCMGT, FCMEQ, FCMLT, FCMGE, FCMLE (zero)
    0x3D, 0x3F,                           # FRECPE, FRECPX
    0x18, 0x19, 0x38, 0x39, 0x58, 0x59, 0x79,    # FRINTN, M, P, Z, A, X, I
    0x1A, 0x1B, 0x1C, 0x3A, 0x3B,         # FCVTNS, MS, AS, PS, ZS
    0x5A, 0x5B, 0x5C, 0x7A, 0x7B,         # FCVTNU, MU, AU, PU, ZU
    0x2F, 0x6F,                           # FABS, FNEG
    0x7D, 0x7F,                           # FRSQRTE, FSQRT
))


def _two_reg_misc_fp16() -> EngineWordClass:
    """AdvSIMD [scalar] two-register miscellaneous (FP16): 0 Q U S 1110 a 111100 opcode 10 Rn Rd.

    ``disas_simd_two_reg_misc_fp16`` (table entry 0x0e780800/0x8f7e0c00) computes
    fpop = U:a:opcode. Its first switch aborts on any fpop it does not list (line 13051). Past
    it, the scalar form (S = 1) aborts in its second switch for FABS (0x2f) and FSQRT (0x7f)
    (line 13113), and the vector form (S = 0) for FRECPX (0x3f) (line 13171): all three exist
    only in the other form. S = 1 with Q = 0 never gets here: ``disas_data_proc_simd_fp`` sends
    bit 28 = 1, bit 30 = 0 to the scalar floating-point decoder. Rn and Rd play no part.
    """
    base = 0x0E780800
    mask = 0xFFFFFC00          # everything but Rn, Rd
    results = {}
    for s, q in ((0, 0), (0, 1), (1, 1)):
        for fpop in range(128):
            bad = (fpop not in _TWO_MISC_FP16_OPS
                   or (s == 0 and fpop == 0x3F)
                   or (s == 1 and fpop in (0x2F, 0x7F)))
            if bad:
                u, a, opcode = fpop >> 6, (fpop >> 5) & 1, fpop & 0x1F
                results[base | q << 30 | u << 29 | s << 28 | a << 23 | opcode << 12] = UNDEFINED
    return EngineWordClass(
        "asimd-two-reg-misc-fp16",
        "Advanced SIMD [scalar] two-register miscellaneous (FP16): "
        "0 Q U S 1110 a 111100 opcode 10 Rn Rd",
        "translate-a64.c disas_simd_two_reg_misc_fp16: g_assert_not_reached in one of its "
        "three switches",
        mask, results)


CLASSES: tuple[EngineWordClass, ...] = (_three_same_fp16(), _two_reg_misc_fp16())

# The test, one table look-up per byte. Every class fixes some bits and leaves Rd (and more)
# free, so its aborting words are the words whose bits 31:8 lie in a set of masked values. Those
# values are grouped by their bits 31:16; each group g gets one bit, set in _T3[b] when byte b
# can be bits 31:24 of g, in _T2[b] for bits 23:16, and in _T1[b] when bits 15:8 = b completes a
# word of g. A word aborts exactly when the three entries share a bit.
def _groups() -> list[tuple[int, int, int, int, set]]:
    groups: dict = {}
    for c in CLASSES:
        assert c.mask & 0xFF == 0, "a class that fixes bits 7:0 needs a fourth table"
        for v in c.results:
            key = (c.mask, v >> 16)
            groups.setdefault(key, set()).add((v >> 8) & 0xFF)
    return [(m >> 24, (m >> 16) & 0xFF, (m >> 8) & 0xFF, hi, lows)
            for (m, hi), lows in groups.items()]


_GROUPS = _groups()


def _tables() -> tuple[list, list, list]:
    t3, t2, t1 = [0] * 256, [0] * 256, [0] * 256
    for g, (m3, m2, m1, hi, lows) in enumerate(_GROUPS):
        for b in range(256):
            if b & m3 == hi >> 8:
                t3[b] |= 1 << g
            if b & m2 == hi & 0xFF:
                t2[b] |= 1 << g
            if b & m1 in lows:
                t1[b] |= 1 << g
    return t3, t2, t1


_T3, _T2, _T1 = _tables()
_ANY3 = bytes(1 if t else 0 for t in _T3)     # bits 31:24 that some aborting word has
_PLANES = (len(_GROUPS) + 7) // 8
# the same tables cut into 8-bit planes, for bytes.translate over a whole page
_PLANE_TABLES = tuple(tuple(bytes((t[b] >> (8 * p)) & 0xFF for b in range(256))
                            for t in (_T3, _T2, _T1)) for p in range(_PLANES))


def translator_aborts(word: int) -> bool:
    """True if translating ``word`` makes Unicorn 2.1.4 abort (in any CPU state)."""
    return bool(_T3[(word >> 24) & 0xFF] & _T2[(word >> 16) & 0xFF] & _T1[(word >> 8) & 0xFF])


def aborting_offsets(code: bytes, start: int = 0) -> list[int]:
    """Byte offsets (``start`` + multiples of 4) of the aborting words in little-endian
    ``code``: ``translator_aborts`` for a whole page at once. It works on byte strings
    (slices, ``bytes.translate``, big-integer AND), so no Python code runs per word unless the
    page holds aborting words."""
    if not isinstance(code, (bytes, bytearray)):
        code = bytes(code)
    n = (len(code) - start) // 4
    if n <= 0:
        return []
    end = start + 4 * n
    b3 = code[start + 3:end:4]
    if b3.translate(_ANY3).count(0) == n:         # the common case: no candidate at all
        return []
    b2, b1 = code[start + 2:end:4], code[start + 1:end:4]
    hits = 0
    for t3, t2, t1 in _PLANE_TABLES:
        hits |= (int.from_bytes(b3.translate(t3), "little")
                 & int.from_bytes(b2.translate(t2), "little")
                 & int.from_bytes(b1.translate(t1), "little"))
    if not hits:
        return []
    return [start + 4 * i for i, f in enumerate(hits.to_bytes(n, "little")) if f]


def word_class(word: int) -> EngineWordClass | None:
    """The class of an aborting word, or None."""
    for c in CLASSES:
        if c.matches(word):
            return c
    return None


def architectural_result(word: int) -> str:
    """What the architecture says an aborting word is: ``UNDEFINED`` or the instruction and
    the feature that defines it (one Unicorn's MAX CPU does not implement). ValueError for a
    word that does not abort."""
    c = word_class(word)
    if c is None:
        raise ValueError(f"0x{word & 0xFFFFFFFF:08x} does not abort Unicorn's translator")
    return c.results[word & c.mask]


def is_undefined(word: int) -> bool:
    """True for an aborting word the architecture leaves unallocated (take UNDEFINED); False
    for one that is a real instruction the engine cannot run."""
    return architectural_result(word) == UNDEFINED
