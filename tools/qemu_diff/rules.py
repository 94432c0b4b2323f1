"""Known departures of QEMU 10 from the architecture: where aarch64mte follows the Arm ARM
pseudocode and QEMU does otherwise. A disagreement whose first divergence one of these rules
matches is counted as explained, under the rule's name, instead of being reported.

Each rule looks only at the first diverging instruction (the last one of the attributed
prefix) and at the two results of that prefix, and matches the exact pattern of the
departure: the instruction, the TCF mode, and which side has which fault."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import layout
from .compare import Diff, is_tag_fault
from .model import Test
from .runner import Result


@dataclass(frozen=True)
class Rule:
    name: str
    cites: str          # the pseudocode (or architectural text) that aarch64mte follows
    qemu_does: str
    match: Callable[[Test, int, Result, Result, Diff], bool]


def _at(r: Result, off: int):
    return [x for x in r.exc if x[2] == off]


def _tfsr_set(t: Test, r: Result) -> bool:
    return bool((r.tfsr1 if t.el else r.tfsr0) & 3)


def _only(d: Diff, allowed: set) -> bool:
    return bool(d) and set(d.keys()) <= allowed


def _op(t: Test, k: int) -> str:
    return t.body[k - 1].op


def cas_asymm(t, k, q, e, d) -> bool:
    off = 4 * (k - 1)
    qa, ea = _at(q, off), _at(e, off)
    return (_op(t, k).startswith("cas") and t.el_tcf == 3 and not qa
            and len(ea) == 1 and is_tag_fault(ea[0][0]))


def cas_wnr(t, k, q, e, d) -> bool:
    """Both take the synchronous tag-check fault on a CAS/CASP; QEMU's ESR says WnR = 1 where
    ours says 0, and nothing else differs at that instruction."""
    off = 4 * (k - 1)
    qa, ea = _at(q, off), _at(e, off)
    if not _op(t, k).startswith("cas") or len(qa) != 1 or len(ea) != 1:
        return False
    (qesr, qfar, _), (eesr, efar, _) = qa[0], ea[0]
    return (is_tag_fault(eesr) and qesr == eesr | (1 << 6) and qfar == efar
            and _only(d, {"exc"}))


def align_wnr(t, k, q, e, d) -> bool:
    """Both take the Alignment fault on a load-exclusive or an atomic read-modify-write; QEMU's
    WnR is 1 where ours is 0."""
    off = 4 * (k - 1)
    op = _op(t, k)
    atomic = op.startswith(("ld", "st", "swp", "cas")) and not op.startswith(("stx", "stlx"))
    qa, ea = _at(q, off), _at(e, off)
    if not atomic or len(qa) != 1 or len(ea) != 1:
        return False
    (qesr, qfar, _), (eesr, efar, _) = qa[0], ea[0]
    return (eesr & 0x3F == 0x21 and qesr == eesr | (1 << 6) and qfar == efar
            and _only(d, {"exc"}))


def stxr_alignment(t, k, q, e, d) -> bool:
    """A store-exclusive to an address that needs an Alignment fault: ours takes it, QEMU's
    monitor check fails first (no fault, status 1)."""
    off = 4 * (k - 1)
    op = _op(t, k)
    if not (op.startswith("st") and ("xr" in op or "xp" in op)):
        return False
    qa, ea = _at(q, off), _at(e, off)
    return not qa and len(ea) == 1 and ea[0][0] & 0x3F == 0x21


def _mmu_fault(esr: int) -> bool:
    """A Data Abort for a translation, access flag or permission fault (DFSC 0b0001xx..0b0011xx)."""
    return (esr >> 26) in (0x24, 0x25) and 0b000100 <= (esr & 0x3F) <= 0b001111


def cas_transl_wnr(t, k, q, e, d) -> bool:
    """CAS/CASP on an address a read cannot translate: QEMU's WnR is 1, ours 0."""
    off = 4 * (k - 1)
    qa, ea = _at(q, off), _at(e, off)
    if not _op(t, k).startswith("cas") or len(qa) != 1 or len(ea) != 1:
        return False
    (qesr, qfar, _), (eesr, efar, _) = qa[0], ea[0]
    return (_mmu_fault(eesr) and qesr == eesr | (1 << 6) and qfar == efar
            and _only(d, {"exc"}))


def partial_effect(t, k, q, e, d) -> bool:
    """An instruction of several accesses that both sides fault on identically, where one side
    performed some of its accesses before the fault: only memory or the registers it loads
    (seen at it, or at a later instruction that reads them) differ."""
    if not _only(d, {"mem", "regs", "tags"}):
        return False
    for j in range(1, k + 1):
        if not _op(t, j).split(".")[0].startswith(("ld", "st")):
            continue
        off = 4 * (j - 1)
        qa, ea = _at(q, off), _at(e, off)
        if len(qa) == 1 and qa == ea:
            return True
    return False


def board_flash(t, k, q, e, d) -> bool:
    """A load or store that reaches the low 128 MiB of the physical address space: QEMU's virt
    board has its flash there (reads 0, stores ignored); this board has no memory there (a
    synchronous External abort)."""
    off = 4 * (k - 1)
    qa, ea = _at(q, off), _at(e, off)
    if qa or len(ea) != 1 or ea[0][0] & 0x3F != 0b010000:
        return False
    return (ea[0][1] & ((1 << 48) - 1)) < 0x0800_0000 and _only(d, {"exc", "regs"})


def fault_order(t, k, q, e, d) -> bool:
    """A load or store whose accesses both fault, in different ways (one translation fault,
    one tag-check fault, on two pages or granules), reports a different one of them, or its
    asynchronous tag-check fault is recorded by one side only before the translation fault
    both take."""
    off = 4 * (k - 1)
    qa, ea = _at(q, off), _at(e, off)
    op = _op(t, k).split(".")[0]
    if not op.startswith(("ld", "st")):
        return False
    if len(qa) == 1 and len(ea) == 1:
        (qesr, qfar, _), (eesr, efar, _) = qa[0], ea[0]
        kinds = {_mmu_fault(qesr), _mmu_fault(eesr)}
        tagged = is_tag_fault(qesr) or is_tag_fault(eesr)
        if kinds == {True, False} and tagged and (qfar ^ efar) >> 4 and _only(d, {"exc"}):
            return True
        if qa == ea and _mmu_fault(qesr) and _only(d, {"tfsr", "mem", "regs"}) and "tfsr" in d.fields:
            return True
    return False


def multiple_structures(t, k, q, e, d) -> bool:
    """An LD1-LD4/ST1-ST4 of multiple structures (three or four 128-bit registers, 48 or 64
    bytes): QEMU reports no failed check where ours finds one -- a synchronous fault whose FAR
    granule really holds another tag than the pointer's, or TFSR for an asynchronous one."""
    insn = t.body[k - 1]
    text = insn.text
    op = insn.op.split(".")[0]
    if op[:3] not in ("ld1", "ld2", "ld3", "ld4", "st1", "st2", "st3", "st4") or "}" not in text:
        return False
    regs = sum(text.split("}")[0].count(a) for a in (".16b", ".8h", ".4s", ".2d"))
    if text.split("}")[1][:1] == "[" or regs < 3:             # a lane form, or under 48 bytes
        return False
    off = 4 * (k - 1)
    qa, ea = _at(q, off), _at(e, off)
    if not qa and len(ea) == 1 and is_tag_fault(ea[0][0]) and _only(d, {"exc", "regs", "mem"}):
        far = ea[0][1]
        g = ((far & ((1 << 56) - 1)) - layout.AREA) >> 4
        if not 0 <= g < layout.GRANULES:
            return False
        return e.tags.get(g, t.tags[g]) != (far >> 56) & 0xF
    return not qa and not ea and _tfsr_set(t, e) and not _tfsr_set(t, q)


def dc_zva_asymm(t, k, q, e, d) -> bool:
    off = 4 * (k - 1)
    qa, ea = _at(q, off), _at(e, off)
    return (_op(t, k) == "dc zva" and t.el_tcf == 3 and not ea and len(qa) == 1
            and is_tag_fault(qa[0][0]) and not qa[0][0] & (1 << 6) and _tfsr_set(t, e))


def dc_zva_syndrome(t, k, q, e, d) -> bool:
    """Both fault; QEMU's FAR is the block start and/or its WnR is 0, and nothing else differs
    at that instruction."""
    off = 4 * (k - 1)
    qa, ea = _at(q, off), _at(e, off)
    if _op(t, k) != "dc zva" or len(qa) != 1 or len(ea) != 1 or not is_tag_fault(ea[0][0]):
        return False
    (qesr, qfar, _), (eesr, efar, _) = qa[0], ea[0]
    esr_ok = qesr == eesr or (qesr | (1 << 6)) == eesr
    far_ok = qfar == efar or qfar == efar & ~63
    return esr_ok and far_ok and _only(d, {"exc"})


def rcpc2_unchecked(t, k, q, e, d) -> bool:
    off = 4 * (k - 1)
    op = _op(t, k)
    if not (op.startswith("ldapur") or op.startswith("stlur")):
        return False
    qa, ea = _at(q, off), _at(e, off)
    sync = not qa and len(ea) == 1 and is_tag_fault(ea[0][0])
    async_ = not qa and not ea and _tfsr_set(t, e) and not _tfsr_set(t, q)
    return sync or async_


def tfsr_res0(t, k, q, e, d) -> bool:
    if not _only(d, {"tfsr"}):
        return False
    (q1, q0), (e1, e0) = d.fields["tfsr"]
    return (q1 & 3, q0 & 3) == (e1 & 3, e0 & 3)


def stxr_tag(t, k, q, e, d) -> bool:
    """A store-exclusive whose only divergence is success vs failure (its status register,
    and the memory it would have written)."""
    insn = t.body[k - 1]
    if not (insn.op.startswith("st") and ("xr" in insn.op or "xp" in insn.op)):
        return False
    if not _only(d, {"regs", "mem"}) or "regs" not in d.fields:
        return False
    if not set(d.fields["regs"]) <= set(insn.writes):
        return False
    loads = [i for i in t.body[:k - 1] if i.op.startswith("ld") and ("xr" in i.op or "xp" in i.op)]
    return bool(loads) and _base(loads[-1].text) != _base(insn.text)


def _base(text: str) -> str:
    return text.rsplit("[", 1)[-1].split("]")[0].strip()


RULES = [
    Rule("cas-asymmetric",
         "AArch64.TagCheckFault(va, accdesc): with TCF = 0b11 the fault is synchronous when "
         "accdesc.read; CAS/CASP are read-modify-write (their access descriptor from "
         "CreateAccDescAtomicOp has read = TRUE), so the check is synchronous",
         "reports the failed check asynchronously (TFSR) and performs the CAS", cas_asymm),
    Rule("cas-wnr",
         "ISS.WnR for a Data Abort from an atomic read-modify-write is 0 when a read of the "
         "location would have generated the fault; a failed tag check is such a fault (the "
         "check of CreateAccDescAtomicOp's access, read = TRUE, is a read's)",
         "reports the synchronous tag-check fault of CAS/CASP with WnR = 1", cas_wnr),
    Rule("align-wnr",
         "ISS.WnR is 0 for a fault a read generates; a load-exclusive only reads, and for an "
         "atomic read-modify-write WnR is 0 when a read of the address would have generated "
         "the fault, which holds for its Alignment fault",
         "reports the Alignment fault of a load-exclusive or atomic with WnR = 1", align_wnr),
    Rule("cas-transl-wnr",
         "ISS.WnR for a Data Abort from an atomic read-modify-write is 0 when a read of the "
         "location would have generated the fault: an untranslatable address is such a fault "
         "(QEMU's own SWP and LD<op> report it so)",
         "reports CAS/CASP's translation fault with WnR = 1", cas_transl_wnr),
    Rule("multiple-structures",
         "LD1-LD4/ST1-ST4 (multiple structures) access every element, each through "
         "AArch64.MemSingle and its tag check (AArch64.CheckTag), so every granule of the 48 "
         "or 64 bytes is checked",
         "misses a failed check in some granules of 48- and 64-byte multiple-structure "
         "accesses", multiple_structures),
    Rule("partial-effect (both permitted)",
         "the pseudocode of a pair, a multi-register or a page-crossing access performs its "
         "parts one after another (Mem[address] then Mem[address2]; a misaligned Mem[] by "
         "parts), so a fault on a later part leaves the earlier ones performed; cores split "
         "such an access the same way (e.g. the Cortex-A77 TRM: 'the access is split into two "
         "stores'). aarch64mte undoes them for tag-check faults only; neither side is wrong",
         "performs a different subset of the accesses before the fault", partial_effect),
    Rule("board-flash (not the architecture)",
         "what lies at a physical address is the board's: QEMU virt maps flash at 0-128 MiB, "
         "the aarch64mte board only RAM at 0x4000_0000 and the UART, so an access there is a "
         "synchronous External abort (DFSC 0b010000)",
         "reads flash (0) and ignores stores there", board_flash),
    Rule("fault-order (both permitted)",
         "a misaligned or page-crossing access is made byte by byte in the pseudocode "
         "(Mem[] calls AArch64.MemSingle per part); which part's fault is reported first, and "
         "whether an asynchronous tag-check fault of an earlier part is recorded before a "
         "later part's translation fault, is the order of those parts",
         "reports another part's fault, or records no asynchronous fault before it",
         fault_order),
    Rule("stxr-alignment",
         "AArch64.ExclusiveMonitorsPass checks alignment (AArch64.UnalignedAccessFaults) "
         "before it asks the monitor (IsExclusiveVA): an unaligned store-exclusive faults "
         "whether or not the monitor would pass",
         "fails the store-exclusive on its monitor first, with no Alignment fault",
         stxr_alignment),
    Rule("dc-zva-asymmetric",
         "DC ZVA 'behaves as a set of Stores to each byte within the block' (its access "
         "descriptor, CreateAccDescDCZero, is a write, read = FALSE); AArch64.TagCheckFault "
         "with TCF = 0b11 makes a write's fault asynchronous",
         "takes a synchronous Data Abort with WnR = 0", dc_zva_asymm),
    Rule("dc-zva-syndrome",
         "DC ZVA is a store (ISS.WnR = 1, ISS.CM = 0, as its description says), and the "
         "fault's FAR is the 'virtual address to use' from Xt: there is no alignment "
         "restriction on it within the block",
         "reports WnR = 0 and/or the block-aligned address in FAR", dc_zva_syndrome),
    Rule("rcpc2-unchecked",
         "LDAPUR*/STLUR* decode: `SetTagCheckedInstruction(n != 31)` (tagchecked = n != 31), "
         "so they are tag-checked like any other load or store",
         "does not tag-check LDAPUR/STLUR", rcpc2_unchecked),
    Rule("tfsr-res0",
         "TFSR_EL1/TFSRE0_EL1: only TF0 (bit 0) and TF1 (bit 1) are defined; the other bits "
         "are RES0",
         "keeps whatever is written to the other bits", tfsr_res0),
    Rule("stxr-tag",
         "AArch64.ExclusiveMonitorsPass/IsExclusiveVA: whether a store-exclusive through a "
         "pointer whose tag differs from its load-exclusive's passes is IMPLEMENTATION "
         "DEFINED (the tag bits may or may not take part in the address compared)",
         "may succeed where aarch64mte fails, or the reverse", stxr_tag),
]


def explain(t: Test, k: int, q: Result, e: Result, d: Diff) -> Rule | None:
    if k < 1 or k > len(t.body):
        return None
    for rule in RULES:
        if rule.match(t, k, q, e, d):
            return rule
    return None
