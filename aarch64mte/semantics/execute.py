"""The effect of each MTE instruction, transcribed from its Arm ARM Operation section.

One function per instruction, ``execute_<NAME>(insn, cpu) -> None``, dispatched by
``execute(insn, cpu)`` on ``insn.name``. ``insn`` is an ``aarch64mte.isa.Insn`` (only its
attributes are read); ``cpu`` implements ``aarch64mte.semantics.cpu.Cpu``. Faults are raised
as ``aarch64mte.semantics.faults`` exceptions before any register is written back, so a
faulting instruction changes no register (memory it already wrote before the fault is left as
written, which the architecture permits for a faulting store).
"""
from __future__ import annotations

from typing import Callable, Dict, List

from . import faults
from .pseudocode import (
    GCR_EXCLUDE_MASK, GCR_MASK, GCR_RRND_BIT, HCR_ATA, HCR_E2H, HCR_TGE, HCR_TID5,
    MASK64, PSTATE_TCO_BIT, RGSR_MASK, SCTLR_SA, SCTLR_SA0, SCTLR_UCI, TAG_GRANULE,
    TFSR_MASK, AddressWithAllocationTag, Align, AllocationTagFromAddress, ChooseNonExcludedTag,
    ChooseTagOrZero, DCZeroAccessTrap, DCZIDBlockBytes, ELIsInHost, GMIDBlockBytes, PackTags,
    SubtractPointers, UnpackTags,
)
from .syndrome import sysreg_iss_by_name

__all__ = ["execute", "EXECUTE", "UnknownInstruction"]


class UnknownInstruction(KeyError):
    """``execute`` was given an Insn whose name has no semantics here."""


# ============================================================================================
# Helpers shared by several instructions (each mirrors a pseudocode accessor)
# ============================================================================================
def _hcr(cpu) -> int:
    """HCR_EL2 as it applies: 0 when EL2 is not enabled."""
    return cpu.sysreg("HCR_EL2") if cpu.el2_enabled() else 0


def _sctlr(cpu) -> int:
    """SCTLR[]: the SCTLR of the current translation regime."""
    el = cpu.el
    if el == 2 or (el == 0 and ELIsInHost(0, _hcr(cpu), cpu.el2_enabled())):
        return cpu.sysreg("SCTLR_EL2")
    return cpu.sysreg("SCTLR_EL1")


def CheckSPAlignment(cpu) -> None:
    """CheckSPAlignment(): SP must be 16-byte aligned when SCTLR[].SA (SA0 at EL0) is 1."""
    sp = cpu.sp()
    if sp & 0xF:
        check = _sctlr(cpu) & (SCTLR_SA0 if cpu.el == 0 else SCTLR_SA)
        if check:
            raise faults.SPAlignmentFault(sp)


def _base(cpu, n: int) -> int:
    """The base address of a load/store: SP[] (after CheckSPAlignment) when n == 31."""
    if n == 31:
        CheckSPAlignment(cpu)
        return cpu.sp()
    return cpu.x(n)


def _writeback(cpu, n: int, address: int) -> None:
    if n == 31:
        cpu.set_sp(address & MASK64)
    else:
        cpu.set_x(n, address & MASK64)


def _indexed_address(insn, cpu) -> int:
    """The address a post-index / pre-index / offset form accesses: Xn for post-index,
    Xn + offset otherwise; 16-byte aligned or an Alignment fault."""
    address = _base(cpu, insn.n)
    if (getattr(insn, "form", "offset") or "offset") != "post":
        address = (address + insn.offset) & MASK64
    _check_tag_aligned(address)
    return address


def _indexed_writeback(insn, cpu, address: int) -> None:
    """After the access: pre-index writes the address back, post-index the address + offset."""
    form = getattr(insn, "form", "offset") or "offset"
    if form == "post":
        _writeback(cpu, insn.n, address + insn.offset)
    elif form == "pre":
        _writeback(cpu, insn.n, address)


def _el2_enabled(cpu) -> bool:
    return bool(cpu.el2_enabled())


def _read_tags(cpu, va: int, count: int) -> List[int]:
    bulk = getattr(cpu, "mem_tags_read", None)
    if bulk is not None:
        return list(bulk(va, count))
    return [cpu.mem_tag_read(va + TAG_GRANULE * i) for i in range(count)]


def _write_tags(cpu, va: int, tags: List[int]) -> None:
    bulk = getattr(cpu, "mem_tags_write", None)
    if bulk is not None:
        bulk(va, tags)
        return
    for i, tag in enumerate(tags):
        cpu.mem_tag_write(va + TAG_GRANULE * i, tag)


def _check_tag_aligned(address: int) -> None:
    """STG family: IsAligned(address, TAG_GRANULE), else an Alignment fault on the write."""
    if address & (TAG_GRANULE - 1):
        raise faults.AlignmentFault(address, True)


def _undefined_at_el0(cpu, what: str) -> None:
    if cpu.el == 0:
        raise faults.Undefined(what + " is UNDEFINED at EL0")


# ============================================================================================
# Data processing: IRG, GMI, ADDG, SUBG, SUBP, SUBPS
# ============================================================================================
def execute_IRG(insn, cpu) -> None:
    """IRG <Xd|SP>, <Xn|SP>{, <Xm>}: insert a random Logical Address Tag.

    exclude = Xm<15:0> OR GCR_EL1.Exclude. With tag access enabled: GCR_EL1.RRND = 1 uses the
    CPU's random source (ChooseRandomNonExcludedTag, '0000' if all excluded); RRND = 0 runs
    the RGSR_EL1 LFSR (start RGSR_EL1.TAG, offset RandomTag()) and writes RGSR_EL1 back.
    Tag access disabled: tag '0000', RGSR_EL1 unchanged.
    """
    operand = cpu.x_or_sp(insn.n)
    gcr = cpu.sysreg("GCR_EL1")
    exclude = (cpu.x(insn.m) | gcr) & GCR_EXCLUDE_MASK
    enabled = cpu.tag_access_enabled(cpu.el)
    rgsr = cpu.sysreg("RGSR_EL1")
    random4 = cpu.random_tag() & 0xF if (enabled and gcr & GCR_RRND_BIT) else 0
    rtag, new_rgsr = ChooseTagOrZero(exclude, gcr, rgsr, enabled, random4)
    if new_rgsr != rgsr & RGSR_MASK:
        cpu.set_sysreg("RGSR_EL1", new_rgsr)
    cpu.set_x_or_sp(insn.d, AddressWithAllocationTag(operand, rtag))


def execute_GMI(insn, cpu) -> None:
    """GMI <Xd>, <Xn|SP>, <Xm>: Xd = Xm with bit AllocationTagFromAddress(Xn) set."""
    address = cpu.x_or_sp(insn.n)
    mask = cpu.x(insn.m)
    cpu.set_x(insn.d, mask | (1 << AllocationTagFromAddress(address)))


def _addsubg(insn, cpu, sign: int) -> None:
    operand1 = cpu.x_or_sp(insn.n)
    start_tag = AllocationTagFromAddress(operand1)
    exclude = cpu.sysreg("GCR_EL1") & GCR_EXCLUDE_MASK
    if cpu.tag_access_enabled(cpu.el):
        rtag = ChooseNonExcludedTag(start_tag, insn.tag_offset, exclude)
    else:
        rtag = 0
    result = (operand1 + sign * insn.offset) & MASK64
    cpu.set_x_or_sp(insn.d, AddressWithAllocationTag(result, rtag))


def execute_ADDG(insn, cpu) -> None:
    """ADDG <Xd|SP>, <Xn|SP>, #<uimm6>, #<uimm4>: Xd = Xn + offset with tag
    ChooseNonExcludedTag(tag(Xn), uimm4, GCR_EL1.Exclude) ('0000' if tag access disabled)."""
    _addsubg(insn, cpu, 1)


def execute_SUBG(insn, cpu) -> None:
    """SUBG <Xd|SP>, <Xn|SP>, #<uimm6>, #<uimm4>: as ADDG with the offset subtracted."""
    _addsubg(insn, cpu, -1)


def execute_SUBP(insn, cpu) -> None:
    """SUBP <Xd>, <Xn|SP>, <Xm|SP>: Xd = SignExtend(Xn<55:0>) - SignExtend(Xm<55:0>)."""
    result, _ = SubtractPointers(cpu.x_or_sp(insn.n), cpu.x_or_sp(insn.m))
    cpu.set_x(insn.d, result)


def execute_SUBPS(insn, cpu) -> None:
    """SUBPS <Xd>, <Xn|SP>, <Xm|SP> (CMPP when d = 31): SUBP that also sets PSTATE.NZCV."""
    result, nzcv = SubtractPointers(cpu.x_or_sp(insn.n), cpu.x_or_sp(insn.m))
    cpu.set_nzcv(nzcv << 28)
    cpu.set_x(insn.d, result)


# ============================================================================================
# Single-granule tag loads and stores: LDG, STG, STZG, ST2G, STZ2G, STGP
# ============================================================================================
def execute_LDG(insn, cpu) -> None:
    """LDG <Xt>, [<Xn|SP>{, #<simm>}]: Xt<59:56> = MemTag[Align(Xn + offset, 16)]; other bits
    of Xt kept. Unchecked; reads 0 when tag access is disabled or the memory is Untagged."""
    address = (_base(cpu, insn.n) + insn.offset) & MASK64
    address = Align(address, TAG_GRANULE)
    tag = cpu.mem_tag_read(address)
    cpu.set_x(insn.t, AddressWithAllocationTag(cpu.x(insn.t), tag))


def _probe_writes(cpu, addresses) -> None:
    """Translate every address an instruction will write before it writes any, so that a fault
    on a later page (ST2G across a page boundary) leaves no partial effect behind."""
    probe = getattr(cpu, "probe_write", None)
    if probe is not None and len(addresses) > 1:
        for address in addresses:
            probe(address)


def _store_tag_op(insn, cpu, granules: int, zero: bool) -> None:
    """STG / STZG / ST2G / STZ2G: tag = AllocationTagFromAddress(Xt|SP); the address
    (pre/offset: Xn + offset; post: Xn) must be 16-byte aligned; zeroing forms clear the data
    first (Mem[] = Zeros), then AArch64.MemTag[] is written for each granule."""
    tag = AllocationTagFromAddress(cpu.x_or_sp(insn.t))
    address = _indexed_address(insn, cpu)
    _probe_writes(cpu, [(address + TAG_GRANULE * i) & MASK64 for i in range(granules)])
    if zero:
        for i in range(granules):
            cpu.mem_write_unchecked((address + TAG_GRANULE * i) & MASK64, bytes(TAG_GRANULE))
    for i in range(granules):
        cpu.mem_tag_write((address + TAG_GRANULE * i) & MASK64, tag)
    _indexed_writeback(insn, cpu, address)


def execute_STG(insn, cpu) -> None:
    """STG <Xt|SP>, [<Xn|SP>...]: store the Allocation Tag of Xt to one granule."""
    _store_tag_op(insn, cpu, 1, False)


def execute_STZG(insn, cpu) -> None:
    """STZG: STG that also zeroes the granule's 16 data bytes (even with tag access off)."""
    _store_tag_op(insn, cpu, 1, True)


def execute_ST2G(insn, cpu) -> None:
    """ST2G: STG to two consecutive granules."""
    _store_tag_op(insn, cpu, 2, False)


def execute_STZ2G(insn, cpu) -> None:
    """STZ2G: ST2G that also zeroes the 32 data bytes."""
    _store_tag_op(insn, cpu, 2, True)


def execute_STGP(insn, cpu) -> None:
    """STGP <Xt1>, <Xt2>, [<Xn|SP>...]: Mem[address, 16] = Xt1:Xt2 (Xt1 at the lower address)
    and MemTag[address] = AllocationTagFromAddress(address). Unchecked; address must be 16-byte
    aligned (Alignment fault otherwise)."""
    address = _indexed_address(insn, cpu)
    data = cpu.x(insn.t).to_bytes(8, "little") + cpu.x(insn.t2).to_bytes(8, "little")
    cpu.mem_write_unchecked(address, data)
    cpu.mem_tag_write(address, AllocationTagFromAddress(address))
    _indexed_writeback(insn, cpu, address)


# ============================================================================================
# Bulk tag instructions: LDGM, STGM, STZGM (FEAT_MTE2, UNDEFINED at EL0)
# ============================================================================================
def execute_LDGM(insn, cpu) -> None:
    """LDGM <Xt>, [<Xn|SP>]: read the 4 * 2^GMID_EL1.BS byte block holding Xn (aligned down);
    the tag of the granule at A goes to Xt<4*A<7:4>+3 : 4*A<7:4>>, all other bits 0.
    Tags read as 0 when tag access is disabled or the memory is Untagged."""
    _undefined_at_el0(cpu, "LDGM")
    address = _base(cpu, insn.n)
    size = GMIDBlockBytes(cpu.sysreg("GMID_EL1"))
    address = Align(address, size)
    tags = _read_tags(cpu, address, size // TAG_GRANULE)
    cpu.set_x(insn.t, PackTags(tags, address))


def execute_STGM(insn, cpu) -> None:
    """STGM <Xt>, [<Xn|SP>]: write the GMID_EL1 block's tags from Xt, the granule at A taking
    Xt<4*A<7:4>+3 : 4*A<7:4>>. Nothing is stored when tag access is disabled."""
    _undefined_at_el0(cpu, "STGM")
    data = cpu.x(insn.t)
    address = _base(cpu, insn.n)
    size = GMIDBlockBytes(cpu.sysreg("GMID_EL1"))
    address = Align(address, size)
    _write_tags(cpu, address, UnpackTags(data, address, size // TAG_GRANULE))


def execute_STZGM(insn, cpu) -> None:
    """STZGM <Xt>, [<Xn|SP>]: zero the 4 * 2^DCZID_EL0.BS byte block holding Xn (aligned
    down) and set every granule's tag to Xt<3:0> (the tag only when tag access is enabled)."""
    _undefined_at_el0(cpu, "STZGM")
    tag = cpu.x(insn.t) & 0xF
    address = _base(cpu, insn.n)
    size = DCZIDBlockBytes(cpu.sysreg("DCZID_EL0"))
    address = Align(address, size)
    cpu.mem_write_unchecked(address, bytes(size))
    _write_tags(cpu, address, [tag] * (size // TAG_GRANULE))


# ============================================================================================
# DC operations
# ============================================================================================
def _sys_trap(insn, cpu, target_el: int, name: str, read: bool = False) -> faults.SysRegTrap:
    return faults.SysRegTrap(target_el, sysreg_iss_by_name(name, insn.t, read))


def _check_dc_zero_allowed(insn, cpu, name: str) -> None:
    """The traps of DC ZVA / DC GVA / DC GZVA: at EL0 SCTLR_EL1.DZE = 0 traps to EL1 (to EL2
    when HCR_EL2.TGE = 1; in the EL2&0 host regime SCTLR_EL2.DZE traps to EL2); at EL0/EL1
    HCR_EL2.TDZ = 1 traps to EL2 (when EL2 is enabled and not the host regime)."""
    el = cpu.el
    if el > 1:
        return
    el2 = _el2_enabled(cpu)
    hcr = _hcr(cpu)
    host = el == 0 and ELIsInHost(0, hcr, el2)
    target = DCZeroAccessTrap(el, hcr, el2, cpu.sysreg("SCTLR_EL1"),
                              cpu.sysreg("SCTLR_EL2") if host else 0)
    if target is not None:
        raise _sys_trap(insn, cpu, target, name)


def _dc_set_tags(insn, cpu, name: str, zero: bool) -> None:
    _check_dc_zero_allowed(insn, cpu, name)
    value = cpu.x(insn.t)
    tag = AllocationTagFromAddress(value)
    size = DCZIDBlockBytes(cpu.sysreg("DCZID_EL0"))
    address = Align(value, size)
    try:
        if zero:
            cpu.mem_write_unchecked(address, bytes(size))
        _write_tags(cpu, address, [tag] * (size // TAG_GRANULE))
    except faults.TranslationFault as f:
        # the fault reports the register's value, not the block (AArch64.DataMemZero and
        # AArch64.DC set fault.vaddress = regval)
        f.va = value
        raise


def execute_DC_GVA(insn, cpu) -> None:
    """DC GVA, <Xt>: set the tags of the DCZID_EL0-sized block holding Xt (aligned down) to
    Xt<59:56>. Unchecked; no tags stored when tag access is disabled."""
    _dc_set_tags(insn, cpu, "DC GVA", False)


def execute_DC_GZVA(insn, cpu) -> None:
    """DC GZVA, <Xt>: DC ZVA of the block holding Xt plus DC GVA's tag writes. Unchecked."""
    _dc_set_tags(insn, cpu, "DC GZVA", True)


# Tag cache maintenance. Usable at EL0 (with SCTLR_EL1.UCI = 1): clean / clean+invalidate by
# VA. EL1 only: invalidate by VA and every set/way operation.
_DC_EL0_UCI = frozenset(["DC CGVAC", "DC CGDVAC", "DC CGVAP", "DC CGDVAP", "DC CGVADP",
                         "DC CGDVADP", "DC CIGVAC", "DC CIGDVAC"])
_DC_EL1_ONLY = frozenset(["DC IGVAC", "DC IGDVAC", "DC IGSW", "DC IGDSW", "DC CGSW",
                          "DC CGDSW", "DC CIGSW", "DC CIGDSW"])


def execute_DC_maintenance(insn, cpu) -> None:
    """DC CGVAC, DC CIGVAC, DC IGVAC, DC CGSW, ...: cache maintenance of tags (and data).

    This model has no caches, so the operations change nothing. What remains is who may
    execute them: the EL1-only ones are UNDEFINED at EL0; the clean / clean+invalidate by VA
    ones at EL0 trap to EL1 (EL2 when HCR_EL2.TGE = 1) unless SCTLR_EL1.UCI = 1 (SCTLR_EL2.UCI
    in the EL2&0 host regime).
    """
    name = insn.name
    if cpu.el != 0:
        return
    if name in _DC_EL1_ONLY:
        raise faults.Undefined(name + " is UNDEFINED at EL0")
    el2 = _el2_enabled(cpu)
    hcr = _hcr(cpu)
    if ELIsInHost(0, hcr, el2):
        if not cpu.sysreg("SCTLR_EL2") & SCTLR_UCI:
            raise _sys_trap(insn, cpu, 2, name)
        return
    if not cpu.sysreg("SCTLR_EL1") & SCTLR_UCI:
        raise _sys_trap(insn, cpu, 2 if (el2 and hcr & HCR_TGE) else 1, name)


# ============================================================================================
# PSTATE.TCO and the MTE system registers
# ============================================================================================
def execute_MSR_TCO_imm(insn, cpu) -> None:
    """MSR TCO, #<imm>: PSTATE.TCO = imm. Permitted at every EL."""
    cpu.set_tco(insn.imm & 1)


def _access_mte_el1_reg(insn, cpu, name: str, read: bool) -> None:
    """Traps shared by GCR_EL1, RGSR_EL1, TFSR_EL1 and TFSRE0_EL1: UNDEFINED at EL0; at EL1
    with EL2 enabled and HCR_EL2.ATA = 0, trapped to EL2 (EC 0x18)."""
    el = cpu.el
    if el == 0:
        raise faults.Undefined(name + " is not accessible at EL0")
    if el == 1 and _el2_enabled(cpu) and not cpu.sysreg("HCR_EL2") & HCR_ATA:
        raise _sys_trap(insn, cpu, 2, name, read)


def _resolve(insn, cpu, read: bool) -> str:
    """Check the access rules for insn.reg and return the register actually accessed
    (E2H redirection: TFSR_EL1 at EL2 with HCR_EL2.E2H = 1 is TFSR_EL2; TFSR_EL12 is
    TFSR_EL1 and exists only then)."""
    name = insn.reg
    el = cpu.el
    if name == "TCO":
        return name
    if name in ("GCR_EL1", "RGSR_EL1", "TFSRE0_EL1"):
        _access_mte_el1_reg(insn, cpu, name, read)
        return name
    if name == "TFSR_EL1":
        _access_mte_el1_reg(insn, cpu, name, read)
        if el == 2 and cpu.sysreg("HCR_EL2") & HCR_E2H:
            return "TFSR_EL2"
        return name
    if name == "TFSR_EL2":
        if el < 2:
            raise faults.Undefined("TFSR_EL2 is not accessible below EL2")
        return name
    if name == "TFSR_EL12":
        if el == 2 and cpu.sysreg("HCR_EL2") & HCR_E2H:
            return "TFSR_EL1"
        raise faults.Undefined("TFSR_EL12 is accessible only at EL2 with HCR_EL2.E2H = 1")
    if name == "GMID_EL1":
        if not read:
            raise faults.Undefined("GMID_EL1 is read-only: MSR GMID_EL1 is UNDEFINED")
        if el == 0:
            raise faults.Undefined("GMID_EL1 is not accessible at EL0")
        if el == 1 and _el2_enabled(cpu) and cpu.sysreg("HCR_EL2") & HCR_TID5:
            raise _sys_trap(insn, cpu, 2, name, read)
        return name
    # TFSR_EL3 (no EL3 in this model) and anything else
    raise faults.Undefined("%s is not implemented" % name)


_WRITE_MASK: Dict[str, int] = {
    "GCR_EL1": GCR_MASK,
    "RGSR_EL1": RGSR_MASK,
    "TFSR_EL1": TFSR_MASK,
    "TFSRE0_EL1": TFSR_MASK,
    "TFSR_EL2": TFSR_MASK,
}


def execute_MRS(insn, cpu) -> None:
    """MRS <Xt>, <reg> for TCO, GCR_EL1, RGSR_EL1, TFSR_EL1, TFSRE0_EL1, TFSR_EL2, TFSR_EL12,
    GMID_EL1. TCO reads as PSTATE.TCO in bit 25."""
    name = _resolve(insn, cpu, True)
    if name == "TCO":
        value = (cpu.tco & 1) << PSTATE_TCO_BIT
    else:
        value = cpu.sysreg(name)
    cpu.set_x(insn.t, value)


def execute_MSR(insn, cpu) -> None:
    """MSR <reg>, <Xt>: TCO takes Xt<25>; GCR_EL1, RGSR_EL1 and the TFSRs keep only their
    defined fields (the rest is RES0); GMID_EL1 is read-only (UNDEFINED)."""
    name = _resolve(insn, cpu, False)
    value = cpu.x(insn.t)
    if name == "TCO":
        cpu.set_tco((value >> PSTATE_TCO_BIT) & 1)
        return
    cpu.set_sysreg(name, value & _WRITE_MASK[name])


# ============================================================================================
# Dispatch
# ============================================================================================
EXECUTE: Dict[str, Callable[[object, object], None]] = {
    "IRG": execute_IRG,
    "GMI": execute_GMI,
    "ADDG": execute_ADDG,
    "SUBG": execute_SUBG,
    "SUBP": execute_SUBP,
    "SUBPS": execute_SUBPS,
    "CMPP": execute_SUBPS,
    "LDG": execute_LDG,
    "STG": execute_STG,
    "STZG": execute_STZG,
    "ST2G": execute_ST2G,
    "STZ2G": execute_STZ2G,
    "STGP": execute_STGP,
    "LDGM": execute_LDGM,
    "STGM": execute_STGM,
    "STZGM": execute_STZGM,
    "DC GVA": execute_DC_GVA,
    "DC GZVA": execute_DC_GZVA,
    "MSR TCO imm": execute_MSR_TCO_imm,
    "MRS": execute_MRS,
    "MSR": execute_MSR,
}
for _name in sorted(_DC_EL0_UCI | _DC_EL1_ONLY):
    EXECUTE[_name] = execute_DC_maintenance


def execute(insn, cpu) -> None:
    """Run the semantics of one decoded MTE instruction against ``cpu``."""
    try:
        fn = EXECUTE[insn.name]
    except KeyError:
        raise UnknownInstruction(insn.name) from None
    fn(insn, cpu)
