"""Base A64 instructions after Armv8.0 that Keystone 0.9.2 does not know: LSE atomics
(LD<op>, ST<op>, SWP, CAS, CASP), LDAPR (RCpc) and LDAPUR/STLUR (RCpc2). These matter for
MTE: they are tag-checked loads and stores. Encoded here, checked against GNU as by the tests.
"""
from __future__ import annotations

import re

_ATOMIC_OPS = {"add": 0, "clr": 1, "eor": 2, "set": 3, "smax": 4, "smin": 5, "umax": 6, "umin": 7}
_ORDER = {"": (0, 0), "a": (1, 0), "l": (0, 1), "al": (1, 1)}
_WIDTH = {"b": 0, "h": 1, "": None}
_REG = re.compile(r"(?i)^([wx])([0-9]|[12][0-9]|30)$|^(wzr|xzr)$")


class ExtraError(ValueError):
    pass


def _reg(text: str) -> tuple[str, int]:
    t = text.strip().lower()
    m = _REG.match(t)
    if not m:
        raise ExtraError(f"'{text.strip()}' is not a general register")
    if m.group(3):
        return m.group(3)[0], 31
    return m.group(1), int(m.group(2))


def _base(text: str) -> int:
    t = text.strip().lower()
    if t == "sp":
        return 31
    m = re.match(r"^x([0-9]|[12][0-9]|30)$", t)
    if not m:
        raise ExtraError(f"'{text.strip()}' is not a base register (x0-x30 or sp)")
    return int(m.group(1))


def _size(width: str | None, reg_kind: str) -> int:
    if width is not None:
        return _WIDTH[width]
    return 3 if reg_kind == "x" else 2


_MEM = re.compile(r"^\[\s*([A-Za-z0-9]+)\s*(?:,\s*#?\s*([^\]]+))?\]$")


def _split(ops: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for c in ops:
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
    parts.append(cur.strip())
    return [p for p in parts if p]


def _mem(text: str, evaluate) -> tuple[int, int]:
    m = _MEM.match(text.strip())
    if not m:
        raise ExtraError(f"expected a memory operand [Xn|SP{{, #imm}}], got '{text}'")
    return _base(m.group(1)), evaluate(m.group(2)) if m.group(2) else 0


def encode(mnemonic: str, ops: str, evaluate) -> int | None:
    """The word for one of these instructions, None if the mnemonic is not one of them."""
    mn = mnemonic.lower()
    a = _split(ops)
    # LD<op>{a,l,al}{b,h} Rs, Rt, [Xn] / ST<op>{l}{b,h} Rs, [Xn] / SWP{a,l,al}{b,h}
    m = re.match(r"^(ld|st)(add|clr|eor|set|smax|smin|umax|umin)(a|l|al|)(b|h|)$", mn) or \
        re.match(r"^(swp)()(a|l|al|)(b|h|)$", mn)
    if m:
        kind, op, order, width = m.groups()
        if kind == "st" and order not in ("", "l"):
            return None
        if kind == "st":
            if len(a) != 2:
                raise ExtraError(f"{mn} needs: Rs, [Xn|SP]")
            rs_k, rs = _reg(a[0])
            rt, rt_k = 31, rs_k
            n, off = _mem(a[1], evaluate)
        else:
            if len(a) != 3:
                raise ExtraError(f"{mn} needs: Rs, Rt, [Xn|SP]")
            (rs_k, rs), (rt_k, rt) = _reg(a[0]), _reg(a[1])
            n, off = _mem(a[2], evaluate)
        if off:
            raise ExtraError(f"{mn} takes no offset")
        if width and (rs_k != "w" or rt_k != "w"):
            raise ExtraError(f"{mn} needs W registers")
        if rs_k != rt_k:
            raise ExtraError(f"{mn}: registers must be the same width")
        acq, rel = _ORDER[order]
        o3, opc = (1, 0) if kind == "swp" else (0, _ATOMIC_OPS[op])
        return (0x38200000 | _size(width or None, rs_k) << 30 | acq << 23 | rel << 22 | rs << 16 |
                o3 << 15 | opc << 12 | n << 5 | rt)
    # CAS{a,l,al}{b,h} Rs, Rt, [Xn]
    m = re.match(r"^cas(a|l|al|)(b|h|)$", mn)
    if m:
        order, width = m.groups()
        if len(a) != 3:
            raise ExtraError(f"{mn} needs: Rs, Rt, [Xn|SP]")
        (rs_k, rs), (rt_k, rt) = _reg(a[0]), _reg(a[1])
        n, off = _mem(a[2], evaluate)
        if off:
            raise ExtraError(f"{mn} takes no offset")
        if rs_k != rt_k or (width and rs_k != "w"):
            raise ExtraError(f"{mn}: register width mismatch")
        acq, rel = _ORDER[order]
        return 0x08A07C00 | _size(width or None, rs_k) << 30 | acq << 22 | rs << 16 | rel << 15 | n << 5 | rt
    # CASP{a,l,al} Rs, R(s+1), Rt, R(t+1), [Xn]
    m = re.match(r"^casp(a|l|al|)$", mn)
    if m:
        if len(a) != 5:
            raise ExtraError(f"{mn} needs: Rs, R(s+1), Rt, R(t+1), [Xn|SP]")
        regs = [_reg(x) for x in a[:4]]
        if len({k for k, _ in regs}) != 1 or regs[0][1] % 2 or regs[2][1] % 2 or \
                regs[1][1] != regs[0][1] + 1 or regs[3][1] != regs[2][1] + 1:
            raise ExtraError(f"{mn} needs even/odd consecutive register pairs of one width")
        n, off = _mem(a[4], evaluate)
        acq, rel = _ORDER[m.group(1)]
        sz = 1 if regs[0][0] == "x" else 0
        return 0x08207C00 | sz << 30 | acq << 22 | regs[0][1] << 16 | rel << 15 | n << 5 | regs[2][1]
    # LDAPR{b,h} Rt, [Xn]
    m = re.match(r"^ldapr(b|h|)$", mn)
    if m:
        if len(a) != 2:
            raise ExtraError(f"{mn} needs: Rt, [Xn|SP]")
        k, rt = _reg(a[0])
        n, off = _mem(a[1], evaluate)
        if off:
            raise ExtraError(f"{mn} takes no offset")
        return 0x38BFC000 | _size(m.group(1) or None, k) << 30 | n << 5 | rt
    # LDAPUR{b,h,sb,sh,sw} / STLUR{b,h} Rt, [Xn{, #simm9}]
    m = re.match(r"^(ldapur|stlur)(s?)(b|h|w|)$", mn)
    if m:
        kind, signed, width = m.groups()
        if (kind == "stlur" and signed) or (width == "w" and not signed):
            return None
        if len(a) != 2:
            raise ExtraError(f"{mn} needs: Rt, [Xn|SP{{, #simm9}}]")
        k, rt = _reg(a[0])
        n, off = _mem(a[1], evaluate)
        if not -256 <= off <= 255:
            raise ExtraError(f"{mn}: offset {off} is out of range -256..255")
        if signed:
            size = {"b": 0, "h": 1, "w": 2}[width]
            opc = 2 if k == "x" else 3
            if width == "w" and k != "x":
                raise ExtraError(f"{mn} needs an X register")
        else:
            size = _size(width or None, k)
            if width and k != "w":
                raise ExtraError(f"{mn} needs a W register")
            opc = 0 if kind == "stlur" else 1
        return 0x19000000 | size << 30 | opc << 22 | (off & 0x1FF) << 12 | n << 5 | rt
    return None
