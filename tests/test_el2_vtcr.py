"""A guest under a nonsensical VTCR_EL2 gets the architecture's stage-2 fault, not a crash.

AArch64.S2Walk / S2TxSZFaults / S2InvalidSL / S2InconsistentSL: a T0SZ outside the implemented
range, a reserved SL0, or a start level that does not fit T0SZ give a level-0 Translation
fault; an IPA beyond the input size does too. A well-formed VTCR_EL2 over empty tables faults at
its start level instead. The program boots at EL2, sets VTCR_EL2 and HCR_EL2.VM and enters EL1
with its MMU off, so the guest's first fetch is the access that faults (an Instruction Abort
from a lower EL, EC 0x20, to EL2). The EL2 handler exits with ESR_EL2's low byte (the IFSC) as
its status, so QEMU 10 (virtualization=on) is compared on the same ELF.
"""
import json
import subprocess
import sys

import pytest

from conftest import checkout_env, tool

PROGRAM = r"""
    .text
    .globl _start
_start:
    ldr x0, =vec
    msr vbar_el2, x0
    ldr x0, =VTCR
    msr vtcr_el2, x0
    adr x0, s2tables
    msr vttbr_el2, x0
    mov x0, #(1 << 31)
    orr x0, x0, #1              // HCR_EL2.RW | VM
    msr hcr_el2, x0
    adr x0, guest
    msr elr_el2, x0
    mov x0, #0x3c5              // EL1h, DAIF masked
    msr spsr_el2, x0
    isb
    eret
guest:
    nop
    brk #1
    .balign 4096
s2tables:
    .skip 8192
blk: .quad 0x20026, 0
    .balign 2048
vec:
    .rept 16
    mrs x20, esr_el2
    mrs x21, far_el2
    mrs x22, hpfar_el2
    mov x0, #0x18
    adr x1, blk
    and x2, x20, #0xff
    str x2, [x1, #8]
    hlt #0xf000
    .balign 128
    .endr
"""

CASES = [
    (0x0, 0x04),        # T0SZ 0: below the smallest the 40-bit PA range allows
    (0xC0, 0x04),       # SL0 = 3: reserved without FEAT_TTST
    (0x18, 0x04),       # T0SZ 24, SL0 0 (start level 2): 16+ concatenated tables needed
    (0x27, 0x04),       # T0SZ 39: a 25-bit IPA space, and the guest is at 0x4008_0000
    (0x58, 0x05),       # T0SZ 24, SL0 1: well formed; the empty level-1 table faults there
]


def _elf(tmp_path, vtcr):
    s = tmp_path / f"vtcr_{vtcr:x}.S"
    s.write_text(PROGRAM.replace("=VTCR", f"={vtcr:#x}"))
    elf = tmp_path / f"vtcr_{vtcr:x}.elf"
    subprocess.run([sys.executable, "-m", "aarch64mte", "asm", str(s), "-o", str(elf)],
                   check=True, capture_output=True, env=checkout_env())
    return elf


@pytest.mark.parametrize("vtcr, ifsc", CASES)
def test_nonsensical_vtcr_gives_the_stage2_fault(tmp_path, vtcr, ifsc):
    elf = _elf(tmp_path, vtcr)
    p = subprocess.run([sys.executable, "-m", "aarch64mte", "run", str(elf), "--boot-el", "2",
                        "--profile", "virt", "--max-insns", "1000", "--json"],
                       capture_output=True, text=True, timeout=120, env=checkout_env())
    data = json.loads(p.stdout)
    assert data["exit"]["reason"] == "semihost-exit"
    regs = data["regs"]
    # ESR_EL2: EC 0x20 (Instruction Abort from a lower EL), IL 1, S1PTW 0 (stage 1 is off)
    assert int(regs["x20"], 16) == 0x82000000 | ifsc
    guest = int(regs["x21"], 16)                        # FAR_EL2: the guest's first fetch
    assert int(regs["x22"], 16) == (guest >> 12) << 4   # HPFAR_EL2.FIPA = IPA[47:12]
    assert p.returncode == ifsc


@pytest.mark.parametrize("vtcr, ifsc", CASES)
def test_nonsensical_vtcr_matches_qemu(tmp_path, vtcr, ifsc):
    qemu = tool("qemu-system-aarch64")
    if qemu is None:
        pytest.skip("oracle tool missing: qemu-system-aarch64")
    elf = _elf(tmp_path, vtcr)
    p = subprocess.run([qemu, "-M", "virt,mte=on,virtualization=on", "-cpu", "max",
                        "-semihosting", "-nographic", "-net", "none", "-kernel", str(elf)],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == ifsc
