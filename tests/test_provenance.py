"""Tag provenance through real guest code: for every instruction that writes allocation tags,
and for host writes, the machine records who wrote each granule's tag, at which instruction
count (the writer counted, as Machine.counters.insns counts), at which EL, and the tag it
replaced; on the native MTE trap and on the Python paths alike, and within bounded memory.

Which granules each instruction writes, and with which tag, is the Arm ARM's (DDI 0487, the
instructions' Operation pseudocode): STG/STZG write AArch64.MemTag[address] = the tag of Xt
(AllocationTagFromAddress), ST2G/STZ2G the granule after it too; STGP writes the tag of the
address; STGM writes the granules of the GMID_EL1.BS block, granule i from Xt<4i+3:4i> (i from
address bits 7:4); STZGM the DCZID_EL0 block, every granule Xt<3:0>; DC GVA/GZVA the DCZID_EL0
block, every granule the tag of Xt.
"""
from __future__ import annotations

import pytest

from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine, native
from conftest import NATIVE_PATHS

PATHS = NATIVE_PATHS

# x0: a 256-byte aligned buffer (so STGM's granule index i counts from 0); x1 and x2 point to
# it with tags 3 and 0xa. `first` writes tag 3, `second` tag 0xa, with the same instruction.
PROGRAM = """
    .text
    .globl _start
_start:
    adr     x0, buf
    mov     x9, #3
    orr     x1, x0, x9, lsl #56
    mov     x9, #0xa
    orr     x2, x0, x9, lsl #56
    movz    x5, #0x3333
    movz    x6, #0xaaaa
    mov     x7, #3
    mov     x8, #0xa
first:
    {first}
second:
    {second}
    ret
    .bss
    .balign 256
buf: .skip 256
"""
# (class, first, second, granules written); GMID_EL1.BS = 4 and DCZID_EL0 = 64 bytes: 4 granules
CLASSES = [
    ("STG", "stg x1, [x1]", "stg x2, [x2]", 1),
    ("STZG", "stzg x1, [x1]", "stzg x2, [x2]", 1),
    ("ST2G", "st2g x1, [x1]", "st2g x2, [x2]", 2),
    ("STZ2G", "stz2g x1, [x1]", "stz2g x2, [x2]", 2),
    ("STGP", "stgp x5, x6, [x1]", "stgp x5, x6, [x2]", 1),
    ("STGM", "stgm x5, [x0]", "stgm x6, [x0]", 4),
    ("STZGM", "stzgm x7, [x0]", "stzgm x8, [x0]", 4),
    ("DC GVA", "dc gva, x1", "dc gva, x2", 4),
    ("DC GZVA", "dc gzva, x1", "dc gzva, x2", 4),
]


def run(src: str, native_path: bool, **kw):
    m = Machine(native=native_path, **kw)
    img = assemble(src)
    m.load_image(img)
    r = m.run(100_000)
    assert r.reason == "end", r
    return m, img.symbols


@pytest.mark.parametrize("native_path", PATHS)
@pytest.mark.parametrize("name,first,second,granules", CLASSES, ids=[c[0] for c in CLASSES])
def test_each_tag_writing_instruction_is_recorded(native_path, name, first, second, granules):
    m, sym = run(PROGRAM.format(first=first, second=second), native_path)
    count = lambda label: (sym[label] - sym["_start"]) // 4 + 1     # straight-line code
    buf = sym["buf"]
    for g in range(16):
        va = buf + 16 * g
        last, prev = m.tag_writers(va)
        if g >= granules:
            assert last is None and m.read_tags(va, 1) == [0], g
            continue
        assert m.read_tags(va, 1) == [0xA]
        assert (last.kind, last.pc, last.insns, last.el, last.previous, last.tag) == \
            (name, sym["second"], count("second"), 1, 3, 0xA), last
        assert (prev.kind, prev.pc, prev.insns, prev.el, prev.previous, prev.tag) == \
            (name, sym["first"], count("first"), 1, 0, 3), prev
        hist = m.tag_history(va, 8)
        assert [(w.pc, w.tag) for w in hist] == [(sym["second"], 0xA), (sym["first"], 3)]
    if native_path:     # the second write is the native trap's (the first fills its soft TLB)
        assert m.core.native_traps >= 1
    assert m.provenance.seq == 2 * granules


@pytest.mark.parametrize("native_path", PATHS)
def test_the_count_is_the_instruction_counter_at_the_writer(native_path):
    """Step by step: the tag changes in exactly the step whose counter value is recorded, also
    after a loop, a call and a taken branch (blocks of every shape)."""
    src = """
    .text
_start:
    mov x20, x30
    adr x0, buf
    mov x3, #4
1:  subs x3, x3, #1
    b.ne 1b
    bl f
    irg x1, x0
    stg x1, [x1, #16]
    ret x20
f:  mov x9, #6
    orr x2, x0, x9, lsl #56
    stg x2, [x2]
    ret
    .bss
    .balign 16
buf: .skip 32
"""
    img = assemble(src)
    m = Machine(native=native_path)
    m.load_image(img)
    buf = img.symbols["buf"]
    changes = {}
    before = m.read_tags(buf, 32)
    for _ in range(100):
        r = m.step(1)
        now = m.read_tags(buf, 32)
        for g in range(2):
            if now[g] != before[g]:
                changes[g] = m.counters.insns
        before = now
        if r.reason != "step":
            break
    assert r.reason == "end"
    for g in range(2):
        last, _ = m.tag_writers(buf + 16 * g)
        assert last.insns == changes[g], (g, last, changes)


@pytest.mark.parametrize("native_path", PATHS)
def test_el0_writer(native_path):
    m, sym = run(PROGRAM.format(first="stg x1, [x1]", second="stg x2, [x2]"), native_path, el=0)
    last, prev = m.tag_writers(sym["buf"])
    assert last.el == 0 and prev.el == 0 and last.tag == 0xA


@pytest.mark.parametrize("native_path", PATHS)
def test_host_writes_name_their_writer(native_path):
    m, sym = run(PROGRAM.format(first="stg x1, [x1]", second="stg x2, [x2]"), native_path)
    buf, end = sym["buf"], m.reg("pc")
    insns = m.counters.insns
    m.write_tags(buf, [5, 6])
    last, prev = m.tag_writers(buf)
    assert (last.kind, last.pc, last.insns, last.el, last.previous, last.tag) == \
        ("host", end, insns, 1, 0xA, 5)
    assert not last.by_instruction and prev.kind == "STG" and prev.tag == 0xA
    last, prev = m.tag_writers(buf + 16)
    assert (last.kind, last.previous, last.tag, prev) == ("host", 0, 6, None)
    for source in ("debugger", "gdb"):
        m.write_tags(buf, [7], source=source)
        assert m.tag_writers(buf)[0].kind == source
    with pytest.raises(ValueError):
        m.write_tags(buf, [1], source="someone")
    assert [w.kind for w in m.tag_history(buf, 9)] == ["gdb", "debugger", "host", "STG", "STG"]


@pytest.mark.parametrize("native_path", PATHS)
def test_other_writes_through_the_tag_storage_are_the_hosts(native_path):
    """A model running on the machine (the KVM host's mte_clear_page_tags, a swap-in) writes the
    tag storage directly: those writes are recorded as the host's, once each."""
    m, sym = run(PROGRAM.format(first="stg x1, [x1]", second="stg x2, [x2]"), native_path)
    buf = sym["buf"]
    pa = m.translate(buf)
    seq = m.provenance.seq
    m.tags.set_range(pa, [4, 5])
    m.tags.fill(pa + 32, 2, 6)
    m.tags.set(pa + 64, 7)
    assert m.provenance.seq == seq + 5
    assert [m.tag_writers(buf + 16 * g)[0].tag for g in range(5)] == [4, 5, 6, 6, 7]
    last, prev = m.tag_writers(buf)
    assert (last.kind, last.previous, last.insns, last.pc) == \
        ("host", 0xA, m.counters.insns, m.reg("pc"))
    assert (prev.kind, prev.tag) == ("STG", 0xA)


@pytest.mark.parametrize("native_path", PATHS)
def test_untagged_memory_and_disabled_tag_access_record_nothing(native_path):
    """STG to Untagged memory (MMU off: the virt profile) or with allocation-tag access
    disabled (SCTLR_EL1.ATA = 0) stores no tag (AArch64.MemTag[] writes only when
    AllocationTagAccessIsEnabled and the memory is Tagged), so there is nothing to record."""
    src = PROGRAM.format(first="stg x1, [x1]", second="stg x2, [x2]")
    img = assemble(src)
    for profile, sctlr_ata in (("virt", None), ("snippet", 0)):
        m = Machine(profile=profile, native=native_path)
        m.load_image(img)
        m.set_reg("x30", img.text_end)
        if profile == "virt":
            m.set_sysreg("tcr_el1", 1 << 37)      # TBI0: tagged pointers with the MMU off
        else:
            m.set_sysreg("sctlr_el1", m.sysreg("sctlr_el1") & ~(1 << 43))
        assert m.run(1000).reason == "end"
        assert m.provenance.seq == 0, profile
        assert m.tag_writers(img.symbols["buf"]) == (None, None)


def test_native_and_python_paths_record_the_same():
    if native.library() is None:
        pytest.skip("the native extension is not built")
    src = """
    .text
_start:
    adr x0, buf
    mov x9, #1
    mov x3, #40
1:  irg x1, x0, x9
    and x4, x3, #15
    add x1, x1, x4, lsl #4
    stg x1, [x1]
    st2g x1, [x1, #32]
    stgp x3, x3, [x1, #64]
    dc gzva, x1
    subs x3, x3, #1
    b.ne 1b
    ret
    .bss
    .balign 256
buf: .skip 1024
"""
    out = []
    for flag in (True, False):
        m = Machine(native=flag)
        m.load_image(assemble(src))
        assert m.run(100_000).reason == "end"
        p = m.provenance
        out.append((p.seq, bytes(p._ring_map), bytes(p._last_map[0x81000 - 0x1000:0x90000])))
    assert out[0] == out[1]


@pytest.mark.parametrize("native_path", PATHS)
def test_the_history_is_bounded_and_the_last_writer_outlives_it(native_path):
    """A loop of tag writes much longer than the history: the ring keeps its size and its last
    entries, histories stop where it moved on, and every granule's last writer is still exact."""
    src = """
    .text
_start:
    adr x0, buf
    stg x0, [x0, #1008]        // written once, first: its record must survive
    mov x9, #1
    movz x3, #3000
1:  irg x1, x0, x9
    and x4, x3, #31
    add x1, x1, x4, lsl #4
    stg x1, [x1]
    subs x3, x3, #1
    b.ne 1b
    ret
    .bss
    .balign 1024
buf: .skip 1024
"""
    m = Machine(native=native_path, history=256)
    img = assemble(src)
    m.load_image(img)
    ring_bytes = len(m.provenance._ring_map)
    assert m.run(100_000).reason == "end"
    p = m.provenance
    assert p.seq == 3001 and not p.complete()
    assert len(p._ring_map) == ring_bytes == 256 * 32
    buf = img.symbols["buf"]
    last, prev = m.tag_writers(buf + 1008)
    assert (last.kind, last.insns, last.pc) == ("STG", 2, img.symbols["_start"] + 4)
    assert prev is None and m.tag_history(buf + 1008, 4) == []   # gone from the ring
    hist = m.tag_history(buf + 16 * 5, 1000)
    assert 0 < len(hist) <= 256 and all(w.seq > p.seq - 256 for w in hist)
    assert [w.seq for w in hist] == sorted((w.seq for w in hist), reverse=True)
