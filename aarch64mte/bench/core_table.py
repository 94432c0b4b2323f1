"""The readable form of a `bench core` report (core.run's dict): one line per row and path,
then what the columns mean and what the checksums showed."""
from __future__ import annotations

from typing import List, Optional

from aarch64mte.bench.core import ratio, si


def _seconds(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.3g} s"


def figure_text(row: dict, f: dict) -> str:
    if row["kind"] == "ratio":
        return f"{ratio(f['value'])} raw"
    rate = f"{si(f['rate'])} {row['unit']}/s"
    if row["kind"] == "rate":
        return rate
    if f["value"] is None:
        return f"{rate} (no QEMU time)"
    return f"{ratio(f['value'])} QEMU's time ({rate})"


def verdict(f: dict) -> str:
    return {True: "met", False: "MISSED", None: "n/a"}[f["met"]]


def _grid(head: List[str], lines: List[List[str]], right: set) -> List[str]:
    widths = [max([len(h)] + [len(l[i]) for l in lines]) for i, h in enumerate(head)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]


def table(report: dict) -> str:
    h = report["host"]
    load = lambda v: " ".join(f"{x:.2f}" for x in v) if v else "unknown"   # noqa: E731
    q = report["qemu"]
    clock = "CPU time" if report["clock"] == "cpu" else "wall time"
    out = [f"aarch64mte bench core: emulator path{'s' if len(report['paths']) > 1 else ''} "
           f"{', '.join(report['paths'])}; best of {report['repeat']}, {clock}; "
           f"GMID_EL1.BS {report['gmid_bs']}",
           f"host: {h['cpus']} CPUs, load {load(h['load'])} before, {load(h['load_after'])} "
           f"after; Python {h['python']}; Unicorn {h['unicorn']}; "
           + (f"QEMU {q['version'] or '(version unknown)'}" if q else "no QEMU"), ""]
    head = ["row", "path", "iterations", "emulator", "raw Unicorn", "QEMU", "vs raw",
            "vs QEMU", "figure", "target", ""]
    lines = []
    for r in report["rows"]:
        star = "*" if r["raw_mte_as_nops"] == "loop" else ""
        for path, f in r["paths"].items():
            lines.append([r["name"], path, f"{f['iterations']:,}", _seconds(f["seconds"]),
                          _seconds(f["raw_seconds"]) + star, _seconds(f["qemu_seconds"]),
                          ratio(f["vs_raw"]) + star, ratio(f["vs_qemu"]), figure_text(r, f),
                          r["target_text"], verdict(f)])
    out += _grid(head, lines, right={2, 3, 4, 5, 6, 7})
    out.append("")
    loop = [r["name"] for r in report["rows"] if r["raw_mte_as_nops"] == "loop"]
    setup = [r["name"] for r in report["rows"] if r["raw_mte_as_nops"] == "set-up"]
    if loop or setup:
        parts = []
        if loop:
            parts.append(f"in the loop for {', '.join(loop)} (*: its time is a reference only; "
                         f"the figure is the rate)")
        if setup:
            parts.append(f"in the set-up only for {', '.join(setup)}")
        out.append("raw Unicorn has no MTE: it runs the same bytes with every MTE instruction a "
                   "NOP -- " + "; ".join(parts) + ".")
    out.append("vs raw, vs QEMU: that engine's time / the emulator's (1.0 = as fast; below 1 "
               "the emulator is slower).")
    if q:
        out.append("QEMU: " + q["command"] + "; start-up subtracted (each program timed at two "
                   "sizes, the difference divided by the difference in iterations).")
    out.append(checksum_text(report))
    if report["missed"]:
        out.append("MISSED targets: " + ", ".join(report["missed"]))
    out.append("")
    out += [f"{r['name']}: {r['what']}" for r in report["rows"]]
    return "\n".join(out)


def checksum_text(report: dict) -> str:
    bad = []
    for r in report["rows"]:
        for path, f in r["paths"].items():
            a = f["agree"]
            if a["raw"] is False:
                bad.append(f"{r['name']}/{path}: work checksum {f['checksums']['work']} vs raw "
                           f"Unicorn {f['raw_checksums']['work']}")
            if a["qemu"] is False:
                qs = r["qemu"]["checksums"][str(f["iterations"])]
                bad.append(f"{r['name']}/{path}: checksums {f['checksums']} vs QEMU {qs}")
            if a["repeats"] is False:
                bad.append(f"{r['name']}/{path}: checksums differ between repeats")
    if bad:
        return "CHECKSUMS DISAGREE: " + "; ".join(bad)
    qemu = report["qemu"] is not None
    return ("checksums agree: the work checksum (trip counts, data loaded and stored) on the "
            "emulator, raw Unicorn" + (" and QEMU" if qemu else "") + "; the tag checksum "
            + ("on the emulator and QEMU" if qemu else "unchecked (no QEMU)")
            + "; every repeat alike.")


def markdown(report: dict) -> str:
    """The report as a Markdown table for a README: one line per row, one column per path,
    each cell the row's figure, then the ratios to raw Unicorn and QEMU."""
    paths = report["paths"]
    out = ["| row | what it runs | target | " + " | ".join(paths) + " |",
           "|---|---|---|" + "---|" * len(paths)]
    for r in report["rows"]:
        cells = []
        for p in paths:
            f = r["paths"][p]
            star = "*" if r["raw_mte_as_nops"] == "loop" else ""
            raw = f"{ratio(f['vs_raw'])}{star} raw"
            qemu = [f"{ratio(f['vs_qemu'])} QEMU"] if f["vs_qemu"] is not None else []
            if r["kind"] == "ratio":
                fig, rest = f"{ratio(f['value'])} raw", qemu
            elif r["kind"] == "rate":
                fig, rest = f"{si(f['rate'])}/s", [raw] + qemu
            else:
                fig = f"{ratio(f['value'])} QEMU's time" if f["value"] is not None else "-"
                rest = [f"{si(f['rate'])} {r['unit']}/s", raw]
            mark = " (missed)" if f["met"] is False else ""
            cells.append(f"**{fig}**{mark}; {', '.join(rest)}")
        out.append(f"| {r['name']} | {r['what']} | {r['target_text']} | " + " | ".join(cells)
                   + " |")
    h = report["host"]
    out.append("")
    out.append(f"Best of {report['repeat']}, "
               f"{'CPU' if report['clock'] == 'cpu' else 'wall'} time; {h['cpus']} CPUs, "
               f"load {' '.join(f'{x:.1f}' for x in h['load'] or [])}; Unicorn {h['unicorn']}"
               + (f", QEMU {report['qemu']['version']}" if report["qemu"] else "")
               + ". Ratios: that engine's time / the emulator's (1.0 = as fast)."
               + (" *: raw Unicorn ran the MTE instructions as NOPs." if any(
                   r["raw_mte_as_nops"] == "loop" for r in report["rows"]) else ""))
    return "\n".join(out)
