"""The readable report of a run: counts by class, and for each class its minimal reproducer
as assembly with what QEMU and aarch64mte did."""
from __future__ import annotations

import collections
import re

from . import compare, layout
from .evaluate import Verdict
from .model import Test
from .rules import RULES
from .runner import Result
from .shrink import used_regs


def describe_pointer(t: Test, v: int) -> str:
    addr = v & ((1 << 56) - 1) & ~(1 << 55)
    tag = (v >> 56) & 15
    alias = ""
    if layout.AREA + layout.ALIAS - 4096 <= addr < layout.AREA + layout.ALIAS + layout.AREA_SIZE + 4096:
        addr -= layout.ALIAS
        alias = " Untagged alias"
    off = addr - layout.AREA
    if -4096 <= off < layout.AREA_SIZE + 4096:
        g = off // 16
        mem = f"memory tag {t.tags[g]:x}" if 0 <= g < layout.GRANULES else "unmapped"
        bit55 = " bit55" if v >> 55 & 1 else ""
        return f"tag {tag:x}{bit55}, area{off:+#x}{alias} ({mem})"
    return ""


def tag_runs(tags: list[int]) -> str:
    runs, start = [], 0
    for i in range(1, len(tags) + 1):
        if i == len(tags) or tags[i] != tags[start]:
            runs.append(f"{start * 16:#06x}-{i * 16 - 1:#06x}:{tags[start]:x}")
            start = i
    if len(runs) > 12:
        runs = runs[:12] + [f"... ({len(runs)} runs)"]
    return " ".join(runs)


def render_test(t: Test, mark: int | None = None) -> list[str]:
    out = [f"setup: {t.describe()}"]
    regs = used_regs(t)
    for i in sorted(regs):
        if i < 31:
            d = describe_pointer(t, t.x[i])
            out.append(f"  x{i:<2} = {t.x[i]:#018x}" + (f"  ; {d}" if d else ""))
    if any(re.search(r"\bsp\b", i.text) for i in t.body):
        d = describe_pointer(t, t.sp)
        out.append(f"  sp  = {t.sp:#018x}" + (f"  ; {d}" if d else ""))
    out.append(f"  area tags (offset range:tag): {tag_runs(t.tags)}")
    if t.pokes:
        out.append("  area words: " + ", ".join(f"+{o:#x} = {v:#x}" for o, v in t.pokes))
    out.append(f"  area data: xorshift64 seed {t.seed:#x}")
    out.append("body:")
    for i, insn in enumerate(t.body):
        arrow = "   <- first divergence" if mark is not None and i == mark - 1 else ""
        out.append(f"  +{4 * i:<3x}  {insn.text}{arrow}")
    return out


def render_result(t: Test, r: Result | None) -> list[str]:
    if r is None:
        return ["  (not run)"]
    if r.crash:
        where = f" at +{r.crash_off:x}" if r.crash_off is not None else ""
        return [f"  run stopped{where}: {r.crash}"]
    out = []
    for esr, far, off in r.exc:
        far_s = f" FAR {far:#x}" if (esr >> 26) in compare.FAR_VALID else ""
        out.append(f"  exception at +{off:x}: ESR {esr:#010x} ({compare.esr_desc(esr)}){far_s}")
    if not r.exc:
        out.append("  no exception")
    if r.end:
        out.append(f"  body ended early (harness flag {r.end})")
    out.append(f"  TFSR_EL1 {r.tfsr1:#x}  TFSRE0_EL1 {r.tfsr0:#x}  NZCV {r.spsr >> 28:x}  "
               f"TCO {r.spsr >> 25 & 1}  SP {r.sp:#x}  RGSR {r.rgsr:#x}")
    if r.regs:
        out.append("  registers changed: " + ", ".join(f"x{i}={v:#x}" for i, v in sorted(r.regs.items())))
    if r.mem:
        items = sorted(r.mem.items())
        s = ", ".join(f"+{o:#x}={v:#018x}" for o, v in items[:8])
        out.append("  memory words changed: " + s + (f" ... ({len(items)})" if len(items) > 8 else ""))
    if r.tags:
        out.append("  tags changed: " + ", ".join(f"+{g * 16:#x}={v:x}" for g, v in sorted(r.tags.items())[:16]))
    return out


def write(path, verdicts_summary: dict, examples: dict[str, Verdict], header: list[str]) -> str:
    """verdicts_summary: {"agree": n, "explained": Counter(rule), "disagree": Counter(sig),
    "explained_sigs": Counter((rule, sig))}."""
    agree = verdicts_summary["agree"]
    expl: collections.Counter = verdicts_summary["explained"]
    dis: collections.Counter = verdicts_summary["disagree"]
    total = agree + sum(expl.values()) + sum(dis.values())
    lines = list(header)
    lines.append(f"tests run: {total}   agree: {agree}   explained: {sum(expl.values())}   "
                 f"disagree: {sum(dis.values())}"
                 + (f" ({100 * sum(dis.values()) / total:.1f}%)" if total else ""))
    lines.append(f"classes of disagreement: {len(dis)}")
    lines.append("")
    lines.append("== Known QEMU departures (explained, not reported) ==")
    for rule in RULES:
        lines.append(f"{expl.get(rule.name, 0):6d}  {rule.name}: QEMU {rule.qemu_does}.")
        lines.append(f"        architecture: {rule.cites}")
    lines.append("")
    lines.append("== Disagreements by class ==")
    for sig, n in dis.most_common():
        lines.append(f"{n:6d}  {sig}")
    lines.append("")
    lines.append("== Reproducers ==")
    for i, (sig, n) in enumerate(dis.most_common(), 1):
        v = examples.get(sig)
        lines.append("")
        lines.append(f"--- [{i}] {sig}  ({n} tests)")
        if v is None:
            lines.append("  (no reproducer)")
            continue
        if v.signature != sig:
            lines.append(f"  (shrunk form classifies as {v.signature})")
        lines += ["  " + s for s in render_test(v.test, v.k)]
        lines.append("  QEMU:")
        lines += ["  " + s for s in render_result(v.test, v.q)]
        lines.append("  aarch64mte:")
        lines += ["  " + s for s in render_result(v.test, v.e)]
    text = "\n".join(lines) + "\n"
    if path is not None:
        path.write_text(text)
    return text
