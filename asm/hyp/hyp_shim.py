"""hyp.S's EL2, in Python, for the EL2 shim: what asm/hyp/hyp.S does at EL2 for the guest
asm/hyp/guest.S, written against the shim's VM exits instead of EL2's vectors.

    aarch64mte run asm/hyp/guest.S --profile virt --el2 shim --stage2 asm/hyp/stage2.toml \\
        --hcr ATA=1 --el2-handler asm/hyp/hyp_shim.py --set x0=0

The contract (docs/el2-programs.md, "The hypercall ABI and what EL2 does on each exit"):
HVC #0 with the function in x0 -- DONE ends the run with the number of failed checks as its
exit status, PRINT, CHECK (prints ``ok NAME`` or ``FAIL NAME got=0x.. want=0x..``), LAST_EXIT,
TAG_PEEK, TAG_POKE; a stage-2 Translation fault on a demand page zeroes the page's data and
tags and maps it; one in the MMIO window is emulated from the ISV syndrome; a stage-2
Permission fault and a trapped MSR/MRS are answered and skipped; anything else prints
``FAIL hyp.unexpected_exit`` and ends the run.

The guest's addresses are read from guest.S's own ``.equ`` lines, so the two cannot drift.
"""
from __future__ import annotations

import re
from pathlib import Path

from aarch64mte.el2 import Resume, Stop

HVC_DONE, HVC_PRINT, HVC_CHECK, HVC_LAST_EXIT, HVC_TAG_PEEK, HVC_TAG_POKE = range(6)
EC_HVC64, EC_SYSREG, EC_DABT_LOWER = 0x16, 0x18, 0x24
DEVICE_VALUE = 0xF0E1D2C3B4A59687        # what every register of the emulated device reads
STALE_TAG, STALE_WORD = 0xA, 0xDEADBEEF   # what hyp.S leaves on the demand pages beforehand
PAGE = 0x1000
LINE_MAX = 255                            # hyp.S's line buffer holds 255 characters
MASK64 = (1 << 64) - 1
# trapped-register keys: the ISS without Rt [9:5] and Direction [0]
ISS_REGISTER_MASK = 0x3FFC1E
GMID_EL1_KEY = 0x384000                   # S3_1_C0_C0_4
ID_AA64PFR1_EL1_KEY = 0x320008            # S3_0_C0_C4_1


def guest_constants(path: Path = Path(__file__).with_name("guest.S")) -> dict:
    """guest.S's ``.equ NAME, VALUE`` lines."""
    text = path.read_text()
    return {name: int(value, 0) for name, value in
            re.findall(r"^\s*\.equ\s+(\w+),\s*(0x[0-9a-fA-F]+|\d+)\s*(?://.*)?$", text, re.M)}


G = guest_constants()
DEMAND_PAGES = (G["DEMAND_IPA"], G["DEMAND_STG_IPA"], G["DEMAND_LDG_IPA"], G["DEMAND_GZVA_IPA"])
MMIO_IPA = G["MMIO_IPA"]
# TAG_PEEK/TAG_POKE reach guest RAM and the special pages after it, no further (hyp.S's
# guest_tag_range)
TAG_RANGE = (G["GUEST_RAM"], G["DEMAND_GZVA_IPA"] + PAGE)


def hex_(v: int) -> str:
    """hyp.S's out_hex: 0x and lower-case digits, no leading zeros."""
    return f"{v & MASK64:#x}"


class HypShim:
    """The state hyp.S keeps in its data section, and its exit handler."""

    def __init__(self, shim) -> None:
        self.shim = shim
        self.m = shim.m
        self.checks = 0
        self.failed = 0
        # exit_log: ESR, FAR, HPFAR (or the IPA AT S1E1R gives), count, MMIO store data
        self.last = [0, 0, 0, 0, 0]
        self.mapped = set()
        for ipa in DEMAND_PAGES:             # a previous owner's data and tags
            pa = self.pa_of(ipa)
            self.m.write_mem(pa, STALE_WORD.to_bytes(4, "little") * (PAGE // 4), physical=True)
            self.m.tags.fill(pa, PAGE // 16, STALE_TAG)

    # --- helpers ---------------------------------------------------------------------------
    def pa_of(self, ipa: int) -> int:
        """Where stage 2 sends ``ipa``; IPA = PA for what it does not map yet (hyp.S's map)."""
        mapping = self.shim.stage2.lookup(ipa)
        return ipa if mapping is None else mapping.pa + (ipa - mapping.ipa)

    def x(self, n: int) -> int:
        return 0 if n == 31 else self.m.reg(f"x{n}")

    def set_x(self, n: int, value: int) -> None:
        if n != 31:
            self.m.set_reg(f"x{n}", value & MASK64)

    def out(self, text: str) -> None:
        self.shim.write_console(text)

    def string(self, ipa: int) -> str:
        """The NUL-terminated string at an IPA, cut where hyp.S's line buffer ends."""
        out = bytearray()
        while len(out) < LINE_MAX:
            a = ipa + len(out)
            chunk = self.m.read_mem(self.pa_of(a), min(LINE_MAX - len(out), PAGE - a % PAGE),
                                    physical=True)
            end = chunk.find(b"\0")
            if end >= 0:
                out += chunk[:end]
                break
            out += chunk
        return out.decode("latin-1")

    def report(self, name: str, got: int, want: int) -> bool:
        self.checks += 1
        if got == want:
            self.out(f"ok {name}\n")
            return True
        self.failed += 1
        self.out(f"FAIL {name} got={hex_(got)} want={hex_(want)}\n")
        return False

    def log_exit(self, esr: int, far: int, hpfar: int) -> None:
        self.last[0:3] = [esr, far, hpfar]
        self.last[3] += 1

    def finish(self, failed_extra: int = 0) -> Stop:
        self.checks += failed_extra
        self.failed += failed_extra
        self.out(f"# {self.checks} checks, {self.failed} failed\n")
        return Stop(code=self.failed)

    def unexpected(self, e) -> Stop:
        self.out(f"FAIL hyp.unexpected_exit esr={hex_(e.esr_el2)} far={hex_(e.far_el2 or 0)} "
                 f"elr={hex_(e.preferred_return)}\n")
        return self.finish(failed_extra=1)

    # --- the exits -------------------------------------------------------------------------
    def __call__(self, e):
        if e.ec == EC_HVC64:
            return self.hypercall(e)
        if e.ec == EC_DABT_LOWER:
            return self.data_abort(e)
        if e.ec == EC_SYSREG:
            return self.sysreg(e)
        return self.unexpected(e)

    def hypercall(self, e):
        fn = self.x(0)
        if fn == HVC_DONE:
            return self.finish()
        if fn == HVC_PRINT:
            self.out(self.string(self.x(1)))
            self.set_x(0, 0)
        elif fn == HVC_CHECK:
            self.set_x(0, int(self.report(self.string(self.x(1)), self.x(2), self.x(3))))
        elif fn == HVC_LAST_EXIT:
            for n, v in enumerate(self.last):
                self.set_x(n, v)
        elif fn in (HVC_TAG_PEEK, HVC_TAG_POKE):
            ipa = self.x(1)
            if not TAG_RANGE[0] <= ipa < TAG_RANGE[1]:
                self.set_x(0, -1)
            elif fn == HVC_TAG_PEEK:
                self.set_x(0, self.m.tags.get(self.pa_of(ipa)))
            else:
                self.m.tags.set(self.pa_of(ipa), self.x(2) & 0xF)
                self.set_x(0, 0)
        else:
            self.set_x(0, -1)                  # unknown function
        return Resume()                        # ELR_EL2 is already past the HVC

    def data_abort(self, e):
        esr = e.esr_el2
        hpfar = ((e.ipa or 0) >> 12) << 4      # HPFAR_EL2.FIPA = IPA[51:12] in bits [43:4]
        self.log_exit(esr, e.far_el2 or 0, hpfar)
        dfsc = esr & 0x3C                      # without the level
        if dfsc == 0x0C:
            # Permission fault: HPFAR_EL2 is UNKNOWN; take the IPA from AT S1E1R, as KVM does
            ipa = self.shim.stage1_ipa(e.far_el2)
            if ipa is None:
                return self.unexpected(e)
            self.last[2] = (ipa >> 12) << 4
            return Resume(skip=True)
        if dfsc != 0x04:
            return self.unexpected(e)
        page = (hpfar >> 4) << 12
        if page in DEMAND_PAGES and page not in self.mapped:
            pa = self.pa_of(page)
            self.m.write_mem(pa, bytes(PAGE), physical=True)
            self.m.tags.fill(pa, PAGE // 16, 0)
            self.shim.map(page, pa, PAGE, "normal-wb", "rw")
            self.mapped.add(page)
            return Resume()                    # retry the access
        if page == MMIO_IPA:
            return self.mmio(esr)
        return self.unexpected(e)

    def mmio(self, esr: int):
        """Emulate a single-register access from its syndrome (ISV 24, SAS 23:22, SSE 21,
        SRT 20:16, SF 15, WnR 6); without ISV there is nothing to emulate."""
        if not esr >> 24 & 1:
            return Resume(skip=True)
        bits = 8 << (esr >> 22 & 3)
        srt = esr >> 16 & 31
        mask = (1 << bits) - 1
        if esr >> 6 & 1:                        # a store: record its data
            self.last[4] = self.x(srt) & mask
            return Resume(skip=True)
        value = DEVICE_VALUE & mask
        if esr >> 21 & 1 and value >> (bits - 1):
            value |= MASK64 & ~mask              # sign-extend to 64 bits
        if not esr >> 15 & 1:
            value &= 0xFFFF_FFFF                 # a W register: the upper half is zero
        self.set_x(srt, value)
        return Resume(skip=True)

    def sysreg(self, e):
        """A trapped MSR is ignored; a trapped MRS reads GMID_EL1.BS = 4, ID_AA64PFR1_EL1 with
        MTE = 2, else 0."""
        iss = e.esr_el2 & 0x1FFFFFF
        self.log_exit(e.esr_el2, 0, 0)
        if iss & 1:                              # Direction 1: a read (MRS)
            key = iss & ISS_REGISTER_MASK
            value = 0
            if key == GMID_EL1_KEY:
                value = 4
            elif key == ID_AA64PFR1_EL1_KEY:
                value = (self.m.sysreg("ID_AA64PFR1_EL1") & ~0xF00) | 0x200
            self.set_x(iss >> 5 & 31, value)
        return Resume(skip=True)


def make_handler(shim):
    return HypShim(shim)
