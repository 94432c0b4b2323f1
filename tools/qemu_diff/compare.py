"""Comparing what one test did under QEMU and under aarch64mte, and naming a disagreement.

`differences` lists every field that differs. `signature` names the first divergence: the
instruction that diverges first (found by running prefixes of the body, see attribute.py) and
what about it differs, e.g. ``missed-fault:dc zva:q=DA/tagchk/W`` or ``reg:ldsminb:dest``.
Signatures leave out addresses, values and register numbers, so the same departure found by
many tests counts under one name."""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import layout
from .model import Test
from .runner import Result

EC_NAMES = {0x00: "undef", 0x01: "wfx", 0x07: "fp", 0x0E: "illegal", 0x15: "svc",
            0x18: "sysreg", 0x20: "IA", 0x21: "IA", 0x22: "pcalign", 0x24: "DA", 0x25: "DA",
            0x26: "spalign", 0x3C: "brk"}


def fsc_name(fsc: int, level: bool = True) -> str:
    if 0x04 <= fsc <= 0x07:
        return f"transl-L{fsc - 4}" if level else "transl"
    if 0x08 <= fsc <= 0x0B:
        return f"access-L{fsc - 8}" if level else "access"
    if 0x0C <= fsc <= 0x0F:
        return f"perm-L{fsc - 12}" if level else "perm"
    return {0x00: "addrsize-L0", 0x10: "external", 0x11: "tagchk", 0x21: "align",
            0x30: "tlbconflict"}.get(fsc, f"fsc{fsc:#x}")


def esr_desc(esr: int, level: bool = True) -> str:
    """EC/fault/WnR, e.g. DA/tagchk/R. Signatures leave out the translation level (where
    the walk stopped depends on the address, not on the departure)."""
    ec = esr >> 26
    name = EC_NAMES.get(ec, f"ec{ec:#x}")
    if name in ("DA", "IA"):
        fsc = esr & 0x3F
        s = f"{name}/{fsc_name(fsc, level)}"
        if name == "DA":
            s += "/W" if esr & (1 << 6) else "/R"
            if esr & (1 << 8):
                s += "/CM"
        return s
    return name


def is_tag_fault(esr: int) -> bool:
    return (esr >> 26) in (0x24, 0x25) and (esr & 0x3F) == 0x11


@dataclass
class Diff:
    """The differences of one test: field -> (qemu value, emu value)."""
    fields: dict

    def __bool__(self):
        return bool(self.fields)

    def keys(self):
        return list(self.fields)


def _full(r: Result, t: Test) -> dict:
    regs = {i: r.regs.get(i, t.x[i]) for i in range(31)}
    return regs


FAR_VALID = (0x20, 0x21, 0x22, 0x24, 0x25)     # aborts and PC alignment: FAR is defined


def records(r: Result) -> list:
    """Exception records with FAR cleared where the architecture leaves it UNKNOWN."""
    return [(esr, far if (esr >> 26) in FAR_VALID else 0, off) for esr, far, off in r.exc]


def differences(t: Test, q: Result, e: Result) -> Diff:
    f = {}
    if q.crash or e.crash:
        if (q.crash is None) != (e.crash is None) or q.crash != e.crash:
            f["crash"] = (q.crash, e.crash)
        return Diff(f)
    if records(q) != records(e):
        f["exc"] = (records(q), records(e))
    if q.end != e.end:
        f["end"] = (q.end, e.end)
    if (q.tfsr1, q.tfsr0) != (e.tfsr1, e.tfsr0):
        f["tfsr"] = ((q.tfsr1, q.tfsr0), (e.tfsr1, e.tfsr0))
    if q.spsr != e.spsr:
        f["pstate"] = (q.spsr, e.spsr)
    if q.sp != e.sp:
        f["sp"] = (q.sp, e.sp)
    if q.rgsr != e.rgsr:
        f["rgsr"] = (q.rgsr, e.rgsr)
    qr, er = _full(q, t), _full(e, t)
    regs = {i: (qr[i], er[i]) for i in range(31) if qr[i] != er[i]}
    if regs:
        f["regs"] = regs
    if q.tags != e.tags:
        f["tags"] = {g: (q.tags.get(g, t.tags[g]), e.tags.get(g, t.tags[g]))
                     for g in set(q.tags) | set(e.tags)
                     if q.tags.get(g, t.tags[g]) != e.tags.get(g, t.tags[g])}
    if q.mem != e.mem:
        f["mem"] = {o: (q.mem.get(o), e.mem.get(o)) for o in set(q.mem) | set(e.mem)
                    if q.mem.get(o) != e.mem.get(o)}
    return Diff(f)


_HEX = re.compile(r"0x[0-9a-f]+|\b[0-9a-f]{6,}\b|\b\d+\b")


def _crash_text(why: str | None) -> str:
    if why is None:
        return "ok"
    s = why.split(":", 1)[-1].strip()
    if "harness fault" in s:
        kind = s.split()[2] if len(s.split()) > 2 else ""
        return "harness-fault-" + kind
    return _HEX.sub("N", s)[:60]


_LSE = re.compile(r"^(ld|st)(add|clr|eor|set|smax|smin|umax|umin)(a|al|l)?(b|h)?$")
_SWP = re.compile(r"^swp(a|al|l)?(b|h)?$")
_CAS = re.compile(r"^cas(a|al|l)?(b|h)?$")


def plain_op(op: str) -> str:
    """The op without its memory-ordering variant: ldsminalb -> ldsminb, casl -> cas."""
    m = _LSE.match(op)
    if m:
        return f"{m[1]}{m[2]}{m[4] or ''}"
    m = _SWP.match(op)
    if m:
        return f"swp{m[2] or ''}"
    m = _CAS.match(op)
    if m:
        return f"cas{m[2] or ''}"
    if op.startswith("casp"):
        return "casp"
    return op


def family(op: str) -> str:
    """The access class of an op, for faults: what decides alignment, permission and
    tag-check behaviour (and engine errors), not the arithmetic."""
    base = op.split(".")[0]
    if _LSE.match(op) or _SWP.match(op):
        return "atomic"
    if _CAS.match(op):
        return "cas"
    if op.startswith("casp"):
        return "casp"
    if re.match(r"^ld(a)?x[rp]", base):
        return "load-exclusive"
    if re.match(r"^st(l)?x[rp]", base):
        return "store-exclusive"
    if base.startswith(("ldar", "ldapr")):
        return "load-acquire"
    if base.startswith("stlr"):
        return "store-release"
    if base.startswith("ldapur"):
        return "ldapur"
    if base.startswith("stlur"):
        return "stlur"
    if base.startswith("ldtr"):
        return "ldtr"
    if base.startswith("sttr"):
        return "sttr"
    if base.startswith("ldra"):
        return "ldra" + (".pre" if op.endswith(".pre") else "")
    if re.match(r"^ld[1-4]", base):
        return "simd-load"
    if re.match(r"^st[1-4]", base):
        return "simd-store"
    if base in ("ldp", "ldnp", "ldpsw"):
        return "load-pair"
    if base in ("stp", "stnp"):
        return "store-pair"
    if base.startswith(("ldr", "ldur")):
        return "load"
    if base.startswith(("str", "stur")):
        return "store"
    return base


def signature(t: Test, k: int, q: Result, e: Result, d: Diff) -> str:
    """The name of the divergence that the k-th instruction (1-based) of `t` causes, given the
    results of running the body cut after that instruction."""
    insn = t.body[k - 1] if 0 < k <= len(t.body) else None
    raw = insn.op if insn else "setup"
    op = family(raw)
    off = 4 * (k - 1)
    tcf = layout.TCF_NAMES[t.el_tcf]
    if "crash" in d.fields:
        side = "emu" if e.crash else "qemu"
        return f"crash:{op}:{side}:{_crash_text(e.crash if e.crash else q.crash)}"
    if "end" in d.fields and 8 in d.fields["end"]:
        side = "emu" if e.end == 8 else "qemu"
        return f"el1h-exception:{op}:{side}"
    if "exc" in d.fields:
        qx = [x for x in records(q) if x[2] == off]
        ex = [x for x in records(e) if x[2] == off]
        if qx != ex:
            if qx and not ex:
                extra = f":tcf={tcf}" if is_tag_fault(qx[0][0]) else ""
                return f"missed-fault:{op}:q={esr_desc(qx[0][0], False)}{extra}"
            if ex and not qx:
                extra = f":tcf={tcf}" if is_tag_fault(ex[0][0]) else ""
                return f"spurious-fault:{op}:e={esr_desc(ex[0][0], False)}{extra}"
            qe, ee = qx[0], ex[0]
            if qe[0] != ee[0]:
                a, b = esr_desc(qe[0], False), esr_desc(ee[0], False)
                if a == b:
                    a, b = f"{qe[0]:#x}", f"{ee[0]:#x}"
                return f"esr:{op}:q={a}:e={b}"
            rel = "aligned" if qe[1] == ee[1] & ~63 or ee[1] == qe[1] & ~63 else "other"
            return f"far:{op}:{esr_desc(qe[0], False)}:{rel}"
        return f"exc-elsewhere:{op}"
    if "end" in d.fields:
        return f"end:{op}"
    if "tfsr" in d.fields:
        (q1, q0), (e1, e0) = d.fields["tfsr"]
        return f"tfsr:{op}:tcf={tcf}:q={q1:x},{q0:x}:e={e1:x},{e0:x}"
    if "regs" in d.fields:
        dest = insn is not None and any(i in d.fields["regs"] for i in insn.writes)
        if dest or insn is None:
            return f"reg:{plain_op(raw)}:dest"
        # A register the culprit does not write: name its last writer before the culprit
        # (an instruction run twice, or undone, shows up only once something follows it).
        writer = next((i for i in reversed(t.body[:k - 1])
                       if any(r in d.fields["regs"] for r in i.writes)), None)
        return f"reg:{plain_op(writer.op) if writer else 'setup'}:changed-again-at:{op}"
    if "sp" in d.fields:
        return f"sp:{plain_op(raw)}"
    if "pstate" in d.fields:
        qs, es = d.fields["pstate"]
        which = "tco" if (qs ^ es) & layout.SPSR_TCO else "nzcv"
        return f"pstate:{plain_op(raw)}:{which}"
    if "rgsr" in d.fields:
        return f"rgsr:{plain_op(raw)}"
    if "mem" in d.fields:
        return f"mem:{plain_op(raw)}"
    if "tags" in d.fields:
        return f"tags:{plain_op(raw)}"
    return f"other:{plain_op(raw)}"
