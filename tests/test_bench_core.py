"""The core benchmark runs and returns sane rows. Timing is never asserted."""
import math

import pytest

from aarch64mte.bench import core


def test_raw_unicorn_runs_every_loop():
    for w in core.WORKLOADS:
        image = core._assemble(core.program(w, 100))
        seconds, x2 = core.run_raw(image)
        assert seconds > 0
        if w.name == "mte":
            assert x2 == 100          # the MTE instructions became NOPs; the count survives


def test_mte_instructions_become_nops_for_raw_unicorn():
    w = next(w for w in core.WORKLOADS if w.name == "mte")
    image = core._assemble(core.program(w, 1))
    text = dict(core._without_mte(image))[image.segments[0].addr]
    words = [text[i:i + 4] for i in range(0, len(text), 4)]
    assert words.count(core.NOP) == w.mte_per_iter


try:
    from aarch64mte.machine import Machine  # noqa: F401
    WHY = ""
except Exception as exc:      # pragma: no cover - only while the machine is missing
    WHY = f"aarch64mte.machine is not importable: {exc}"


@pytest.mark.skipif(bool(WHY), reason=WHY)
def test_run_core_bench_rows_are_sane():
    rows = core.run_core_bench(iterations=2000, repeat=1)
    assert [r["name"] for r in rows] == [w.name for w in core.WORKLOADS]
    for r in rows:
        assert r["agree"], r
        assert r["raw_s"] > 0 and r["mte_s"] > 0 and math.isfinite(r["ratio"]) and r["ratio"] > 0
        assert r["insns"] >= r["iterations"]
    mte = rows[-1]
    assert mte["mte_insns_per_s"] > 0
    table = core.format_table(rows)
    assert "untagged" in table and "checked" in table and "MTE/s" in table


def test_format_table_without_machine():
    rows = [dict(name="untagged", what="w", iterations=1, insns=8, raw_s=0.1, mte_s=0.2,
                 ratio=0.5, target=">= 0.9x", agree=True, mte_insns_per_s=None, qemu_s=None,
                 qemu_ratio=None)]
    assert "0.500x" in core.format_table(rows)
