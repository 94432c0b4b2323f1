"""Property: a load or store faults exactly when some granule it touches holds a tag other than
the pointer's, and a faulting access has no effect.

Rules (Arm ARM, FEAT_MTE): the logical tag is pointer bits 59:56; every 16-byte granule the
access touches is compared with it (an access spanning granules is checked granule by granule);
with SCTLR_EL1.TCF = sync a mismatch is a data abort with DFSC 0b010001, FAR = the tagged
address of the access, WnR for stores, and neither memory nor registers nor the base change.
"""
from hypothesis import given, settings, strategies as st

from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine

GRANULES = 8
ACCESSES = {            # mnemonic template -> (bytes accessed, is a store)
    "ldrb w2, [x1, #{o}]": (1, False),
    "ldrh w2, [x1, #{o}]": (2, False),
    "ldr w2, [x1, #{o}]": (4, False),
    "ldr x2, [x1, #{o}]": (8, False),
    "ldp x2, x3, [x1, #{o}]": (16, False),
    "ldr q2, [x1, #{o}]": (16, False),
    "strb w4, [x1, #{o}]": (1, True),
    "str x4, [x1, #{o}]": (8, True),
    "stp x4, x5, [x1, #{o}]": (16, True),
    "str q4, [x1, #{o}]": (16, True),
}
FILL = bytes(range(0x40, 0x40 + 16 * GRANULES))
_images = {}


def image_for(template, offset):
    key = (template, offset)
    if key not in _images:
        src = f"""
_start:
    adr  x1, buf
    orr  x1, x1, x6, lsl #56       // x6 = the pointer's logical tag
    {template.format(o=offset)}
    .data
    .balign 16
buf: .skip {16 * GRANULES}
"""
        _images[key] = assemble(src)
    return _images[key]


def aligned_offsets(size):
    # LDR/STR immediate offsets are scaled: multiples of the access size up to 112 bytes; LDP/STP
    # take multiples of 8. Unaligned accesses come from the spanning offsets below.
    step = min(size, 8)
    return st.integers(0, (16 * GRANULES - size) // step).map(lambda k: k * step)


@st.composite
def cases(draw):
    template = draw(st.sampled_from(sorted(ACCESSES)))
    size, store = ACCESSES[template]
    offset = draw(aligned_offsets(size))
    tags = draw(st.lists(st.integers(0, 15), min_size=GRANULES, max_size=GRANULES))
    logical = draw(st.integers(0, 15))
    return template, size, store, offset, tags, logical


@settings(max_examples=150, deadline=None)
@given(cases())
def test_faults_iff_a_touched_granule_mismatches(case):
    template, size, store, offset, tags, logical = case
    m = Machine()
    m.load_image(image_for(template, offset))
    buf = m.symbols["buf"]
    m.write_tags(buf, tags)
    m.write_mem(buf, FILL)
    m.set_reg("x6", logical)
    m.set_reg("x2", 0x1111)
    m.set_reg("x4", 0xAAAAAAAAAAAAAAAA)
    m.set_reg("x5", 0x5555555555555555)
    r = m.run(100)

    touched = range(offset // 16, (offset + size - 1) // 16 + 1)
    mismatch = [g for g in touched if tags[g] != logical]
    if not mismatch:
        assert r.reason == "end", r
        return
    assert r.reason == "exception"
    e = r.exception
    assert e.ec == 0x25 and e.esr & 0x3F == 0x11
    assert bool(e.esr >> 6 & 1) == store
    assert e.far >> 56 == logical
    assert buf + offset <= e.far & ((1 << 56) - 1) < buf + offset + size
    assert m.read_mem(buf, len(FILL)) == FILL          # nothing stored
    assert m.reg("x2") == 0x1111                         # nothing loaded
    assert m.read_tags(buf, 16 * GRANULES) == tags


WRITEBACK = {           # template -> (bytes, is a store, base after = base + ...)
    "ldr x2, [x1, #{o}]!": (8, False, "o"),
    "str x4, [x1, #{o}]!": (8, True, "o"),
    "ldp x2, x3, [x1, #{o}]!": (16, False, "o"),
    "stp x4, x5, [x1, #{o}]!": (16, True, "o"),
    "ldur q2, [x1, #{o}]": (16, False, None),
    "stur q4, [x1, #{o}]": (16, True, None),
}


def page_edge_image(template, offset):
    """buf straddles a 4 KiB page boundary: its first 64 bytes end one page, the rest begin
    the next, so accesses near the middle span two pages."""
    key = ("edge", template, offset)
    if key not in _images:
        src = f"""
_start:
    adr  x1, buf
    orr  x1, x1, x6, lsl #56
    {template.format(o=offset)}
    .data
    .balign 4096
    .skip 4096 - 64
buf: .skip {16 * GRANULES}
"""
        _images[key] = assemble(src)
    return _images[key]


@st.composite
def edge_cases(draw):
    template = draw(st.sampled_from(sorted(WRITEBACK)))
    size, store, _ = WRITEBACK[template]
    step = 8 if "!" in template else 1
    offset = draw(st.integers(0, (16 * GRANULES - size) // step).map(lambda k: k * step))
    if "!" in template:
        offset = min(offset, 248)
    tags = draw(st.lists(st.integers(0, 15), min_size=GRANULES, max_size=GRANULES))
    logical = draw(st.integers(0, 15))
    return template, size, store, offset, tags, logical


@settings(max_examples=120, deadline=None)
@given(edge_cases())
def test_page_spanning_and_writeback_accesses(case):
    """The same rule across a page boundary and for pre-index writeback: a faulting access
    leaves the base register unchanged (no writeback), as well as memory and registers."""
    template, size, store, offset, tags, logical = case
    m = Machine()
    m.load_image(page_edge_image(template, offset))
    buf = m.symbols["buf"]
    assert (buf + 64) % 4096 == 0
    m.write_tags(buf, tags)
    m.write_mem(buf, FILL)
    m.set_reg("x6", logical)
    m.set_reg("x2", 0x1111)
    m.set_reg("x4", 0xAAAAAAAAAAAAAAAA)
    m.set_reg("x5", 0x5555555555555555)
    r = m.run(100)
    pointer = (logical << 56) | buf

    touched = range(offset // 16, (offset + size - 1) // 16 + 1)
    if all(tags[g] == logical for g in touched):
        assert r.reason == "end", r
        if "!" in template:
            assert m.reg("x1") == pointer + offset
        return
    assert r.reason == "exception" and r.exception.esr & 0x3F == 0x11
    assert bool(r.exception.esr >> 6 & 1) == store
    assert m.reg("x1") == pointer                        # no writeback
    assert m.read_mem(buf, len(FILL)) == FILL
    assert m.reg("x2") == 0x1111


@settings(max_examples=100, deadline=None)
@given(cases())
def test_async_mode_records_and_completes(case):
    """TCF = async (0b10): a mismatch raises no exception, the access completes, and
    TFSR_EL1.TF0 (pointer bit 55 = 0) records it; a matching access leaves TFSR_EL1 at 0."""
    template, size, store, offset, tags, logical = case
    m = Machine(tcf="async")
    m.load_image(image_for(template, offset))
    buf = m.symbols["buf"]
    m.write_tags(buf, tags)
    m.write_mem(buf, FILL)
    m.set_reg("x6", logical)
    m.set_reg("x4", 0x0102030405060708)               # bytes below FILL's 0x40..0xBF,
    m.set_reg("x5", 0x1112131415161718)               # so a landed store always shows
    r = m.run(100)
    assert r.reason == "end"
    touched = range(offset // 16, (offset + size - 1) // 16 + 1)
    mismatch = any(tags[g] != logical for g in touched)
    assert m.reg("tfsr_el1") == (1 if mismatch else 0)
    if store:
        assert m.read_mem(buf, len(FILL)) != FILL      # the store landed


def test_ldpsw_checks_only_the_eight_bytes_it_reads():
    """LDPSW loads two 32-bit words (8 bytes): at buf+8 it touches only granule 0, so a
    different tag on granule 1 must not make it fault; at buf+12 it spans into granule 1."""
    for offset, faults in ((8, False), (12, True)):
        m = Machine()
        m.load_image(assemble(f"""
_start:
    adr  x1, buf
    orr  x1, x1, #(3 << 56)
    ldpsw x2, x3, [x1, #{offset}]
    .data
    .balign 16
buf: .skip 32
"""))
        m.write_tags(m.symbols["buf"], [3, 0])
        r = m.run(100)
        assert (r.reason == "exception") == faults, (offset, r)
