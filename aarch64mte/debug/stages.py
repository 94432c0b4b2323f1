"""Where an address goes: the translation regime of an EL, and a VA's path through stage 1 and
stage 2 with each stage's attributes and the final Tagged or Untagged.

A hypervisor developer's first question about a guest access is which stage decided it. The
machine's walk already composes the stages (``mmu.translate``); this keeps what each stage said
(``Translation.stage1``, ``s2_memattr``, ``s2_perms``) and words it the way the Arm ARM names
it: MAIR attributes (MAIR_ELx's Attr<n> encodings), the stage-2 MemAttr (S2 descriptor bits
[5:2], read through HCR_EL2.FWB as AArch64.S2DecodeMemAttrs / AArch64.S2ApplyFWBMemAttrs do),
S2AP, and AArch64.S2MemTagType's Tagged result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from aarch64mte.machine.stage2 import HCR_FWB, HCR_VM, cacheability, s2_cacheability
from aarch64mte.machine.translation import (FETCH, PROT_R, PROT_W, PROT_X, READ, WRITE,
                                            Translation, WalkFault)

ACCESSES = {"r": READ, "read": READ, "w": WRITE, "write": WRITE, "x": FETCH, "fetch": FETCH,
            "exec": FETCH}
REGIME_NAMES = {"EL10": "EL1&0", "EL20": "EL2&0", "EL2": "EL2"}
_DEVICE = {0: "Device-nGnRnE", 1: "Device-nGnRE", 2: "Device-nGRE", 3: "Device-GRE"}


def perms_text(perms: int) -> str:
    return "".join(c if perms & bit else "-" for c, bit in (("r", PROT_R), ("w", PROT_W),
                                                           ("x", PROT_X)))


def _normal_text(outer: str, inner: str) -> str:
    outer, inner = outer.upper(), inner.upper()
    return f"Normal {'Inner/Outer ' + outer if outer == inner else f'Outer {outer}, Inner {inner}'}"


def mair_text(attr: int) -> str:
    """A MAIR_ELx Attr<n> byte as the Arm ARM names it."""
    if attr == 0xF0:
        return "Normal Tagged (Inner/Outer WB)"
    if attr >> 4 == 0:
        return _DEVICE.get((attr >> 2) & 3, "Device") if attr & 3 == 0 else "reserved"
    return _normal_text(*cacheability(attr))


def s2_memattr_text(memattr: int, fwb: bool) -> str:
    """A stage-2 MemAttr[3:0] as it reads with HCR_EL2.FWB = ``fwb``."""
    if fwb:
        a = memattr & 0b111
        nta = ", NoTagAccess" if memattr >> 1 == 0b111 else ""
        if not a & 0b100:
            return _DEVICE[a & 3]
        if a in (0b100, 0b101):
            return "Normal NC (forced)"
        if a == 0b110:
            return "Normal WB (forced)"
        return "stage 1's attributes" + nta
    halves = s2_cacheability(memattr)
    if halves is None:
        return _DEVICE[memattr & 3]
    if memattr == 0b0100:
        return "Normal WB, NoTagAccess"
    if memattr & 3 == 0:
        return "reserved (taken as Normal NC)"
    return _normal_text(*halves)


def parse_options(words) -> tuple:
    """(access, el) from the words after ``translate ADDR``: an access (r, w, x or their long
    names; default r) and an EL (el0..el3; default None, the current one). ValueError names a
    word that is neither."""
    access, el = "r", None
    for word in words:
        w = word.lower()
        if w in ACCESSES:
            access = w
        elif len(w) == 3 and w[:2] == "el" and w[2] in "0123":
            el = int(w[2])
        else:
            raise ValueError(f"translate: {word!r} is neither an access (r, w, x) nor an EL "
                             "(el0, el1, el2)")
    return access, el


def regime_of(m, el: Optional[int] = None) -> tuple[str, bool]:
    """(the regime's name, whether stage 2 is on) for an access made at ``el``."""
    r = m.mmu.regime(m.el if el is None else el)
    return REGIME_NAMES.get(r.kind, r.kind), r.stage2 is not None


def regime_text(m, el: Optional[int] = None) -> str:
    """One line: the EL, its translation regime, whether stage 1 and stage 2 are on."""
    el = m.el if el is None else el
    name, s2 = regime_of(m, el)
    r = m.mmu.regime(el)
    parts = [f"EL{el}", f"{name} regime", "stage 1 " + ("on" if r.sctlr & 1 else "off")]
    if getattr(m, "el2", None) is not None and r.kind == "EL10":
        hcr = m.mmu.hcr()
        if s2:
            why = "HCR_EL2.VM" if hcr & HCR_VM else "HCR_EL2.DC"
            parts.append(f"stage 2 on ({why})")
        else:
            parts.append("stage 2 off")
    return ", ".join(parts)


@dataclass
class StagesReport:
    """What ``walk`` found: each stage's result, or the fault that stopped it."""
    va: int
    el: int
    access: str
    regime: str
    stage2_on: bool
    lines: list[str] = field(default_factory=list)
    ipa: Optional[int] = None
    pa: Optional[int] = None
    tagged: Optional[bool] = None
    fault: Optional[WalkFault] = None

    def text(self) -> str:
        return "\n".join(self.lines)


def walk(m, va: int, access: str = "r", el: Optional[int] = None) -> StagesReport:
    """Translate ``va`` as an ``access`` ('r', 'w' or 'x') made at ``el`` (default: the current
    EL) would be, through both stages, and describe each."""
    acc = ACCESSES.get(access)
    if acc is None:
        raise ValueError(f"access must be r, w or x, not {access!r}")
    el = m.el if el is None else el
    if not 0 <= el <= 2 or (el == 2 and getattr(m, "el2", None) != "native"):
        raise ValueError(f"EL{el} has no translation regime on this machine")
    name, s2_on = regime_of(m, el)
    verb = {READ: "read", WRITE: "write", FETCH: "fetch"}[acc]
    rep = StagesReport(va, el, verb, name, s2_on)
    rep.lines.append(f"{va:#x}: {verb} at {regime_text(m, el)}")
    t = m.mmu.translate(va, el, acc)
    hcr = m.mmu.hcr()
    if isinstance(t, WalkFault):
        rep.fault = t
        where = f"stage {t.stage}"
        on = " on the stage-1 table walk" if t.s1ptw else ""
        ipa = f" (IPA {t.ipa:#x})" if t.stage == 2 else ""
        tag = ", NoTagAccess" if t.tagaccess else ""
        rep.lines.append(f"  fault:   {where} {t.kind.replace('_', ' ')} fault at level "
                         f"{t.level}{on}{ipa}{tag}, FSC {t.dfsc:#04x}")
        return rep
    s1 = t.stage1 if t.stage1 is not None else t
    out = "IPA" if s2_on else "PA"
    level = "MMU off, flat" if s1.level < 0 else f"level {s1.level}, {_size(s1.size)}"
    rep.lines.append(f"  stage 1: VA {va:#x} -> {out} {s1.pa:#x}  ({level}; "
                     f"{perms_text(s1.perms)} at EL{el}; attr {s1.attr:#04x} "
                     f"{mair_text(s1.attr)})")
    if t.stage1 is not None:
        rep.ipa = s1.pa
        fwb = bool(hcr & HCR_FWB)
        rep.lines.append(f"  stage 2: IPA {s1.pa:#x} -> PA {t.pa:#x}  (level {t.s2_level}, "
                         f"{_size(t.s2_size)}; S2AP/XN {perms_text(t.s2_perms)}; MemAttr "
                         f"{t.s2_memattr:#06b} {s2_memattr_text(t.s2_memattr, fwb)}"
                         f"{'; FWB' if fwb else ''})")
    rep.pa, rep.tagged = t.pa, t.tagged
    rep.lines.append(f"  result:  PA {t.pa:#x}, {perms_text(t.perms)}, {mair_text(t.attr)}: "
                     f"{_tagged_text(m, t, s1, el)}")
    return rep


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit} {'page' if n == 4096 else 'block'}"
    return f"{n:#x} bytes"


def _tagged_text(m, t: Translation, s1: Translation, el: int) -> str:
    if not t.tagged:
        if s1.attr != 0xF0:
            why = "stage 1 is not Normal Tagged"
        else:
            why = "stage 2 makes it weaker than Normal Inner/Outer Write-Back"
        return f"Untagged ({why})"
    text = "Tagged"
    if m.ram.contains(t.pa):
        text += f", allocation tag {m.tags.get(t.pa):#x}"
    if t.nta:
        text += "; NoTagAccess: tag accesses and tag-checked accesses fault at stage 2"
    if not m.mmu.tag_access[el]:
        text += f"; allocation tag access is disabled at EL{el}"
    return text
