"""A linear cost model over the machine's counters.

The emulator does not time anything; it counts. This module turns counts into modelled cycles
with a *profile* (a TOML file in ``profiles/``) and states the formula it uses, term by term:

    cycles = sum over classes c of  by_class[c] * cpi[c]
           + exceptions_taken      * exception.entry
           + exception_returns     * exception.return
           + exceptions_taken      * kernel.per_call       (the kernel's own entry/exit path)
           + kernel_pages          * kernel.per_page       (per-page bookkeeping in the kernel)
           + data_bytes_read       * memory.per_data_byte_read
           + data_bytes_written    * memory.per_data_byte_written
           + tag_granules_read     * memory.per_tag_granule_read
           + tag_granules_written  * memory.per_tag_granule_written

``cpi[c]`` is the number of cycles charged per instruction of class ``c``: the reciprocal
throughput from the core's software optimization guide, added up as if every instruction were
issued one after another at that rate. It is a throughput-bound, additive model: it ignores
dependency chains and overlap between pipelines, which is the right first approximation for the
tight, independent loops compared here and is stated wherever its numbers are printed.

``kernel_pages`` is not a machine counter: it is the number of pages a kernel entry point would
have to look up (for KVM_ARM_MTE_COPY_TAGS: gfn to pfn, page reference, mapping) that the
emulated EL1 handler, which is handed a flat address, does not do. Callers pass it explicitly.

Counts are linear in the number of pages, with a constant per-call part. ``LinearFit`` holds
such a fit for every counter, built from measured points and checked exactly against all of
them; ``crossover`` finds the page count from which a bulk method is the cheaper one.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The instruction classes the machine reports in ``counters['by_class']`` (ARCHITECTURE.md).
CLASSES: tuple[str, ...] = (
    "irg", "gmi", "addg", "subg", "subp", "subps", "ldg", "stg", "stzg", "st2g", "stz2g",
    "stgp", "ldgm", "stgm", "stzgm", "dc_gva", "dc_gzva", "dc_zva",
    "load", "store", "load_pair", "store_pair", "branch", "alu", "simd", "system",
    "svc", "eret", "other",
)

# The scalar counters besides ``by_class``.
SCALARS: tuple[str, ...] = (
    "insns", "tag_granules_read", "tag_granules_written", "data_bytes_read",
    "data_bytes_written", "exceptions_taken", "exception_returns",
)
# Further scalars carried through fits when present: the machine's tag-check counts, kept apart
# from the tag-storage traffic of the tag instructions.
EXTRA_SCALARS: tuple[str, ...] = ("tag_checks", "checked_granules_read", "checked_granules_written")

MEMORY_KEYS: tuple[str, ...] = (
    "per_data_byte_read", "per_data_byte_written", "per_tag_granule_read",
    "per_tag_granule_written",
)

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    """A profile file is missing a field or names an unknown instruction class."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    cpi: Mapping[str, float]
    exception_entry: float
    exception_return: float
    kernel_per_call: float
    kernel_per_page: float
    per_data_byte_read: float = 0.0
    per_data_byte_written: float = 0.0
    per_tag_granule_read: float = 0.0
    per_tag_granule_written: float = 0.0
    sources: Mapping[str, str] = field(default_factory=dict)
    path: Optional[str] = None

    def with_changes(self, **changes) -> "Profile":
        """A copy with some fields replaced (``cpi`` entries may be given as ``cpi={...}``,
        merged into the existing table)."""
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        if "cpi" in changes:
            merged = dict(self.cpi)
            merged.update(changes.pop("cpi"))
            values["cpi"] = merged
        values.update(changes)
        return Profile(**values)


def _number(table: Mapping, key: str, where: str) -> float:
    if key not in table:
        raise ProfileError(f"{where}: missing '{key}'")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ProfileError(f"{where}: '{key}' must be a non-negative number, got {value!r}")
    return float(value)


def profile_from_dict(data: Mapping, where: str = "<profile>") -> Profile:
    """Build a Profile from parsed TOML, checking every field."""
    for key in ("name", "cpi", "exception", "kernel"):
        if key not in data:
            raise ProfileError(f"{where}: missing [{key}]" if key != "name"
                               else f"{where}: missing 'name'")
    cpi_table = data["cpi"]
    default = cpi_table.get("default")
    cpi: dict[str, float] = {}
    for key in cpi_table:
        if key != "default" and key not in CLASSES:
            raise ProfileError(f"{where}: [cpi] names unknown instruction class '{key}'")
    for cls in CLASSES:
        if cls in cpi_table:
            cpi[cls] = _number(cpi_table, cls, f"{where} [cpi]")
        elif default is not None:
            cpi[cls] = _number(cpi_table, "default", f"{where} [cpi]")
        else:
            raise ProfileError(f"{where}: [cpi] has no '{cls}' and no 'default'")
    exc, kern = data["exception"], data["kernel"]
    mem = data.get("memory", {})
    sources = data.get("sources", {})
    return Profile(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        cpi=cpi,
        exception_entry=_number(exc, "entry", f"{where} [exception]"),
        exception_return=_number(exc, "return", f"{where} [exception]"),
        kernel_per_call=_number(kern, "per_call", f"{where} [kernel]"),
        kernel_per_page=_number(kern, "per_page", f"{where} [kernel]"),
        **{key: (_number(mem, key, f"{where} [memory]") if key in mem else 0.0)
           for key in MEMORY_KEYS},
        sources={str(k): str(v) for k, v in sources.items()},
        path=None if where.startswith("<") else where,
    )


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (a file in ``profiles/``) or by path to a TOML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ProfileError(f"no cost profile '{name_or_path}' (known: {', '.join(list_profiles())})")
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ProfileError(f"{path}: {e}") from None
    return profile_from_dict(data, str(path))


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


DEFAULT_PROFILE = "neoverse-n2"


# ------------------------------------------------------------------------------------------
# Counters

def flatten(counters: Mapping) -> dict[str, int]:
    """The machine's counters as one flat dict: scalar names, and ``class:<name>`` per class."""
    flat: dict[str, int] = {}
    for key in SCALARS:
        flat[key] = int(counters.get(key, 0))
    for key in EXTRA_SCALARS:
        if key in counters:
            flat[key] = int(counters[key])
    by_class = counters.get("by_class", {}) or {}
    for cls, n in by_class.items():
        flat[f"class:{cls}"] = int(n)
    return flat


def unflatten(flat: Mapping[str, float]) -> dict:
    out: dict = {"by_class": {}}
    for key, value in flat.items():
        if key.startswith("class:"):
            if value:
                out["by_class"][key[6:]] = value
        else:
            out[key] = value
    for key in SCALARS:
        out.setdefault(key, 0)
    return out


def subtract(after: Mapping, before: Mapping) -> dict:
    """Counters of a run minus those of a baseline run (both in the machine's shape)."""
    a, b = flatten(after), flatten(before)
    keys = set(a) | set(b)
    return unflatten({k: a.get(k, 0) - b.get(k, 0) for k in keys})


@dataclass(frozen=True)
class Breakdown:
    instructions: float
    exceptions: float
    kernel: float
    memory: float

    @property
    def total(self) -> float:
        return self.instructions + self.exceptions + self.kernel + self.memory


def cycles(counters: Mapping, profile: Profile, kernel_pages: float = 0) -> Breakdown:
    """Modelled cycles for one run's counters (see the module docstring for the formula)."""
    by_class = counters.get("by_class", {}) or {}
    unknown = [c for c in by_class if c not in profile.cpi]
    if unknown:
        raise ProfileError(f"profile {profile.name} has no cpi for class(es) {unknown}")
    insn = sum(n * profile.cpi[c] for c, n in by_class.items())
    taken = counters.get("exceptions_taken", 0)
    returns = counters.get("exception_returns", 0)
    exc = taken * profile.exception_entry + returns * profile.exception_return
    kern = taken * profile.kernel_per_call + kernel_pages * profile.kernel_per_page
    mem = (counters.get("data_bytes_read", 0) * profile.per_data_byte_read
           + counters.get("data_bytes_written", 0) * profile.per_data_byte_written
           + counters.get("tag_granules_read", 0) * profile.per_tag_granule_read
           + counters.get("tag_granules_written", 0) * profile.per_tag_granule_written)
    return Breakdown(float(insn), float(exc), float(kern), float(mem))


def tag_traffic(by_class: Mapping[str, int], gmid_bs: int, dczid_bs: int = 4) -> tuple[int, int]:
    """(granules read, granules written) of allocation-tag storage by the tag instructions of a
    run, from its class counts: LDG reads one granule, LDGM a GMID_EL1 block (4 << BS bytes),
    STG/STZG/STGP write one, ST2G/STZ2G two, STGM a GMID block, STZGM and DC GVA/GZVA a
    DCZID_EL0 block. (The data accesses' tag checks are not tag-storage traffic counted here.)
    """
    gm = (4 << gmid_bs) // 16
    dz = (4 << dczid_bs) // 16
    n = lambda c: int(by_class.get(c, 0))  # noqa: E731
    read = n("ldg") + gm * n("ldgm")
    written = (n("stg") + n("stzg") + n("stgp") + 2 * (n("st2g") + n("stz2g"))
               + gm * n("stgm") + dz * (n("stzgm") + n("dc_gva") + n("dc_gzva")))
    return read, written


# ------------------------------------------------------------------------------------------
# Linear fits over page counts

class NotLinear(ValueError):
    """Measured counters that do not lie on one line through the given page counts."""


@dataclass(frozen=True)
class LinearFit:
    """counter(pages) = const[counter] + per_page[counter] * pages, for every counter."""
    const: Mapping[str, Fraction]
    per_page: Mapping[str, Fraction]
    measured: tuple[int, ...]

    def at(self, pages: float) -> dict:
        """The fitted counters at a page count, in the machine's shape (may be fractional
        only if the fit itself is)."""
        keys = set(self.const) | set(self.per_page)
        flat = {}
        for k in keys:
            v = self.const.get(k, Fraction(0)) + self.per_page.get(k, Fraction(0)) * Fraction(pages)
            flat[k] = int(v) if v.denominator == 1 else float(v)
        return unflatten(flat)

    def describe(self, key: str) -> str:
        return f"{self.const.get(key, 0)} + {self.per_page.get(key, 0)}*pages"


def fit_linear(points: Mapping[int, Mapping]) -> LinearFit:
    """Fit counters measured at several page counts with an exact line and check every point.

    ``points`` maps a page count to that run's counters (machine shape). Two points are enough
    to define the line; every further point must lie on it exactly, or ``NotLinear`` is raised
    naming the counter and the point.
    """
    if len(points) < 2:
        raise ValueError("a linear fit needs counters measured at two page counts at least")
    pages = sorted(points)
    flats = {p: flatten(points[p]) for p in pages}
    keys = set().union(*flats.values())
    p0, p1 = pages[0], pages[-1]
    const, slope = {}, {}
    for k in keys:
        y0, y1 = flats[p0].get(k, 0), flats[p1].get(k, 0)
        s = Fraction(y1 - y0, p1 - p0)
        slope[k] = s
        const[k] = Fraction(y0) - s * p0
    for p in pages:
        for k in keys:
            want = const[k] + slope[k] * p
            got = flats[p].get(k, 0)
            if want != got:
                raise NotLinear(f"counter {k} at {p} pages is {got}, the line through "
                                f"{p0} and {p1} pages gives {want}")
    return LinearFit(const, slope, tuple(pages))


@dataclass(frozen=True)
class CostLine:
    """Modelled cycles as a line in pages: total(n) = const + per_page * n."""
    const: float
    per_page: float

    def at(self, pages: float) -> float:
        return self.const + self.per_page * pages


def cost_line(fit: LinearFit, profile: Profile, kernel_pages_per_page: float = 0) -> CostLine:
    """Modelled cycles of a fitted method as a line in the page count.

    The model is linear in the counters, so the line is the cost of the constant part plus the
    cost of one page's increment; ``kernel_pages_per_page`` is 1 for methods that hand each page
    to the kernel and 0 for those that run entirely in user space."""
    zero = {k: Fraction(0) for k in fit.const}
    const_counters = LinearFit(fit.const, zero, fit.measured).at(0)
    slope_counters = LinearFit(zero, fit.per_page, fit.measured).at(1)
    c0 = cycles(const_counters, profile).total
    c1 = cycles(slope_counters, profile, kernel_pages=kernel_pages_per_page).total
    return CostLine(c0, c1)


def crossover(loop: CostLine, bulk: CostLine) -> Optional[int]:
    """The smallest page count n >= 1 from which ``bulk`` costs no more than ``loop`` for every
    larger count too; None if there is no such n (bulk is dearer per page, or never catches up).
    """
    if bulk.per_page > loop.per_page:
        return None
    if bulk.per_page == loop.per_page:
        return 1 if bulk.const <= loop.const else None
    # bulk.const + bulk.per_page*n <= loop.const + loop.per_page*n
    n = (bulk.const - loop.const) / (loop.per_page - bulk.per_page)
    return max(1, math.ceil(n - 1e-9))


def crossover_for(loop_fit: LinearFit, bulk_fit: LinearFit, profile: Profile,
                  bulk_kernel_pages: float = 1) -> Optional[int]:
    return crossover(cost_line(loop_fit, profile), cost_line(bulk_fit, profile, bulk_kernel_pages))


def summarize(profile: Profile) -> str:
    lines = [f"profile {profile.name}: {profile.description}"]
    lines.append("  exception entry %g, return %g, kernel per call %g, per page %g cycles" % (
        profile.exception_entry, profile.exception_return, profile.kernel_per_call,
        profile.kernel_per_page))
    return "\n".join(lines)


__all__ = [
    "CLASSES", "SCALARS", "Profile", "ProfileError", "load_profile", "list_profiles",
    "profile_from_dict", "DEFAULT_PROFILE", "tag_traffic", "flatten", "unflatten", "subtract", "Breakdown",
    "cycles", "LinearFit", "NotLinear", "fit_linear", "CostLine", "cost_line", "crossover",
    "crossover_for", "summarize",
]
