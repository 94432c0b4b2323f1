"""Instructions: recorded in pass 1 (4 bytes each, so layout needs no encoding), encoded in pass
2 by the isa table (MTE), Keystone (base A64) or the extra encoder, operands resolved to numbers
first."""
from __future__ import annotations

import re

from .. import isa
from ..isa import syntax as mte_syntax
from . import base as base_asm
from . import pauth, sysregs
from .errors import _Err, at_line
from .expr import symbols_in
from .source import Line, split_args

MTE_MNEMONICS = mte_syntax.mnemonics()
_FLOATISH = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


class InstructionsMixin:
    def _instruction(self, mnemonic: str, args: str, ln: Line) -> None:
        s = self.cur
        if s.kind == ".bss":
            raise _Err(f"instruction '{mnemonic}' in a .bss section")
        mn = mnemonic.lower()
        ops = self._subst_equs(self._rewrite_numeric(args))
        pool = None
        if mn in ("ldr", "ldrsw") and "=" in ops:
            a = split_args(ops)
            if len(a) == 2 and a[1].startswith("="):
                pool = self._pool_entry(mn, a[0], a[1][1:].strip(), ln)
        if s.size % 4:
            raise _Err(f"instruction at offset {s.size:#x} of {s.name} is not 4-byte aligned "
                       "(add .balign 4)")
        s.emit(("insn", s.size, mnemonic, ops, ln, pool))
        s.size += 4
        s.code = True
        s.align = max(s.align, 4)

    def _encode_insn(self, mnemonic: str, ops: str, addr: int, ln: Line, pool) -> bytes:
        with at_line(ln):
            return self._encode(mnemonic, ops, addr, pool)

    def _encode(self, mnemonic: str, ops: str, addr: int, pool) -> bytes:
        mn = mnemonic.lower()
        ev = lambda t: self._eval_final(t, addr)  # noqa: E731
        if mn in MTE_MNEMONICS:
            insn = mte_syntax.parse(mn, ops, ev)
            if insn is not None:
                return isa.encode(insn).to_bytes(4, "little")
        if mn in pauth.MNEMONICS:
            return pauth.encode(mn, ops, ev).to_bytes(4, "little")
        if mn in sysregs.MNEMONICS:
            word = sysregs.encode(mn, ops, ev)
            if word is not None:
                return word.to_bytes(4, "little")
        if pool is not None:
            reg = split_args(ops)[0]
            target = pool.section.addr + pool.offset
            base_asm.check_pc_relative("ldr", addr, target)
            return base_asm.assemble_one(f"{mn} {reg}, {target:#x}", addr, True)
        kind = base_asm.pc_relative_kind(mn)
        if kind:
            a = split_args(ops)
            target_text = a[-1] if a else ""
            if a and not target_text.startswith("[") and not target_text.startswith("="):
                if kind in ("ldr", "ldrsw", "prfm") and len(a) != 2:
                    pass
                else:
                    t = target_text[1:] if target_text.startswith("#") else target_text
                    if t.lower().startswith(":pg_hi21:"):
                        t = t[len(":pg_hi21:"):]
                    target = ev(t)
                    base_asm.check_pc_relative(kind, addr, target)
                    return base_asm.assemble_one(
                        base_asm.pc_relative_text(kind, mn, a[:-1], addr, target), addr, True)
        text = f"{mnemonic} {self._resolve_operands(ops, ev)}" if ops else mnemonic
        try:
            return base_asm.assemble_one(text, addr, False)
        except base_asm.BaseAsmError:
            from .extra import ExtraError, encode as encode_extra
            try:
                word = encode_extra(mn, ops, ev)
            except ExtraError as e:
                raise _Err(str(e)) from None
            if word is None:
                raise
            return word.to_bytes(4, "little")

    def _resolve_operands(self, ops: str, ev) -> str:
        """Evaluate every '#expr' (and :lo12:-style operators) and every bare operand that
        names a symbol, so Keystone sees only numbers."""
        out = []
        i, n = 0, len(ops)
        while i < n:
            c = ops[i]
            if c == "#" or (c == ":" and _reloc_at(ops, i)):
                j = i + 1 if c == "#" else i
                depth = 0
                k = j
                while k < n:
                    ch = ops[k]
                    if ch == "(":
                        depth += 1
                    elif ch == ")":
                        depth -= 1
                    elif depth == 0 and ch in ",]}!":
                        break
                    k += 1
                expr = ops[j:k].strip()
                out.append("#" + self._immediate(expr, ev))
                i = k
                continue
            out.append(c)
            i += 1
        text = "".join(out)
        parts = split_args(text)
        known = lambda name: name in self.labels or name in self.equs or name == "."  # noqa: E731
        changed = False
        for idx, p in enumerate(parts):
            if p.startswith(("#", "[", "{")) or not p:
                continue
            syms = symbols_in(p)
            if _is_register(p) or _is_float(p):
                continue
            if (syms and any(known(x) for x in syms)) or _OPERATOR.search(p):
                parts[idx] = f"#{ev(p):#x}"
                changed = True
        return ", ".join(parts) if changed else text

    def _immediate(self, expr: str, ev) -> str:
        m = re.match(r":(\w+):(.*)$", expr, re.S)
        if m:
            op, rest = m.group(1).lower(), m.group(2)
            v = ev(rest)
            table = {"lo12": lambda x: x & 0xFFF, "lo12_nc": lambda x: x & 0xFFF,
                     "abs_g0": lambda x: x & 0xFFFF, "abs_g0_nc": lambda x: x & 0xFFFF,
                     "abs_g1": lambda x: (x >> 16) & 0xFFFF, "abs_g1_nc": lambda x: (x >> 16) & 0xFFFF,
                     "abs_g2": lambda x: (x >> 32) & 0xFFFF, "abs_g2_nc": lambda x: (x >> 32) & 0xFFFF,
                     "abs_g3": lambda x: (x >> 48) & 0xFFFF}
            if op not in table:
                raise _Err(f"relocation operator ':{op}:' is not supported")
            if op in ("abs_g0", "abs_g1", "abs_g2") and v >> (16 * (int(op[-1]) + 1)):
                raise _Err(f"value {v:#x} does not fit :{op}:")
            shift = int(op[5]) * 16 if op.startswith("abs_g") else 0
            return f"{table[op](v):#x}" + (f", lsl #{shift}" if shift else "")
        if _is_float(expr):
            return expr
        v = ev(expr)          # what it cannot evaluate is an error: Keystone sees numbers only
        return f"{v:#x}" if v >= 0 else f"-{-v:#x}"


def _reloc_at(text: str, i: int) -> bool:
    return re.match(r":(lo12|lo12_nc|abs_g[0-3](_nc)?|pg_hi21):", text[i:], re.I) is not None


def _is_float(text: str) -> bool:
    t = text.strip()
    return bool(_FLOATISH.match(t)) and ("." in t or "e" in t.lower()) and \
        not t.lower().startswith("0x")


# an operand with one of these is an expression, evaluated here (never left to Keystone)
_OPERATOR = re.compile(r"[-+*/%&|^~<>()]")
_REGLIKE = re.compile(r"(?i)^([xwbhsdqv]\d+(\.\w+)?(\[\d+\])?|sp|wsp|xzr|wzr|lr|fp)$")


def _is_register(p: str) -> bool:
    return bool(_REGLIKE.match(p.strip()))
