"""A reference model of straight-line blocks of loads and stores under synchronous tag checking.

Each instruction is a ``Access`` (its assembly, how it computes its address, how many bytes it
moves and to or from which registers, and its writeback). ``run_model`` executes them in
order against a copy of memory, tags and registers, and stops at the first instruction whose
footprint touches a granule with a tag other than its pointer's (AArch64.CheckTag on every
granule; the access and its writeback have no effect: AArch64.TagCheckFault with TCF = sync).
It knows nothing of hooks, pages or the engine: the emulator must agree with it wherever its
accesses land.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

MASK64 = (1 << 64) - 1


@dataclass
class Access:
    text: str                 # the assembly line
    base: str                 # base register name ('x20', 'sp', ...)
    offset: int               # immediate offset (0 for register offset / post-index base)
    mode: str                 # 'offset' | 'pre' | 'post'
    size: int                 # bytes per register
    regs: Tuple[str, ...]     # data registers, in address order
    store: bool
    checked: bool = True      # False: SP base with an immediate offset and no writeback
    op: str = ""              # '' plain; 'ldadd', 'swp', 'stadd' (read-modify-write, regs =
                              # (Xs, Xt)); 'ldxr', 'stxr' (regs = (Xt,) / (Ws, Xt))


@dataclass
class Alu:
    """``add dst, src, #imm``: a base register changes without an access."""
    text: str
    dst: str
    src: str
    imm: int


@dataclass
class Outcome:
    fault_index: Optional[int]            # the instruction that faults, or None
    far: Optional[int] = None
    write: bool = False
    regs: Dict[str, int] = field(default_factory=dict)   # registers after (or before the fault)
    memory: Dict[int, bytes] = field(default_factory=dict)


def _region(memory: Dict[int, bytearray], addr: int, n: int) -> Tuple[bytearray, int]:
    for base, buf in memory.items():
        if base <= addr and addr + n <= base + len(buf):
            return buf, addr - base
    raise ValueError(f"model has no memory at {addr:#x}+{n}")


def run_model(block: List[Access], regs: Dict[str, int], memory: Dict[int, bytes],
              tags: Dict[int, int]) -> Outcome:
    """``memory``: base -> bytes of each region the block touches; ``tags``: granule address
    (untagged) -> allocation tag, 0 where absent (all of it Normal Tagged memory).
    Returns the outcome with the registers and memory as they are after the block, or before
    the instruction that faults."""
    regs = dict(regs)
    mem = {b: bytearray(m) for b, m in memory.items()}
    monitor = None                       # the exclusive monitor's address
    for i, a in enumerate(block):
        if isinstance(a, Alu):
            regs[a.dst] = (regs[a.src] + a.imm) & MASK64
            continue
        if a.op == "stxr" and monitor != regs[a.base]:
            regs[a.regs[0]] = 1          # the store fails: no access, so nothing is checked
            monitor = None
            continue
        base = regs[a.base]
        va = base if a.mode == "post" else (base + a.offset) & MASK64
        n = a.size * (1 if a.op else len(a.regs))
        ptag = (va >> 56) & 0xF
        clean = va & 0x00FF_FFFF_FFFF_FFFF
        if a.checked:
            g = clean & ~0xF
            while g < clean + n:
                if tags.get(g, 0) != ptag:
                    far = (va & ~0x00FF_FFFF_FFFF_FFFF) | max(clean, g)
                    # an atomic read-modify-write faults on its read: WnR = 0
                    write = a.store and a.op not in ("ldadd", "swp", "stadd")
                    return Outcome(i, far, write, regs, {b: bytes(m) for b, m in mem.items()})
                g += 16
        buf, o = _region(mem, clean, n)
        if a.op:
            old = int.from_bytes(buf[o:o + 8], "little")
            if a.op == "ldxr":
                regs[a.regs[0]] = old
                monitor = va
            elif a.op == "stxr":
                buf[o:o + 8] = regs[a.regs[1]].to_bytes(8, "little")
                regs[a.regs[0]] = 0
                monitor = None
            else:
                xs = regs[a.regs[0]]
                new = xs if a.op == "swp" else (old + xs) & MASK64
                buf[o:o + 8] = new.to_bytes(8, "little")
                if a.op != "stadd":
                    regs[a.regs[1]] = old
            continue
        for k, r in enumerate(a.regs):
            chunk = slice(o + k * a.size, o + (k + 1) * a.size)
            if a.store:
                buf[chunk] = (regs[r] & ((1 << (8 * a.size)) - 1)).to_bytes(a.size, "little")
            else:
                regs[r] = int.from_bytes(buf[chunk], "little")
        if a.mode == "pre":
            regs[a.base] = va
        elif a.mode == "post":
            regs[a.base] = (base + a.offset) & MASK64
    return Outcome(None, None, False, regs, {b: bytes(m) for b, m in mem.items()})
