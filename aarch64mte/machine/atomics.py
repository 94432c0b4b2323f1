"""Atomic read-modify-writes the engine cannot be trusted with, performed here.

The engine compares LDSMAX/LDSMIN of bytes, halfwords and words unsigned, and takes an
Alignment fault for every unaligned atomic, where FEAT_LSE2 performs one whose bytes stay in
one aligned 16-byte quantity. ``perform`` runs one LD<op>, SWP, CAS or CASP as its Arm ARM
Operation says (MemAtomic: read, compare or apply, write, the old value to the register)
against the machine, with what the engine would have done around it:

- translation: ESR.WnR of an atomic's fault is 0 if a read of the address would have
  generated it, else 1;
- the tag check of a read-modify-write is a read's: synchronous under asymmetric TCF, WnR = 0;
- alignment (AArch64.CheckAlignment via ``semantics.alignment``).
"""
from __future__ import annotations

from typing import Optional

from ..semantics import alignment, faults
from .translation import READ, WRITE, WalkFault

OPS = ("add", "clr", "eor", "set", "smax", "smin", "umax", "umin")


def decode(word: int):
    """(op, size in bytes of one register's access, pair, Rs, Rn, Rt) of an LD<op>, SWP, CAS or
    CASP word, or None."""
    rs, rn, rt = (word >> 16) & 31, (word >> 5) & 31, word & 31
    if (word & 0x3F200C00) == 0x38200000:
        o3, opc = (word >> 15) & 1, (word >> 12) & 7
        if o3 and opc != 0:
            return None                                   # LDAPR and the like
        return ("swp" if o3 else OPS[opc]), 1 << (word >> 30), False, rs, rn, rt
    if (word & 0x3FA07C00) == 0x08A07C00:
        return "cas", 1 << (word >> 30), False, rs, rn, rt
    if (word & 0xBFA07C00) == 0x08207C00 and not rs & 1 and not rt & 1:
        return "cas", 4 << ((word >> 30) & 1), True, rs, rn, rt
    return None


def apply(op: str, old: int, xs: int, size: int) -> int:
    """The value an LD<op>/SWP writes back (MemAtomic's operation on ``size`` bytes)."""
    bits = 8 * size
    m = (1 << bits) - 1
    old &= m
    xs &= m

    def signed(v: int) -> int:
        return v - (1 << bits) if v >> (bits - 1) else v
    if op == "swp":
        return xs
    if op == "add":
        return (old + xs) & m
    if op == "clr":
        return old & ~xs & m
    if op == "eor":
        return old ^ xs
    if op == "set":
        return old | xs
    if op == "smax":
        return old if signed(old) >= signed(xs) else xs
    if op == "smin":
        return old if signed(old) <= signed(xs) else xs
    if op == "umax":
        return max(old, xs)
    return min(old, xs)                                   # umin


def perform(m, word: int, pc: int) -> Optional[faults.ArchFault]:
    """Run the atomic at ``pc`` on machine ``m``. Returns the fault to take (nothing has
    changed), or None: registers and memory are updated and PC = pc + 4."""
    d = decode(word)
    if d is None:
        return faults.Undefined("not an atomic")
    op, size, pair, rs, rn, rt = d
    total = 2 * size if pair else size
    va = base_address(m, rn)
    pa = access(m, va, total, pc, rmw=True, checked=rn != 31)
    if isinstance(pa, faults.ArchFault):
        return pa
    raw = int.from_bytes(m.ram.read(pa, total), "little")
    mask = (1 << (8 * size)) - 1

    def x(n: int) -> int:
        return read_x(m, n) & mask
    if op == "cas":
        if pair:
            cmp, new = x(rs) | x(rs + 1) << (8 * size), x(rt) | x(rt + 1) << (8 * size)
        else:
            cmp, new = x(rs), x(rt)
        if raw == cmp:
            _store(m, pa, new, total)
        if pair:
            write_x(m, rs, raw & mask)
            write_x(m, rs + 1, raw >> (8 * size))
        else:
            write_x(m, rs, raw)
    else:
        _store(m, pa, apply(op, raw, x(rs), size), size)
        write_x(m, rt, raw)
    m.eng.set_pc(pc + 4)
    return None


def access(m, va: int, total: int, pc: int, *, rmw: bool = False, write: bool = False,
           checked: bool = True):
    """The PA of an atomic or exclusive access of ``total`` bytes at ``va``, after its
    alignment check, translation and tag check; or the fault it takes. A read-modify-write
    (``rmw``) translates as a read and a write and is tag checked as a read."""
    el = m.el
    mmu = m.mmu
    if alignment.CheckAlignment(va, total, alignment.ATOMIC, mmu.regime(el).sctlr):
        return faults.AlignmentFault(va, write)
    t = mmu.translate(va, el, WRITE if write else READ)
    if rmw and not isinstance(t, WalkFault):
        t = mmu.translate(va, el, WRITE)
        write = True                # a read would not fault: WnR = 1 for the write's fault
    if isinstance(t, WalkFault):
        return faults.TranslationFault(va, write, t.dfsc, stage2=t.stage == 2, ipa=t.ipa,
                                       s1ptw=t.s1ptw, level=t.level)
    write = write and not rmw
    pa = t.pa
    if not m.ram.contains(pa, total):
        return faults.TranslationFault(va, write, 0b010000)          # external abort
    tu = m.tagunit
    if checked and t.tagged and tu.checkable(va, el):
        ltag = (va >> 56) & 0xF
        atag = m.tags.get(pa)
        tu.tag_checks += 1
        if write:
            tu.checked_granules_written += 1
        else:
            tu.checked_granules_read += 1
        if atag != ltag:
            f = tu.check_failed(va, ltag, atag, write, not write, True, pc, el)
            if f.mode == "sync":
                e = faults.TagCheckFault(va, write)
                e.tag_fault = f
                return e
    return pa


def _store(m, pa: int, value: int, size: int) -> None:
    m.ram.write(pa, value.to_bytes(size, "little"))
    m.debugging.note_data_write(pa, size)


def base_address(m, rn: int) -> int:
    """The base register of a load/store: SP for 31."""
    return m.reg("sp") if rn == 31 else m.reg(f"x{rn}")


def read_x(m, n: int) -> int:
    """X[n] as a data register: XZR reads 0."""
    return 0 if n == 31 else m.reg(f"x{n}")


def write_x(m, n: int, value: int) -> None:
    """X[n] = value as a data register: a write to XZR is discarded."""
    if n != 31:
        m.set_reg(f"x{n}", value)
