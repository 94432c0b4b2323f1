"""The semantics cover every instruction the isa table decodes, with the real Insn type."""
from aarch64mte import isa
from aarch64mte.semantics.execute import EXECUTE, execute

from semfake import BASE, FakeCpu

# one encoding of each MTE form (GNU as 2.40, oracles/asm/objdump_gas.txt)
WORDS = [
    0x9ADF1020, 0x9AC213E0, 0x91810C20, 0xD1BF3C20, 0x9AC20020, 0xBAC20020, 0xBAC2003F,
    0x9AC21420, 0xD9200820, 0xD9201C20, 0xD9201420, 0xD9602820, 0xD9A00820, 0xD9FFEC20,
    0x69020C22, 0x68A00C22, 0xD9601020, 0xD9A00020, 0xD9200020, 0xD9E00020, 0xD50B7460,
    0xD50B7480, 0xD50B7A60, 0xD5087660, 0xD503419F, 0xD503409F, 0xD53B42E0, 0xD5390080,
    0xD53810C0, 0xD51810C0, 0xD53810A0, 0xD5385600, 0xD5385620,
]


def test_every_isa_name_has_semantics():
    assert set(isa.NAMES) <= set(EXECUTE)


def test_decoded_words_execute():
    for word in WORDS:
        insn = isa.decode(word)
        assert insn is not None, hex(word)
        c = FakeCpu()
        c.xregs[0] = BASE + 0x2000
        c.xregs[1] = BASE + 0x2000
        c.sp_value = BASE + 0x3000
        execute(insn, c)


def test_decoded_subg_and_stz2g():
    c = FakeCpu()
    c.xregs[1] = BASE + 0x2000 | (0x3 << 56)
    execute(isa.decode(0xD1BF3C20), c)            # subg x0, x1, #0x3f0, #0xf
    assert c.x(0) == (BASE + 0x2000 - 0x3F0) | (0x2 << 56)   # tag 3 + 15 = 2 (mod 16)
    c.xregs[0] = 0x9 << 56
    c.xregs[1] = BASE + 0x2040
    execute(isa.decode(0xD9FFEC20), c)            # stz2g x0, [x1, #-32]!
    assert c.x(1) == BASE + 0x2020
    assert c.tag_at(BASE + 0x2020) == 9 and c.tag_at(BASE + 0x2030) == 9
