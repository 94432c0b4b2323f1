"""FEAT_PAuth (Armv8.3 pointer authentication), which Keystone 0.9.2 does not know: PAC*/AUT*/
XPAC*, PACGA, the authenticating branches and returns, and LDRAA/LDRAB. Not MTE, so not in the
isa table. Encodings from the Arm ARM's instruction pages (field layouts named below); the tests
check every form against GNU as and llvm-mc.
"""
from __future__ import annotations

import re

from .extra import ExtraError

# Data-processing (1 source), sf=1 S=0 opcode2=00001: 0xDAC10000 | opcode<<10 | Rn<<5 | Rd
_DP1 = 0xDAC10000
_WITH_MODIFIER = {"pacia": 0, "pacib": 1, "pacda": 2, "pacdb": 3,       # <Xd>, <Xn|SP>
                  "autia": 4, "autib": 5, "autda": 6, "autdb": 7}
_ZERO_MODIFIER = {"paciza": 8, "pacizb": 9, "pacdza": 10, "pacdzb": 11,  # <Xd>; Rn=11111
                  "autiza": 12, "autizb": 13, "autdza": 14, "autdzb": 15,
                  "xpaci": 16, "xpacd": 17}
# HINT #imm aliases: 0xD503201F | imm<<5
_HINTS = {"xpaclri": 7, "pacia1716": 8, "pacib1716": 10, "autia1716": 12, "autib1716": 14,
          "paciaz": 24, "paciasp": 25, "pacibz": 26, "pacibsp": 27,
          "autiaz": 28, "autiasp": 29, "autibz": 30, "autibsp": 31}
# Unconditional branch (register) with Z=0 (zero modifier, op4=11111): word | Rn<<5
_BRANCH_ZERO = {"braaz": 0xD61F081F, "brabz": 0xD61F0C1F, "blraaz": 0xD63F081F,
                "blrabz": 0xD63F0C1F}
# ... with Z=1 (modifier in <Xm|SP> at bits 4:0): word | Rn<<5 | Rm
_BRANCH = {"braa": 0xD71F0800, "brab": 0xD71F0C00, "blraa": 0xD73F0800, "blrab": 0xD73F0C00}
_RETURN = {"retaa": 0xD65F0BFF, "retab": 0xD65F0FFF, "eretaa": 0xD69F0BFF, "eretab": 0xD69F0FFF}
_PACGA = 0x9AC03000          # Data-processing (2 source): PACGA <Xd>, <Xn>, <Xm|SP>
# LDRAA/LDRAB <Xt>, [<Xn|SP>{, #<simm>}]{!}: 0xF8200400 | M<<23 | S<<22 | imm9<<12 | W<<11
_LDRA = {"ldraa": 0xF8200400, "ldrab": 0xF8A00400}

MNEMONICS = frozenset({*_WITH_MODIFIER, *_ZERO_MODIFIER, *_HINTS, *_BRANCH_ZERO, *_BRANCH,
                       *_RETURN, "pacga", *_LDRA})

_X = re.compile(r"(?i)x([0-9]|[12][0-9]|30)")
_LDRA_MEM = re.compile(r"(?is)\[\s*([^\],]+?)\s*(?:,\s*#?(.+?))?\s*\]\s*(!?)")


def _xreg(mn: str, text: str, sp: bool = False, zr: bool = False) -> int:
    """An X register number; 31 for SP or XZR where the operand allows it."""
    t = text.strip().lower()
    m = _X.fullmatch(t)
    if m:
        return int(m.group(1))
    if t == "sp" and sp:
        return 31
    if t == "xzr" and zr:
        return 31
    if t in ("sp", "xzr", "wsp", "wzr") or re.fullmatch(r"w([0-9]|[12][0-9]|30)", t):
        raise ExtraError(f"{mn}: '{text.strip()}' is not allowed here (expected "
                         f"{_kinds(sp, zr)})")
    raise ExtraError(f"{mn}: '{text.strip()}' is not a register (expected {_kinds(sp, zr)})")


def _kinds(sp: bool, zr: bool) -> str:
    return "x0-x30" + (" or sp" if sp else "") + (" or xzr" if zr else "")


def _operands(mn: str, ops: str, count: int, shape: str) -> list[str]:
    parts = [p.strip() for p in ops.split(",")] if ops.strip() else []
    if len(parts) != count:
        raise ExtraError(f"{mn} needs: {shape}" if count else f"{mn} takes no operands")
    return parts


def encode(mnemonic: str, ops: str, evaluate) -> int | None:
    """The word for a pointer-authentication instruction; None if `mnemonic` is not one."""
    mn = mnemonic.lower()
    if mn in _WITH_MODIFIER:
        d, n = _operands(mn, ops, 2, "Xd, Xn|SP")
        return _DP1 | _WITH_MODIFIER[mn] << 10 | _xreg(mn, n, sp=True) << 5 | _xreg(mn, d, zr=True)
    if mn in _ZERO_MODIFIER:
        (d,) = _operands(mn, ops, 1, "Xd")
        return _DP1 | _ZERO_MODIFIER[mn] << 10 | 31 << 5 | _xreg(mn, d, zr=True)
    if mn in _HINTS:
        _operands(mn, ops, 0, "")
        return 0xD503201F | _HINTS[mn] << 5
    if mn in _RETURN:
        _operands(mn, ops, 0, "")
        return _RETURN[mn]
    if mn in _BRANCH_ZERO:
        (n,) = _operands(mn, ops, 1, "Xn")
        return _BRANCH_ZERO[mn] | _xreg(mn, n, zr=True) << 5
    if mn in _BRANCH:
        n, m = _operands(mn, ops, 2, "Xn, Xm|SP")
        return _BRANCH[mn] | _xreg(mn, n, zr=True) << 5 | _xreg(mn, m, sp=True)
    if mn == "pacga":
        d, n, m = _operands(mn, ops, 3, "Xd, Xn, Xm|SP")
        return (_PACGA | _xreg(mn, m, sp=True) << 16 | _xreg(mn, n, zr=True) << 5 |
                _xreg(mn, d, zr=True))
    if mn in _LDRA:
        return _ldra(mn, ops, evaluate)
    return None


def _ldra(mn: str, ops: str, evaluate) -> int:
    shape = "Xt, [Xn|SP{, #simm}]{!}"
    t, sep, mem = ops.partition(",")
    m = _LDRA_MEM.fullmatch(mem.strip()) if sep else None
    if not m:
        raise ExtraError(f"{mn} needs: {shape}")
    rt = _xreg(mn, t, zr=True)
    rn = _xreg(mn, m.group(1), sp=True)
    offset = evaluate(m.group(2)) if m.group(2) else 0
    if not isinstance(offset, int):
        raise ExtraError(f"{mn}: offset must be an absolute value")
    if offset % 8:
        raise ExtraError(f"{mn}: offset {offset} is not a multiple of 8")
    if not -4096 <= offset <= 4088:
        raise ExtraError(f"{mn}: offset {offset} is out of range -4096..4088")
    imm10 = (offset // 8) & 0x3FF
    return (_LDRA[mn] | (imm10 >> 9) << 22 | (imm10 & 0x1FF) << 12 | (m.group(3) == "!") << 11 |
            rn << 5 | rt)
