"""Disassembly in GNU objdump's spelling: the isa decoder for every MTE word, Capstone for the
rest.

Capstone 5.0 decodes most MTE instructions but not all, and not always as objdump does:
it does not decode STGP at all, prints CMPP as `subps xzr, ...`, accepts `msr tco, #2..15`
(an unallocated PSTATE field encoding objdump shows as a generic `msr s0_3_c4_c2_4, xzr`),
names no write to GMID_EL1, and prints load/store offsets in hex where objdump uses decimal.
Every word the isa table decodes is therefore spelled from the table.
"""
from __future__ import annotations

import re

from . import isa
from .isa.syntax import format_insn

_cs = None
_PCREL = {"b", "bl", "cbz", "cbnz", "tbz", "tbnz", "adr", "adrp", "ldr", "ldrsw", "prfm"}
_SYSREG_GENERIC = re.compile(r"\bs(\d)_(\d)_c(\d+)_c(\d+)_(\d)\b")


def _capstone():
    global _cs
    if _cs is None:
        from capstone import CS_ARCH_ARM64, CS_MODE_ARM, Cs
        _cs = Cs(CS_ARCH_ARM64, CS_MODE_ARM)
    return _cs


def _symbolizer(symbols: dict[str, int] | None):
    if not symbols:
        return lambda addr: None
    items = sorted(((v, k) for k, v in symbols.items()), key=lambda x: (x[0], x[1].startswith("_"), x[1]))
    import bisect
    addrs = [a for a, _ in items]

    def sym(addr: int) -> str | None:
        i = bisect.bisect_right(addrs, addr) - 1
        if i < 0:
            return None
        a = addrs[i]
        j = i
        while j > 0 and addrs[j - 1] == a:
            j -= 1
        name = items[j][1]
        return name if a == addr else f"{name}+{addr - a:#x}"
    return sym


def decode_word(word: int, addr: int = 0, symbols: dict[str, int] | None = None) -> str:
    """objdump-style text for one instruction word, e.g. 'stg\\tx0, [x1, #16]!'."""
    return _decode(word, addr, _symbolizer(symbols))


def _decode(word: int, addr: int, sym) -> str:
    insn = isa.decode(word)
    if insn is not None:
        return format_insn(insn)
    if _looks_like_unallocated_tco(word):
        return _generic_msr_imm(word)
    out = list(_capstone().disasm(word.to_bytes(4, "little"), addr, 1))
    if not out:
        return f".inst\t{word:#010x} ; undefined"
    ci = out[0]
    mnem, ops = ci.mnemonic, ci.op_str
    base = mnem.split(".")[0]
    if (base in _PCREL or mnem.startswith("b.")) and ops:
        m = re.search(r"#(0x[0-9a-f]+|\d+)$", ops)
        if m and "[" not in ops:
            target = int(m.group(1), 0)
            s = sym(target)
            ops = ops[:m.start()] + f"{target:x}" + (f" <{s}>" if s else "")
    elif "[" in ops:
        # objdump prints load/store offsets in decimal
        ops = re.sub(r"#(-?)0x([0-9a-f]+)", lambda m: f"#{m.group(1)}{int(m.group(2), 16)}", ops)
    return f"{mnem}\t{ops}" if ops else mnem


def _looks_like_unallocated_tco(word: int) -> bool:
    # MSR (immediate) with the TCO field selector (op1=3, op2=4) and CRm > 1: Capstone prints
    # `msr tco, #N`, but only CRm 0/1 set TCO; objdump spells it as a generic system register.
    return (word & 0xFFFFF0FF) == 0xD503409F and ((word >> 8) & 0xF) > 1


def _generic_msr_imm(word: int) -> str:
    op1 = (word >> 16) & 7
    crm = (word >> 8) & 0xF
    op2 = (word >> 5) & 7
    return f"msr\ts0_{op1}_c4_c{crm}_{op2}, xzr"


def disassemble(data: bytes, addr: int, symbols: dict[str, int] | None = None) -> list[tuple[int, int, str]]:
    """[(address, word, text)] for each 4-byte word of `data` starting at `addr`.
    A trailing partial word is shown as '.byte' data."""
    sym = _symbolizer(symbols)
    out = []
    n = len(data) // 4 * 4
    for off in range(0, n, 4):
        word = int.from_bytes(data[off:off + 4], "little")
        out.append((addr + off, word, _decode(word, addr + off, sym)))
    if n < len(data):
        rest = data[n:]
        out.append((addr + n, int.from_bytes(rest, "little"),
                    ".byte\t" + ", ".join(f"{b:#04x}" for b in rest)))
    return out


def listing(data: bytes, addr: int, symbols: dict[str, int] | None = None) -> str:
    """objdump -d style text: '<symbol>:' headers and '   addr:\\tword \\ttext' lines."""
    labels: dict[int, list[str]] = {}
    for k, v in (symbols or {}).items():
        labels.setdefault(v, []).append(k)
    lines = []
    for a, w, text in disassemble(data, addr, symbols):
        for name in sorted(labels.get(a, [])):
            if lines:
                lines.append("")
            lines.append(f"{a:016x} <{name}>:")
        lines.append(f"{a:12x}:\t{w:08x} \t{text}")
    return "\n".join(lines) + ("\n" if lines else "")
