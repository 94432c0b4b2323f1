"""Guest programs that try to break the emulator: random words and short programs from a grammar.

A case is a dict (JSON-ready) the child runs: ``id``, ``area``, ``el`` (0 or 1), ``tcf``,
``max_insns``, ``seed`` (registers and tags), and either ``word`` (one random instruction word,
laid into the word template) or ``source`` (an assembly program). Every program runs on the fuzz
board the child builds (``child.py``): 8 MiB of RAM, a vector table that records and skips, EL0
code execute-only, the data region read/write at EL0 and EL1, Normal Tagged.

Areas (``AREAS``): ``words``; ``memtag`` (loads, stores and MTE instructions through tagged
pointers), ``sysreg`` (system-register writes, SPSR/ELR then ERET), ``excloop`` (VBAR at a table
of ERETs or branches to self), ``smc`` (a word stored into code, then IC IVAU/ISB and a branch
to it), ``semihost`` (calls with random parameters), ``traps`` (SVC/HVC/SMC/BRK/HLT, WFI/WFE),
and ``mixed`` (statements of all of them).
"""
from __future__ import annotations

import random

RAM_BASE = 0x4000_0000
RAM_SIZE = 8 << 20
RAM_END = RAM_BASE + RAM_SIZE
DATA = 0x4020_0000                   # 1 MiB the programs' pointers point into (EL0 RW)
DATA_SIZE = 0x10_0000
TABLES = 0x4060_0000                 # the fuzz board's translation tables
TCF_MODES = ("none", "sync", "async", "asymm")
AREAS = ("words", "memtag", "sysreg", "excloop", "smc", "semihost", "traps", "mixed")
MASK64 = (1 << 64) - 1

# registers a statement may use freely (x18 is left alone, x30 is the link register)
SCRATCH = [f"x{i}" for i in range(2, 18)]
NOP = 0xD503201F

# the semihosting exit every program ends with (ADP_Stopped_ApplicationExit, status 0)
EXIT = """
        mov x0, #0x18
        adr x1, exit_block
        hlt #0xf000
        b .
"""
DATA_HEAD = """
        .data
        .balign 16
exit_block: .quad 0x20026, 0
"""


def load_imm(reg: str, value: int) -> list[str]:
    """MOVZ/MOVK lines that put a 64-bit value in ``reg``."""
    value &= MASK64
    out = [f"movz {reg}, #{value & 0xFFFF:#x}"]
    for shift in (16, 32, 48):
        part = (value >> shift) & 0xFFFF
        if part:
            out.append(f"movk {reg}, #{part:#x}, lsl #{shift}")
    return out


class Program:
    """Text and data lines of one program, with fresh labels."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.text: list[str] = []
        self.data: list[str] = []
        self.tail: list[str] = []       # text after the exit (tables, slots)
        self.stored: list[int] = []     # words stored into code at run time
        self.spsr: list[int] = []       # values written to SPSR_EL1 before an ERET
        self.n = 0

    def label(self, stem: str) -> str:
        self.n += 1
        return f"{stem}_{self.n}"

    def emit(self, *lines: str) -> None:
        self.text.extend(lines)

    def source(self) -> str:
        body = "\n".join(f"        {l}" if not l.endswith(":") else l for l in self.text)
        tail = "\n".join(f"        {l}" if not l.endswith(":") else l for l in self.tail)
        data = "\n".join(self.data)
        return (f"        .text\n        .globl _start\n_start:\n{body}\n        nop\n        nop\n"
                f"        nop\n{EXIT}{tail}\n{DATA_HEAD}{data}\n")


# --- values ------------------------------------------------------------------------------------

def pointer(rng: random.Random) -> int:
    """An address a load, store or tag instruction might be given."""
    r = rng.random()
    tag = rng.randrange(16) << 56
    if r < 0.6:
        off = rng.randrange(0, DATA_SIZE - 256)
        if rng.random() < 0.7:
            off &= ~0xF
        return (DATA + off) | tag | (rng.choice((0, 0, 0, 1)) << 55)
    if r < 0.7:
        return DATA + DATA_SIZE - rng.choice((8, 16, 1, 4)) | tag      # across a page edge
    if r < 0.8:
        return RAM_END - rng.choice((8, 16, 64, 4096))                  # RAM's last bytes
    return rng.choice((0, 8, 0x0900_0000, RAM_END, 0x8000_0000, 0x1_0000_0000,
                       0xFFFF_0000_0000_0000, MASK64 & ~0xF, 1 << 55, rng.getrandbits(64)))


def value(rng: random.Random) -> int:
    return rng.choice((0, 1, MASK64, 0x8000_0000_0000_0000, rng.getrandbits(64),
                       rng.getrandbits(16), pointer(rng)))


# --- areas -------------------------------------------------------------------------------------

def _ptr_reg(p: Program) -> str:
    reg = p.rng.choice(SCRATCH[:8])
    p.emit(*load_imm(reg, pointer(p.rng)))
    return reg


def memtag(p: Program) -> None:
    rng = p.rng
    x = _ptr_reg(p)
    d = rng.choice(SCRATCH[8:14])
    off16 = rng.randrange(-16, 16) * 16
    forms = [
        f"ldr {d}, [{x}]", f"ldr {d}, [{x}, #8]", f"ldrb w{d[1:]}, [{x}, #1]",
        f"ldrh w{d[1:]}, [{x}, #2]", f"str {d}, [{x}]", f"strb w{d[1:]}, [{x}, #15]",
        f"str {d}, [{x}, #16]!", f"ldr {d}, [{x}], #-16", f"ldp x14, x15, [{x}]",
        f"stp x14, x15, [{x}, #-16]", f"ldr q0, [{x}]", f"str q1, [{x}]",
        f"ldur {d}, [{x}, #-8]", f"stur {d}, [{x}, #3]", f"ldapur {d}, [{x}, #8]",
        f"stlur {d}, [{x}, #8]", f"ldxr {d}, [{x}]", f"stxr w16, {d}, [{x}]",
        f"ldaxr {d}, [{x}]", f"ldadd {d}, x15, [{x}]", f"swp {d}, x15, [{x}]",
        f"cas {d}, x15, [{x}]", f"casp x10, x11, x12, x13, [{x}]",
        f"ld1 {{v0.16b}}, [{x}]", f"st1 {{v0.16b, v1.16b}}, [{x}]", f"prfm pldl1keep, [{x}]",
        f"dc zva, {x}", f"dc gva, {x}", f"dc gzva, {x}", f"dc civac, {x}",
        f"irg {x}, {x}", f"irg {x}, {x}, {d}", f"addg {x}, {x}, #{rng.randrange(4) * 16}, "
        f"#{rng.randrange(16)}", f"subg {x}, {x}, #{rng.randrange(4) * 16}, #{rng.randrange(16)}",
        f"gmi {d}, {x}, {d}", f"subp {d}, {x}, {x}", f"subps {d}, {x}, {d}",
        f"cmpp {x}, {d}",
        f"stg {x}, [{x}, #{off16}]", f"stzg {x}, [{x}]", f"st2g {x}, [{x}, #{off16}]",
        f"stz2g {x}, [{x}]", f"stg {x}, [{x}, #16]!", f"stg {x}, [{x}], #-16",
        f"stgp x14, x15, [{x}, #{off16}]", f"ldg {x}, [{x}, #{off16}]",
        f"ldgm {d}, [{x}]", f"stgm {d}, [{x}]", f"stzgm {d}, [{x}]",
        f"msr tco, #{rng.randrange(2)}", f"mrs {d}, tco",
        f"msr gcr_el1, {d}", f"msr rgsr_el1, {d}", f"mrs {d}, gmid_el1",
    ]
    for _ in range(rng.randrange(1, 4)):
        if rng.random() < 0.2:
            p.emit(*load_imm(d, value(rng)))
        p.emit(rng.choice(forms))


SYSREG_VALUES = {
    "sctlr_el1": lambda r: r.choice((0x30D00800, 0x30D00801, 0x30D00805 | (0xF << 38),
                                     0x30D00800 | (1 << 25), 0x30D00801 | (1 << 19),
                                     0x30D00801 | (1 << 1), r.getrandbits(64))),
    "tcr_el1": lambda r: r.choice((0, 25 | (1 << 23) | (1 << 37), 16, 64, r.getrandbits(64))),
    "ttbr0_el1": lambda r: r.choice((0, TABLES, TABLES + 8, 0x10_0000_0000, RAM_END,
                                     DATA, r.getrandbits(64))),
    "ttbr1_el1": lambda r: r.choice((0, TABLES, r.getrandbits(64))),
    "vbar_el1": lambda r: r.choice((0, 8, 0x8000_0000, DATA, RAM_END - 0x800,
                                    r.getrandbits(64) & ~0x7FF, r.getrandbits(64))),
    "mair_el1": lambda r: r.choice((0, 0xF0, 0xFF, 0x44, r.getrandbits(64))),
    "gcr_el1": lambda r: r.choice((0, 0x10000, 0xFFFF, 0x1FFFF, r.getrandbits(64))),
    "rgsr_el1": lambda r: r.choice((0, 0x123400, r.getrandbits(64))),
    "tfsr_el1": lambda r: r.getrandbits(64),
    "tfsre0_el1": lambda r: r.getrandbits(64),
    "daif": lambda r: r.choice((0, 0x3C0, r.getrandbits(64))),
    "sp_el0": lambda r: r.choice((0, DATA + 0x1000, DATA + 3, r.getrandbits(64))),
    "spsel": lambda r: r.choice((0, 1)),
    "cpacr_el1": lambda r: r.choice((0, 3 << 20, 3 << 16, r.getrandbits(64))),
    "contextidr_el1": lambda r: r.getrandbits(64),
    "tpidr_el0": lambda r: r.getrandbits(64),
    "elr_el1": lambda r: r.getrandbits(64),
    "esr_el1": lambda r: r.getrandbits(64),
    "far_el1": lambda r: r.getrandbits(64),
    "mdscr_el1": lambda r: r.choice((0, 1, 1 << 15, r.getrandbits(64))),
    "oslar_el1": lambda r: r.choice((0, 1)),
    "cntv_ctl_el0": lambda r: r.choice((0, 1, 3)),
}
# SPSR.M values: EL0t, EL1t, EL1h, EL2t/EL2h and EL3h (no EL2 or EL3 on this board), AArch32
# User/FIQ/IRQ/SVC/Abort/Undef/System, and reserved encodings
SPSR_MODES = (0b00000, 0b00100, 0b00101, 0b01000, 0b01001, 0b01100, 0b01101, 0b10000,
              0b10001, 0b10010, 0b10011, 0b10111, 0b11011, 0b11111, 0b00001, 0b00010, 0b00110)


def sysreg(p: Program) -> None:
    rng = p.rng
    reg = rng.choice(SCRATCH[:10])
    if rng.random() < 0.35:
        # SPSR and ELR, then ERET
        back = p.label("back")
        mode = rng.choice(SPSR_MODES)
        spsr = mode | (rng.getrandbits(4) << 6) | (rng.getrandbits(4) << 28)
        if rng.random() < 0.3:
            spsr |= 1 << 20                                  # PSTATE.IL
        if rng.random() < 0.3:
            spsr |= 1 << 25                                  # TCO
        if rng.random() < 0.1:
            spsr |= 1 << 21                                  # SS
        p.spsr.append(spsr)
        p.emit(*load_imm(reg, spsr), f"msr spsr_el1, {reg}")
        target = rng.random()
        if target < 0.7:
            p.emit(f"adr {reg}, {back}")
        elif target < 0.8:
            p.emit(f"adr {reg}, {back}", f"add {reg}, {reg}, #{rng.choice((1, 2, 3))}")
        else:
            p.emit(*load_imm(reg, value(rng)))
        p.emit(f"msr elr_el1, {reg}", "eret", f"{back}:")
        return
    name = rng.choice(sorted(SYSREG_VALUES))
    if name in ("ttbr0_el1", "vbar_el1", "sctlr_el1") and rng.random() < 0.2:
        p.emit(f"msr {name}, xzr")
    elif name == "spsel":
        p.emit(f"msr spsel, #{rng.randrange(2)}")
    elif name == "daif" and rng.random() < 0.5:
        p.emit(f"msr daif{rng.choice(('set', 'clr'))}, #{rng.randrange(16)}")
    else:
        p.emit(*load_imm(reg, SYSREG_VALUES[name](rng)), f"msr {name}, {reg}")
    p.emit(*rng.sample(["isb", "tlbi vmalle1", "dsb ish", "nop"], rng.randrange(0, 3)))


def excloop(p: Program) -> None:
    rng = p.rng
    table = p.label("vt")
    kind = rng.choice(("eret", "self", "svc", "random"))
    entry = {"eret": ["eret"], "self": ["b ."], "svc": ["svc #0"],
             "random": [f".inst {rng.getrandbits(32):#010x}"]}[kind]
    p.tail += [".balign 2048", f"{table}:", ".rept 16", *entry, ".balign 128", ".endr"]
    reg = rng.choice(SCRATCH[:8])
    p.emit(f"adr {reg}, {table}", f"msr vbar_el1, {reg}")
    if rng.random() < 0.4:
        p.emit("msr tcr_el1, xzr")
    p.emit("isb", rng.choice(("svc #0", "brk #1", ".inst 0", "hvc #0", "nop", "eret")))


SMC_WORDS = (NOP, 0x00000000, 0xD45E0000, 0xD65F03C0, 0xD69F03E0, 0x14000000, 0xD4000001,
             0x4E562DBA, 0x2EC21C20, 0xD9200820, 0xD9600820, 0xD503207F, 0xD503205F)


def smc(p: Program) -> None:
    rng = p.rng
    slot = p.label("slot")
    p.tail += [".balign 16", f"{slot}:", "nop", "ret"]
    word = rng.choice(SMC_WORDS) if rng.random() < 0.6 else rng.getrandbits(32)
    p.stored.append(word)
    a, w = rng.sample(SCRATCH[:8], 2)
    p.emit(f"adr {a}, {slot}", *load_imm(w, word), f"str w{w[1:]}, [{a}]")
    if rng.random() < 0.8:
        p.emit(f"dc cvau, {a}", "dsb ish", f"ic ivau, {a}", "dsb ish", "isb")
    p.emit(f"blr {a}")


SEMIHOST_OPS = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0C, 0x10, 0x11,
                0x13, 0x15, 0x16, 0x18, 0x20, 0x30, 0x31, 0x100, 0xFFFFFFFF)


def semihost(p: Program) -> None:
    rng = p.rng
    op = rng.choice(SEMIHOST_OPS)
    blk = p.label("blk")
    strings = p.label("str")
    raw = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(0, 24)))
    p.data += [f"{strings}: .byte {', '.join(str(b) for b in raw + bytes([0]))}", ".balign 8"]
    fields = []
    for _ in range(4):
        r = rng.random()
        fields.append(strings if r < 0.25 else str(rng.choice((0, 1, 2, 3, 77))) if r < 0.5
                      else f"{rng.choice((0x20026, 0x20023, len(raw), MASK64, 1 << 31)):#x}"
                      if r < 0.7 else f"{pointer(rng):#x}")
    p.data += [f"{blk}: .quad {', '.join(fields)}"]
    p.emit(*load_imm("x0", op))
    r = rng.random()
    if r < 0.6:
        p.emit(f"adr x1, {blk}")
    elif r < 0.75:
        p.emit(f"adr x1, {strings}")
    else:
        p.emit(*load_imm("x1", pointer(rng)))
    p.emit("hlt #0xf000")


def traps(p: Program) -> None:
    rng = p.rng
    imm = rng.getrandbits(16)
    p.emit(rng.choice((f"svc #{imm:#x}", f"hvc #{imm:#x}", f"smc #{imm:#x}", f"brk #{imm:#x}",
                       f"hlt #{imm:#x}", "wfi", "wfe", "sev", "sevl", "yield",
                       f".inst {rng.getrandbits(32):#010x}")))


STATEMENTS = {"memtag": memtag, "sysreg": sysreg, "excloop": excloop, "smc": smc,
              "semihost": semihost, "traps": traps}


def program(area: str, rng: random.Random) -> Program:
    """A short program of statements of ``area`` (``mixed``: of every area)."""
    p = Program(rng)
    for _ in range(rng.randrange(1, 6)):
        kind = rng.choice(sorted(STATEMENTS)) if area == "mixed" else area
        STATEMENTS[kind](p)
    return p


def cases(area: str, n: int, seed: int, el=None, tcf=None, max_insns: int = 2000) -> list[dict]:
    """``n`` cases of ``area`` from ``seed`` (the same seed gives the same cases, whatever EL and
    TCF are given: they are drawn either way, then replaced)."""
    rng = random.Random(f"{area}:{seed}")
    out = []
    for i in range(n):
        drawn_el, drawn_tcf = rng.choice((0, 1)), rng.choice(TCF_MODES)
        case = {"id": f"{area}:{seed}:{i}", "area": area,
                "el": drawn_el if el is None else el, "tcf": drawn_tcf if tcf is None else tcf,
                "max_insns": max_insns, "seed": rng.getrandbits(32)}
        if area == "words":
            case["word"] = rng.getrandbits(32)
        else:
            p = program(area, rng)
            case["source"] = p.source()
            if p.stored:
                case["stored"] = p.stored
            if p.spsr:
                case["spsr"] = p.spsr
        out.append(case)
    return out
