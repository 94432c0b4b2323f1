"""The program's memory as a Linux process map: `/proc/PID/maps` and `/proc/PID/smaps` text.

GDB's AArch64 Linux support decides whether an address may carry memory tags by reading
`/proc/PID/smaps` and looking for the `mt` VmFlag on the mapping that holds it. The stub serves
this synthesized file: RAM split into runs of Tagged and Untagged pages as the current
translation sees them (identity-mapped virtual addresses), Tagged runs flagged `mt`.
"""
from __future__ import annotations

from dataclasses import dataclass

PAGE = 4096
RAM_BASE = 0x4000_0000
RAM_SIZE = 128 << 20


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    tagged: bool
    name: str = ""


def _ram(m) -> tuple[int, int]:
    ram = getattr(m, "ram", None)
    base = getattr(ram, "base", None)
    size = getattr(ram, "size", None)
    if isinstance(base, int) and isinstance(size, int):
        return base, size
    return RAM_BASE, RAM_SIZE


def _is_tagged(m, va: int) -> bool:
    try:
        return bool(m.is_tagged(va))
    except Exception:
        return False


def regions(m) -> list[Region]:
    """Runs of pages in RAM with the same tagged-ness (cached until the machine runs again)."""
    provided = getattr(m, "tagged_regions", None)
    if callable(provided):
        return [Region(s, e, True) for s, e in provided()]
    counters = getattr(m, "counters", None)
    key = (counters.get("insns") if isinstance(counters, dict)
           else getattr(counters, "insns", None), _ram(m))
    cache = getattr(m, "_debug_region_cache", None)
    if cache is not None and cache[0] == key and key[0] is not None:
        return cache[1]
    base, size = _ram(m)
    out: list[Region] = []
    start, state = base, _is_tagged(m, base)
    for va in range(base + PAGE, base + size, PAGE):
        t = _is_tagged(m, va)
        if t != state:
            out.append(Region(start, va, state))
            start, state = va, t
    out.append(Region(start, base + size, state))
    try:
        m._debug_region_cache = (key, out)
    except Exception:
        pass
    return out


def maps(m, exec_file: str | None = None) -> str:
    lines = []
    for r in regions(m):
        lines.append(f"{r.start:08x}-{r.end:08x} rwxp 00000000 00:00 0"
                     f"{'':<10} {'[tagged ram]' if r.tagged else '[ram]'}\n")
    return "".join(lines)


def smaps(m, exec_file: str | None = None) -> str:
    out = []
    for r in regions(m):
        kb = (r.end - r.start) // 1024
        name = "[anon:mte]" if r.tagged else "[anon]"
        out.append(f"{r.start:08x}-{r.end:08x} rwxp 00000000 00:00 0                          "
                   f"{name}\n")
        for field in ("Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss"):
            value = 4 if "PageSize" in field else kb
            out.append(f"{field + ':':<16}{value:>8} kB\n")
        flags = "rd wr ex mr mw me ac" + (" mt" if r.tagged else "")
        out.append(f"VmFlags: {flags}\n")
    return "".join(out)
