"""ID registers, illegal exception returns, PC alignment, and the words Unicorn cannot translate.

- ID_AA64MMFR2_EL1.AT = 1 (FEAT_LSE2: the 16-byte rule of the alignment tests),
  ID_AA64PFR2_EL1.MTEPERM = 1 (FEAT_MTE_PERM), ID_AA64PFR0_EL1.EL0 = EL1 = 1 (AArch64 only).
- AArch64.ExceptionReturn: an illegal return (IllegalExceptionReturn: SPSR.M names AArch32
  where no EL implements it, or an EL that is not implemented) keeps PSTATE.EL and PSTATE.SP,
  sets PSTATE.IL, and branches to ELR; the instruction there takes the Illegal Execution state
  exception (EC 0x0E) with ELR = its address and SPSR.IL = 1. A legal return restores
  PSTATE.IL from SPSR.IL, with the same result.
- PC alignment (AArch64.PCAlignmentFault): executing at a PC with bits 1:0 != 00 takes EC 0x22,
  FAR = ELR = that PC, before anything of the instruction there is done.
- A word without an instruction of an implemented feature is UNDEFINED: EC 0x00.
"""
import pytest

import conformance_support as cs
from conformance_support import harness, native, side  # noqa: F401  (fixtures)
from conformance_support import (ILLEGAL_STATE, PC_ALIGN, SPSR_IL, UNDEFINED, ended, run_body)

H = cs.REGISTRY
IDS = ["mrs x9, s3_0_c0_c7_2",      # ID_AA64MMFR2_EL1
       "mrs x10, id_aa64pfr0_el1",
       "mrs x11, s3_0_c0_c4_2",     # ID_AA64PFR2_EL1
       "mrs x12, s3_0_c0_c6_3",     # ID_AA64ISAR3_EL1
       "mrs x13, s3_0_c0_c4_7"]     # ID_AA64FPFR0_EL1
H.add("id_registers", IDS)
ERET_TO = lambda spsr: ["adr x12, 1f", "msr elr_el1, x12", f"mov x13, #{spsr:#x}",
                        "msr spsr_el1, x13", "eret", "1: nop"]
H.add("eret_to_el2h", ERET_TO(0b01001))
H.add("eret_legal_with_il", ["adr x12, 1f", "msr elr_el1, x12", "mov x13, #0b0100",
                             "orr x13, x13, #(1 << 20)", "msr spsr_el1, x13", "eret", "1: nop"])
H.add("br_misaligned", ["adr x12, 1f", "add x12, x12, #2", "br x12", "1: nop", "nop"])
UNALLOCATED = [0x4E562DBA, 0x0E422C20]
UNIMPLEMENTED = [0x2EC21C20, 0x6EC23C20]     # FAMIN (FEAT_FAMINMAX), FSCALE (FEAT_FP8)
for w in UNALLOCATED:
    H.add(f"word_{w:08x}", [f".inst {w:#x}", "nop"])

# Bodies the emulator cannot finish today, each in its own harness so that a stop does not
# take the other bodies' results with it.
FRAGILE = {f"word_{w:08x}": ([f".inst {w:#x}", "nop"], {}) for w in UNIMPLEMENTED}
FRAGILE["pc_straddle"] = (["adr x12, 1f", "add x12, x12, #2", "br x12",
                           "1: .inst 0xd503d503", ".inst 0xcae1cae1"], {})


@pytest.fixture(scope="module")
def fragile(tmp_path_factory):
    out = {}
    for name, (body, kw) in FRAGILE.items():
        h = cs.Harness(tmp_path_factory.mktemp(name))
        h.add(name, body, **kw)
        out[name] = h
    return out


# --- 12. ID registers -----------------------------------------------------------------------------
def test_id_registers_advertise_lse2_mte_perm_and_aarch64_only(native):
    run = run_body("\n".join(IDS) + "\n", native)
    ended(run)
    assert (run.reg("x9") >> 32) & 0xF == 1          # ID_AA64MMFR2_EL1.AT: FEAT_LSE2
    assert run.reg("x11") & 0xF == 1                 # ID_AA64PFR2_EL1.MTEPERM
    assert run.reg("x10") & 0xF == 1                 # ID_AA64PFR0_EL1.EL0: AArch64 only
    assert (run.reg("x10") >> 4) & 0xF == 1          # .EL1: AArch64 only
    assert (run.reg("x10") >> 8) & 0xF == 0          # .EL2: not implemented (no virtualization)
    assert (run.reg("x12") >> 4) & 0xF == 0          # ID_AA64ISAR3_EL1.FAMINMAX: absent
    assert run.reg("x13") == 0                       # ID_AA64FPFR0_EL1: no FEAT_FP8 formats


def test_id_registers_on_harness(side, harness):
    # QEMU 10's max CPU has FEAT_LSE2 too. It also implements AArch32 at EL0 and EL1
    # (PFR0.EL0 = EL1 = 2) and no FEAT_MTE_PERM: choices of an implementation, not departures.
    r = harness.result(side, "id_registers")
    assert (r.regs[9] >> 32) & 0xF == 1
    assert (r.regs.get(12, 0) >> 4) & 0xF == 0 and r.regs.get(13, 0) == 0
    if side != "qemu":
        assert r.regs[10] & 0xFF == 0x11 and r.regs[11] & 0xF == 1


# --- 13. illegal exception returns ----------------------------------------------------------------
@pytest.mark.parametrize("spsr_m,why", [(0b10000, "AArch32 User: AArch32 is not implemented"),
                                        (0b01001, "EL2h: EL2 is not implemented"),
                                        (0b01000, "EL2t: EL2 is not implemented"),
                                        (0b01100, "EL3t: EL3 is not implemented"),
                                        (0b00010, "a reserved M value")])
def test_illegal_exception_return(native, spsr_m, why):
    # PSTATE after the return: EL1h kept, IL set, the rest from SPSR (here all 0); the NOP at
    # ELR takes EC 0x0E with ELR = its address and SPSR = IL | EL1h (0x00100005).
    run = run_body(f"adr x12, target\nmsr elr_el1, x12\nmov x13, #{spsr_m:#x}\n"
                   "msr spsr_el1, x13\neret\ntarget: nop\nafter: mov x14, #1\n", native)
    ended(run)
    assert [(e.esr, e.elr, e.spsr) for e in run.log] == [
        (ILLEGAL_STATE, run.sym("target"), SPSR_IL | 0b00101)], why
    assert run.reg("x14") == 1 and run.reg("el") == 1


@pytest.mark.parametrize("mode", [pytest.param(0b00100, id="el1t"),
                                  pytest.param(0b00101, id="el1h"),
                                  pytest.param(0b00000, id="el0t")])
def test_legal_return_restores_pstate_il(native, mode):
    # AArch64.ExceptionReturn sets PSTATE.IL from SPSR.IL even when the return is legal: the
    # first instruction at ELR takes the Illegal Execution state exception.
    run = run_body(f"adr x12, target\nmsr elr_el1, x12\nmov x13, #{mode:#x}\n"
                   "orr x13, x13, #(1 << 20)\nmsr spsr_el1, x13\neret\ntarget: nop\n"
                   "mov x14, #1\n", native)
    ended(run)
    assert [(e.esr, e.elr, e.spsr & (SPSR_IL | 0x1F)) for e in run.log][:1] == [
        (ILLEGAL_STATE, run.sym("target"), SPSR_IL | mode)]


def test_illegal_return_to_el2_on_harness(side, harness):
    # the body runs at EL1t: the NOP at ELR (offset 20) takes EC 0x0E
    r = harness.result(side, "eret_to_el2h")
    assert r.exc[0][0::2] == (ILLEGAL_STATE, 20)


def test_harness_resume_with_spsr_il_on_harness(side, harness):
    # The harness resumes the body by ERET with the SPSR the exception saved, IL = 1, so each
    # following instruction takes EC 0x0E too (QEMU: the NOP at 24 and on).
    r = harness.result(side, "eret_legal_with_il")
    assert [(esr, off) for esr, _, off in r.exc[:2]] == [(ILLEGAL_STATE, 24), (ILLEGAL_STATE, 28)]


# --- 13. PC alignment -----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["br x12", "ret x12", "blr x12",
                                 "msr elr_el1, x12\nmov x13, #5\nmsr spsr_el1, x13\neret"])
def test_misaligned_pc_takes_pc_alignment_fault(native, how):
    # x12 = target + 2: EC 0x22 (ESR 0x8A000000), FAR = ELR = x12; nothing at the target is
    # executed (the handler resumes at the next word).
    run = run_body(f"adr x12, target\nadd x12, x12, #2\n{how}\ntarget: nop\nmov x14, #1\n",
                   native)
    ended(run)
    x12 = run.sym("target") + 2
    assert [(e.esr, e.far, e.elr) for e in run.log] == [(PC_ALIGN, x12, x12)]
    assert run.reg("x14") == 1


def test_misaligned_pc_on_a_valid_straddling_word(native):
    # The four bytes at target + 2 decode as EON x3, x8, x1, ROR #53; it must not run.
    run = run_body("adr x12, target\nadd x12, x12, #2\nbr x12\n"
                   "target: .inst 0xd503d503\n.inst 0xcae1cae1\n", native, regs={"x3": 7})
    ended(run)
    x12 = run.sym("target") + 2
    assert [(e.esr, e.far, e.elr) for e in run.log][:1] == [(PC_ALIGN, x12, x12)]
    assert run.reg("x3") == 7


def test_pc_alignment_on_harness(side, harness):
    # br to offset 14 (12 + 2): EC 0x22 at FAR = ELR = the misaligned PC
    r = harness.result(side, "br_misaligned")
    esr, far, off = r.exc[0]
    assert (esr, off) == (PC_ALIGN, 14) and far == r.regs[12]


def test_pc_alignment_straddle_on_harness(side, fragile):
    h = fragile["pc_straddle"]
    r = h.result(side, "pc_straddle")
    assert [(esr, off) for esr, _, off in r.exc[:2]] == [(PC_ALIGN, 14), (PC_ALIGN, 18)]
    assert 3 not in r.regs and 1 not in r.regs and r.mem == {}


# --- 14. words that abort Unicorn's translator ----------------------------------------------------
def _word_params():
    return ([pytest.param(w, id=f"{w:08x}") for w in UNALLOCATED]
            + [pytest.param(w, id=f"{w:08x}") for w in UNIMPLEMENTED])


@pytest.mark.parametrize("word", _word_params())
def test_translator_aborting_word_is_undefined(native, word):
    # UNDEFINED: EC 0x00, IL = 1 (ESR 0x02000000), ELR = the word; the NOP after it runs.
    run = run_body(f"f: .inst {word:#x}\nmov x14, #1\n", native)
    ended(run)
    assert [(e.esr, e.elr) for e in run.log] == [(UNDEFINED, run.sym("f"))]
    assert run.reg("x14") == 1


SELF_MODIFY = """
    {first}
    adr   x12, slot
    movz  w9, #{lo:#x}
    movk  w9, #{hi:#x}, lsl #16
    str   w9, [x12]
    dc    cvau, x12
    dsb   ish
    ic    ivau, x12
    dsb   ish
    isb
    bl    slot
    b     after
slot:
    nop
    ret
after:
    mov   x14, #1
"""


@pytest.mark.parametrize("first", ["", "bl slot"], ids=["fresh", "after-running-the-old-word"])
@pytest.mark.parametrize("word", _word_params())
def test_translator_aborting_word_written_at_run_time(native, word, first):
    # The word is stored over a NOP (cleaned to the PoU, the I-cache line invalidated, ISB)
    # and branched to: UNDEFINED at the slot, whether or not the old NOP had run before.
    run = run_body(SELF_MODIFY.format(first=first, lo=word & 0xFFFF, hi=word >> 16), native)
    ended(run)
    assert [(e.esr, e.elr) for e in run.log] == [(UNDEFINED, run.sym("slot"))]
    assert run.reg("x14") == 1


@pytest.mark.parametrize("word", UNALLOCATED, ids=lambda w: f"{w:08x}")
def test_translator_aborting_word_on_harness(side, harness, word):
    r = harness.result(side, f"word_{word:08x}")
    assert [(esr, off) for esr, _, off in r.exc] == [(UNDEFINED, 0)]


@pytest.mark.parametrize("word", UNIMPLEMENTED, ids=lambda w: f"{w:08x}")
def test_unimplemented_feature_word_on_harness(side, fragile, word):
    # QEMU 10's max CPU implements neither FEAT_FAMINMAX nor FEAT_FP8, nor does this one
    # (ID_AA64ISAR3_EL1, ID_AA64FPFR0_EL1): UNDEFINED
    name = f"word_{word:08x}"
    r = fragile[name].result(side, name)
    assert [(esr, off) for esr, _, off in r.exc] == [(UNDEFINED, 0)]
