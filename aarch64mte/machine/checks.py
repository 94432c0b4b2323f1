"""Which accesses are tag-checked, what an instruction's whole footprint is, and the outcome.

The tag-check hook sees one access at a time. To check a load/store as the architecture does
(granule by granule over the instruction's whole footprint, before any part of it has effect),
it looks at the instruction: ``analyse(word)`` (cached by encoding) says where the address comes
from (base, index, offset, pre/post index), how many bytes the instruction touches, whether it is
a read, a write or both, whether it is checked at all (an SP base with an immediate offset and no
writeback is not: ``tagchecked = wback || n != 31``), whether it is unprivileged (LDTR/STTR use
the EL0 rules), and which registers it writes (restored if the access faults).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Optional, Tuple

from capstone import Cs, CS_ARCH_ARM64, CS_MODE_ARM
from capstone import arm64 as C
from unicorn import arm64_const as A

_cs = Cs(CS_ARCH_ARM64, CS_MODE_ARM)
_cs.detail = True

_PAIRS = ("ldp", "stp", "ldnp", "stnp", "ldpsw", "ldxp", "ldaxp", "stxp", "stlxp")
_ATOMIC = re.compile(r"^(ld|st)(add|clr|eor|set|smax|smin|umax|umin)(a|al|l)?(b|h)?$")
_SIMD_LS = re.compile(r"^(ld|st)[1-4]r?$")
_REGBYTES = {"x": 8, "w": 4, "q": 16, "d": 8, "s": 4, "h": 2, "b": 1, "v": 16}
_ARRANGE = {"16b": 16, "8h": 16, "4s": 16, "2d": 16, "1q": 16, "8b": 8, "4h": 8, "2s": 8, "1d": 8}
_ELEM = {"b": 1, "h": 2, "s": 4, "d": 8}
_ORDERED = re.compile(r"^(ldar|stlr|ldlar|stllr|ldapr|ldapur|stlur)")
_TAG_ACCESSES = frozenset(("ldg", "ldgm", "stg", "stzg", "st2g", "stz2g", "stgm", "stzgm", "stgp"))
_EXCLUSIVE = re.compile(r"^(ld|st)a?l?x[rp]")


def uc_reg(name: str) -> Optional[Tuple[int, bool]]:
    """(Unicorn register id, is 128-bit) for a capstone register name; None for XZR/WZR."""
    if name in ("xzr", "wzr"):
        return None
    if name in ("sp", "wsp"):
        return A.UC_ARM64_REG_SP, False
    if name == "fp":
        return A.UC_ARM64_REG_X29, False
    if name == "lr":
        return A.UC_ARM64_REG_X30, False
    k, num = name[0], name[1:]
    if not num.isdigit():
        return None
    n = int(num)
    if k in "xw":
        return (A.UC_ARM64_REG_X0 + n if n < 29 else
                (A.UC_ARM64_REG_X29 if n == 29 else A.UC_ARM64_REG_X30)), False
    if k in "qdshbv":
        return A.UC_ARM64_REG_Q0 + n, True
    return None


@dataclass
class AccessInfo:
    mnemonic: str
    base: Optional[int]          # Unicorn id of the base register
    index: Optional[int]         # Unicorn id of the index register (register offset forms)
    index_w: bool                # the index is a W register (extended)
    index_signed: bool           # SXTW/SXTX
    shift: int
    disp: int                    # pre-index / offset immediate
    post: bool                   # post-index: the access is at the base
    wback: bool
    checked: bool                # DecodeTagChecked
    unpriv: bool                 # LDTR/STTR family: EL0 rules
    rmw: bool                    # atomic read-modify-write (CAS, SWP, LD<op>)
    size: int                    # bytes it accesses in each direction (0: the hook's access size)
    written: Tuple[Tuple[int, bool], ...]
    cls: str
    reads: bool = True           # the instruction makes read accesses
    writes: bool = False         # ... and/or write accesses
    rbytes: int = 0              # data bytes the instruction reads when it executes
    wbytes: int = 0              # ... and writes (a read-modify-write counts both)
    acctype: str = "normal"      # for alignment: normal, ordered (acquire/release), atomic
    align: int = 0               # the size its alignment is checked against


def _simd_bytes(insn, mnem: str) -> int:
    """Bytes an LD1..LD4 / ST1..ST4 (structure, single lane or replicate) form moves."""
    m = re.match(r"\{([^}]*)\}(\[(?:0x[0-9a-f]+|\d+)\])?", insn.op_str)   # lane: [3], [0xc]
    if not m:
        return 0
    regs = [r.strip() for r in m.group(1).split(",") if r.strip()]
    arr = regs[0].split(".")[-1] if "." in regs[0] else ""
    if m.group(2) or mnem.endswith("r"):
        return len(regs) * _ELEM.get(arr[-1:], 0)
    return len(regs) * _ARRANGE.get(arr, 16)


def _access_bytes(insn, mnem: str, regs_before_mem) -> int:
    """Bytes of data one execution of a load/store moves in each direction. It is also the
    footprint checked at the instruction's first access, even where Unicorn splits the access
    (an unaligned 16-byte LDUR Q arrives as two 8-byte accesses), so every granule it touches
    is checked at once."""
    if _SIMD_LS.match(mnem):
        return _simd_bytes(insn, mnem)
    if mnem.startswith("prf") or not regs_before_mem:
        return 0
    if mnem == "ldpsw":
        return 8
    if mnem in ("ldraa", "ldrab"):          # PAuth loads: a doubleword (B is the key)
        return 8
    reg = regs_before_mem[-1]
    if mnem in _PAIRS or mnem.startswith("casp"):
        return 2 * _REGBYTES.get(reg[0], 8)
    if mnem.endswith("sw"):
        return 4
    if mnem.endswith("b"):
        return 1
    if mnem.endswith("h"):
        return 2
    return _REGBYTES.get(reg[0], 8)


def instruction_class(insn) -> str:
    m = insn.mnemonic
    if m in ("svc", "hvc", "smc"):
        return "svc"
    if m.startswith("eret"):
        return "eret"
    if m == "dc" and insn.op_str.startswith("zva"):
        return "dc_zva"
    if m in ("b", "bl", "br", "blr", "ret", "cbz", "cbnz", "tbz", "tbnz") or m.startswith("b.") \
            or m.startswith("bra") or m.startswith("blra") or m.startswith("reta"):
        return "branch"
    if m in ("msr", "mrs", "sys", "sysl", "dc", "ic", "at", "tlbi", "isb", "dsb", "dmb", "hint",
             "nop", "wfi", "wfe", "sev", "sevl", "hlt", "brk", "clrex", "yield", "prfm"):
        return "system"
    if m.startswith("ld") or m.startswith("st") or m.startswith("cas") or m.startswith("swp"):
        if m in _PAIRS:
            return "load_pair" if m.startswith("ld") else "store_pair"
        if _SIMD_LS.match(m):
            return "simd"
        if m.startswith("st") and not _ATOMIC.match(m):
            return "store"
        return "load"
    if any(o.type == C.ARM64_OP_REG and insn.reg_name(o.reg)[0] in "vqdshb" and
           insn.reg_name(o.reg) not in ("sp",) for o in insn.operands):
        return "simd"
    return "alu"


_cache = {}


def analyse(word: int) -> Optional[AccessInfo]:
    """The access description of one A64 encoding (None if capstone cannot decode it)."""
    info = _cache.get(word)
    if info is not None or word in _cache:
        return info
    info = None
    for insn in _cs.disasm(struct.pack("<I", word), 0):
        mnem = insn.mnemonic
        base = index = None
        disp = shift = 0
        index_w = index_signed = post = False
        regs_before = []
        seen_mem = False
        for o in insn.operands:
            if o.type == C.ARM64_OP_MEM:
                seen_mem = True
                b = uc_reg(insn.reg_name(o.mem.base)) if o.mem.base else None
                base = b[0] if b else None
                if o.mem.index:
                    iname = insn.reg_name(o.mem.index)
                    ir = uc_reg(iname)
                    index = ir[0] if ir else None
                    index_w = iname.startswith("w")
                    index_signed = o.ext in (C.ARM64_EXT_SXTW, C.ARM64_EXT_SXTX)
                    shift = o.shift.value if o.shift.type else 0
                disp = o.mem.disp
            elif o.type == C.ARM64_OP_REG and not seen_mem:
                regs_before.append(insn.reg_name(o.reg))
            elif seen_mem and o.type in (C.ARM64_OP_IMM, C.ARM64_OP_REG):
                post = True
        wback = bool(insn.writeback)
        written = []
        try:
            for r in insn.regs_access()[1]:
                u = uc_reg(insn.reg_name(r))
                if u and u not in written:
                    written.append(u)
        except Exception:
            pass
        if mnem.startswith("ld") and not _ATOMIC.match(mnem):
            # a load's registers before its address are its destinations (capstone leaves
            # some out, e.g. LDRAA/LDRAB's)
            for name in regs_before:
                u = uc_reg(name)
                if u and u not in written:
                    written.append(u)
        unpriv = bool(re.match(r"^(ld|st)tr", mnem))
        rmw = bool(_ATOMIC.match(mnem)) or mnem.startswith("cas") or mnem.startswith("swp")
        checked = base is not None and (wback or base != A.UC_ARM64_REG_SP or index is not None)
        if mnem.startswith("prfm") or mnem.startswith("prfum"):
            checked = False
        info = AccessInfo(mnem, base, index, index_w, index_signed, shift, disp, post, wback,
                          checked, unpriv, rmw, _access_bytes(insn, mnem, regs_before),
                          tuple(written), instruction_class(insn))
        info.writes = rmw or mnem.startswith("st") or mnem.startswith("cas") or \
            mnem.startswith("swp")
        info.reads = rmw or not info.writes
        if info.cls in ("load", "store", "load_pair", "store_pair", "simd") and \
                (mnem.startswith("ld") or mnem.startswith("st") or rmw):
            info.rbytes = info.size if info.reads else 0
            info.wbytes = info.size if info.writes else 0
        info.acctype, info.align = _alignment(insn, mnem, info)
    _cache[word] = info
    return info


def _alignment(insn, mnem: str, info: AccessInfo):
    """(access type, alignment size) for AArch64.CheckAlignment: a pair or vector access is
    checked per element, an exclusive pair or CASP as a whole. Tag accesses (LDG, STG, ...,
    and STGP, whose address must be granule aligned in any case) have none."""
    if mnem in _TAG_ACCESSES:
        return "normal", 0
    if _ORDERED.match(mnem):
        return "ordered", info.size
    if info.rmw or _EXCLUSIVE.match(mnem):
        return "atomic", info.size
    if _SIMD_LS.match(mnem):
        m = re.search(r"\.(\d*)([bhsdq])", insn.op_str)
        return "normal", _ELEM.get(m.group(2), 16) if m else max(info.size, 1)
    if mnem in _PAIRS:
        return "normal", 4 if mnem == "ldpsw" else info.size // 2
    return "normal", info.size


def effective_address(info: AccessInfo, read_reg) -> int:
    """The address of the instruction's first access, with its tag bits, from the registers."""
    va = read_reg(info.base)
    if not info.post:
        va += info.disp
    if info.index is not None:
        x = read_reg(info.index)
        if info.index_w:
            x &= 0xFFFFFFFF
            if info.index_signed and x >> 31:
                x -= 1 << 32
        va += x << info.shift
    return va & 0xFFFFFFFFFFFFFFFF


def fault_mode(tcf: int, read: bool, write: bool) -> Optional[str]:
    """What a failed check does under TCF (0 none, 1 sync, 2 async, 3 asymmetric: reads and
    read-modify-writes synchronous, writes asynchronous)."""
    if tcf == 1:
        return "sync"
    if tcf == 2:
        return "async"
    if tcf == 3:
        return "sync" if read else "async"
    return None


_ISV_LS = re.compile(r"^(ld|st)(a|ap|l)?(u|t)?r(s)?(b|h|w)?$")


def instruction_syndrome(word: int):
    """(SAS, SSE, SRT, SF, AR) of a data abort taken to EL2 on ``word``, or None when its
    ISS reports no instruction syndrome (ISV = 0). ISV is 1 for a load or store of one
    general-purpose register without writeback, acquire/release included; pairs, SIMD&FP,
    exclusives, atomics, writeback forms and the tag instructions have none."""
    info = analyse(word)
    if info is None or info.base is None or info.wback or info.rmw:
        return None
    m = _ISV_LS.match(info.mnemonic)
    if m is None or info.mnemonic.startswith(("ldx", "stx", "ldax", "stlx", "ldp", "stp")):
        return None
    for insn in _cs.disasm(struct.pack("<I", word), 0):
        regs = [o for o in insn.operands if o.type == C.ARM64_OP_REG]
        if not regs:
            return None
        name = insn.reg_name(regs[0].reg)
        if name[0] not in "xw" and name not in ("xzr", "wzr"):
            return None                      # SIMD&FP
        srt = 31 if name in ("xzr", "wzr") else int(name[1:])
        sf = name[0] == "x"
        sas = {"b": 0, "h": 1, "w": 2}.get(m.group(5) or "", 3 if sf else 2)
        sse = m.group(4) is not None
        ar = m.group(2) is not None
        return sas, sse, srt, sf, ar
    return None
