"""The MTE trap's caches (register copy, tag-access translation entry) follow every change."""
from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine

DATA = """
    .data
    .balign 4096
buf: .skip 64
"""


def run(src):
    m = Machine()
    m.load_image(assemble(src + DATA))
    r = m.run(10_000)
    assert r.reason == "end", r
    return m


def test_tag_access_follows_sctlr_ata_written_by_the_guest():
    m = run("""
    adr x0, buf
    mov x9, #5
    orr x1, x0, x9, lsl #56
    stg x1, [x1]
    ldg x2, [x0]                // tag 5
    mrs x3, sctlr_el1
    bic x3, x3, #0x80000000000  // ATA = 0: tag access disabled
    msr sctlr_el1, x3
    isb
    ldg x4, [x0]                // reads 0
    mov x9, #7
    orr x6, x0, x9, lsl #56
    stg x6, [x6]                // stores nothing
    orr x3, x3, #0x80000000000
    msr sctlr_el1, x3
    isb
    ldg x5, [x0]                // 5 again
""")
    assert m.reg("x2") >> 56 == 5
    assert m.reg("x4") >> 56 == 0
    assert m.reg("x5") >> 56 == 5


def test_one_page_through_pointers_with_different_tags():
    m = run("""
    adr x0, buf
    mov x9, #3
    orr x1, x0, x9, lsl #56
    stg x1, [x1]
    mov x9, #12
    orr x2, x0, x9, lsl #56
    stg x2, [x2, #16]
    ldg x3, [x2]                // granule 0 through a tag-12 pointer: 3
    ldg x4, [x1, #16]           // granule 1 through a tag-3 pointer: 12
""")
    assert m.reg("x3") >> 56 == 3 and m.reg("x4") >> 56 == 12
    assert m.read_tags(m.symbols["buf"], 32) == [3, 12]


def test_registers_written_natively_between_mte_instructions_are_seen():
    m = run("""
    adr x0, buf
    mov x9, #1
    irg x1, x0, x9              // a random non-zero tag
    stg x1, [x1]
    add x1, x1, #16             // ordinary A64 between two trapped instructions
    addg x1, x1, #0, #1         // next tag
    stg x1, [x1], #16           // post-index writeback: x1 = buf + 32
    ldg x2, [x0, #16]
    sub x3, x1, x0              // 32 in the low bits
""")
    t1 = m.read_tags(m.symbols["buf"], 32)
    assert t1[1] == (m.reg("x2") >> 56) & 0xF
    assert t1[0] != 0 and t1[1] != 0 and t1[0] != t1[1]
    assert m.reg("x3") & 0xFFFF == 32 and m.counters.mte_insns == 5
