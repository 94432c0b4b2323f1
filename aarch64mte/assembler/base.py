"""Base A64 (everything that is not MTE) through Keystone, with the checks Keystone lacks.

Keystone 0.9.2 accepts absolute branch targets and computes the PC-relative offset itself,
but it silently wraps targets that are out of range (where GNU as reports an error), so the
caller checks ranges with `check_pc_relative` first. It knows no MTE mnemonics (those go
through the isa table) and nothing after Armv8.0 beyond a few system registers.
"""
from __future__ import annotations

import re
import threading

from .limits import MAX_INSTRUCTION_CHARS

_ks = None
_lock = threading.Lock()
_cache: dict[tuple[str, int], bytes] = {}


class BaseAsmError(Exception):
    pass


def _keystone():
    global _ks
    if _ks is None:
        from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks
        _ks = Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)
    return _ks


# What Keystone may be given: a mnemonic (letters, digits, '_', and '.'-separated parts as in
# b.eq), then blank space and operands of printable ASCII other than ';'; operands that do not
# begin with ':' or '=' after the blank space (those make the mnemonic a label or a symbol
# assignment).
_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*(?:[ \t]+(?![ \t:=])[\t -:<-~]*)?")
_MNEMONIC = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_PAIRS = {")": "(", "]": "[", "}": "{"}
_BRACKETS = re.compile(r"[][(){}]")
# Arithmetic next to a name (`b.eq #1-lsl`, `ldr x0, [x1, #1-lsl]`, `.-xzr`): Keystone turns it
# into a relocation it cannot represent and ends the process ("LLVM ERROR") or crashes. The
# assembler evaluates every expression itself, so Keystone only needs names as registers and
# keywords. Register lists ({v0.16b-v3.16b}), float literals (#1.5e-3) and ADR's own `.+N`
# are left out first.
_SYMBOL_ARITHMETIC = re.compile(r"(?<![\w.$])[A-Za-z_.$][\w.$]*\s*[-+*/%&|^~<>]|"
                                r"[-+*/%&|^~<>]\s*[A-Za-z_.$]")
_OPERATOR = re.compile(r"[-+*/%&|^~<>]")
_LISTS = re.compile(r"\{[^{}]*\}")
_DOT_OFFSET = re.compile(r"(?<![\w.$])\.[-+]\d+$")    # ADR's target, see pc_relative_text
_FLOATS = re.compile(r"(?<![\w.$])(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?")


def check_shape(text: str) -> None:
    """Refuse a statement Keystone must not see. Keystone 0.9.2 loops forever (in C, beyond
    Python's reach) on a statement that does not begin with an identifier, on a label or
    assignment whose value does not parse (`ldg :!`, `ldg ==1`), and on very long operands;
    it ends or crashes the process on arithmetic over symbols; its Python binding fails on
    non-ASCII text. Measured by running Keystone on random and
    mutated statements in a subprocess with a timeout (tests/test_asm_fuzz.py keeps doing so
    through the assembler)."""
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise BaseAsmError(f"instruction longer than {MAX_INSTRUCTION_CHARS} characters")
    if _SHAPE.fullmatch(text):
        stack = []
        for c in _BRACKETS.findall(text):
            if c in "([{":
                stack.append(c)
            elif c in ")]}":
                if not stack or stack.pop() != _PAIRS[c]:
                    raise BaseAsmError(f"unbalanced '{c}' in '{text}'")
        if stack:
            raise BaseAsmError(f"missing closing bracket for '{stack[-1]}' in '{text}'")
        parts = text.split(None, 1)
        ops = parts[1] if len(parts) > 1 else ""
        # (searched in steps from cheap to dear: taking the exceptions out never makes a match)
        if (_OPERATOR.search(ops) and _SYMBOL_ARITHMETIC.search(ops) and
                _SYMBOL_ARITHMETIC.search(
                    _DOT_OFFSET.sub("0", _FLOATS.sub("0", _LISTS.sub("{}", ops))))):
            raise BaseAsmError(f"an expression over symbols or '.' here cannot be encoded: "
                               f"'{text}'")
        return
    word = re.match(r"[^ \t]*", text).group(0)
    ops = text[len(word):]
    if not _MNEMONIC.fullmatch(word):
        raise BaseAsmError(f"unknown mnemonic '{_printable(word)}'")
    bad = next((c for c in ops if not (" " <= c <= "~" or c == "\t") or c == ";"), None)
    if bad is not None:
        raise BaseAsmError(f"unexpected character {ascii(bad)} in '{_printable(text)}'")
    raise BaseAsmError(f"unexpected '{ops.strip()[:1]}' after '{word}'")


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text)


def assemble_one(text: str, addr: int, pc_relative: bool) -> bytes:
    """Machine code for one base A64 instruction at `addr` (4 bytes)."""
    key = (text, addr if pc_relative else 0)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    check_shape(text)
    from keystone import KsError
    with _lock:
        try:
            enc, _ = _keystone().asm(text, addr)
        except KsError as e:
            raise BaseAsmError(_explain(text, e)) from None
    if not enc:
        raise BaseAsmError(f"cannot assemble '{text}'")
    code = bytes(enc)
    if len(code) != 4:
        raise BaseAsmError(f"'{text}' does not fit in one instruction")
    _cache[key] = code
    return code


def _explain(text: str, e) -> str:
    msg = str(e)
    mnemonic = text.split(None, 1)[0].lower() if text.split() else text
    if "MNEMONICFAIL" in msg:
        return f"unknown mnemonic '{mnemonic}' in '{text}'"
    if "INVALIDOPERAND" in msg:
        return f"invalid operands in '{text}'"
    if "SYMBOL_MISSING" in msg:
        return f"undefined symbol in '{text}'"
    return f"cannot assemble '{text}' (operand out of range or not encodable)"


# PC-relative operand ranges (bytes) and required alignment of the offset
PC_RELATIVE = {
    "b": (1 << 27, 4), "bl": (1 << 27, 4),
    "b.cond": (1 << 20, 4), "cbz": (1 << 20, 4), "cbnz": (1 << 20, 4),
    "ldr": (1 << 20, 4), "ldrsw": (1 << 20, 4), "prfm": (1 << 20, 4),
    "tbz": (1 << 15, 4), "tbnz": (1 << 15, 4),
    "adr": (1 << 20, 1), "adrp": (1 << 32, 1),
}
CONDITIONS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt",
              "gt", "le", "al", "nv"}


def pc_relative_kind(mnemonic: str) -> str | None:
    mn = mnemonic.lower()
    if mn.startswith("b.") and mn[2:] in CONDITIONS:
        return "b.cond"
    return mn if mn in PC_RELATIVE else None


def check_pc_relative(kind: str, addr: int, target: int) -> None:
    span, align = PC_RELATIVE[kind]
    if kind == "adrp":
        delta = (target & ~0xFFF) - (addr & ~0xFFF)
    else:
        delta = target - addr
    if delta % align:
        raise BaseAsmError(f"branch target {target:#x} is not {align}-byte aligned")
    if not -span <= delta < span:
        raise BaseAsmError(f"target {target:#x} is out of range of {kind} at {addr:#x} "
                           f"(offset {delta:#x}, limit +/-{span:#x})")


def pc_relative_text(kind: str, mnemonic: str, head: list[str], addr: int, target: int) -> str:
    """Source Keystone accepts for a PC-relative instruction with a resolved target."""
    if kind == "adr":
        delta = target - addr
        where = f".+{delta}" if delta >= 0 else f".-{-delta}"
    else:
        where = f"{target:#x}"
    return f"{mnemonic} " + ", ".join(head + [where])
