"""The machine's data watches that stop BEFORE the access (what the GDB stub's Z2/Z3/Z4 use):
for every kind of instruction that moves data, the run stops with PC at the instruction, its
count not yet counted, nothing of it done, and resuming runs it without stopping again.

Footprints are the Arm ARM's: STR/LDR Xt 8 bytes at the effective address (post-index: at the
base); STP/LDP 2 x 8; LD1 {v.16b, v.16b} 32; CAS/LDADD read and write 8; DC ZVA zeroes the
DCZID_EL0 block (64 bytes here) holding Xt; STGP writes 16 bytes, STZG 16, STZ2G 32, STZGM and
DC GZVA the DCZID_EL0 block (their Operation pseudocode's Mem[] accesses).
"""
from __future__ import annotations

import pytest

from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine
from conftest import NATIVE_PATHS

PATHS = NATIVE_PATHS

CASAL = ".inst 0xc8e0fc41            // casal x0, x1, [x2]"
LDADD = ".inst 0xf8200041            // ldadd x0, x1, [x2]"

# x2 = buf; the watched bytes are buf+0x48..+0x4f; `target` is the instruction that reaches
# them (or, for `miss`, the one that does not although it touches the same page)
CASES = [
    ("str", "data", "add x3, x2, #0x48\ntarget: str x9, [x3]", True),
    ("str post-index", "data", "add x3, x2, #0x48\ntarget: str x9, [x3], #16", True),
    ("str pre-index", "data", "add x3, x2, #0x40\ntarget: str x9, [x3, #8]!", True),
    ("str register offset", "data", "mov x4, #9\ntarget: str x9, [x2, x4, lsl #3]", True),
    ("strb last byte", "data", "target: strb w9, [x2, #0x4f]", True),
    ("str next byte: miss", "data", "target: strb w9, [x2, #0x50]", False),
    ("stp", "data", "target: stp x9, x9, [x2, #0x40]", True),
    ("st1 two registers", "data", "add x3, x2, #0x30\ntarget: st1 {v0.16b, v1.16b}, [x3]", True),
    ("dc zva", "data", "add x3, x2, #0x7f\ntarget: dc zva, x3", True),
    ("stgp", "data", "add x3, x2, #0x40\ntarget: stgp x9, x9, [x3]", True),
    ("stzg", "data", "add x3, x2, #0x40\ntarget: stzg x3, [x3]", True),
    ("stz2g", "data", "add x3, x2, #0x30\ntarget: stz2g x3, [x3]", True),
    ("stzgm", "data", "add x3, x2, #0x70\ntarget: stzgm xzr, [x3]", True),
    ("dc gzva", "data", "add x3, x2, #0x40\ntarget: dc gzva, x3", True),
    ("stg: no data", "data", "add x3, x2, #0x40\ntarget: stg x3, [x3]", False),
    ("ldr", "read", "target: ldr x9, [x2, #0x48]", True),
    ("ldr elsewhere: miss", "read", "target: ldr x9, [x2, #0x40]", False),
    ("ldp", "read", "target: ldp x9, x10, [x2, #0x40]", True),
    ("ld1", "read", "add x3, x2, #0x40\ntarget: ld1 {v0.16b}, [x3]", True),
    ("str under a read watch: miss", "read", "target: str x9, [x2, #0x48]", False),
    ("cas reads and writes", "read", f"add x2, x2, #0x48\ntarget: {CASAL}", True),
    ("ldadd", "data", f"add x2, x2, #0x48\ntarget: {LDADD}", True),
    ("str under an access watch", "access", "target: str x9, [x2, #0x48]", True),
    ("ldr under an access watch", "access", "target: ldr x9, [x2, #0x48]", True),
]

PROGRAM = """
    .text
_start:
    adr x2, buf
    movz x9, #0x5a5a
    movi v0.16b, #0x11
    movi v1.16b, #0x22
    {body}
    ret
    .data
    .balign 128
buf: .fill 256, 1, 0x77
"""


@pytest.mark.parametrize("native_path", PATHS)
@pytest.mark.parametrize("name,kind,body,hits", CASES, ids=[c[0] for c in CASES])
def test_a_watch_stops_before_the_access(native_path, name, kind, body, hits):
    img = assemble(PROGRAM.format(body=body))
    m = Machine(native=native_path)
    m.load_image(img)
    buf, target = img.symbols["buf"], img.symbols["target"]
    m.add_watch(buf + 0x48, 8, kind=kind, when="before")
    before = m.read_mem(buf, 256)
    r = m.run(1000)
    if not hits:
        assert r.reason == "end", (r, r.watch)
        return
    assert r.reason == "watchpoint" and r.pc == target and m.reg("pc") == target, r
    w = r.watch
    assert w.before and w.kind == kind and buf + 0x48 <= w.addr < buf + 0x50
    assert m.counters.insns == (target - img.symbols["_start"]) // 4      # not counted yet
    assert m.read_mem(buf, 256) == before                                # nothing done
    r = m.run(1000)                                                      # it runs now, once
    assert r.reason == "end", (r, r.watch)


@pytest.mark.parametrize("native_path", PATHS)
@pytest.mark.parametrize("when", ["before", "after"])
def test_read_watches_on_a_page_that_holds_code(native_path, when):
    """The engine's TLB entry for fetching code from a page also serves data reads from it:
    that page gets no mapping at all while a read watch is on it."""
    img = assemble("""
    .text
_start:
    adr x0, value
    mov x2, #0
1:  add x2, x2, #1
    cmp x2, #20
    b.ne 1b
load:
    ldr x1, [x0]
    ret
    .balign 16
value: .quad 41
""")
    m = Machine(native=native_path)
    m.load_image(img)
    m.add_watch(img.symbols["value"], 8, kind="read", when=when)
    r = m.run(1000)
    assert r.reason == "watchpoint" and r.watch.pc == img.symbols["load"], r
    assert r.pc == img.symbols["load"] + (0 if when == "before" else 4)
    assert m.reg("x1") == (0 if when == "before" else 41)
    assert m.run(1000).reason == "end"


def test_removing_one_watch_keeps_another_at_the_same_address(tmp_path, capsys):
    # two data watches at buf (8 and 16 bytes): removing the first leaves the second, which
    # then stops the store to buf+8 that only it covers
    from aarch64mte.cli.main import main
    src = tmp_path / "w.S"
    src.write_text("    .text\n    .globl _start\n_start:\n    adr x2, buf\n"
                   "    str x2, [x2, #8]\nafter: nop\n    .data\n    .balign 16\n"
                   "buf: .quad 0, 0\n")
    script = tmp_path / "cmds"
    script.write_text("watch buf 8\nwatch buf 16\nunwatch 1\nwatches\ncontinue\n"
                      "assert pc == after\n")
    assert main(["debug", str(src), "--batch", "-x", str(script)]) == 0
    out = capsys.readouterr().out
    assert "Watchpoint hit at" in out
