"""What a finished run looks like: one JSON-ready dict, and a readable rich summary of it.

`collect(machine, result)` reads everything it needs from the machine once; `print_summary`
renders that dict, so the JSON output and the summary always agree.
"""
from __future__ import annotations

import struct

GPRS = tuple(f"x{i}" for i in range(31))
SYSREGS = ("sctlr_el1", "tcr_el1", "gcr_el1", "rgsr_el1", "tfsr_el1", "tfsre0_el1",
           "gmid_el1", "esr_el1", "far_el1", "elr_el1", "spsr_el1")
GRANULE = 16
CONTEXT_GRANULES = 3            # shown each side of a faulting address

# ESR_ELx.EC (Arm ARM D24.2.41)
EC_NAMES = {
    0x00: "Unknown reason (UNDEFINED instruction)",
    0x01: "WFI/WFE trapped",
    0x07: "SIMD/FP access trapped",
    0x0E: "Illegal Execution state",
    0x11: "SVC (AArch32)",
    0x15: "SVC",
    0x16: "HVC",
    0x17: "SMC",
    0x18: "MSR/MRS/system instruction trapped",
    0x19: "SVE access trapped",
    0x20: "Instruction Abort from a lower EL",
    0x21: "Instruction Abort, same EL",
    0x22: "PC alignment fault",
    0x24: "Data Abort from a lower EL",
    0x25: "Data Abort, same EL",
    0x26: "SP alignment fault",
    0x2C: "Floating-point exception",
    0x2F: "SError interrupt",
    0x30: "Breakpoint from a lower EL",
    0x31: "Breakpoint, same EL",
    0x32: "Software Step from a lower EL",
    0x33: "Software Step, same EL",
    0x34: "Watchpoint from a lower EL",
    0x35: "Watchpoint, same EL",
    0x3C: "BRK instruction",
}


def dfsc_name(dfsc: int) -> str:
    """ISS.DFSC/IFSC of a Data/Instruction Abort (Arm ARM D24.2.41, ISS encoding for aborts)."""
    level = dfsc & 3
    kinds = {0x00: "Address size fault", 0x04: "Translation fault",
             0x08: "Access flag fault", 0x0C: "Permission fault"}
    if dfsc < 0x10:
        return f"{kinds[dfsc & 0x3C]}, level {level}"
    return {
        0x10: "Synchronous External abort",
        0x11: "Synchronous Tag Check Fault",
        0x21: "Alignment fault",
        0x30: "TLB conflict abort",
    }.get(dfsc, f"fault status 0x{dfsc:02x}")


def ec_name(ec: int) -> str:
    return EC_NAMES.get(ec, f"EC 0x{ec:02x}")


def hex64(value) -> str | None:
    return None if value is None else f"0x{int(value) & (2**64 - 1):x}"


def canonical(va: int) -> int:
    """The address a tagged pointer names: TBI ignores bits 63:56, bit 55 selects the half."""
    va &= 2**64 - 1
    return va | (0xFF << 56) if va >> 55 & 1 else va & ((1 << 56) - 1)


# --- reading the machine ----------------------------------------------------------------------

def _reg(machine, name):
    try:
        return machine.reg(name)
    except Exception:       # a register this machine does not model is simply left out
        return None


def _counter(counters, name):
    if counters is None:
        return None
    if isinstance(counters, dict):
        return counters.get(name)
    return getattr(counters, name, None)


def _text(console) -> str:
    if console is None:
        return ""
    if isinstance(console, (bytes, bytearray)):
        return console.decode("utf-8", "replace")
    if isinstance(console, list):
        return "".join(_text(c) for c in console)
    return str(console)


def unreadable(exc: Exception) -> str:
    """Why the machine could not read something, without its exception names: a translation
    fault describes itself; anything else means no RAM or device is there."""
    if isinstance(exc, (ValueError, LookupError)) and str(exc):
        return str(exc)
    return "no memory there"


def symbolize(machine, addr: int) -> str | None:
    try:
        return machine.symbolize(addr)
    except Exception:
        return None


def disassemble(machine, pc: int) -> str | None:
    """The instruction at pc as text, or None when it cannot be read."""
    try:
        word = bytes(machine.read_mem(pc, 4))
    except Exception:
        return None
    if len(word) != 4:
        return None
    try:
        from aarch64mte import disasm
        for name in ("disassemble_word", "disasm_word", "format_word"):
            fn = getattr(disasm, name, None)
            if fn is not None:
                return str(fn(struct.unpack("<I", word)[0], pc))
    except Exception:
        pass
    try:
        import capstone
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
        for insn in md.disasm(word, pc):
            return f"{insn.mnemonic} {insn.op_str}".strip()
    except Exception:
        pass
    return f".inst 0x{struct.unpack('<I', word)[0]:08x}"


def granule_tags(machine, va: int, before: int = CONTEXT_GRANULES,
                 after: int = CONTEXT_GRANULES) -> list[dict]:
    """Allocation tags of the granules around va: [{addr, tag, here}], empty if unreadable."""
    base = canonical(va) & ~(GRANULE - 1)
    start = base - before * GRANULE
    count = before + 1 + after
    try:
        tags = list(machine.read_tags(start, count * GRANULE))
    except Exception:
        return []
    return [{"addr": hex64(start + i * GRANULE), "tag": int(t), "here": start + i * GRANULE == base}
            for i, t in enumerate(tags[:count])]


def tag_fault_dict(tf) -> dict | None:
    if tf is None:
        return None
    out = {
        "pointer": hex64(tf.va),
        "logical_tag": int(tf.logical_tag),
        "allocation_tag": int(tf.allocation_tag),
        "write": bool(tf.write),
    }
    mode = getattr(tf, "mode", None)
    if mode is not None:
        out["mode"] = mode
    return out


# --- who wrote a tag (tag provenance) ---------------------------------------------------------

SOURCE_TEXT = {"host": "the host (Machine.write_tags)", "debugger": "the debugger (set tag)",
               "gdb": "GDB (QMemTags)"}


def tag_write_dict(machine, w) -> dict | None:
    """One tag write (``provenance.TagWrite``) as JSON-ready values."""
    if w is None:
        return None
    insn = disassemble(machine, w.pc) if w.by_instruction else None
    return {"tag": w.tag, "replaced": w.previous, "by": w.kind if w.by_instruction else w.kind,
            "instruction": w.by_instruction, "insn": insn, "pc": hex64(w.pc),
            "where": symbolize(machine, w.pc), "insns": w.insns, "el": w.el}


def tag_writers(machine, va: int, before=None) -> dict:
    """{writer, previous} of the allocation tag of the granule holding ``va``: the last write
    (before instruction count ``before``, if given) and the one before it. ``previous`` is a
    write, or {tag, by: 'reset'} when the granule was never written before, or {tag, by: None}
    when the history no longer reaches back to it. Empty for a machine without provenance."""
    prov = getattr(machine, "provenance", None)
    if prov is None:
        return {}
    try:
        last, prev = machine.tag_writers(canonical(va), before)
    except Exception:
        return {"writer": None, "previous": None}
    if last is None:
        complete = prov is not None and prov.complete()
        return {"writer": None, "previous": None, "never_written": complete}
    if prev is not None:
        previous = tag_write_dict(machine, prev)
    elif prov is not None and prov.complete():
        previous = {"tag": last.previous, "by": "reset"}
    else:
        previous = {"tag": last.previous, "by": None}
    return {"writer": tag_write_dict(machine, last), "previous": previous}


def _by(w: dict) -> str:
    if not w["instruction"]:
        return f"{SOURCE_TEXT.get(w['by'], w['by'])} at insn #{w['insns']:,}"
    where = f" at {w['where']}" if w.get("where") else f" at {w['pc']}"
    return f"{w['insn'] or w['by'].lower()}{where} (insn #{w['insns']:,}, EL{w['el']})"


def _before(p: dict) -> str:
    if p.get("by") == "reset":
        return f"{p['tag']:#x}, the tag it started with"
    if p.get("by") is None:
        return f"{p['tag']:#x} (its writer is older than the tag-write history)"
    return f"{p['tag']:#x}, set by {_by(p)}"


def writer_rows(data: dict) -> list:
    """The summary table's rows for ``tag_writers``: [(label, text)]."""
    w = data.get("writer")
    if w is None:
        return [("set by", "nothing: the tag it started with" if data.get("never_written")
                 else "no record")]
    rows = [("set by", _by(w))]
    if data.get("previous") is not None:
        rows.append(("before", _before(data["previous"])))
    return rows


def writers_text(data: dict, tag=None) -> str:
    """One line: who set the tag and what it was before, from ``tag_writers``."""
    w = data.get("writer")
    if w is None:
        if data.get("never_written"):
            return f"allocation tag {tag:#x} never written: the tag it started with" \
                if tag is not None else "never written: the tag it started with"
        return "no record of who set this tag"
    text = f"allocation tag {w['tag']:#x} set by {_by(w)}"
    p = data.get("previous")
    if p is not None:
        before = _before(p).replace(", set by ", " by ", 1)
        text += f"; before that {before}"
    return text


def exception_dict(machine, rec) -> dict | None:
    if rec is None:
        return None
    ec = int(rec.ec) if rec.ec is not None else None
    esr = int(rec.esr or 0)
    out = {
        "kind": rec.kind,
        "ec": ec,
        "ec_name": ec_name(ec) if ec is not None else None,
        "esr": hex64(esr),
        "far": hex64(rec.far),
        "el": rec.el,
        "from_el": getattr(rec, "from_el", None),
        "pc": hex64(rec.pc),
        "where": symbolize(machine, rec.pc) if rec.pc is not None else None,
        "insn": disassemble(machine, rec.pc) if rec.pc is not None else None,
    }
    if ec in (0x20, 0x21, 0x24, 0x25):
        out["fsc"] = esr & 0x3F
        out["fsc_name"] = dfsc_name(esr & 0x3F)
        if ec in (0x24, 0x25):
            out["write"] = bool(esr >> 6 & 1)
    tf = getattr(rec, "tag_fault", None)
    out["tag_fault"] = tag_fault_dict(tf)
    if tf is not None:
        out["tag_fault"]["granules"] = granule_tags(machine, tf.va)
        out["tag_fault"].update(tag_writers(machine, tf.va, getattr(tf, "insns", None)))
    return out


def collect(machine, result, tag_dumps=(), mem_dumps=()) -> dict:
    """Everything about a finished run, as JSON-ready values (64-bit values as hex strings)."""
    regs = {name: hex64(_reg(machine, name)) for name in GPRS + ("sp", "pc", "nzcv")}
    el = _reg(machine, "el")
    regs["el"] = None if el is None else int(el)
    sysregs = {name: hex64(_reg(machine, name)) for name in SYSREGS}

    tags = {}
    for d in tag_dumps:
        try:
            tags[hex64(d.addr)] = [int(t) for t in machine.read_tags(d.addr, d.length)]
        except Exception as exc:
            tags[hex64(d.addr)] = f"error: {unreadable(exc)}"
    mem = {}
    for d in mem_dumps:
        try:
            mem[hex64(d.addr)] = bytes(machine.read_mem(d.addr, d.length)).hex()
        except Exception as exc:
            mem[hex64(d.addr)] = f"error: {unreadable(exc)}"

    code = result.code
    return {
        "exit": {"reason": result.reason, "code": None if code is None else int(code)},
        "exception": exception_dict(machine, result.exception),
        "regs": regs,
        "sysregs": sysregs,
        "tags": tags,
        "mem": mem,
        "console": _text(getattr(machine, "console", "")),
        "insns": _counter(getattr(machine, "counters", None), "insns"),
        "tag_faults": [tag_fault_dict(tf) for tf in (getattr(machine, "tag_faults", None) or [])],
        "pc_symbol": symbolize(machine, int(regs["pc"], 16)) if regs["pc"] else None,
        "vm_exits": vm_exits(machine),
    }


def vm_exits(machine) -> list:
    """The EL2 shim's VM exits, oldest first (empty without the shim)."""
    shim = getattr(machine, "shim", None)
    out = []
    for e in getattr(shim, "exits", None) or []:
        d = {k: (hex64(v) if isinstance(v, int) and not isinstance(v, bool) and k != "index"
                 else v) for k, v in e.as_dict().items()}
        d["ec"] = e.ec
        d["ec_name"] = ec_name(e.ec)
        d["insn"] = disassemble(machine, e.pc)
        out.append(d)
    return out


# --- the guest's own output -------------------------------------------------------------------

def console_bytes(text: str) -> bytes:
    """The guest's output as the bytes it wrote. The board hands each UART byte over as the
    character of that code (latin-1), so those come back exactly; a character above 0xFF can
    only have come from decoded text and is written as UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return b"".join(bytes([ord(c)]) if ord(c) < 0x100 else c.encode("utf-8", "replace")
                        for c in text)


def write_guest_output(console, text: str) -> None:
    """Write what the guest printed to the console's file byte for byte: not wrapped at the
    terminal width, no markup or emoji codes interpreted, no bytes re-encoded (a terminal shows
    them as it would show QEMU's serial output). A newline is added when the output does not
    end with one, so what follows starts on its own line."""
    f = console.file
    f.flush()
    raw = getattr(f, "buffer", None)
    if raw is not None:
        data = console_bytes(text)
        raw.write(data if data.endswith(b"\n") else data + b"\n")
        raw.flush()
    else:                               # a text stream (a test's StringIO): the text itself
        f.write(text if text.endswith("\n") else text + "\n")


# --- the human summary ------------------------------------------------------------------------

REASON_TEXT = {
    "end": "ran off the end of its text",
    "brk": "stopped at BRK",
    "semihost-exit": "exited through semihosting",
    "exception": "stopped on an unhandled exception",
    "insn-limit": "reached the instruction limit",
    "interrupt": "was interrupted",
    "vm-exit": "stopped at a VM exit the EL2 shim does not handle",
    "el2-exit": "was ended by the EL2 shim's handler",
}


def _hexdump(addr: int, data: bytes) -> list[str]:
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{addr + off:>10x}  {chunk.hex(' '):<47}  {text}")
    return lines


def print_summary(data: dict, program: str = "", console=None) -> None:
    """Render a collect() dict for a person."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = console or Console(highlight=False)
    ex = data["exit"]
    reason = REASON_TEXT.get(ex["reason"], ex["reason"])
    status = ex.get("status")
    head = Text()
    head.append(program or "program", style="bold")
    head.append(f" {reason}")
    if ex["reason"] == "brk" and ex["code"] is not None:
        head.append(f" #0x{ex['code']:x}")
    if ex["reason"] in ("semihost-exit", "el2-exit"):
        head.append(f" with code {ex['code']}")
    at = data["regs"].get("pc")
    if at:
        where = data.get("pc_symbol")
        head.append(f" at pc={at}" + (f" <{where}>" if where else ""))
    if data.get("insns") is not None:
        head.append(f" after {data['insns']:,} instructions")
    if status is not None:
        head.append(f" (exit status {status})", style="dim")
    con.print(head, style="green" if status == 0 else "red" if status else None, soft_wrap=True)

    if data.get("console"):
        con.rule("console", style="dim")
        write_guest_output(con, data["console"])

    exits = data.get("vm_exits") or []
    if exits:
        con.rule(f"VM exits ({len(exits)})", style="dim")
        shown = exits if len(exits) <= 40 else exits[:20] + [None] + exits[-20:]
        for e in shown:
            if e is None:
                con.print(f"  ... {len(exits) - 40} more ...")
                continue
            extra = f" {e['register']}" if e.get("register") else ""
            extra += f" ipa={e['ipa']}" if e.get("ipa") else ""
            con.print(Text(f"  {e['reason']:<13} ESR_EL2={e['esr_el2']} FAR_EL2="
                           f"{e['far_el2'] or '-'}{extra} pc={e['pc']}  {e.get('insn') or ''}"))

    exc = data.get("exception")
    if exc:
        con.rule("exception", style="red")
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        ecs = f"0x{exc['ec']:02x}" if exc["ec"] is not None else "?"
        t.add_row("kind", f"{exc['kind']} to EL{exc['el']}"
                  + (f" from EL{exc['from_el']}" if exc.get("from_el") is not None else ""))
        t.add_row("EC", f"{ecs} {exc['ec_name'] or ''}")
        if exc.get("fsc_name"):
            rw = " (write)" if exc.get("write") else " (read)" if "write" in exc else ""
            t.add_row("fault", f"{exc['fsc_name']}{rw}")
        t.add_row("ESR", exc["esr"])
        t.add_row("FAR", exc["far"] or "-")
        insn = exc.get("insn") or "?"
        where = f" <{exc['where']}>" if exc.get("where") else ""
        t.add_row("ELR/pc", Text(f"{exc['pc']}{where}  {insn}"))
        tf = exc.get("tag_fault")
        if tf:
            t.add_row("pointer", tf["pointer"])
            t.add_row("tags", f"logical {tf['logical_tag']:x} (pointer bits 59:56) vs "
                              f"allocation {tf['allocation_tag']:x} (memory)")
            if "writer" in tf:
                for label, text in writer_rows(tf):
                    t.add_row(label, Text(text))
        con.print(t)
        if tf and tf.get("granules"):
            con.print(Text("allocation tags around the address:", style="bold"))
            for row in tf["granules"]:
                line = Text(f"  {row['addr']}  {row['tag']:x}")
                if row["here"]:
                    line.append(f"  <- fault: pointer tag {tf['logical_tag']:x}")
                    line.stylize("bold red")
                con.print(line)

    async_faults = [f for f in data.get("tag_faults") or [] if f.get("mode") != "sync"]
    if async_faults and any("mode" in f for f in async_faults):
        con.rule("asynchronous tag-check failures", style="yellow")
        for f in async_faults:
            con.print(Text(f"{f['mode']}: {'write' if f['write'] else 'read'} via {f['pointer']}: "
                           f"logical {f['logical_tag']:x} vs allocation {f['allocation_tag']:x}"))

    con.rule("registers (non-zero)", style="dim")
    regs = Table.grid(padding=(0, 3))
    cells = [(n, v) for n, v in data["regs"].items()
             if n not in ("pc", "el") and v not in (None, "0x0")]
    cells.append(("pc", data["regs"].get("pc")))
    cells.append(("el", str(data["regs"].get("el"))))
    for _ in range(3):
        regs.add_column()
    for i in range(0, len(cells), 3):
        regs.add_row(*[f"{n:>4} {v}" for n, v in cells[i:i + 3]])
    con.print(regs)
    mte = [(n, v) for n, v in data["sysregs"].items() if v not in (None, "0x0")]
    if mte:
        con.print("  ".join(f"{n}={v}" for n, v in mte), style="dim")

    for addr, tags in (data.get("tags") or {}).items():
        con.rule(f"tags at {addr}", style="dim")
        if isinstance(tags, str):
            con.print(Text(tags), style="red")
            continue
        base = int(addr, 16) & ~(GRANULE - 1)
        for i in range(0, len(tags), 16):
            row = " ".join(f"{t:x}" for t in tags[i:i + 16])
            con.print(Text(f"{base + i * GRANULE:>10x}  {row}"), soft_wrap=True)
    for addr, hexdata in (data.get("mem") or {}).items():
        con.rule(f"memory at {addr}", style="dim")
        if hexdata.startswith("error"):
            con.print(Text(hexdata), style="red")
            continue
        for line in _hexdump(int(addr, 16), bytes.fromhex(hexdata)):
            con.print(Text(line), soft_wrap=True)
