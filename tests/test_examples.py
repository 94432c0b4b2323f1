"""Each program in asm/ run through `aarch64mte run --json`, checked against the architecture.

Expected values come from the Arm ARM rules cited beside each check, and from a small
reference model of IRG's deterministic choice (GCR_EL1.RRND = 0) written here from the
pseudocode (AArch64.RandomTag / NextRandomTagBit, AArch64.ChooseNonExcludedTag).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ASM = REPO / "asm"
SEED = 0x1234                      # RGSR_EL1.SEED for the runs whose tags we predict
RGSR = SEED << 8                   # RGSR_EL1: SEED in bits 23:8, TAG (3:0) = 0

try:
    from aarch64mte.machine import Machine  # noqa: F401
    HAVE_MACHINE = True
except Exception as exc:           # pragma: no cover - only while the machine is missing
    HAVE_MACHINE = False
    WHY = f"aarch64mte.machine is not importable: {exc}"

needs_machine = pytest.mark.skipif(not HAVE_MACHINE, reason=WHY if not HAVE_MACHINE else "")


def run(program, *options):
    """`aarch64mte run PROGRAM --json OPTIONS` in a subprocess -> (exit status, report)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "aarch64mte.cli.run", str(program), "--json",
                           *options], capture_output=True, text=True, env=env, timeout=300)
    assert proc.stderr == "" or proc.returncode != 2, proc.stderr
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not one JSON object (status {proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}") from None
    return proc.returncode, data


def x(data, name):
    return int(data["regs"][name], 16)


def sysreg(data, name):
    return int(data["sysregs"][name], 16)


def tag_of(pointer):
    return pointer >> 56 & 0xF


# --- reference model of IRG with GCR_EL1.RRND = 0 (Arm ARM, IRG pseudocode) ----------------

class Rgsr:
    def __init__(self, value):
        self.seed = value >> 8 & 0xFFFF
        self.tag = value & 0xF

    def random_tag(self):
        """AArch64.RandomTag(): four NextRandomTagBit() calls, bit 0 first. Each shifts the
        16-bit LFSR right, feeding in seed<5> ^ seed<3> ^ seed<2> ^ seed<0>."""
        tag = 0
        for i in range(4):
            top = (self.seed >> 5 ^ self.seed >> 3 ^ self.seed >> 2 ^ self.seed) & 1
            self.seed = top << 15 | self.seed >> 1
            tag |= top << i
        return tag

    def irg(self, exclude):
        """IRG: rtag = ChooseNonExcludedTag(RGSR_EL1.TAG, RandomTag(), exclude);
        RGSR_EL1.TAG = rtag."""
        self.tag = choose_non_excluded_tag(self.tag, self.random_tag(), exclude)
        return self.tag


def choose_non_excluded_tag(tag, offset, exclude):
    """AArch64.ChooseNonExcludedTag(): all excluded -> 0; otherwise step forward offset times
    over allowed tags (offset 0: the first allowed tag at or after `tag`)."""
    if exclude & 0xFFFF == 0xFFFF:
        return 0
    if offset == 0:
        while exclude >> tag & 1:
            tag = (tag + 1) & 0xF
    while offset:
        offset -= 1
        tag = (tag + 1) & 0xF
        while exclude >> tag & 1:
            tag = (tag + 1) & 0xF
    return tag


def test_reference_model_matches_the_oracle_sequence():
    # QEMU 7.2 and 10.0, GCR_EL1 = 0x0001, SEED 0x1234: e,5,9,b,7,5,5,a (oracles/README.md)
    r = Rgsr(RGSR)
    assert [r.irg(0x0001) for _ in range(8)] == [0xE, 0x5, 0x9, 0xB, 0x7, 0x5, 0x5, 0xA]


# --- the programs ------------------------------------------------------------------------------

@needs_machine
def test_tag_buffer():
    status, d = run(ASM / "tag_buffer.S", "--set", f"rgsr_el1={RGSR:#x}",
                    "--tags", "buf:80", "--set", "x28=buf")
    assert status == 0 and d["exit"]["reason"] == "end" and d["exception"] is None
    buf = x(d, "x28")
    t = Rgsr(RGSR).irg(0x0001)                      # Xm = 1 excludes tag 0
    assert x(d, "x0") == buf | t << 56
    assert x(d, "x4") == t and x(d, "x5") == t      # LDG reads back what STG wrote
    assert x(d, "x3") == (buf + 32) | t << 56       # LDG inserts the tag into Xt
    assert x(d, "x6") == 0x1234                     # matching tags: the accesses complete
    assert d["tags"][hex(buf)] == [t, t, t, t, 0]   # STG: one tag per 16-byte granule


@needs_machine
def test_tag_buffer_default_seed_is_consistent():
    status, d = run(ASM / "tag_buffer.S", "--tags", "buf:64", "--set", "x28=buf")
    t = x(d, "x4")
    assert status == 0 and t != 0 and x(d, "x5") == t
    assert d["tags"][hex(x(d, "x28"))] == [t] * 4


def expect_sync_tag_fault(d, *, pc, pointer, logical, allocation, write):
    """A synchronous tag-check fault at EL1 (TCF = 0b01): Data Abort taken to EL1 from EL1,
    EC 0x25, IL = 1, ISV = 0, WnR = write, DFSC 0b010001; FAR = the address as used, tag
    included; ELR = the faulting instruction."""
    exc = d["exception"]
    assert d["exit"]["reason"] == "exception"
    assert exc["ec"] == 0x25
    assert int(exc["esr"], 16) == 0x96000011 | (write << 6)
    assert int(exc["far"], 16) == pointer
    assert int(exc["pc"], 16) == pc
    tf = exc["tag_fault"]
    assert tf is not None
    assert int(tf["pointer"], 16) == pointer
    assert (tf["logical_tag"], tf["allocation_tag"], tf["write"]) == (logical, allocation, write)


@needs_machine
def test_use_after_free():
    status, d = run(ASM / "use_after_free.S", "--set", f"rgsr_el1={RGSR:#x}",
                    "--set", "x28=stale_load", "--set", "x27=heap", "--tags", "heap:32")
    assert status == 1
    heap = x(d, "x27")
    r = Rgsr(RGSR)
    old = r.irg(0x0001)
    new = r.irg(0x0001 | 1 << old)                  # GMI added the old tag to the mask
    assert (x(d, "x19"), x(d, "x20")) == (old, new) and old != new
    assert x(d, "x2") == 42 and x(d, "x3") == 0     # the faulting load wrote nothing
    assert d["tags"][hex(heap)] == [new, new]
    expect_sync_tag_fault(d, pc=x(d, "x28"), pointer=(heap + 8) | old << 56,
                          logical=old, allocation=new, write=False)


@needs_machine
def test_overflow_stops_at_the_granule_boundary():
    status, d = run(ASM / "overflow.S", "--mem", "obj:64", "--tags", "obj:64",
                    "--set", "x28=overflow_store", "--set", "x27=obj")
    assert status == 1
    obj = x(d, "x27")
    a, b = x(d, "x19"), x(d, "x20")
    assert a not in (0, b) and b != 0
    assert x(d, "x2") == 48                         # 48 bytes = 3 granules went through
    assert d["mem"][hex(obj)] == "aa" * 48 + "00" * 16   # the faulting store had no effect
    assert d["tags"][hex(obj)] == [a, a, a, b]
    expect_sync_tag_fault(d, pc=x(d, "x28"), pointer=(obj + 48) | a << 56,
                          logical=a, allocation=b, write=True)


@needs_machine
def test_async_report():
    status, d = run(ASM / "async_report.S", "--mem", "buf:16")
    assert status == 0 and d["exit"]["reason"] == "end"
    assert d["exception"] is None                   # TCF = 0b10: no exception
    assert x(d, "x10") == 0
    assert x(d, "x11") == 1                         # TFSR_EL1.TF0: address bit 55 was 0
    assert x(d, "x12") == 0 and sysreg(d, "tfsr_el1") == 0
    assert x(d, "x13") == 0x5A5A                    # the mismatching store and load completed
    assert d["mem"] == {next(iter(d["mem"])): "5a5a" + "00" * 14}
    faults = d.get("tag_faults") or []
    assert all(f["write"] in (True, False) for f in faults)


@needs_machine
def test_tco_copy():
    status, d = run(ASM / "tco_copy.S", "--mem", "src:64", "--mem", "dst:64",
                    "--set", "x28=checked_again", "--set", "x27=src")
    assert status == 1
    src = x(d, "x27")
    pattern = bytes(range(64)).hex()
    assert list(d["mem"].values()) == [pattern, pattern]   # copied despite mismatched tags
    assert x(d, "x11") == 1 << 25                   # MRS TCO: PSTATE.TCO in bit 25
    assert x(d, "x12") == 0
    s = tag_of(x(d, "x0"))
    assert s != 0 and s != tag_of(x(d, "x1"))
    expect_sync_tag_fault(d, pc=x(d, "x28"), pointer=src, logical=0, allocation=s, write=False)


@needs_machine
@pytest.mark.parametrize("bs", [2, 3, 4, 5, 6])
def test_ldgm_stgm_copy_for_every_block_size(bs):
    status, d = run(ASM / "ldgm_stgm_copy.S", "--gmid-bs", str(bs),
                    "--tags", "src:512", "--tags", "dst:512")
    assert status == 0 and d["exit"]["reason"] == "end"
    assert sysreg(d, "gmid_el1") & 0xF == bs
    assert x(d, "x21") == 4 << bs                   # LDGM/STGM block: 4 << GMID_EL1.BS bytes
    assert x(d, "x22") == 512 // (4 << bs)
    assert x(d, "x20") == 0
    expected = [(7 * i + 3) % 16 for i in range(32)]
    src, dst = d["tags"].values()
    assert src == expected and dst == expected


@needs_machine
def test_irg_exclude():
    status, d = run(ASM / "irg_exclude.S", "--set", f"rgsr_el1={RGSR:#x}")
    assert status == 0
    gcr = 0xFFD7
    assert x(d, "x12") == gcr and sysreg(d, "gcr_el1") == gcr
    r = Rgsr(RGSR)
    assert [x(d, n) for n in ("x2", "x3", "x4")] == [r.irg(gcr) for _ in range(3)]
    assert {x(d, n) for n in ("x2", "x3", "x4")} <= {3, 5}
    assert x(d, "x5") == 5                          # Xm OR GCR_EL1.Exclude leaves only 5
    assert x(d, "x8") == 1 << 5                     # GMI
    assert x(d, "x9") == 3                          # ADDG steps forward over excluded tags
    assert x(d, "x10") == 5                         # SUBG's tag also steps forward
    assert x(d, "x11") == 5                         # offset 0 keeps an allowed tag
    assert x(d, "x7") == 0                          # all 16 excluded: tag 0


@needs_machine
def test_el0_kernel():
    status, d = run(ASM / "el0_kernel.S", "--set", "x25=user_overrun")
    assert d["exit"] == {"reason": "semihost-exit", "code": 11, "status": 11} and status == 11
    assert d["exception"] is None                   # the kernel handled everything
    ptr = x(d, "x19")
    assert tag_of(ptr) != 0
    assert x(d, "x20") == 7 and x(d, "x21") == 0
    # Tag check fault at EL0 taken to EL1: EC 0x24 (Data Abort from a lower EL), IL, DFSC 0x11
    esr = 0x92000011
    assert sysreg(d, "esr_el1") == esr
    assert sysreg(d, "far_el1") == ptr + 64
    assert sysreg(d, "elr_el1") == x(d, "x25")
    assert d["regs"]["el"] == 1
    assert d["console"] == (
        "EL0: hello via SVC\n"
        "EL0: tagged store and load ok\n"
        f"kernel: tag check fault from EL0: FAR=0x{ptr + 64:016x} ELR=0x{x(d, 'x25'):016x} "
        f"ESR=0x{esr:016x}\n")


@needs_machine
def test_summary_without_json_names_the_fault():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "aarch64mte.cli.run",
                           str(ASM / "use_after_free.S")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 1
    for text in ("Synchronous Tag Check Fault", "0x96000011", "stale_load", "ldr x3, [x0, #8]",
                 "<- fault"):
        assert text in proc.stdout, text


@pytest.mark.parametrize("program", sorted(p.name for p in ASM.glob("*.S")))
def test_examples_assemble_to_the_same_bytes_with_gnu_as(program):
    import shutil
    if not shutil.which("aarch64-linux-gnu-as"):
        pytest.skip("needs aarch64-linux-gnu-as")
    from aarch64mte.assembler import assemble_file
    ours = assemble_file(str(ASM / program))
    gnu = assemble_file(str(ASM / program), backend="gnu")
    text = [s for s in ours.segments if "x" in s.flags]
    assert [(s.addr, s.data) for s in text] == \
        [(s.addr, s.data) for s in gnu.segments if "x" in s.flags]
    assert ours.symbols == gnu.symbols
