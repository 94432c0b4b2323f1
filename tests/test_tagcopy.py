"""The tag-copy programs on the emulator: both methods agree, counters are exact."""
import random

import pytest

from aarch64mte.bench import tagcopy as tc
from aarch64mte.cost import model as cm

ALL_BS = (2, 3, 4, 5, 6)


@pytest.fixture(scope="module")
def image():
    return tc.program_image()


def _patterns():
    """A few tag patterns: the edges and seeded random ones."""
    g = tc.GRANULES_PER_PAGE
    yield "zeros", bytes(g)
    yield "fifteens", bytes([15]) * g
    yield "ramp", bytes(i % 16 for i in range(g))
    for seed in (7, 8):
        rng = random.Random(seed)
        yield f"random{seed}", bytes(rng.randrange(16) for _ in range(g))


def _run_with_pattern(monkeypatch, op, method, bs, pattern, image):
    monkeypatch.setattr(tc, "tag_pattern", lambda granules, seed: pattern[:granules])
    return tc.run_operation(tc.OPERATIONS[op], method, 1, bs, image=image)


@pytest.mark.parametrize("bs", ALL_BS)
def test_read_ldg_and_ldgm_give_identical_tags(bs, image, monkeypatch):
    for name, pattern in _patterns():
        loop = _run_with_pattern(monkeypatch, "read", "loop", bs, pattern, image)
        bulk = _run_with_pattern(monkeypatch, "read", "bulk", bs, pattern, image)
        assert loop.result == bulk.result == pattern, name


@pytest.mark.parametrize("bs", ALL_BS)
def test_write_stg_and_stgm_give_identical_tags(bs, image, monkeypatch):
    for name, pattern in _patterns():
        loop = _run_with_pattern(monkeypatch, "write", "loop", bs, pattern, image)
        bulk = _run_with_pattern(monkeypatch, "write", "bulk", bs, pattern, image)
        assert loop.result == bulk.result == pattern, name


@pytest.mark.parametrize("bs", (2, 4, 6))
def test_copy_methods_copy_data_and_tags(bs, image):
    op = tc.OPERATIONS["copy"]
    loop = tc.run_operation(op, "loop", 2, bs, seed=3, image=image)
    bulk = tc.run_operation(op, "bulk", 2, bs, seed=3, image=image)
    assert loop.result == bulk.result == tc.tag_pattern(2 * tc.GRANULES_PER_PAGE, 3)


def test_clear_methods_zero_data_and_set_tags(image):
    op = tc.OPERATIONS["clear"]
    for method in ("loop", "bulk"):
        rec = tc.run_operation(op, method, 2, 4, seed=5, image=image)
        assert rec.result == bytes([tc.CLEAR_TAG]) * (2 * tc.GRANULES_PER_PAGE)


def test_a_wrong_tag_fails_loudly(image, monkeypatch):
    """The harness's check is real: corrupt one tag after the run and it must object."""
    real = tc.run_routine

    def corrupting(*args, **kwargs):
        m, c = real(*args, **kwargs)
        tags = bytearray(m.read_mem(tc.BUF_BASE, 4))
        tags[3] ^= 1
        m.write_mem(tc.BUF_BASE, bytes(tags))
        return m, c

    monkeypatch.setattr(tc, "run_routine", corrupting)
    with pytest.raises(tc.BenchError, match="granule 3"):
        tc.run_operation(tc.OPERATIONS["read"], "loop", 1, 4, image=image)


def test_read_ldg_counters_exact(image):
    """read_ldg on one page, minus the noop baseline, counted by hand from tagcopy.S:

        lsl, cbz, 8 x mov                         alu 9, branch 1
        32 iterations of: 8 ldg, 8 orr, str x9, add, subs, b.ne
                                                  ldg 256, alu 320, store 32, branch 32
        b el0_done                                branch 1 (noop has the same one: cancels)
    Totals: ldg 256, alu 329, store 32, branch 33; 256 tag granules read.
    """
    base = tc.baseline(4, image)
    rec = tc.run_operation(tc.OPERATIONS["read"], "loop", 1, 4, image=image)
    d = tc.method_counters(rec.counters, base, 4)
    assert {k: v for k, v in d["by_class"].items() if v} == {
        "ldg": 256, "alu": 329, "store": 32, "branch": 33}
    assert d["insns"] == 256 + 329 + 32 + 33
    assert d["tag_granules_read"] == 256 and d["tag_granules_written"] == 0
    assert d["exceptions_taken"] == 0 and d["exception_returns"] == 0


def test_machine_counts_tag_storage_traffic_and_data_bytes(image):
    base = tc.baseline(4, image)
    rec = tc.run_operation(tc.OPERATIONS["read"], "loop", 1, 4, image=image)
    d = cm.subtract(rec.counters, base)
    assert d["tag_granules_read"] == 256            # 256 LDG
    assert d["data_bytes_written"] == 256           # 32 x str x9 to the byte buffer


@pytest.mark.parametrize("bs,blocks", [(2, 16), (4, 4), (6, 1)])
def test_read_ldgm_counters_exact(bs, blocks, image):
    """read_ldgm on one page, minus noop, counted by hand (B = 256 / (4 << BS) blocks per
    256 bytes, 16 such chunks per page):

      EL0: mov x8, svc                            alu 1, svc 1 (the b el0_done cancels)
      vector: b lower_sync                        branch 1
      lower_sync: mrs, lsr, cmp, b.ne, cbz, cmp, b.eq
                                                  system 1, alu 3, branch 3
      svc_read_tags: mov, bl, mov                 alu 2, branch 1
      gmid_block: mrs, and, mov, lsl, ret         system 1, alu 3, branch 1
      add, cmp, b.hs                              alu 2, branch 1
      16 chunks: mov; B x (ldgm, orr, add, tst, b.ne); 14 spread insns; stp; cmp; b.lo
                                   per chunk: alu 1 + 3B + 14 + 1, ldgm B, branch B + 1,
                                              store_pair 1
      mov x0, eret                                alu 1, eret 1
    """
    B = blocks
    base = tc.baseline(bs, image)
    rec = tc.run_operation(tc.OPERATIONS["read"], "bulk", 1, bs, image=image)
    d = tc.method_counters(rec.counters, base, bs)
    want = {
        "alu": 1 + 3 + 2 + 3 + 2 + 16 * (1 + 3 * B + 14 + 1) + 1,
        "svc": 1, "eret": 1, "system": 2,
        "branch": 1 + 3 + 1 + 1 + 1 + 16 * (B + 1),
        "ldgm": 16 * B, "store_pair": 16,
    }
    assert {k: v for k, v in d["by_class"].items() if v} == want
    assert d["exceptions_taken"] == 1 and d["exception_returns"] == 1
    assert d["tag_granules_read"] == 256 and d["tag_granules_written"] == 0


TINY = """
        .arch   armv8.5-a+memtag
        .text
_start:
        mov     x0, #0x41000000         // alu 1
        mov     x1, #0x0500000000000000 // alu 2
        orr     x1, x1, x0              // alu 3
        stg     x1, [x0]                // stg 1     (1 granule written)
        st2g    x1, [x0, #32]           // st2g 1    (2 granules written)
        ldg     x2, [x0]                // ldg 1     (1 granule read)
        ldg     x3, [x0, #48]           // ldg 2     (1 granule read)
        str     x2, [x0, #64]           // store 1   (8 bytes written, tag 0 = tag 0)
        ldp     x4, x5, [x0, #64]       // load_pair 1 (16 bytes read)
        add     x6, x4, x5              // alu 4
        cbz     xzr, 1f                 // branch 1
1:      irg     x7, x0                  // irg 1
        addg    x8, x1, #16, #1         // addg 1
"""


def test_tiny_program_counters_exact():
    """Counted by hand in TINY's comments."""
    from aarch64mte.assembler import assemble
    from aarch64mte.machine import Machine
    m = Machine(profile="snippet", count_classes=True)
    m.load_image(assemble(TINY))
    m.write_tags(0x4100_0000, bytes(8))
    r = m.run(max_insns=1000)
    assert r.reason == "end", r
    c = tc.counters_dict(m.counters)
    assert {k: v for k, v in c["by_class"].items() if v} == {
        "alu": 4, "stg": 1, "st2g": 1, "ldg": 2, "store": 1, "load_pair": 1, "branch": 1,
        "irg": 1, "addg": 1}
    assert c["insns"] == 13
    assert cm.tag_traffic(c["by_class"], 4) == (2, 3)
    assert (c["tag_granules_read"], c["tag_granules_written"]) == (2, 3)   # the machine agrees
    assert (c["data_bytes_read"], c["data_bytes_written"]) == (16, 8)
    assert c["exceptions_taken"] == 0 and c["exception_returns"] == 0
    assert list(m.read_tags(0x4100_0000, 64)) == [5, 0, 5, 5]
    assert m.reg("x3") >> 56 & 0xF == 5


def test_counts_are_linear_in_pages(image):
    """Measured at 1, 2 and 3 pages, every counter lies on one line (fit_linear checks)."""
    for op in ("read", "write", "copy", "clear"):
        for method in ("loop", "bulk"):
            base = tc.baseline(4, image)
            pts = {n: tc.method_counters(tc.run_operation(tc.OPERATIONS[op], method, n, 4,
                                                          image=image).counters, base, 4)
                   for n in (1, 2, 3)}
            fit = cm.fit_linear(pts)
            assert fit.per_page["insns"] > 0


def test_cli_quick_sweep(tmp_path, capsys):
    import argparse

    from aarch64mte.cli import bench
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["tagcopy", "--ops", "read", "--bs", "4,6", "--measure", "1,2,3",
                              "--pages", "1,8,64", "--profile", "neoverse-n2,high-syscall-cost",
                              "--out", str(tmp_path), "--no-progress"])
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "crossover" in out and "read_ldgm" in out
    assert (tmp_path / "tagcopy.csv").exists() and (tmp_path / "tagcopy.json").exists()
    assert (tmp_path / "tagcopy.png").stat().st_size > 1000
