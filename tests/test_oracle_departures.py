"""The README's "where the oracles depart from the architecture", each through real assembly.

QEMU 10 differs from the Arm ARM in these places; the emulator follows the Arm ARM.
"""
from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine

ESR_TAG_CHECK_READ = 0x96000011   # EC 0x25 (data abort, same EL), IL, DFSC 0b010001, WnR 0
ESR_TAG_CHECK_WRITE = 0x96000051  # the same with WnR (ISS bit 6) = 1

# x1 = buf with logical tag 3; buf's granules keep allocation tag 0, so every checked access
# through x1 fails its tag check.
PROLOGUE = """
    adr   x1, buf
    orr   x1, x1, #(3 << 56)
"""
DATA = """
    .data
    .balign 16
buf: .quad 0x1111111111111111, 0x2222222222222222
"""


def run(body, **kw):
    m = Machine(**kw)
    m.load_image(assemble(PROLOGUE + body + DATA))
    return m, m.run(10_000)


def test_ldapur_is_tag_checked():
    # LDAPUR (RCpc2, unscaled): its pseudocode sets tagchecked = n != 31; QEMU 10 leaves it
    # unchecked. A mismatching LDAPUR takes a synchronous tag-check fault and loads nothing.
    m, r = run("mov x2, #7\nldapur x2, [x1, #8]\n")
    assert r.reason == "exception" and r.exception.esr == ESR_TAG_CHECK_READ
    assert r.exception.far == (3 << 56) | (m.symbols["buf"] + 8)
    assert m.reg("x2") == 7


def test_stlur_is_tag_checked_and_stores_nothing():
    m, r = run("mov x2, #7\nstlur x2, [x1, #8]\n")
    assert r.reason == "exception" and r.exception.esr == ESR_TAG_CHECK_WRITE
    assert m.read_mem(m.symbols["buf"] + 8, 8) == (0x2222222222222222).to_bytes(8, "little")


def test_cas_under_asymmetric_tcf_is_synchronous():
    # CAS is a read-modify-write: under TCF = 0b11 reads fault synchronously, and the Arm ARM
    # treats the atomic's check as a read (QEMU 10 treats CAS as a store, reported async).
    m, r = run("mov x0, #0\nmov x2, #9\ncasal x0, x2, [x1]\n", tcf="asymm")
    assert r.reason == "exception" and r.exception.ec == 0x25
    assert r.exception.esr & 0x3F == 0x11
    assert m.reg("tfsr_el1") == 0
    assert m.read_mem(m.symbols["buf"], 8) == (0x1111111111111111).to_bytes(8, "little")


def test_plain_store_under_asymmetric_tcf_is_asynchronous():
    # The contrast: an ordinary store under asymmetric TCF sets TFSR_EL1.TF0 and completes.
    m, r = run("mov x2, #9\nstr x2, [x1]\n", tcf="asymm")
    assert r.reason == "end" and m.reg("tfsr_el1") == 1
    assert m.read_mem(m.symbols["buf"], 8) == (9).to_bytes(8, "little")


def test_tfsr_keeps_only_tf0_and_tf1():
    # TFSR_EL1 defines TF0 (bit 0) and TF1 (bit 1); every other bit is RES0.
    m, r = run("mov x2, #-1\nmsr tfsr_el1, x2\nmrs x3, tfsr_el1\n")
    assert r.reason == "end" and m.reg("x3") == 0b11


def test_id_aa64pfr1_reports_mte3():
    # ID_AA64PFR1_EL1.MTE (bits 11:8) = 0b0011: FEAT_MTE3, required when asymmetric TCF is offered.
    m, r = run("mrs x3, id_aa64pfr1_el1\n")
    assert r.reason == "end" and (m.reg("x3") >> 8) & 0xF == 3
