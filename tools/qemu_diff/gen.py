"""Seeded random MTE test programs.

A test is a setup (exception level, TCF/TCF0, TBI0/TCMA0, SCTLR_EL1.ATA/ATA0/A, PSTATE.TCO and
NZCV, GCR_EL1/RGSR_EL1, the area's data and allocation tags, pointer and data registers) and a
short straight-line body drawn from a catalogue of every MTE instruction and every load/store
class. Pointers x0-x7 and SP point into the test area (Tagged, sometimes through the Untagged
alias) near the places where accesses get interesting: the page boundary in the middle of the
area and its two edges (beyond which nothing is mapped). Their tags match the memory or not.
The generator follows each pointer's address through writeback and tag instructions, so later
accesses stay near those places. Register choices avoid the CONSTRAINED UNPREDICTABLE cases
(writeback with Rt == Rn, a load pair with Rt == Rt2, a store-exclusive status register that is
also a data or base register)."""
from __future__ import annotations

import random

from . import encode, layout
from .model import Insn, Test

PTRS = list(range(8))                       # x0-x7: pointers
DATA = list(range(8, 16)) + list(range(19, 29))   # destinations and data
IDX = (16, 17)                              # small index values for register offsets
EVEN = [8, 10, 12, 14, 20, 22, 24, 26]
HOT = (0, 0x800, 0x1000, 0x1800, 0x2000)   # area offsets where pointers gather
INT_LOADS = [("ldrb", 1, "w"), ("ldrh", 2, "w"), ("ldr", 4, "w"), ("ldr", 8, "x"),
             ("ldrsb", 1, "x"), ("ldrsb", 1, "w"), ("ldrsh", 2, "x"), ("ldrsh", 2, "w"),
             ("ldrsw", 4, "x")]
INT_STORES = [("strb", 1, "w"), ("strh", 2, "w"), ("str", 4, "w"), ("str", 8, "x")]
FP = [("b", 1), ("h", 2), ("s", 4), ("d", 8), ("q", 16)]
LSE_OPS = ["add", "clr", "eor", "set", "smax", "smin", "umax", "umin"]
ORDER = ["", "a", "al", "l"]
SZ = [("b", 1), ("h", 2), ("", 4), ("", 8)]


def r(n: int, size: int) -> str:
    if n == 31:
        return "wzr" if size <= 4 else "xzr"
    return f"w{n}" if size <= 4 else f"x{n}"


def base(n: int) -> str:
    return "sp" if n == 31 else f"x{n}"


class Gen:
    def __init__(self, rng: random.Random, t: Test):
        self.rng = rng
        self.t = t
        self.addr: dict[int, int] = {}      # pointer register -> untagged address it holds
        self.body: list[Insn] = []
        self.vnext = 0                      # next SIMD register to load into

    # ---- helpers ----
    def emit(self, text: str, op: str, writes=()) -> None:
        self.body.append(Insn(text, op, tuple(writes)))

    def ptr(self, sp_ok=True) -> int:
        choices = [p for p in PTRS if p in self.addr]
        if sp_ok and 31 in self.addr and self.rng.random() < 0.15:
            return 31
        return self.rng.choice(choices)

    def dreg(self, *avoid) -> int:
        return self.rng.choice([d for d in DATA if d not in avoid])

    def offset(self, n: int, size: int, lo: int, hi: int, scale: int = 1) -> int:
        """An offset in [lo, hi] (a multiple of `scale`) that puts the access somewhere worth
        testing: aligned, straddling a granule or the page boundary, or just near."""
        a = self.addr.get(n, layout.AREA)
        rng = self.rng
        k = rng.random()
        if k < 0.3:
            ea = a
        elif k < 0.6:
            g = (a + rng.randint(-3, 3) * 16) & ~15
            ea = g - rng.randint(1, max(1, size - 1)) if size > 1 else g
        elif k < 0.75:
            ea = layout.AREA + rng.choice(HOT) - rng.randint(0, size)
        else:
            ea = a + rng.randint(-64, 64)
        if rng.random() < 0.6:
            ea &= ~(size - 1)
        off = ea - a
        off -= off % scale
        return max(lo, min(hi, off))

    def moved(self, n: int, by: int) -> None:
        if n in self.addr:
            self.addr[n] += by

    def observe_v(self, v: int) -> None:
        """Move a SIMD register into X registers so the comparison sees it."""
        d1, d2 = self.rng.sample(DATA, 2)
        self.emit(f"mov x{d1}, v{v}.d[0]", "umov", (d1,))
        if self.rng.random() < 0.5:
            self.emit(f"mov x{d2}, v{v}.d[1]", "umov", (d2,))

    # ---- instruction families ----
    def int_single(self) -> None:
        rng = self.rng
        store = rng.random() < 0.45
        mn, size, kind = rng.choice(INT_STORES if store else INT_LOADS)
        n = self.ptr()
        form = rng.choice(["imm", "imm", "unscaled", "pre", "post", "reg"])
        rt = self.dreg() if not store or rng.random() < 0.9 else 31
        if store and rng.random() < 0.2 and form not in ("pre", "post"):
            rt = rng.choice(PTRS)
        t = r(rt, 4 if kind == "w" else 8)
        op = mn
        if form == "imm":
            off = self.offset(n, size, 0, 4095 * size, size)
            text = f"{mn} {t}, [{base(n)}, #{off}]"
        elif form == "unscaled":
            off = self.offset(n, size, -256, 255)
            mn = mn.replace("ldr", "ldur").replace("str", "stur")
            op = mn
            text = f"{mn} {t}, [{base(n)}, #{off}]"
        elif form in ("pre", "post"):
            off = self.offset(n, size, -256, 255)
            text = (f"{mn} {t}, [{base(n)}, #{off}]!" if form == "pre"
                    else f"{mn} {t}, [{base(n)}], #{rng.randint(-256, 255)}")
            if form == "post":
                off = int(text.rsplit("#", 1)[1])
            self.moved(n, off)
            self.emit(text, f"{mn}.{form}", (rt, n) if not store else (n,))
            return
        else:
            if n == 31:
                n = self.ptr(sp_ok=False)
            s = {1: 0, 2: 1, 4: 2, 8: 3}[size]
            ix = rng.choice(["x16", f"x16, lsl #{s}", "w17, sxtw", f"w17, sxtw #{s}",
                             "w16, uxtw"])
            text = f"{mn} {t}, [x{n}, {ix}]"
            op = f"{mn}.reg"
        self.emit(text, op, () if store else (rt,))

    def int_pair(self) -> None:
        rng = self.rng
        mn, size = rng.choice([("ldp", 4), ("ldp", 8), ("stp", 4), ("stp", 8), ("ldpsw", 4),
                               ("ldnp", 8), ("stnp", 4), ("ldnp", 4), ("stnp", 8)])
        n = self.ptr()
        kind = 8 if mn == "ldpsw" else size
        form = "off" if "np" in mn else rng.choice(["off", "off", "pre", "post"])
        if mn.startswith("ld"):
            a, b = rng.sample(DATA, 2)
        else:
            # a store with writeback must not store its own base (CONSTRAINED UNPREDICTABLE)
            a = rng.choice(DATA + [p for p in PTRS if form == "off" or p != n] + [31])
            b = rng.choice(DATA + [31])
        off = self.offset(n, 2 * size, -64 * size, 63 * size, size)
        regs = f"{r(a, kind)}, {r(b, kind)}"
        writes = (a, b) if mn.startswith("ld") else ()
        if form == "off":
            self.emit(f"{mn} {regs}, [{base(n)}, #{off}]", mn, writes)
        elif form == "pre":
            self.emit(f"{mn} {regs}, [{base(n)}, #{off}]!", mn + ".pre", writes + (n,))
            self.moved(n, off)
        else:
            self.emit(f"{mn} {regs}, [{base(n)}], #{off}", mn + ".post", writes + (n,))
            self.moved(n, off)

    def fp_single(self) -> None:
        rng = self.rng
        c, size = rng.choice(FP)
        store = rng.random() < 0.4
        v = rng.randrange(8)
        n = self.ptr()
        form = rng.choice(["imm", "unscaled", "pre", "post"])
        mn = "str" if store else "ldr"
        if form == "imm":
            off = self.offset(n, size, 0, 4095 * size, size)
            self.emit(f"{mn} {c}{v}, [{base(n)}, #{off}]", f"{mn}.{c}")
        elif form == "unscaled":
            off = self.offset(n, size, -256, 255)
            mn = "stur" if store else "ldur"
            self.emit(f"{mn} {c}{v}, [{base(n)}, #{off}]", f"{mn}.{c}")
        else:
            off = self.offset(n, size, -256, 255)
            txt = (f"{mn} {c}{v}, [{base(n)}, #{off}]!" if form == "pre"
                   else f"{mn} {c}{v}, [{base(n)}], #{off}")
            self.emit(txt, f"{mn}.{c}.{form}", (n,))
            self.moved(n, off)
        if not store:
            self.observe_v(v)

    def fp_pair(self) -> None:
        rng = self.rng
        c, size = rng.choice([("s", 4), ("d", 8), ("q", 16)])
        mn = rng.choice(["ldp", "stp"])
        v = rng.randrange(7)
        n = self.ptr()
        off = self.offset(n, 2 * size, -64 * size, 63 * size, size)
        self.emit(f"{mn} {c}{v}, {c}{v + 1}, [{base(n)}, #{off}]", f"{mn}.{c}")
        if mn == "ldp":
            self.observe_v(v)
            self.observe_v(v + 1)

    def simd_struct(self) -> None:
        rng = self.rng
        k = rng.randint(1, 4)
        store = rng.random() < 0.4
        n = self.ptr()
        v = rng.randrange(0, 8)
        lanes = ""
        kind = rng.random()
        if kind < 0.6:
            arr, nbytes = rng.choice([("16b", 16), ("8h", 16), ("4s", 16), ("2d", 16),
                                      ("8b", 8), ("4h", 8), ("2s", 8)])
            regs = ", ".join(f"v{(v + i) % 32}.{arr}" for i in range(k))
            mn = f"{'st' if store else 'ld'}{k}"
            total = nbytes * k
            op = mn
        elif kind < 0.85:
            el, sz = rng.choice([("b", 1), ("h", 2), ("s", 4), ("d", 8)])
            lane = rng.randrange(16 // sz)
            regs = ", ".join(f"v{(v + i) % 32}.{el}" for i in range(k))
            lanes = f"[{lane}]"
            mn = f"{'st' if store else 'ld'}{k}"
            total = sz * k
            op = mn + ".lane"
        else:
            if store:
                store = False
            arr, sz = rng.choice([("16b", 1), ("8h", 2), ("4s", 4), ("2d", 8)])
            regs = ", ".join(f"v{(v + i) % 32}.{arr}" for i in range(k))
            mn = f"ld{k}r"
            total = sz * k
            op = mn
        if n == 31:
            n = self.ptr(sp_ok=False)
        form = rng.choice(["", "", "imm", "reg"])
        text = f"{mn} {{{regs}}}{lanes}, [x{n}]"
        if form == "imm":
            text += f", #{total}"
            self.moved(n, total)
            op += ".post"
        elif form == "reg":
            text += ", x16"
            op += ".post"
        self.emit(text, op, (n,) if form else ())
        if form == "reg":
            self.moved(n, self.t.x[16])
        if not store:
            for i in range(k):
                if rng.random() < 0.6:
                    self.observe_v((v + i) % 32)

    def exclusive(self) -> None:
        rng = self.rng
        n = self.ptr()
        pair = rng.random() < 0.25
        acq = rng.choice(["", "a"])
        rel = rng.choice(["", "l"])
        if pair:
            size = rng.choice([4, 8])
            a, b = rng.sample(DATA, 2)
            self.emit(f"ld{acq}xp {r(a, size)}, {r(b, size)}, [{base(n)}]", f"ld{acq}xp", (a, b))
            if rng.random() < 0.8:
                s = self.dreg(a, b)
                c, d = rng.choice(DATA), rng.choice(DATA)
                self.maybe_filler()
                if s in (c, d):
                    s = self.dreg(c, d)
                self.emit(f"st{rel}xp w{s}, {r(c, size)}, {r(d, size)}, [{base(n)}]",
                          f"st{rel}xp", (s,))
        else:
            sfx, size = rng.choice(SZ)
            a = self.dreg()
            self.emit(f"ld{acq}xr{sfx} {r(a, size)}, [{base(n)}]", f"ld{acq}xr{sfx}", (a,))
            if rng.random() < 0.8:
                c = rng.choice(DATA + PTRS)
                s = self.dreg(c)
                if n != 31 and rng.random() < 0.15:     # the same address, another tag
                    m = rng.choice([p for p in PTRS if p != n])
                    self.emit(f"addg x{m}, x{n}, #0, #{rng.randint(1, 15)}", "addg", (m,))
                    self.addr[m] = self.addr[n]
                    n = m
                self.maybe_filler()
                if s in (c, n):
                    s = self.dreg(c, n)
                self.emit(f"st{rel}xr{sfx} w{s}, {r(c, size)}, [{base(n)}]", f"st{rel}xr{sfx}",
                          (s,))

    def maybe_filler(self) -> None:
        if self.rng.random() < 0.3:
            d = self.dreg()
            self.emit(f"add x{d}, x{d}, #1", "add", (d,))

    def ordered(self) -> None:
        rng = self.rng
        n = self.ptr()
        kind = rng.choice(["ldar", "stlr", "ldapr", "ldapur", "stlur"])
        if kind in ("ldar", "ldapr", "stlr"):
            sfx, size = rng.choice(SZ)
            t = self.dreg() if kind != "stlr" else rng.choice(DATA + [31])
            self.emit(f"{kind}{sfx} {r(t, size)}, [{base(n)}]", kind + sfx,
                      (t,) if kind != "stlr" else ())
        elif kind == "ldapur":
            sfx, size, w = rng.choice([("b", 1, 4), ("h", 2, 4), ("", 4, 4), ("", 8, 8),
                                       ("sb", 1, 8), ("sh", 2, 8), ("sw", 4, 8), ("sb", 1, 4)])
            t = self.dreg()
            off = self.offset(n, size, -256, 255)
            self.emit(f"ldapur{sfx} {r(t, w)}, [{base(n)}, #{off}]", "ldapur" + sfx, (t,))
        else:
            sfx, size = rng.choice(SZ)
            t = rng.choice(DATA + [31])
            off = self.offset(n, size, -256, 255)
            self.emit(f"stlur{sfx} {r(t, size)}, [{base(n)}, #{off}]", "stlur" + sfx)

    def lse(self) -> None:
        rng = self.rng
        n = self.ptr()
        sfx, size = rng.choice(SZ)
        k = rng.random()
        if k < 0.5:
            opn = rng.choice(LSE_OPS)
            o = rng.choice(ORDER)
            s = rng.choice(DATA + [31])
            if rng.random() < 0.2:
                mn = f"st{opn}{'l' if o in ('l', 'al') else ''}{sfx}"
                self.emit(f"{mn} {r(s, size)}, [{base(n)}]", mn)
            else:
                t = self.dreg()
                mn = f"ld{opn}{o}{sfx}"
                self.emit(f"{mn} {r(s, size)}, {r(t, size)}, [{base(n)}]", mn, (t,))
        elif k < 0.7:
            o = rng.choice(ORDER)
            s, t = rng.choice(DATA + [31]), self.dreg()
            mn = f"swp{o}{sfx}"
            self.emit(f"{mn} {r(s, size)}, {r(t, size)}, [{base(n)}]", mn, (t,))
        elif k < 0.9:
            o = rng.choice(ORDER)
            s, t = self.dreg(), rng.choice(DATA + [31])
            mn = f"cas{o}{sfx}"
            self.poke_at(n, self.t.x[s] if rng.random() < 0.5 else None)
            self.emit(f"{mn} {r(s, size)}, {r(t, size)}, [{base(n)}]", mn, (s,))
        else:
            o = rng.choice(ORDER)
            size = rng.choice([4, 8])
            s, t = rng.sample(EVEN, 2)
            mn = f"casp{o}"
            self.poke_at(n, self.t.x[s] if rng.random() < 0.5 else None)
            self.emit(f"{mn} {r(s, size)}, {r(s + 1, size)}, {r(t, size)}, {r(t + 1, size)}, "
                      f"[{base(n)}]", mn, (s, s + 1))

    def poke_at(self, n: int, value) -> None:
        """Make a CAS compare equal: the area word at the pointer holds the compare value."""
        a = self.addr.get(n)
        if value is None or a is None or len(self.t.pokes) >= 4:
            return
        off = a - layout.AREA
        if 0 <= off < layout.AREA_SIZE and off % 8 == 0:
            self.t.pokes.append((off, value))

    def unpriv(self) -> None:
        rng = self.rng
        n = self.ptr()
        mn, size, w = rng.choice([("ldtr", 8, 8), ("ldtr", 4, 4), ("ldtrb", 1, 4),
                                  ("ldtrh", 2, 4), ("ldtrsb", 1, 8), ("ldtrsh", 2, 4),
                                  ("ldtrsw", 4, 8), ("sttr", 8, 8), ("sttr", 4, 4),
                                  ("sttrb", 1, 4), ("sttrh", 2, 4)])
        off = self.offset(n, size, -256, 255)
        t = self.dreg() if mn.startswith("ld") else rng.choice(DATA + [31])
        self.emit(f"{mn} {r(t, w)}, [{base(n)}, #{off}]", mn, (t,) if mn.startswith("ld") else ())

    def pauth(self) -> None:
        rng = self.rng
        n = self.ptr()
        if rng.random() < 0.3 and 31 in self.addr:
            n = 31
        wb = rng.random() < 0.6
        kb = rng.random() < 0.4
        off = self.offset(n, 8, -4096, 4088, 8)
        t = self.dreg()
        self.emit(encode.ldra_text(kb, t, n, off, wb),
                  ("ldrab" if kb else "ldraa") + (".pre" if wb else ""), (t, n) if wb else (t,))
        if wb:
            self.moved(n, off)

    def tco(self) -> None:
        rng = self.rng
        k = rng.random()
        if k < 0.6:
            self.emit(f"msr tco, #{rng.randint(0, 1)}", "msr tco")
        elif k < 0.8:
            d = self.dreg()
            self.emit(f"msr tco, x{d}", "msr tco.reg")
        else:
            d = self.dreg()
            self.emit(f"mrs x{d}, tco", "mrs tco", (d,))

    def tag_arith(self) -> None:
        rng = self.rng
        n = self.ptr()
        k = rng.random()
        dst = rng.choice(PTRS) if rng.random() < 0.6 else self.dreg()
        bn = base(n)
        if k < 0.35:
            m = rng.choice(DATA + [31])
            if m != 31:
                tail = f", x{m}"
            else:
                tail = "" if rng.random() < 0.5 else ", xzr"
            self.emit(f"irg x{dst}, {bn}{tail}", "irg", (dst,))
            self._derived(dst, n, 0)
        elif k < 0.5:
            m = rng.choice(DATA + PTRS + [31])
            d = self.dreg()
            self.emit(f"gmi x{d}, {bn}, {r(m, 8)}", "gmi", (d,))
        elif k < 0.75:
            imm = rng.randint(0, 4) * 16 if rng.random() < 0.8 else rng.randint(0, 63) * 16
            mn = rng.choice(["addg", "subg"])
            self.emit(f"{mn} {base(dst)}, {bn}, #{imm}, #{rng.randint(0, 15)}", mn, (dst,))
            self._derived(dst, n, imm if mn == "addg" else -imm)
        else:
            m = self.ptr()
            mn = rng.choice(["subp", "subps", "cmpp"])
            d = self.dreg()
            if mn == "cmpp":
                self.emit(f"cmpp {bn}, {base(m)}", "cmpp")
            else:
                self.emit(f"{mn} x{d}, {bn}, {base(m)}", mn, (d,))

    def _derived(self, dst: int, src: int, by: int) -> None:
        if dst in PTRS or dst == 31:
            if src in self.addr:
                self.addr[dst] = self.addr[src] + by

    def stg(self) -> None:
        rng = self.rng
        n = self.ptr()
        mn = rng.choice(["stg", "stzg", "st2g", "stz2g", "stgp"])
        form = rng.choice(["off", "off", "pre", "post"])
        size = 32 if "2g" in mn else 16
        if mn == "stgp":
            off = self.offset(n, 16, -1024, 1008, 16)
            a, b = rng.choice(DATA + [31]), rng.choice(DATA + PTRS + [31])
            regs = f"{r(a, 8)}, {r(b, 8)}"
        else:
            off = self.offset(n, size, -4096, 4080, 16)
            src = rng.choice(PTRS + [31]) if rng.random() < 0.85 else n
            if form != "off" and src == n:
                src = rng.choice([p for p in PTRS if p != n])
            regs = base(src)
        if form == "off":
            self.emit(f"{mn} {regs}, [{base(n)}, #{off}]", mn)
        elif form == "pre":
            self.emit(f"{mn} {regs}, [{base(n)}, #{off}]!", mn + ".pre", (n,))
            self.moved(n, off)
        else:
            self.emit(f"{mn} {regs}, [{base(n)}], #{off}", mn + ".post", (n,))
            self.moved(n, off)

    def ldg(self) -> None:
        n = self.ptr()
        dst = n if n != 31 and self.rng.random() < 0.5 else self.dreg()
        off = self.offset(n, 16, -4096, 4080, 16)
        self.emit(f"ldg x{dst}, [{base(n)}, #{off}]", "ldg", (dst,))

    def bulk(self) -> None:
        rng = self.rng
        n = self.ptr(sp_ok=False)
        k = rng.random()
        if k < 0.45:
            mn = rng.choice(["ldgm", "stgm", "stzgm"])
            t = self.dreg() if mn == "ldgm" else rng.choice(DATA + [31])
            if mn != "ldgm" and rng.random() < 0.5:
                t = 29                              # x29 holds a packed tag pattern
            self.emit(f"{mn} {r(t, 8)}, [x{n}]", mn, (t,) if mn == "ldgm" else ())
        else:
            mn = rng.choice(["gva", "gzva", "zva", "zva"])
            self.emit(f"dc {mn}, x{n}", "dc " + mn)

    def alu(self) -> None:
        rng = self.rng
        d = self.dreg()
        k = rng.random()
        if k < 0.5:
            self.emit(f"add x{d}, x{d}, #1", "add", (d,))
        elif k < 0.7:
            n = self.ptr(sp_ok=False)
            p = rng.choice(PTRS)
            imm = rng.choice([1, 2, 3, 4, 6, 8, 12, 14, 15, 16, 17, 24, 32])
            self.emit(f"add x{p}, x{n}, #{imm}", "add.ptr", (p,))
            if n in self.addr:
                self.addr[p] = self.addr[n] + imm
        elif k < 0.85:
            self.emit(f"adds x{d}, x{d}, x{self.dreg()}", "adds", (d,))
        else:
            v = rng.randrange(8)
            self.emit(f"dup v{v}.2d, x{self.dreg()}", "dup")


FAMILIES = [("int_single", 18), ("int_pair", 8), ("fp_single", 5), ("fp_pair", 3),
            ("simd_struct", 5), ("exclusive", 6), ("ordered", 7), ("lse", 12), ("unpriv", 4),
            ("pauth", 4), ("tco", 3), ("tag_arith", 8), ("stg", 8), ("ldg", 4), ("bulk", 7),
            ("alu", 6)]


def area_tags(rng: random.Random) -> list[int]:
    k = rng.random()
    t0 = rng.randrange(16)
    if k < 0.35:
        tags = [t0] * layout.GRANULES
    elif k < 0.8:
        tags = []
        t = t0
        while len(tags) < layout.GRANULES:
            tags += [t] * rng.choice([1, 2, 4, 8, 16, 64, 128])
            t = rng.choice([t0, t0, rng.randrange(16)])
        tags = tags[:layout.GRANULES]
    else:
        tags = [rng.randrange(16) for _ in range(layout.GRANULES)]
    for h in HOT[1:4]:                    # sometimes a different tag just across a boundary
        if rng.random() < 0.3:
            g = h // 16 + rng.choice([-1, 0])
            tags[g] = rng.randrange(16)
    return tags


def pointer(rng: random.Random, tags: list[int]) -> tuple[int, int]:
    """(register value, untagged address) of a pointer into the area."""
    k = rng.random()
    if k < 0.7:
        off = rng.choice(HOT) + rng.randint(-6, 5) * 16
    else:
        off = rng.randrange(0, layout.AREA_SIZE, 16)
    off = max(-64, min(layout.AREA_SIZE + 48, off))
    if rng.random() < 0.25:
        off += rng.choice([1, 2, 4, 6, 8, 12, 14, 15])
    addr = layout.AREA + off
    g = off // 16
    mem_tag = tags[g] if 0 <= g < layout.GRANULES else 0
    k = rng.random()
    tag = mem_tag if k < 0.6 else rng.randrange(16) if k < 0.92 else 0
    va = addr
    if rng.random() < 0.12:
        va += layout.ALIAS
    top = tag << 56
    if rng.random() < 0.02:
        top |= 1 << 55
    return va | top, addr


def data_value(rng: random.Random) -> int:
    k = rng.random()
    if k < 0.4:
        return rng.getrandbits(64)
    if k < 0.7:
        return rng.randrange(256)
    if k < 0.85:
        return rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0xF1, 0x41, 0x8000, 0x7FFFFFFF, 0x80000000,
                           0xFFFFFFFF, 2**63, 2**64 - 1])
    return rng.getrandbits(16) << 8 | rng.randrange(16) << 56


def generate(seed: int, tid: int, el_mix: float = 0.3, max_body: int = 10) -> Test:
    rng = random.Random((seed << 32) ^ tid)
    tcf_choice = [0, 1, 1, 1, 2, 2, 3, 3]
    t = Test(id=tid)
    t.el = 0 if rng.random() < el_mix else 1
    t.tcf, t.tcf0 = rng.choice(tcf_choice), rng.choice(tcf_choice)
    t.ata = int(rng.random() < 0.9)
    t.ata0 = int(rng.random() < 0.9)
    t.align = int(rng.random() < 0.12)
    t.tbi0 = int(rng.random() < 0.92)
    t.tcma0 = int(rng.random() < 0.2)
    t.tco = int(rng.random() < 0.08)
    t.nzcv = rng.randrange(16)
    excl = rng.choice([0, 0, 1, 0x8001, 0xFFFF, 0x7FFF, rng.getrandbits(16)])
    t.gcr = excl                                   # RRND = 0: the LFSR, deterministic
    t.rgsr = (rng.randrange(1, 0x10000) << 8) | rng.randrange(16)
    t.seed = rng.getrandbits(64) | 1
    t.tags = area_tags(rng)
    g = Gen(rng, t)
    for p in PTRS:
        t.x[p], g.addr[p] = pointer(rng, t.tags)
    sp, spa = pointer(rng, t.tags)
    t.sp = sp & ~15
    g.addr[31] = spa & ~15
    for d in range(8, 31):
        t.x[d] = data_value(rng)
    t.x[16] = rng.choice([0, 1, 8, 16, 15, 32, 2**64 - 16, 2**64 - 1, 4, 64])
    t.x[17] = rng.choice([0, 1, 8, 16, 0xFFFFFFF0, 0xFFFFFFFF, 0x80000000]) | (rng.getrandbits(8) << 32)
    t.x[29] = rng.getrandbits(64)
    names = [f for f, _ in FAMILIES]
    weights = [w for _, w in FAMILIES]
    n = rng.randint(1, max_body)
    while len(g.body) < n:
        getattr(g, rng.choices(names, weights)[0])()
    t.body = g.body
    return t


def generate_many(seed: int, start: int, count: int) -> list[Test]:
    return [generate(seed, i) for i in range(start, start + count)]
