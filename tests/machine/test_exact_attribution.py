"""Tag checks are attributed to the instruction that really made the access.

Rule (Arm ARM, AArch64.MemSingle / AArch64.CheckTag): each access is checked against the
logical tag of its own address; an instruction whose own access passes (here: through a
tag-0 pointer to the stack, which never reaches the tag-check hook) cannot fault because of
another instruction's access. The machine learns the accessing instruction from the engine's exact PC, which stays
exact only while nothing writes PC with a plain ``uc_reg_write`` during a run.
"""
import pathlib
import re

from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "aarch64mte"

# x6 = buf | 9 << 56; the granule at buf+16 has allocation tag 9 (the rest of buf's page 0, so
# the page is mixed and goes through the tag-check hook); x7 points at the untagged stack.
LOOP = """
_start:
    {pre}
    adr  x6, buf
    movk x6, #0x0900, lsl #48
    mov  x7, sp
1:  mov  x0, x7
    ldur w2, [x0, #-4]          // stack, pointer tag 0: never faults
    add  x0, x6, #16
    ldr  x3, [x0]               // tag 9 meets tag 9: passes
    b    1b
    .data
    .balign 4096
buf: .skip 4096
"""


def _run(pre=""):
    m = Machine()
    m.load_image(assemble(LOOP.format(pre=pre)))
    m.write_tags(m.symbols["buf"] + 16, [9])
    return m, m.run(2000)


def test_unhooked_load_sharing_a_base_register_is_not_blamed():
    m, r = _run()
    assert r.reason == "insn-limit", r.exception
    assert m.tag_faults == []


def test_attribution_stays_exact_after_an_mte_instruction_in_the_run():
    # IRG is emulated by the trap path, which writes PC += 4 while the run goes on: a plain
    # PC write there would leave every later memory hook with the block start as its PC.
    m, r = _run(pre="irg x9, sp")
    assert r.reason == "insn-limit", r.exception
    assert m.tag_faults == []


FAULTING = """
_start:
    adr  x8, buf
    movk x8, #0x0800, lsl #48
    ldr  x4, [x8, #32]          // tag 8 meets tag 8: fills the TLB entry for tag 8 here
    irg  x9, sp                 // the trap path writes PC += 4 during the run
    mov  x7, sp
    mov  x0, x7
    ldur w2, [x0, #-4]          // stack: never faults
    add  x0, x8, #16
    ldr  x3, [x0]               // tag 8 meets tag 9, through the TLB entry filled above
    b    .
    .data
    .balign 4096
buf: .skip 4096
"""


def test_the_faulting_load_is_the_one_reported():
    # The faulting load, not the LDUR before it, is reported: FAR = its tagged address, ELR at
    # it, x3 unwritten (AArch64.TagCheckFault; a synchronous fault has no effect). No TLB fill
    # happens at the faulting load, so only the engine's own PC can tell which one it was.
    m = Machine()
    m.load_image(assemble(FAULTING))
    buf = m.symbols["buf"]
    m.write_tags(buf + 16, [9, 8])
    m.set_reg("x3", 0x1234)
    r = m.run(2000)
    assert r.reason == "exception"
    e = r.exception
    assert e.esr == 0x96000011
    assert e.far == (8 << 56) | (buf + 16)
    assert e.pc == r.pc
    assert int.from_bytes(m.read_mem(e.pc, 4), "little") == 0xF9400003   # ldr x3, [x0]
    assert m.reg("x3") == 0x1234


def test_nothing_writes_pc_but_engine_set_pc():
    """A plain PC write anywhere in the package would make memory hooks see a stale PC."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for i, line in enumerate(text.splitlines(), 1):
            if re.search(r"(\bwr|reg_write|_reg_write)\s*\([^)]*REG_PC\b", line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{i}: {line.strip()}")
            if re.search(r"(\bwr|reg_write)\s*\(\s*(\w+,\s*)?_PC\b", line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{i}: {line.strip()}")
    assert offenders == []
