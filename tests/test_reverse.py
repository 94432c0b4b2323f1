"""Going back: after the machine returns to an earlier instruction count (snapshots plus
re-execution), its state is the state a fresh machine has after running exactly that many
instructions: every register (SIMD and system registers included), all of RAM, every allocation
tag, the MTE registers, the counters, the logs and the tag provenance.

The program exercises what could make a re-execution differ: exceptions taken and returned
from (SVC to guest vectors, ERET), the seeded random tags of IRG with GCR_EL1.RRND = 1, the
RGSR_EL1 LFSR, SIMD arithmetic, the generic timer's counter (CNTVCT_EL0), RNDR and semihosting's
clocks, which must not come from the host (hostinputs).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from aarch64mte.assembler import assemble
from aarch64mte.debug.session import ReverseError, Session
from aarch64mte.machine import Machine, native
from conftest import NATIVE_PATHS
from aarch64mte.machine.replay import Recorder, ReplayError

from conftest import examples

PATHS = NATIVE_PATHS

PROGRAM = """
    .text
    .globl _start
_start:
    mov     x20, x30
    adr     x0, vectors
    msr     vbar_el1, x0
    movz    x0, #1                  // GCR_EL1: RRND = 1 (seeded random tags), exclude tag 0
    movk    x0, #1, lsl #16
    msr     gcr_el1, x0
    isb
    adr     x19, buf
    mov     x9, #1
    movz    x21, #{iterations}
    fmov    d0, #1.5
    movi    v1.16b, #3
loop:
    irg     x1, x19, x9
    and     x4, x21, #15
    add     x1, x1, x4, lsl #4
    stg     x1, [x1]
    str     x21, [x1]
    add     v1.16b, v1.16b, v1.16b
    fadd    d0, d0, d0
    mrs     x5, cntvct_el0
    eor     x6, x6, x5
    mrs     x7, s3_3_c2_c4_0        // RNDR
    eor     x6, x6, x7
    svc     #1
    and     x8, x21, #7
    cbnz    x8, 2f
    mov     x0, #0                  // RRND = 0 now and then: the RGSR_EL1 LFSR
    msr     gcr_el1, x0
    irg     x2, x19
    stg     x2, [x19, #512]
    movz    x0, #1
    movk    x0, #1, lsl #16
    msr     gcr_el1, x0
2:  subs    x21, x21, #1
    b.ne    loop
    mov     x0, #0x10               // SYS_CLOCK
    hlt     #0xf000
    mov     x22, x0
    adr     x1, elapsed
    mov     x0, #0x30               // SYS_ELAPSED
    hlt     #0xf000
    ret     x20

    .balign 2048
vectors:
    .skip   0x200                   // current EL with SP_ELx, synchronous
    add     x23, x23, #1
    mrs     x24, esr_el1
    eret

    .data
    .balign 16
elapsed: .quad 0
    .bss
    .balign 1024
buf: .skip 1024
"""
REGS = ([f"x{i}" for i in range(31)] + [f"v{i}" for i in range(32)] +
        ["sp", "pc", "nzcv", "el", "tco", "spsel", "sp_el0", "sp_el1", "fpsr", "fpcr",
         "sctlr_el1", "tcr_el1", "gcr_el1", "rgsr_el1", "tfsr_el1", "tfsre0_el1", "esr_el1",
         "far_el1", "elr_el1", "spsr_el1", "vbar_el1", "ttbr0_el1", "mair_el1"])
CHUNK = 1 << 20
RAM = 16 << 20                  # enough for the programs; less memory to compare


def image(iterations: int = 120):
    return assemble(PROGRAM.format(iterations=iterations))


def same_bytes(a, b) -> bool:
    return len(a) == len(b) and all(a[i:i + CHUNK] == b[i:i + CHUNK]
                                    for i in range(0, len(a), CHUNK))


EL2_REGS = ["hcr_el2", "vttbr_el2", "vtcr_el2", "sctlr_el2", "tcr_el2", "elr_el2", "spsr_el2",
            "esr_el2", "far_el2", "hpfar_el2", "vbar_el2", "sp_el2", "tfsr_el2"]


def state(m: Machine) -> dict:
    p = m.provenance
    names = REGS + (EL2_REGS if m.el2 else [])
    return {
        "regs": {r: m.reg(r) for r in names},
        "counters": m.counters.as_dict(),
        "console": m.console,
        "exceptions": [(e.kind, e.esr, e.far, e.pc) for e in m.exception_log],
        "tag_faults": len(m.tag_faults),
        "prov_seq": p.seq,
        "ring": bytes(p._ring_map),
    }


def assert_same_machine(m: Machine, f: Machine) -> None:
    a, b = state(m), state(f)
    for key in a:
        if key == "regs":
            diff = {r: (hex(a["regs"][r]), hex(b["regs"][r])) for r in a["regs"]
                    if a["regs"][r] != b["regs"][r]}
            assert not diff, diff
        else:
            assert a[key] == b[key], key
    assert same_bytes(m.ram.buf, f.ram.buf), "RAM differs"
    assert m.tags._ranges[0].tags == f.tags._ranges[0].tags, "tags differ"
    assert same_bytes(m.provenance._last_map, f.provenance._last_map), "provenance differs"


def fresh(img, n: int, native_path: bool, count_classes: bool = True) -> Machine:
    f = Machine(native=native_path, count_classes=count_classes, ram_size=RAM)
    f.load_image(img)
    if n:
        r = f.run(n)
        assert f.counters.insns == n, r
    return f


def recorded(img, native_path: bool, interval: int = 700, **kw):
    m = Machine(native=native_path, count_classes=True, ram_size=RAM)
    m.load_image(img)
    rec = Recorder(m, interval=interval, adaptive=False, **kw)
    r = rec.run(1_000_000)
    assert r.reason == "end", r
    return m, rec


@pytest.mark.parametrize("native_path", PATHS)
def test_reverse_to_tag_write_equals_a_fresh_run(native_path):
    img = image()
    m, rec = recorded(img, native_path)
    session = Session(m)
    session.recorder = rec
    buf = img.symbols["buf"]
    for granule in (buf + 512, buf + 16 * 7, buf):
        last, _ = m.tag_writers(granule)
        stop, w = session.reverse_to_tag_write(granule)
        assert w == last
        assert m.reg("pc") == w.pc and m.counters.insns == w.insns - 1
        assert m.read_tags(granule, 1) == [w.previous]
        assert_same_machine(m, fresh(img, w.insns - 1, native_path))
        # forward again, to the end: the same run
        assert rec.run(1_000_000).reason == "end"
        assert_same_machine(m, fresh(img, m.counters.insns, native_path))


@pytest.mark.parametrize("native_path", PATHS)
def test_every_count_can_be_reached_again(native_path):
    img = image(40)
    m, rec = recorded(img, native_path, interval=150, max_snapshots=12)
    rec.back_stride = 40          # going back leaves snapshots in the past too
    end = m.counters.insns
    assert len(rec.snaps) > 3

    @settings(max_examples=examples(8, 40), deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.integers(0, end), min_size=1, max_size=4))
    def check(targets):
        for target in targets:              # back, and forward through the recorded run
            rec.goto(target)
            assert m.counters.insns == target
        assert_same_machine(m, fresh(img, targets[-1], native_path))
        assert [s.insns for s in rec.snaps] == sorted(s.insns for s in rec.snaps)
        assert len(rec.snaps) <= 12
        rec.run(end - m.counters.insns)      # and on to the end
        assert_same_machine(m, fresh(img, end, native_path))
    check()


@pytest.mark.parametrize("native_path", PATHS)
def test_clocks_and_random_numbers_repeat(native_path):
    """CNTVCT_EL0, RNDR, SYS_CLOCK and SYS_ELAPSED are functions of the run: two machines
    agree, and so does a re-execution (they would differ if they came from the host)."""
    img = image(30)
    a, _ = recorded(img, native_path)
    b = fresh(img, 0, native_path)
    assert b.run(1_000_000).reason == "end"
    for r in ("x6", "x22"):
        assert a.reg(r) == b.reg(r)
    elapsed = img.symbols["elapsed"]
    assert a.read_mem(elapsed, 8) == b.read_mem(elapsed, 8) != bytes(8)
    # ticks: one per instruction at the nominal 100M instructions a second (hostinputs)
    assert int.from_bytes(a.read_mem(elapsed, 8), "little") == a.counters.insns - 1


@pytest.mark.parametrize("native_path", PATHS)
def test_a_host_change_is_a_barrier(native_path):
    """What the debugger changes between runs cannot be re-executed: going back before it
    and forward again reaches the states the run had on each side of it."""
    img = image(60)
    m = Machine(native=native_path, count_classes=True, ram_size=RAM)
    m.load_image(img)
    s = Session(m)
    s.recorder.interval = 400
    s.recorder.adaptive = False
    s.cont(max_insns=900)
    k = m.counters.insns
    buf = img.symbols["buf"]
    s.host_change()
    m.write_tags(buf + 16 * 40, [9], source="debugger")
    m.write_mem(buf + 8, b"\x55" * 8)
    m.set_reg("x25", 0x1234)
    s.cont(max_insns=300)
    end = m.counters.insns

    def reference(n):               # the same run, with the same changes at count k
        f = fresh(img, k, native_path)
        f.write_tags(buf + 16 * 40, [9], source="debugger")
        f.write_mem(buf + 8, b"\x55" * 8)
        f.set_reg("x25", 0x1234)
        if n > k:
            f.run(n - k)
        return f

    stop, w = s.reverse_to_tag_write(buf + 16 * 40)
    assert w.kind == "debugger" and m.counters.insns == k
    assert_same_machine(m, fresh(img, k, native_path))
    s.goto(k)
    for n in (k + 1, k + 150, end):
        s.recorder.run(n - m.counters.insns)
        assert_same_machine(m, reference(n))
    s.goto(k - 10)
    assert_same_machine(m, fresh(img, k - 10, native_path))


def test_going_back_before_the_history_or_forward_is_refused():
    img = image(20)
    m, rec = recorded(img, native.library() is not None, interval=100)
    with pytest.raises(ReplayError):
        rec.goto(m.counters.insns + 1)
    rec._merge_into_next(0)           # what the byte budget does: history before it given up
    assert rec.earliest > 0
    with pytest.raises(ReplayError, match="before the recorded history"):
        rec.goto(rec.earliest - 1)
    rec.goto(rec.earliest)
    assert_same_machine(m, fresh(img, rec.earliest, native.library() is not None))
    s = Session(m, record=False)
    with pytest.raises(ReverseError, match="does not record"):
        s.reverse_step()


@pytest.mark.parametrize("native_path", PATHS)
def test_snapshots_stay_within_their_bounds(native_path):
    """A long loop of tag and data writes over 64 KiB: the recording keeps at most its number
    of snapshots and its byte budget however long the run, and still goes back exactly within
    the history it kept."""
    src = """
    .text
_start:
    adr x0, buf
    mov x9, #1
    movz x3, #8000
1:  irg x1, x0, x9
    and x4, x3, #4095
    add x1, x1, x4, lsl #4
    stg x1, [x1]
    str x3, [x1, #8]
    subs x3, x3, #1
    b.ne 1b
    ret
    .bss
    .balign 4096
buf: .skip 65536
"""
    img = assemble(src)
    m = Machine(native=native_path, count_classes=True, ram_size=RAM)
    m.load_image(img)
    budget = 96 << 10
    rec = Recorder(m, max_snapshots=6, budget=budget, interval=3000, adaptive=False)
    sizes = []
    while True:
        r = rec.run(4_000)
        sizes.append((len(rec.snaps), rec.nbytes))
        if r.reason == "end":
            break
    assert len(sizes) > 10
    assert all(n <= 6 for n, _ in sizes)
    assert all(b <= budget or n == 2 for n, b in sizes)
    assert rec.earliest > 0                      # the oldest history was given up
    target = (rec.earliest + m.counters.insns) // 2
    rec.goto(target)
    assert_same_machine(m, fresh(img, target, native_path))


@pytest.mark.parametrize("native_path", PATHS)
def test_an_el2_hypervisor_and_its_guest_are_reached_again(native_path):
    """asm/hyp: EL2 code with its own stage 1, an EL1 guest behind stage 2, exceptions to EL2
    and back, tag writes at both ELs: any count, reached again, is the fresh run's state."""
    from aarch64mte.assembler import assemble_file
    img = assemble_file(str(Path(__file__).resolve().parent.parent / "asm" / "hyp" / "hyp.S"))

    def machine():
        m = Machine(el=2, native=native_path, count_classes=True, ram_size=RAM)
        m.load_image(img)
        return m
    m = machine()
    rec = Recorder(m, interval=4000, adaptive=False)
    r = rec.run(10_000_000)
    assert (r.reason, r.code) == ("semihost-exit", 0) and m.console.endswith("0 failed\n")
    end = m.counters.insns
    writers = [m.tag_writers(va)[0] for va in range(0x40100000, 0x40110000, 16)]
    els = {w.el for w in writers if w is not None}
    assert 1 in els, els
    for target in (end // 3, end - 1):
        rec.goto(target)
        f = machine()
        f.run(target)
        assert_same_machine(m, f)
