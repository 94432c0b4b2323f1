"""Encodings the generated programs emit as `.inst` words, so that reproducers also assemble
with tools that do not know these instructions (PAuth loads)."""
from __future__ import annotations


def ldra(key_b: bool, rt: int, rn: int, offset: int, writeback: bool) -> int:
    """LDRAA/LDRAB Xt, [Xn|SP{, #simm}]{!}: offset is a multiple of 8 in -4096..4088
    (S:imm9 scaled by 8)."""
    if offset % 8 or not -4096 <= offset <= 4088:
        raise ValueError(f"LDRA offset {offset}")
    simm = (offset // 8) & 0x3FF
    s, imm9 = simm >> 9, simm & 0x1FF
    return (0xF8200400 | (int(key_b) << 23) | (s << 22) | (imm9 << 12) | (int(writeback) << 11)
            | (rn << 5) | rt)


def ldra_text(key_b: bool, rt: int, rn: int, offset: int, writeback: bool) -> str:
    base = "sp" if rn == 31 else f"x{rn}"
    mn = "ldrab" if key_b else "ldraa"
    asm = f"{mn} x{rt}, [{base}, #{offset}]" + ("!" if writeback else "")
    return f".inst {ldra(key_b, rt, rn, offset, writeback):#010x}  // {asm}"
