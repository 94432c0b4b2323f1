"""Pure tests of the cost model: no machine, no emulation."""

import pytest

from aarch64mte.cost import model as cm


def counters(by_class, **scalars):
    c = {k: 0 for k in cm.SCALARS}
    c.update(scalars)
    c["by_class"] = dict(by_class)
    c["insns"] = sum(by_class.values())
    return c


def test_every_profile_loads_and_covers_every_class():
    names = cm.list_profiles()
    assert {"neoverse-n2", "cortex-a710", "high-syscall-cost"} <= set(names)
    for name in names:
        p = cm.load_profile(name)
        assert set(p.cpi) == set(cm.CLASSES)
        assert p.exception_entry > 0 and p.exception_return > 0


def test_default_profile_cites_sources_for_mte_rows():
    text = (cm.PROFILE_DIR / "neoverse-n2.toml").read_text()
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        if key in ("ldg", "ldgm", "stg", "stgm", "dc_gzva", "dc_zva"):
            assert "SOG" in line or "ASSUMED" in line, line


def test_cycles_formula_term_by_term():
    p = cm.load_profile("neoverse-n2").with_changes(
        cpi={"ldg": 1.0, "alu": 0.5, "store": 2.0}, exception_entry=10, exception_return=7,
        kernel_per_call=100, kernel_per_page=3, per_data_byte_written=0.25)
    c = counters({"ldg": 4, "alu": 6, "store": 2, "svc": 1, "eret": 1},
                 exceptions_taken=1, exception_returns=1, data_bytes_written=8)
    b = cm.cycles(c, p, kernel_pages=5)
    assert b.instructions == 4 * 1.0 + 6 * 0.5 + 2 * 2.0   # svc/eret cpi are 0
    assert b.exceptions == 10 + 7
    assert b.kernel == 100 + 5 * 3
    assert b.memory == 8 * 0.25
    assert b.total == 11 + 17 + 115 + 2


def test_unknown_class_in_profile_is_rejected():
    data = {"name": "x", "cpi": {"default": 1, "ldgx": 2},
            "exception": {"entry": 1, "return": 1}, "kernel": {"per_call": 0, "per_page": 0}}
    with pytest.raises(cm.ProfileError, match="ldgx"):
        cm.profile_from_dict(data)


def test_missing_field_is_rejected():
    data = {"name": "x", "cpi": {"default": 1}, "exception": {"entry": 1},
            "kernel": {"per_call": 0, "per_page": 0}}
    with pytest.raises(cm.ProfileError, match="return"):
        cm.profile_from_dict(data)


def _method(const_alu, per_page_ldg, svc=0):
    """Counters of a made-up method at page counts 1, 2, 4."""
    return {n: counters({"alu": const_alu, "ldg": per_page_ldg * n, "svc": svc, "eret": svc},
                        exceptions_taken=svc, exception_returns=svc)
            for n in (1, 2, 4)}


def test_linear_fit_is_exact_and_checked():
    fit = cm.fit_linear(_method(10, 256))
    assert fit.per_page["class:ldg"] == 256 and fit.const["class:alu"] == 10
    assert fit.at(1024)["by_class"]["ldg"] == 256 * 1024
    bad = _method(10, 256)
    bad[2]["by_class"]["ldg"] += 1
    with pytest.raises(cm.NotLinear, match="class:ldg"):
        cm.fit_linear(bad)


def test_crossover_arithmetic():
    loop = cm.CostLine(const=10, per_page=100)
    bulk = cm.CostLine(const=1000, per_page=10)
    # 1000 + 10n <= 10 + 100n  <=>  n >= 11
    assert cm.crossover(loop, bulk) == 11
    assert cm.crossover(loop, cm.CostLine(const=0, per_page=10)) == 1
    assert cm.crossover(loop, cm.CostLine(const=1000, per_page=100)) is None
    assert cm.crossover(loop, cm.CostLine(const=0, per_page=200)) is None


def test_crossover_grows_with_exception_entry_cost():
    """A bulk method behind one kernel entry per call: the dearer the entry, the more pages a
    call must carry before it pays off. Never the other way round."""
    loop = cm.fit_linear(_method(5, 256))                 # user-space loop: 256 LDG per page
    bulk = cm.fit_linear(_method(40, 16, svc=1))          # kernel entry + 16 LDGM-like per page
    base = cm.load_profile("neoverse-n2")
    previous = None
    for entry in (0, 10, 100, 1000, 10_000, 100_000):
        p = base.with_changes(exception_entry=entry)
        n = cm.crossover_for(loop, bulk, p, bulk_kernel_pages=0)
        assert n is not None
        if previous is not None:
            assert n >= previous
        previous = n
    assert previous > cm.crossover_for(loop, bulk, base.with_changes(exception_entry=0),
                                       bulk_kernel_pages=0)


def test_crossover_disappears_when_bulk_is_dearer_per_page():
    loop = cm.fit_linear(_method(5, 16))
    bulk = cm.fit_linear(_method(40, 256, svc=1))
    assert cm.crossover_for(loop, bulk, cm.load_profile("neoverse-n2")) is None


def test_cost_line_matches_cycles_at_every_point():
    pts = _method(7, 256, svc=1)
    fit = cm.fit_linear(pts)
    p = cm.load_profile("high-syscall-cost")
    line = cm.cost_line(fit, p, kernel_pages_per_page=1)
    for n, c in pts.items():
        assert line.at(n) == pytest.approx(cm.cycles(c, p, kernel_pages=n).total)


def test_subtract_baseline():
    a = counters({"ldg": 10, "alu": 5}, exceptions_taken=2)
    b = counters({"alu": 3}, exceptions_taken=1)
    d = cm.subtract(a, b)
    assert d["by_class"] == {"ldg": 10, "alu": 2}
    assert d["exceptions_taken"] == 1 and d["insns"] == 12


def test_tag_traffic_by_block_size():
    # LDGM moves 4 << BS bytes of tags' worth of granules: BS 2 -> 1, 4 -> 4, 6 -> 16
    assert cm.tag_traffic({"ldgm": 10}, 2) == (10, 0)
    assert cm.tag_traffic({"ldgm": 10}, 4) == (40, 0)
    assert cm.tag_traffic({"ldgm": 10, "stgm": 1}, 6) == (160, 16)
    assert cm.tag_traffic({"ldg": 3, "st2g": 2, "stgp": 1, "dc_gzva": 1}, 4, dczid_bs=4) == (3, 9)
