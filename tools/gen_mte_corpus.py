#!/usr/bin/env python3
"""Write the generated assembler corpora in tests/corpus:

- mte_corpus.s: every MTE form with operands across their legal range. Register numbers
  include SP/XZR where the form allows them; immediates cover every boundary (STG-family
  offsets -4096..4080, ADDG/SUBG offsets 0..1008 and tags 0..15, STGP -1024..1008).
- pauth.s: every FEAT_PAuth form (PAC*/AUT*/XPAC*, PACGA, the authenticating branches and
  returns, LDRAA/LDRAB with offsets -4096..4088 in steps of 8, with and without writeback).
- el2_sysregs.s: the system registers, PSTATE fields and AT/TLBI operations a hypervisor uses.

The tests assemble each with the builtin assembler, GNU as and llvm-mc and require identical
bytes. Usage: python tools/gen_mte_corpus.py [OUT]  (with OUT: the MTE corpus only, there;
--help for more)
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_DIR = os.path.join(HERE, "..", "tests", "corpus")
DEFAULT_OUT = os.path.join(CORPUS_DIR, "mte_corpus.s")

SP_REGS = ["x0", "x1", "x15", "x29", "x30", "sp"]
ZR_REGS = ["x0", "x2", "x16", "x28", "x30", "xzr"]
SYSREGS = ["tco", "gcr_el1", "rgsr_el1", "tfsr_el1", "tfsre0_el1", "tfsr_el2", "tfsr_el12",
           "tfsr_el3"]
DC_OPS = ["gva", "gzva", "cgvac", "cgdvac", "cgvap", "cgdvap", "cgvadp", "cgdvadp", "cigvac",
          "cigdvac", "igvac", "igdvac", "igsw", "igdsw", "cgsw", "cgdsw", "cigsw", "cigdsw"]
STG_OFFSETS = [-4096, -4080, -2048, -256, -32, -16, 0, 16, 32, 256, 2048, 4064, 4080]
STGP_OFFSETS = [-1024, -1008, -512, -64, -16, 0, 16, 64, 512, 992, 1008]


def lines() -> list[str]:
    out: list[str] = []
    add = out.append
    # IRG <Xd|SP>, <Xn|SP>{, <Xm>}
    for i, d in enumerate(SP_REGS):
        for j, n in enumerate(SP_REGS):
            add(f"irg {d}, {n}")
            add(f"irg {d}, {n}, {ZR_REGS[(i + j) % len(ZR_REGS)]}")
    # GMI <Xd>, <Xn|SP>, <Xm>
    for d, n, m in zip(ZR_REGS, SP_REGS, reversed(ZR_REGS)):
        add(f"gmi {d}, {n}, {m}")
    # SUBP/SUBPS <Xd>, <Xn|SP>, <Xm|SP>; CMPP <Xn|SP>, <Xm|SP>
    for op in ("subp", "subps"):
        for d, n, m in zip(ZR_REGS, SP_REGS, reversed(SP_REGS)):
            add(f"{op} {d}, {n}, {m}")
    for n, m in zip(SP_REGS, reversed(SP_REGS)):
        add(f"cmpp {n}, {m}")
    # ADDG/SUBG <Xd|SP>, <Xn|SP>, #uimm6*16, #uimm4: every offset, every tag
    for op in ("addg", "subg"):
        for k in range(64):
            d = SP_REGS[k % len(SP_REGS)]
            n = SP_REGS[(k // 2) % len(SP_REGS)]
            add(f"{op} {d}, {n}, #{k * 16}, #{k % 16}")
    # STG family: three addressing forms, Xt may be SP
    for op in ("stg", "stzg", "st2g", "stz2g"):
        for k, off in enumerate(STG_OFFSETS):
            t = SP_REGS[k % len(SP_REGS)]
            n = SP_REGS[(k + 1) % len(SP_REGS)]
            add(f"{op} {t}, [{n}, #{off}]")
            add(f"{op} {t}, [{n}, #{off}]!")
            add(f"{op} {t}, [{n}], #{off}")
        add(f"{op} x3, [x4]")
        add(f"{op} sp, [sp]")
    # LDG <Xt>, [<Xn|SP>{, #simm}]
    for k, off in enumerate(STG_OFFSETS):
        add(f"ldg {ZR_REGS[k % len(ZR_REGS)]}, [{SP_REGS[k % len(SP_REGS)]}, #{off}]")
    add("ldg x9, [x10]")
    # STGP <Xt>, <Xt2>, addressing forms
    for k, off in enumerate(STGP_OFFSETS):
        t = ZR_REGS[k % len(ZR_REGS)]
        t2 = ZR_REGS[(k + 2) % len(ZR_REGS)]
        n = SP_REGS[k % len(SP_REGS)]
        add(f"stgp {t}, {t2}, [{n}, #{off}]")
        add(f"stgp {t}, {t2}, [{n}, #{off}]!")
        add(f"stgp {t}, {t2}, [{n}], #{off}")
    add("stgp x5, x6, [x7]")
    # Bulk forms
    for op in ("ldgm", "stgm", "stzgm"):
        for t, n in zip(ZR_REGS, SP_REGS):
            add(f"{op} {t}, [{n}]")
    # Cache and tag maintenance
    for op in DC_OPS:
        for t in ("x0", "x17", "x30", "xzr"):
            add(f"dc {op}, {t}")
    # PSTATE.TCO and the system registers
    add("msr tco, #0")
    add("msr tco, #1")
    for r in SYSREGS + ["gmid_el1"]:
        for t in ("x0", "x30", "xzr"):
            add(f"mrs {t}, {r}")
    for r in SYSREGS:
        for t in ("x1", "x29", "xzr"):
            add(f"msr {r}, {t}")
    # Other spellings GNU as accepts: upper case, hex immediates, spacing
    add("IRG X0, SP, X1")
    add("STG X0, [X1, #0x10]!")
    add("addg x0, x1, #0x3f0, #0xf")
    add("stg x0,[x1,#-16]")
    add("ldg x0, [ sp , #16 ]")
    add("MRS X3, GCR_EL1")
    add("DC GZVA, X9")
    return out


X_REGS = ["x0", "x1", "x7", "x15", "x16", "x29", "x30"]
PAC_MODIFIER = ["pacia", "pacib", "pacda", "pacdb", "autia", "autib", "autda", "autdb"]
PAC_ZERO = ["paciza", "pacizb", "pacdza", "pacdzb", "autiza", "autizb", "autdza", "autdzb",
            "xpaci", "xpacd"]
PAC_HINTS = ["xpaclri", "pacia1716", "pacib1716", "autia1716", "autib1716", "paciaz", "paciasp",
             "pacibz", "pacibsp", "autiaz", "autiasp", "autibz", "autibsp"]
LDRA_OFFSETS = [-4096, -4088, -2048, -512, -8, 0, 8, 16, 504, 512, 2048, 4080, 4088]


def pauth_lines() -> list[str]:
    out: list[str] = []
    add = out.append
    d_regs = X_REGS + ["xzr"]
    n_regs = X_REGS + ["sp"]
    # PAC*/AUT* <Xd>, <Xn|SP>
    for op in PAC_MODIFIER:
        for k, d in enumerate(d_regs):
            add(f"{op} {d}, {n_regs[(k + 3) % len(n_regs)]}")
    # PAC*Z*/AUT*Z*/XPAC* <Xd>
    for op in PAC_ZERO:
        for d in d_regs:
            add(f"{op} {d}")
    # HINT-space forms
    for op in PAC_HINTS:
        add(op)
    # PACGA <Xd>, <Xn>, <Xm|SP>
    for k, d in enumerate(d_regs):
        add(f"pacga {d}, {d_regs[(k + 2) % len(d_regs)]}, {n_regs[(k + 5) % len(n_regs)]}")
    # BRA*/BLRA* <Xn>, <Xm|SP>; BRA*Z/BLRA*Z <Xn>
    for op in ("braa", "brab", "blraa", "blrab"):
        for k, n in enumerate(d_regs):
            add(f"{op} {n}, {n_regs[(k + 1) % len(n_regs)]}")
    for op in ("braaz", "brabz", "blraaz", "blrabz"):
        for n in d_regs:
            add(f"{op} {n}")
    for op in ("retaa", "retab", "eretaa", "eretab"):
        add(op)
    # LDRAA/LDRAB <Xt>, [<Xn|SP>{, #simm10*8}]{!}
    for op in ("ldraa", "ldrab"):
        for k, off in enumerate(LDRA_OFFSETS):
            t = d_regs[k % len(d_regs)]
            n = n_regs[(k + 4) % len(n_regs)]
            add(f"{op} {t}, [{n}, #{off}]")
            add(f"{op} {t}, [{n}, #{off}]!")
        add(f"{op} x3, [x4]")
        add(f"{op} x5, [sp]!")
    # Other spellings: upper case, hex offsets, spacing
    add("PACIA X0, SP")
    add("LDRAB X1, [X2, #0x10]!")
    add("ldraa x0,[x1,#-8]")
    add("RETAB")
    return out


# The registers and operations of a hypervisor's world switch, MMU and trap setup
EL2_SYSREGS = [
    "hcr_el2", "sctlr_el2", "tcr_el2", "ttbr0_el2", "ttbr1_el2", "mair_el2", "vbar_el2",
    "esr_el2", "far_el2", "hpfar_el2", "elr_el2", "spsr_el2", "vttbr_el2", "vtcr_el2",
    "tfsr_el2", "tfsr_el12", "cptr_el2", "cnthctl_el2", "cntvoff_el2", "vpidr_el2",
    "vmpidr_el2", "mdcr_el2", "hstr_el2", "hacr_el2", "actlr_el2", "tpidr_el2",
    "contextidr_el2", "cnthp_ctl_el2", "cnthp_cval_el2", "cnthp_tval_el2", "cnthv_ctl_el2",
    "cnthv_cval_el2", "cnthv_tval_el2", "vsesr_el2", "vdisr_el2", "vncr_el2", "vsttbr_el2",
    "vstcr_el2", "scxtnum_el2", "trfcr_el2", "ich_hcr_el2", "ich_vmcr_el2", "ich_elrsr_el2",
    "sctlr_el12", "cpacr_el12", "ttbr0_el12", "ttbr1_el12", "tcr_el12", "spsr_el12",
    "elr_el12", "afsr0_el12", "afsr1_el12", "esr_el12", "far_el12", "mair_el12", "amair_el12",
    "vbar_el12", "contextidr_el12", "cntkctl_el12", "scxtnum_el12", "trfcr_el12",
    "cntp_tval_el02", "cntp_ctl_el02", "cntp_cval_el02", "cntv_tval_el02", "cntv_ctl_el02",
    "cntv_cval_el02", "apiakeylo_el1", "apiakeyhi_el1", "apibkeylo_el1", "apibkeyhi_el1",
    "apdakeylo_el1", "apdakeyhi_el1", "apdbkeylo_el1", "apdbkeyhi_el1", "apgakeylo_el1",
    "apgakeyhi_el1", "pan", "uao", "dit", "ssbs", "sp_el1", "sp_el2",
]
EL2_OPS = [
    "hvc #0", "hvc #0x1234", "hvc #0xffff", "smc #0", "smc #0xffff", "eret",
    "tlbi ipas2e1is, x0", "tlbi ipas2le1is, x1", "tlbi ipas2e1, x2", "tlbi vmalls12e1is",
    "tlbi vmalls12e1", "tlbi alle2", "tlbi alle2is", "tlbi alle1is", "tlbi vae2is, x3",
    "tlbi vale2, x4", "tlbi vmalle1os", "tlbi vae1os, x5", "tlbi aside1os, x6",
    "tlbi vaae1os, x7", "tlbi vale1os, x8", "tlbi vaale1os, x9", "tlbi ipas2e1os, x10",
    "tlbi ipas2le1os, x11", "tlbi alle2os", "tlbi vae2os, x12", "tlbi alle1os",
    "tlbi vale2os, x13", "tlbi vmalls12e1os",
    "at s1e1r, x0", "at s1e1w, x1", "at s1e0r, x2", "at s1e2r, x3", "at s1e2w, x4",
    "at s12e1r, x0", "at s12e1w, x5", "at s12e0r, x6", "at s12e0w, x7", "at s1e1rp, x8",
    "at s1e1wp, xzr",
    "msr pan, #0", "msr pan, #1", "msr uao, #1", "msr dit, #1", "msr ssbs, #0",
]


def el2_lines() -> list[str]:
    out: list[str] = []
    for k, r in enumerate(EL2_SYSREGS):
        t = ("x0", "x17", "x30", "xzr")[k % 4]
        out.append(f"mrs {t}, {r}")
        if r != "ich_elrsr_el2":            # read-only (GNU as warns)
            out.append(f"msr {r}, {t}")
    out += EL2_OPS
    out += ["MRS X1, HCR_EL2", "msr SCTLR_EL12, x2", "mrs x3, TTBR1_EL2"]
    return out


HEADER = ("// Generated by tools/gen_mte_corpus.py: {what}.\n"
          "// Assembled by the builtin assembler, GNU as ({gas}) and\n"
          "// llvm-mc ({llvm}), the bytes must be identical. Do not edit by hand.\n"
          "        .text\n")
CORPORA = {
    "mte_corpus.s": (lines, "every MTE form across its operand ranges",
                     "-march=armv8.5-a+memtag", "-mattr=+mte"),
    "pauth.s": (pauth_lines, "every FEAT_PAuth form across its operand ranges",
                "-march=armv8.3-a", "-mattr=+pauth"),
    "el2_sysregs.s": (el2_lines, "the system registers and operations a hypervisor uses",
                      "-march=armv8.5-a+memtag", "-mattr=+v8.5a,+mte"),
}


def write(parser: argparse.ArgumentParser, name: str, out: str) -> None:
    gen, what, gas, llvm = CORPORA[name]
    body = gen()
    try:
        with open(out, "w") as f:
            f.write(HEADER.format(what=what, gas=gas, llvm=llvm) +
                    "".join(f"        {l}\n" for l in body))
    except OSError as e:
        parser.exit(2, f"{parser.prog}: error: cannot write {out}: {e.strerror}\n")
    print(f"wrote {len(body)} instructions to {os.path.relpath(out)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gen_mte_corpus.py",
        description="Write every MTE form, every FEAT_PAuth form and the EL2 system registers "
                    "with operands across their legal range, as GNU as source, for the builtin "
                    "assembler / GNU as / llvm-mc comparison.")
    parser.add_argument("out", nargs="?", metavar="OUT",
                        help="write only the MTE corpus, to this file (default: every corpus, "
                             "in tests/corpus)")
    args = parser.parse_args(argv)
    if args.out:
        write(parser, "mte_corpus.s", args.out)
        return 0
    for name in CORPORA:
        write(parser, name, os.path.join(CORPUS_DIR, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
