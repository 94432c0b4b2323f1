"""How the debugger shows things: registers, memory, disassembly, tags, tag maps, the MTE system
registers field by field, exceptions, and the tag-check fault report. Every function returns
rich markup text; the console decides whether it is coloured (a terminal) or plain (batch)."""
from __future__ import annotations

from typing import Iterable, Optional

from rich.markup import escape

from aarch64mte.debug.session import GRANULE, MASK64, Stop, describe_exception, logical_tag, \
    strip_tag

# --- disassembly ---------------------------------------------------------------------------------

_cs = None


def _capstone():
    global _cs
    if _cs is None:
        import capstone
        arch = getattr(capstone, "CS_ARCH_ARM64", None) or capstone.CS_ARCH_AARCH64
        _cs = capstone.Cs(arch, capstone.CS_MODE_ARM)
    return _cs


def disassemble_word(word: int, addr: int, symbols: Optional[dict] = None) -> str:
    """GNU-as text of one instruction: the project's disassembler (isa table for MTE, Capstone
    for the rest), with branch targets named by `symbols`."""
    try:
        from aarch64mte.disasm import decode_word
        return decode_word(word, addr, symbols).replace("\t", " ")
    except Exception:
        pass
    try:
        from aarch64mte import isa
        from aarch64mte.isa import syntax
        insn = isa.decode(word)
        if insn is not None:
            return syntax.format_insn(insn)
    except Exception:
        pass
    try:
        for i in _capstone().disasm(word.to_bytes(4, "little"), addr):
            return f"{i.mnemonic} {i.op_str}".strip()
    except Exception:
        pass
    return f".inst 0x{word:08x}"


def fmt_addr(addr: int, symbolize) -> str:
    name = None
    try:
        name = symbolize(addr)
    except Exception:
        pass
    return f"0x{addr:x}" + (f" <{escape(name)}>" if name else "")


# --- registers --------------------------------------------------------------------------------------

def _flags(nzcv: int) -> str:
    return "".join(c if nzcv >> (31 - i) & 1 else c.lower() for i, c in enumerate("NZCV"))


def registers(values: dict[str, int], changed: set[str], names: Optional[list[str]] = None) -> str:
    """A table of registers; those that changed since the last stop are highlighted and starred."""
    order = names or [f"x{i}" for i in range(31)] + ["sp", "pc", "nzcv", "el", "tco"]
    cells = []
    for name in order:
        if name not in values:
            continue
        v = values[name]
        if name == "nzcv":
            text = f"{_flags(v)} (0x{v:08x})"
        elif name in ("el", "tco"):
            text = f"{v}"
        elif name.startswith("v") and name[1:].isdigit():
            text = f"0x{v:032x}"
        else:
            text = f"0x{v:016x}"
        star = "*" if name in changed else " "
        cell = f"{name:>5} {text}{star}"
        cells.append(f"[bold yellow]{cell}[/]" if name in changed else cell)
    width = 3 if not names else 1
    rows = [cells[i:i + width] for i in range(0, len(cells), width)]
    return "\n".join("  ".join(r) for r in rows)


# --- memory ---------------------------------------------------------------------------------------

def hexdump(addr: int, data: bytes, symbolize=None) -> str:
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"0x{addr + off:016x}  {hexpart:<47}  |{escape(text)}|")
    return "\n".join(lines)


def examine(addr: int, data: bytes, fmt: str, size: int, symbolize) -> str:
    """`x/NFU` output: 16 bytes (or 8 units) per line, each line labelled with its address."""
    per_line = max(1, min(8, 16 // size))
    units = [data[i:i + size] for i in range(0, len(data) - size + 1, size)]
    lines = []
    for i in range(0, len(units), per_line):
        row = []
        for u in units[i:i + per_line]:
            v = int.from_bytes(u, "little")
            if fmt == "x":
                row.append(f"0x{v:0{size * 2}x}")
            elif fmt == "d":
                if v >> (size * 8 - 1):
                    v -= 1 << (size * 8)
                row.append(str(v))
            elif fmt == "u":
                row.append(str(v))
            elif fmt == "c":
                row.append(repr(chr(v)) if v < 128 else f"\\x{v:02x}")
            elif fmt == "t":
                row.append(f"{v:0{size * 8}b}")
            else:
                row.append(f"0x{v:x}")
        lines.append(f"{fmt_addr(addr + i * size, symbolize)}:  " + "  ".join(escape(r) for r in row))
    return "\n".join(lines)


def disassembly(rows: Iterable[tuple[int, Optional[int]]], pc: int, symbolize,
                breakpoints: set[int], symbols: Optional[dict] = None) -> str:
    lines = []
    for addr, word in rows:
        label = None
        try:
            name = symbolize(addr)
            if name and "+" not in name:
                label = name
        except Exception:
            pass
        if label:
            lines.append(f"{escape(label)}:")
        mark = "=>" if addr == pc else "  "
        bp = "*" if addr in breakpoints else " "
        if word is None:
            lines.append(f"{mark}{bp}0x{addr:x}:  <unreadable>")
            continue
        text = escape(disassemble_word(word, addr, symbols))
        line = f"{mark}{bp}0x{addr:x}:  {word:08x}  {text}"
        lines.append(f"[bold]{line}[/]" if addr == pc else line)
    return "\n".join(lines)


# --- tags -----------------------------------------------------------------------------------------

def tag_list(ptr: int, tags: list[int], tagged: Optional[bool],
             writers: Optional[list[str]] = None) -> str:
    """One line per granule: address, allocation tag, whether the pointer's tag matches, and
    (``writers``, markup) who set the tag."""
    lt = logical_tag(ptr)
    base = strip_tag(ptr) & ~(GRANULE - 1)
    lines = [f"pointer 0x{ptr:016x}: logical tag 0x{lt:x}"
             + ("" if tagged is None else ("" if tagged else " (memory is Untagged: not checked)"))]
    for i, t in enumerate(tags):
        ok = "match   " if t == lt else "[red]MISMATCH[/]"
        who = f"  {writers[i]}" if writers else ""
        lines.append(f"  granule 0x{base + i * GRANULE:x}: allocation tag 0x{t:x}  {ok}{who}")
    return "\n".join(lines)


def tag_history(va: int, writes: list, describe) -> str:
    """A granule's tag writes, newest first; ``describe(write)`` renders who made one."""
    granule = strip_tag(va) & ~(GRANULE - 1)
    if not writes:
        return f"granule 0x{granule:x}: no tag write recorded"
    lines = [f"granule 0x{granule:x}: {len(writes)} tag write{'s' if len(writes) > 1 else ''}, "
             f"newest first"]
    for w in writes:
        lines.append(f"  #{w.insns:<10,} 0x{w.previous:x} -> 0x{w.tag:x}  EL{w.el}  "
                     f"{describe(w)}")
    return "\n".join(lines)


def tag_map(addr: int, tags: list[int], mark: Optional[int] = None, per_line: int = 32) -> str:
    """A grid of allocation tags, one hex digit per granule; `mark` brackets one granule."""
    base = strip_tag(addr) & ~(GRANULE - 1)
    lines = []
    for i in range(0, len(tags), per_line):
        cells = []
        for j, t in enumerate(tags[i:i + per_line]):
            g = base + (i + j) * GRANULE
            cell = f"{t:x}"
            if mark is not None and g == mark:
                cell = f"\\[{cell}]" if True else cell
                cells.append(f"[bold red]{cell}[/]")
            else:
                cells.append(f" {cell} " if mark is not None else cell)
        sep = "" if mark is not None else " "
        lines.append(f"0x{base + i * GRANULE:x}: " + sep.join(cells))
    return "\n".join(lines)


# --- system registers -------------------------------------------------------------------------------

def _bits(v: int, hi: int, lo: int) -> int:
    return (v >> lo) & ((1 << (hi - lo + 1)) - 1)


TCF_NAMES = {0: "none", 1: "sync", 2: "async", 3: "asymmetric"}


def mte_sysregs(get) -> str:
    """Decode the MTE system registers field by field; `get(name)` returns a value or None."""
    out = []

    def line(name, value, fields):
        if value is None:
            out.append(f"{name:<11} (not available)")
            return
        out.append(f"{name:<11} 0x{value:016x}  " + "  ".join(fields))

    s = get("sctlr_el1")
    line("SCTLR_EL1", s, [] if s is None else [
        f"M={_bits(s, 0, 0)}",
        f"TCF={_bits(s, 41, 40)} ({TCF_NAMES[_bits(s, 41, 40)]})",
        f"TCF0={_bits(s, 39, 38)} ({TCF_NAMES[_bits(s, 39, 38)]})",
        f"ATA={_bits(s, 43, 43)}", f"ATA0={_bits(s, 42, 42)}", f"ITFSB={_bits(s, 37, 37)}"])
    t = get("tcr_el1")
    line("TCR_EL1", t, [] if t is None else [
        f"TBI0={_bits(t, 37, 37)}", f"TBI1={_bits(t, 38, 38)}",
        f"TCMA0={_bits(t, 57, 57)}", f"TCMA1={_bits(t, 58, 58)}"])
    g = get("gcr_el1")
    if g is None:
        line("GCR_EL1", g, [])
    else:
        excl = _bits(g, 15, 0)
        tags = [f"{i:x}" for i in range(16) if excl >> i & 1]
        line("GCR_EL1", g, [f"Exclude=0x{excl:04x} ({','.join(tags) or 'none'})",
                            f"RRND={_bits(g, 16, 16)}"])
    r = get("rgsr_el1")
    line("RGSR_EL1", r, [] if r is None else [f"TAG=0x{_bits(r, 3, 0):x}",
                                               f"SEED=0x{_bits(r, 23, 8):04x}"])
    for name in ("tfsr_el1", "tfsre0_el1"):
        v = get(name)
        line(name.upper(), v, [] if v is None else [f"TF0={_bits(v, 0, 0)}",
                                                     f"TF1={_bits(v, 1, 1)}"])
    b = get("gmid_el1")
    line("GMID_EL1", b, [] if b is None else [
        f"BS={_bits(b, 3, 0)} ({4 << _bits(b, 3, 0)} bytes, "
        f"{(4 << _bits(b, 3, 0)) // GRANULE} granules per LDGM/STGM)"])
    h = get("hcr_el2")
    if h is not None:
        line("HCR_EL2", h, [f"{name}={_bits(h, bit, bit)}" for name, bit in (
            ("VM", 0), ("DC", 12), ("TID3", 18), ("TGE", 27), ("E2H", 34), ("FWB", 46),
            ("ATA", 56), ("DCT", 57), ("TID5", 58))])
        s2 = get("sctlr_el2")
        line("SCTLR_EL2", s2, [] if s2 is None else [
            f"M={_bits(s2, 0, 0)}", f"TCF={_bits(s2, 41, 40)} ({TCF_NAMES[_bits(s2, 41, 40)]})",
            f"TCF0={_bits(s2, 39, 38)} ({TCF_NAMES[_bits(s2, 39, 38)]})",
            f"ATA={_bits(s2, 43, 43)}", f"ATA0={_bits(s2, 42, 42)}"])
        v = get("tfsr_el2")
        line("TFSR_EL2", v, [] if v is None else [f"TF0={_bits(v, 0, 0)}",
                                                   f"TF1={_bits(v, 1, 1)}"])
        vt = get("vtcr_el2")
        line("VTCR_EL2", vt, [] if vt is None else [
            f"T0SZ={_bits(vt, 5, 0)}", f"SL0={_bits(vt, 7, 6)}", f"TG0={_bits(vt, 15, 14)}",
            f"PS={_bits(vt, 18, 16)}"])
        line("VTTBR_EL2", get("vttbr_el2"), [])
    tco = get("tco")
    if tco is not None:
        out.append(f"PSTATE.TCO  {tco}" + ("  (tag checks suppressed)" if tco else ""))
    return "\n".join(out)


# --- stops and faults ---------------------------------------------------------------------------------

def exception_log(records: list, tag_faults: list, writers_of=None) -> str:
    """The exception log and the tag-check failures that raised nothing; ``writers_of(tf)``
    (optional) says who set the allocation tag a failure met."""
    if not records and not tag_faults:
        return "no exceptions taken, no tag-check failures"
    out = []

    def who(tf):
        line = writers_of(tf) if writers_of is not None else None
        if line:
            out.append(f"      {escape(line)}")

    for i, r in enumerate(records):
        out.append(f"#{i} {escape(describe_exception(r))}")
        tf = getattr(r, "tag_fault", None)
        if tf is not None:
            out.append(f"    {escape(tag_fault_line(tf))}")
            who(tf)
    asyncs = [tf for tf in tag_faults if not str(getattr(tf, "mode", "")).startswith("sync")]
    if asyncs:
        out.append("tag-check failures with no exception (async/asymmetric):")
        for tf in asyncs:
            out.append(f"    {escape(tag_fault_line(tf))}")
            who(tf)
    return "\n".join(out)


def tag_fault_line(tf) -> str:
    return (f"{'write' if getattr(tf, 'write', False) else 'read'} of 0x{tf.va:016x}: "
            f"logical tag 0x{tf.logical_tag:x}, allocation tag 0x{tf.allocation_tag:x} "
            f"({getattr(tf, 'mode', '?')})")


def fault_report(stop: Stop, insn_text: str, symbolize, around: list[int],
                 around_base: int, writers: Optional[str] = None) -> str:
    """What a tag-check fault stop shows: instruction, pointer, tags, who set the allocation
    tag (``writers``, plain text), and the tags around."""
    tf = stop.tag_fault
    rec = stop.exception
    lines = [f"[bold red]Tag-check fault[/] ({escape(str(getattr(tf, 'mode', 'sync')))}, "
             f"{'write' if getattr(tf, 'write', False) else 'read'})",
             f"  instruction  {fmt_addr(stop.pc, symbolize)}:  {escape(insn_text)}",
             f"  pointer      0x{tf.va:016x}",
             f"  logical tag  0x{tf.logical_tag:x}   allocation tag 0x{tf.allocation_tag:x}"
             f"  (granule 0x{strip_tag(tf.va) & ~(GRANULE - 1):x})"]
    if writers:
        lines.append(f"  {escape(writers)}")
    if rec is not None and getattr(rec, "esr", None) is not None:
        lines.append(f"  ESR 0x{rec.esr:08x}  FAR 0x{(rec.far or 0) & MASK64:016x}")
    if around:
        lines.append("  tags around (granule in brackets):")
        mark = strip_tag(tf.va) & ~(GRANULE - 1)
        lines.extend("    " + line for line in
                     tag_map(around_base, around, mark=mark, per_line=16).split("\n"))
    return "\n".join(lines)
