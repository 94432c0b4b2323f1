"""The EL2 shim (``run --el2 shim``, ``Machine(el2="shim")``): Python plays EL2 for a guest at
EL1/EL0, and every exception the architecture takes to EL2 is a VM exit for its handler.

Real guest assembly runs through the real machine and the real CLI. Expected syndromes come from
the Arm ARM (DDI 0487): the ESR_ELx register description (EC, IL, and the ISS encodings for a
Data Abort, an Instruction Abort, a trapped MSR/MRS, HVC, SMC and WFx), HPFAR_EL2 (FIPA =
IPA[51:12] in bits [43:4]), and the pseudocode named at each check. The ESR values the notes
measured on QEMU 10 (``-M virt,mte=on,virtualization=on -cpu max``) are quoted where they exist.

The guests use the snippet profile (EL1, stage 1 on: RAM identity-mapped Normal Tagged, TBI,
SCTLR_EL1.ATA = 1, TCF = 1) and install ``vectors``: each of the 16 EL1 vector entries puts its
offset in x28 and goes to code that counts the exception in x27, keeps SPSR_EL1, ESR_EL1,
FAR_EL1 and ELR_EL1 in x23..x26, and returns after the instruction. Data pages are at
0x4020_0000 and up, where stage 2 is given holes and special attributes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aarch64mte.cli.main import main
from aarch64mte.el2 import Inject, Resume, Stage2Map, Stop
from aarch64mte.el2.stage2map import TableWriter
from aarch64mte.errors import InputError
from aarch64mte.machine import Machine
from aarch64mte.machine.memory import HostMemory

REPO = Path(__file__).resolve().parent.parent
RAM, RAM_SIZE = 0x4000_0000, 128 << 20
PAGE = 0x1000
HOLE = 0x4020_0000            # stage 2 leaves it unmapped (level-3 Translation fault)
SPECIAL = 0x4020_1000         # a page with the attribute/permission under test
BUF = 0x4021_0000             # ordinary guest RAM for tag tests
FAR_GIB = 0x5000_0000         # beyond RAM: no stage-2 level-3 table (level-2 fault)

VECTORS = "    .balign 0x800\nvectors:\n" + "".join(
    f"    mov x28, #{off:#x}\n    b vector_common\n    .balign 0x80\n"
    for off in range(0, 0x800, 0x80)) + """\
vector_common:
    add x27, x27, #1
    mrs x23, spsr_el1
    mrs x24, esr_el1
    mrs x25, far_el1
    mrs x26, elr_el1
    add x22, x26, #4
    msr elr_el1, x22
    eret
"""


def guest(body: str) -> str:
    """A snippet-profile guest: vectors installed, ``body``, then ``ret`` (LR = the end of
    .text ends the run)."""
    return ("    .text\n    .globl _start\n_start:\n    adr x0, vectors\n    msr vbar_el1, x0\n"
            "    isb\n" + body + "\n    ret\n    .ltorg\n" + VECTORS)


def ram_map(**pages) -> list[dict]:
    """RAM mapped onto itself, normal-wb rwx, except the pages named: HOLE=None unmaps a page,
    SPECIAL=("normal-nc", "rw") gives it that attribute and permission."""
    s2 = Stage2Map([dict(ipa=RAM, pa=RAM, size=RAM_SIZE)])
    for ipa, spec in pages.items():
        ipa = int(ipa, 16)
        s2.remove(ipa, PAGE)
        if spec is not None:
            s2.add(ipa, ipa, PAGE, *spec)
    return [dict(ipa=m.ipa, pa=m.pa, size=m.size, attr=m.attr, perm=m.perm) for m in s2]


def toml(mappings: list[dict]) -> str:
    return "".join(f'[[map]]\nipa = {m["ipa"]:#x}\npa = {m["pa"]:#x}\nsize = {m["size"]:#x}\n'
                   f'attr = "{m["attr"]}"\nperm = "{m["perm"]}"\n' for m in mappings)


HOLE_MAP = ram_map(**{f"{HOLE:#x}": None})


@pytest.fixture
def machine(tmp_path):
    """machine(body, **Machine options) -> a loaded Machine with the EL2 shim."""
    def make(body: str, **options) -> Machine:
        path = tmp_path / "guest.S"
        path.write_text(guest(body))
        m = Machine(el2="shim", **options)
        m.load(str(path))
        return m
    return make


@pytest.fixture
def cli(tmp_path, capsys):
    """cli(*args) -> (status, stdout, stderr) of `aarch64mte run ...`, in this process."""
    def run(*args) -> tuple[int, str, str]:
        status = main(["run", *map(str, args)])
        out = capsys.readouterr()
        return status, out.out, out.err
    return run


def write(tmp_path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def handler_file(tmp_path, body: str, name: str = "handler.py") -> Path:
    return write(tmp_path, name, "from aarch64mte.el2 import Resume, Inject, Stop\n\n" + body)


def hpfar(ipa: int) -> int:
    """HPFAR_EL2 for an IPA: FIPA, bits [43:4], = IPA[51:12] (Arm ARM, HPFAR_EL2)."""
    return (ipa >> 12) << 4


def skip_all(e):
    return Resume(skip=True)


def emulate_reads(m: Machine, values: dict):
    """A handler that answers a trapped MRS with values[register] in X[Rt] (ISS.Rt, [9:5]) and
    skips every exit."""
    def handle(e):
        if e.reason == "sysreg-trap" and not e.write:
            m.set_reg(f"x{(e.iss >> 5) & 31}", values[e.register])
        return Resume(skip=True)
    return handle


# ---- every VM exit reason, through the CLI ------------------------------------------------------

# ESR_EL2 = EC [31:26], IL [25], ISS [24:0]. Data Abort ISS (EC 0x24): ISV [24], SAS [23:22], SSE
# [21], SRT [20:16], SF [15], AR [14], WnR [6], DFSC [5:0] (Translation fault level n: 0b0001nn;
# Permission fault level n: 0b0011nn). ISV = 1 only for a load or store of a single general-
# purpose register without writeback (AArch64.SetLSInstructionSyndrome's callers): not for LDP,
# not for tag accesses (STG), which report ISV = 0 with IL = 1. FAR_EL2 is the VA as the
# instruction gave it, tag included (TBI). Instruction Abort ISS (EC 0x20): IFSC [5:0].
EXIT_CASES = {
    # name: (body, --hcr fields, exit reason, ESR_EL2, FAR_EL2, IPA (None: none reported),
    #        register, write)
    "ldr_x": (f"    ldr x1, ={HOLE + 0x10:#x}\n    ldr x2, [x1]", {}, "stage2-abort",
              0x93C28007, HOLE + 0x10, HOLE, None, False),     # QEMU: LDR x1 -> 0x93C18006 (L2)
    "strb_tagged": (f"    ldr x1, ={0x0A00000000000000 | HOLE + 0x10:#x}\n"
                    "    strb w3, [x1, #5]", {}, "stage2-abort",
                    0x93030047, 0x0A00000000000000 | HOLE + 0x15, HOLE, None, True),
    "ldrsw": (f"    ldr x1, ={HOLE:#x}\n    ldrsw x6, [x1]", {}, "stage2-abort",
              0x93A68007, HOLE, HOLE, None, False),            # SAS 10, SSE 1, SRT 6, SF 1
    "ldp_no_syndrome": (f"    ldr x1, ={HOLE:#x}\n    ldp x2, x3, [x1]", {}, "stage2-abort",
                        0x92000007, HOLE, HOLE, None, False),  # QEMU: LDP -> 0x92000006 (L2)
    "stg_no_syndrome": (f"    ldr x1, ={0x0700000000000000 | HOLE + 0x20:#x}\n"
                        "    stg x1, [x1]", {}, "stage2-abort",
                        0x92000047, 0x0700000000000000 | HOLE + 0x20, HOLE, None, True),
    "ldr_w_level2": (f"    ldr x5, ={FAR_GIB:#x}\n    ldr w4, [x5]", {}, "stage2-abort",
                     0x93840006, FAR_GIB, FAR_GIB, None, False),  # no L3 table: level 2
    "fetch_unmapped": (f"    ldr x7, ={HOLE:#x}\n    br x7", {}, "stage2-abort",
                       0x82000007, HOLE, HOLE, None, None),
    # Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt [9:5], CRm [4:1], Direction [0]
    # (1 = read). QEMU measured both TID values (notes, EC 0x18).
    "tid3_id_aa64pfr1": ("    mrs x4, id_aa64pfr1_el1", {"TID3": 1}, "sysreg-trap",
                         0x62320089, None, None, "ID_AA64PFR1_EL1", False),
    "tid5_gmid": ("    mrs x3, gmid_el1", {"TID5": 1}, "sysreg-trap",
                  0x62384061, None, None, "GMID_EL1", False),
    "ata0_msr_gcr": ("    mov x5, #1\n    msr gcr_el1, x5", {"ATA": 0}, "sysreg-trap",
                     0x623C04A0, None, None, "GCR_EL1", True),
    "ata0_mrs_tfsre0": ("    mrs x6, tfsre0_el1", {"ATA": 0}, "sysreg-trap",
                        0x623214CD, None, None, "TFSRE0_EL1", False),
    # EC 0x16, ISS = imm16 (QEMU: 0x5A001234)
    "hvc": ("    hvc #0x1234", {}, "hvc", 0x5A001234, None, None, None, None),
    # EC 0x01: CV [24] = 1, COND [23:20] = 0xE, TI [1:0] = 00 for WFI (QEMU: 0x07E00000)
    "wfi_twi": ("    wfi", {"TWI": 1}, "wfi", 0x07E00000, None, None, None, None),
    # EC 0x17, ISS = imm16 (QEMU: 0x5E000066)
    "smc_tsc": ("    smc #0x66", {"TSC": 1}, "smc", 0x5E000066, None, None, None, None),
}


@pytest.mark.parametrize("name", EXIT_CASES)
def test_each_vm_exit_reason_with_its_syndrome(tmp_path, cli, name):
    body, hcr, reason, esr, far, ipa, register, write_ = EXIT_CASES[name]
    src = write(tmp_path, "g.S", guest(body))
    s2 = write(tmp_path, "s2.toml", toml(HOLE_MAP))
    args = [a for f, v in hcr.items() for a in ("--hcr", f"{f}={v}")]
    status, out, err = cli(src, "--el2", "shim", "--stage2", s2, *args, "--json")
    assert err == ""
    data = json.loads(out)
    # the default handler stops at the first exit
    assert status == 1 and data["exit"] == {"reason": "vm-exit", "code": None, "status": 1}
    [e] = data["vm_exits"]
    assert e["index"] == 0 and e["reason"] == reason
    assert int(e["esr_el2"], 16) == esr
    assert e["ec"] == esr >> 26
    assert (None if e["far_el2"] is None else int(e["far_el2"], 16)) == far
    if ipa is None:
        assert e["ipa"] is None
    else:
        assert hpfar(int(e["ipa"], 16)) == hpfar(ipa)
    assert e.get("register") == register
    assert e.get("write") == write_
    exc = data["exception"]
    assert exc["el"] == 2 and exc["from_el"] == 1 and int(exc["esr"], 16) == esr


def test_stage2_permission_fault_on_fetch(machine):
    """A branch to a page stage 2 maps without execute permission (XN, bit 54): an Instruction
    Abort, Permission fault level 3 (IFSC 0b001111), FAR_EL2 = the target (QEMU, to an XN
    block: 0x8200000E, level 2)."""
    m = machine(f"    ldr x7, ={SPECIAL:#x}\n    br x7",
                stage2=ram_map(**{f"{SPECIAL:#x}": ("normal-wb", "rw")}))
    r = m.run()
    assert r.reason == "vm-exit"
    [e] = m.shim.exits
    assert (e.reason, e.esr_el2, e.far_el2, e.pc) == ("stage2-abort", 0x8200000F, SPECIAL,
                                                      SPECIAL)


def test_without_the_traps_nothing_exits(machine):
    """HCR_EL2.TWI = 0: WFI runs (it may complete at once); TID3/TID5 = 0: the ID registers read
    the machine's own values (GMID_EL1.BS 4, ID_AA64PFR1_EL1.MTE 3); TSC = 0 with no EL3:
    SMC at EL1 is UNDEFINED (AArch64.CheckForSMCUndefOrTrap), an exception to EL1 (EC 0)."""
    m = machine("    wfi\n    mrs x3, gmid_el1\n    mrs x4, id_aa64pfr1_el1\n"
                "    smc #0x66\n    mov x5, #5")
    assert m.run().reason == "end"
    assert m.shim.exits == []
    assert m.reg("x3") == 4 and (m.reg("x4") >> 8) & 0xF == 3
    assert m.reg("x27") == 1 and m.reg("x24") == 0x02000000 and m.reg("x5") == 5


# ---- the handler's answers ---------------------------------------------------------------------

def test_resume_retries_the_access_after_mapping(machine):
    """Resume() returns to the preferred return address, which for a Data Abort is the faulting
    instruction (AArch64.DataAbort): once the handler maps the page, the load runs again."""
    def handler(e):
        pa = e.ipa & ~(PAGE - 1)
        m.write_mem(pa + 0x18, (0x1122334455667788).to_bytes(8, "little"), physical=True)
        m.shim.map(pa, pa, PAGE, "normal-wb", "rw")
        return Resume()
    m = machine(f"    ldr x1, ={HOLE:#x}\n    ldr x2, [x1, #0x18]\n    ldr x3, [x1, #0x18]",
                stage2=HOLE_MAP, el2_handler=handler)
    assert m.run().reason == "end"
    [e] = m.shim.exits
    assert e.preferred_return == e.pc
    assert m.reg("x2") == m.reg("x3") == 0x1122334455667788


def test_resume_skip_continues_after_the_instruction(machine):
    m = machine(f"    ldr x1, ={HOLE:#x}\n    mov x2, #7\n    ldr x2, [x1]\n    mov x3, #9",
                stage2=HOLE_MAP, el2_handler=skip_all)
    assert m.run().reason == "end"
    assert len(m.shim.exits) == 1
    assert m.reg("x2") == 7 and m.reg("x3") == 9


def test_hvc_resumes_after_itself_with_the_handlers_results(machine):
    """HVC's preferred return is the next instruction (AArch64.CallHypervisor: ELR_EL2 = HVC
    + 4); registers the handler writes are the guest's."""
    def handler(e):
        m.set_reg("x0", m.reg("x0") * 10 + (e.iss & 0xFFFF))
        return Resume()
    m = machine("    mov x0, #1\n    hvc #2\n    hvc #3\n    mov x1, x0", el2_handler=handler)
    assert m.run().reason == "end"
    assert [e.reason for e in m.shim.exits] == ["hvc", "hvc"]
    assert all(e.preferred_return == e.pc + 4 for e in m.shim.exits)
    assert m.reg("x1") == 123


@pytest.mark.parametrize("insn, hcr", [("wfi", {"TWI": 1}), ("smc #0x66", {"TSC": 1})])
def test_trapped_wfi_and_smc_return_to_themselves(machine, insn, hcr):
    """A trapped WFx and a trapped SMC have the instruction itself as the preferred return
    (ESR_ELx EC 0x01/0x17; QEMU: ELR_EL2 = the WFI, the SMC): Resume() runs it again, so it
    exits again; Resume(skip=True) goes past it."""
    answers = iter([Resume(), Resume(skip=True)])
    m = machine(f"    {insn}\n    mov x1, #1", hcr=hcr, el2_handler=lambda e: next(answers))
    assert m.run().reason == "end"
    a, b = m.shim.exits
    assert a.pc == b.pc == a.preferred_return and (a.index, b.index) == (0, 1)
    assert m.reg("x1") == 1


DABT_EXTERNAL_EL1 = 0x96000010   # EC 0x25 (Data Abort, same EL), IL, DFSC 0b010000


def test_inject_takes_an_exception_to_the_guests_el1_vector(machine):
    """Inject(esr, far): the guest's EL1 takes a synchronous exception as AArch64.TakeException
    does: ESR_EL1 = the syndrome, FAR_EL1 = far, ELR_EL1 = the faulting instruction, SPSR_EL1 =
    PSTATE at the fault (EL1h, DAIF masked, NZCV = 0110 from the CMP), vector offset 0x200
    (current EL with SP_ELx, synchronous)."""
    m = machine(f"    ldr x1, ={HOLE + 8:#x}\n    mov x9, #1\n    cmp x9, #1\n"
                "fault:\n    ldr x2, [x1]\n    mov x3, #3",
                stage2=HOLE_MAP, el2_handler=lambda e: Inject(DABT_EXTERNAL_EL1, e.far_el2))
    assert m.run().reason == "end"
    assert len(m.shim.exits) == 1
    assert m.reg("x27") == 1 and m.reg("x28") == 0x200
    assert m.reg("x24") == DABT_EXTERNAL_EL1 and m.reg("x25") == HOLE + 8
    assert m.reg("x26") == m.symbols["fault"]
    assert m.reg("x23") == 0x6000_03C5
    assert m.reg("x3") == 3                      # the guest's vector skipped the load


def test_inject_from_el0_uses_the_lower_el_vector(machine):
    """From EL0 the exception goes to EL1's "lower EL, AArch64" vector, offset 0x400, with
    SPSR_EL1.M = EL0t (0). EL0 here jumps to an IPA stage 2 leaves unmapped (the snippet's stage
    1 lets EL0 execute RAM but not read it): an Instruction Abort, injected as EC 0x20 (from a
    lower EL); the guest's vector returns after the target, which faults again: Stop."""
    answers = iter([Inject(0x82000006), Stop()])
    m = machine(f"""
    adr x0, el0
    msr elr_el1, x0
    msr spsr_el1, xzr              // EL0t
    eret
el0:
    movz x7, #{HOLE >> 16:#x}, lsl #16
    br x7
""", stage2=HOLE_MAP, el2_handler=lambda e: next(answers))
    assert m.run().reason == "vm-exit"
    first, second = m.shim.exits
    assert (first.esr_el2, first.pc, second.pc) == (0x82000007, HOLE, HOLE + 4)
    assert m.reg("x27") == 1 and m.reg("x28") == 0x400
    assert m.reg("x24") == 0x82000006 and m.reg("x26") == HOLE
    assert m.reg("x23") & 0x1F == 0


def test_stop_ends_the_run(tmp_path, cli):
    src = write(tmp_path, "g.S", guest("    hvc #1\n    mov x1, #1"))
    for body, reason, code, status in [
            ("def make_handler(shim):\n    return lambda e: Stop()\n", "vm-exit", None, 1),
            ("def make_handler(shim):\n    return lambda e: None\n", "vm-exit", None, 1),
            ("def make_handler(shim):\n    return lambda e: Stop(code=7)\n", "el2-exit", 7, 7),
            ("def make_handler(shim):\n    return lambda e: Stop('guest-halted')\n",
             "guest-halted", None, 1)]:
        h = handler_file(tmp_path, body)
        got, out, err = cli(src, "--el2", "shim", "--el2-handler", h, "--json")
        data = json.loads(out)
        assert (got, err) == (status, "")
        assert data["exit"] == {"reason": reason, "code": code, "status": status}
        assert data["regs"]["x1"] == "0x0"                # stopped at the HVC
        assert int(data["regs"]["pc"], 16) == int(data["vm_exits"][0]["pc"], 16)
    h = handler_file(tmp_path, "def make_handler(shim):\n    return lambda e: Stop(code=7)\n")
    got, out, err = cli(src, "--el2", "shim", "--el2-handler", h)
    assert got == 7 and "was ended by the EL2 shim's handler with code 7" in out


def test_the_handler_can_change_stage2_and_hcr_while_the_guest_runs(machine):
    """Shim.unmap/map/set_hcr from a hypercall: the next access sees the new stage 2 (the
    shim invalidates as TLBI VMALLS12E1 does), the next MRS the new HCR_EL2.TID3."""
    def handler(e):
        if e.reason == "hvc":
            if e.iss == 1:
                m.shim.unmap(BUF)
            else:
                m.shim.set_hcr(TID3=1)
        return Resume(skip=True)
    m = machine(f"    ldr x1, ={BUF:#x}\n    ldr x2, [x1]\n    hvc #1\n    ldr x2, [x1]\n"
                "    hvc #2\n    mrs x4, id_aa64pfr1_el1", el2_handler=handler)
    assert m.run().reason == "end"
    assert [(e.reason, e.esr_el2) for e in m.shim.exits] == [
        ("hvc", 0x5A000001), ("stage2-abort", 0x93C28007), ("hvc", 0x5A000002),
        ("sysreg-trap", 0x62320089)]
    assert m.sysreg("HCR_EL2") >> 18 & 1


def test_exit_log_is_bounded(machine):
    """A handler that keeps resuming a trapped WFI runs to the instruction limit; the shim
    keeps the latest 10,000 exits, numbered."""
    m = machine("    wfi", hcr={"TWI": 1}, el2_handler=lambda e: Resume())
    r = m.run(max_insns=12_000)
    assert r.reason == "insn-limit"
    assert len(m.shim.exits) == 10_000 and m.shim.exit_count > 10_000
    assert m.shim.exits[-1].index == m.shim.exit_count - 1


# ---- HCR_EL2 through the shim ------------------------------------------------------------------

ATA_BODY = f"""
    mov x5, #1
    msr gcr_el1, x5                // Exclude {{0}}: IRG never gives 0 while tags are accessible
    ldr x1, ={BUF:#x}
    irg x2, x1
    ubfx x2, x2, #56, #4
    mov x3, x1
    ldg x3, [x1]
    ubfx x3, x3, #56, #4
    mov x4, #0x0500000000000000
    orr x4, x4, x1
    ldr x6, [x4]                   // tag 5, granule 0xb
    stg x4, [x4]
"""


@pytest.mark.parametrize("ata", [0, 1])
def test_hcr_ata_gates_allocation_tag_access(machine, ata):
    """HCR_EL2.ATA = 0: AllocationTagAccessIsEnabled(EL1) is FALSE, so IRG gives tag 0 (IRG:
    "else rtag = '0000'"), LDG reads 0, STG stores nothing (AArch64.MemTag[] setter), the
    wrong-tag load is not checked (AArch64.AccessIsTagChecked), and MSR GCR_EL1 traps to EL2
    (its accessor pseudocode: EL2Enabled() && HCR_EL2.ATA == '0'), EC 0x18, ISS Op0 3, Op2 6,
    Op1 0, CRn 1, Rt 5, CRm 0, write."""
    m = machine(ATA_BODY, hcr={"ATA": ata}, el2_handler=skip_all)
    m.tags.set(BUF, 0xB)
    assert m.run().reason == "end"
    if ata:
        assert m.shim.exits == []
        assert m.reg("x2") != 0 and m.reg("x3") == 0xB
        assert m.reg("x27") == 1 and m.reg("x24") == 0x96000011       # Tag Check Fault
        assert m.tags.get(BUF) == 5
    else:
        [e] = m.shim.exits
        assert (e.reason, e.esr_el2, e.register, e.write) == ("sysreg-trap", 0x623C04A0,
                                                              "GCR_EL1", True)
        assert m.reg("x2") == 0 and m.reg("x3") == 0 and m.reg("x27") == 0
        assert m.tags.get(BUF) == 0xB


@pytest.mark.parametrize("tid5, tid3", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_hcr_tid5_and_tid3_trap_the_id_registers(machine, tid5, tid3):
    """TID5 traps EL1 reads of GMID_EL1, TID3 those of ID_AA64PFR1_EL1 (the ID group 3
    registers, Op0 3 Op1 0 CRn 0 CRm 1..7); a trapped read returns what EL2 puts in X[Rt]."""
    m = machine("    mrs x3, gmid_el1\n    mrs x4, id_aa64pfr1_el1",
                hcr={"TID5": tid5, "TID3": tid3})
    m.shim.handler = emulate_reads(m, {"GMID_EL1": 6, "ID_AA64PFR1_EL1": 0x200})
    assert m.run().reason == "end"
    want = [("GMID_EL1", 0x62384061)] * tid5 + [("ID_AA64PFR1_EL1", 0x62320089)] * tid3
    assert [(e.register, e.esr_el2) for e in m.shim.exits] == want
    assert m.reg("x3") == (6 if tid5 else 4)
    assert (m.reg("x4") >> 8) & 0xF == (2 if tid3 else 3)


def stage2_descriptor(m: Machine, ipa: int) -> int:
    """The stage-2 leaf descriptor of ``ipa``, walked from VTTBR_EL2 in host memory as the
    Arm ARM describes it for VTCR_EL2.T0SZ = 24, SL0 = 1 (start at level 1, two concatenated
    tables: IPA[39:30]), 4 KiB granule: table descriptors 0b11 at levels 1-2, blocks 0b01 at
    levels 1-2, pages 0b11 at level 3."""
    assert m.sysreg("VTCR_EL2") & 0xFF == 24 | (1 << 6)
    table = m.sysreg("VTTBR_EL2") & 0x0000_FFFF_FFFF_FFFE
    for level, index in ((1, (ipa >> 30) & 0x3FF), (2, (ipa >> 21) & 511),
                         (3, (ipa >> 12) & 511)):
        d = m.host_memory.read_descriptor(table + 8 * index)
        if d & 3 != 3 or level == 3:
            return d
        table = d & 0x0000_FFFF_FFFF_F000
    raise AssertionError("unreachable")


TAG_PROBE = f"""
    ldr x1, ={SPECIAL:#x}
    mov x2, #0x0900000000000000
    orr x2, x2, x1
    stg x2, [x2]
    mov x3, x1
    ldg x3, [x1]
    ubfx x3, x3, #56, #4
    ldr x10, =0x0300000000000000
    orr x10, x10, x1
    mov x6, #0x55
    str x6, [x10]                  // tag 3
    ldr x7, [x2]                   // tag 9
"""


@pytest.mark.parametrize("fwb", [0, 1])
@pytest.mark.parametrize("attr", ["normal-wb", "normal-nc"])
def test_stage2_attributes_decide_tagged_under_fwb(machine, attr, fwb):
    """Stage 1 says Normal Tagged (MAIR 0xF0). normal-wb is MemAttr 0b1111 without FWB (Normal
    Inner/Outer WB: S2CombineS1MemAttrs keeps WB) and 0b0110 with it (forced WB, stage 1's
    hints kept: S2ApplyFWBMemAttrs), so the page is Tagged (S2MemTagType): STG/LDG round-trip
    and the tag-3 store faults at EL1. normal-nc is 0b0101 either way: Non-cacheable, so
    Untagged: LDG 0, STG stores nothing (the physical tag 0xc stays), nothing is checked."""
    m = machine(TAG_PROBE, hcr={"FWB": fwb}, el2_handler=skip_all,
                stage2=ram_map(**{f"{SPECIAL:#x}": (attr, "rw")}))
    m.tags.set(SPECIAL, 0xC)
    memattr = {("normal-wb", 0): 0b1111, ("normal-wb", 1): 0b0110,
               ("normal-nc", 0): 0b0101, ("normal-nc", 1): 0b0101}[attr, fwb]
    assert (stage2_descriptor(m, SPECIAL) >> 2) & 0xF == memattr
    assert m.run().reason == "end"
    assert m.shim.exits == []
    if attr == "normal-wb":
        assert m.reg("x3") == 9 and m.tags.get(SPECIAL) == 9
        assert m.reg("x27") == 1 and m.reg("x24") == 0x96000051   # a store: WnR = 1
        assert m.reg("x7") == 0                                   # the store did not happen
    else:
        assert m.reg("x3") == 0 and m.tags.get(SPECIAL) == 0xC
        assert m.reg("x27") == 0 and m.reg("x7") == 0x55


def test_set_hcr_fwb_rewrites_the_stage2_encodings(machine):
    m = machine("    nop")
    assert (stage2_descriptor(m, BUF) >> 2) & 0xF == 0b1111
    m.shim.set_hcr(FWB=1)
    assert (stage2_descriptor(m, BUF) >> 2) & 0xF == 0b0110
    assert m.sysreg("HCR_EL2") >> 46 & 1


DC_BODY = TAG_PROBE.replace(f"={SPECIAL:#x}", f"={BUF:#x}").replace("""
    ldr x1,""", """
    mrs x9, sctlr_el1
    bic x9, x9, #1                 // stage 1 off
    msr sctlr_el1, x9
    isb
    ldr x1,""", 1)


@pytest.mark.parametrize("dct", [0, 1])
def test_hcr_dc_and_dct_with_stage1_off(machine, dct):
    """HCR_EL2.DC = 1: the EL1&0 stage 1, here off, gives Normal WB RWA memory; Tagged only
    with HCR_EL2.DCT = 1 (AArch64.S1DisabledOutput). TBI still applies to the tagged pointers."""
    m = machine(DC_BODY, hcr={"DC": 1, "DCT": dct}, el2_handler=skip_all)
    m.tags.set(BUF, 0xC)
    assert m.run().reason == "end"
    assert m.sysreg("SCTLR_EL1") & 1 == 0 and m.shim.exits == []
    if dct:
        assert m.reg("x3") == 9 and m.tags.get(BUF) == 9
        assert m.reg("x27") == 1 and m.reg("x24") == 0x96000051
    else:
        assert m.reg("x3") == 0 and m.tags.get(BUF) == 0xC
        assert m.reg("x27") == 0 and m.reg("x7") == 0x55


def test_stage2_permission_fault_on_stg(machine):
    """A stage-2 read-only page: LDG needs read permission only, so it reads the tag; STG writes
    tags, so it is a stage-2 Permission fault, level 3: ISV = 0, WnR = 1, DFSC 0b001111
    (0x9200004F), FAR_EL2 = the tagged pointer; the tag is not stored. A single-register STR
    whose pointer tag (0) mismatches the granule (6) also takes the Permission fault, with
    ISV = 1 (0x93C6804F): AArch64.MemSingle translates before it checks the tag. HPFAR_EL2 is
    UNKNOWN for a Permission fault; Shim.stage1_ipa gives the IPA as AT S1E1R would."""
    ipas = []

    def handler(e):
        ipas.append(m.shim.stage1_ipa(e.far_el2))
        return Resume(skip=True)
    m = machine(f"""
    ldr x1, ={SPECIAL:#x}
    mov x3, x1
    ldg x3, [x1]
    ubfx x3, x3, #56, #4
    mov x2, #0x0300000000000000
    orr x2, x2, x1
    stg x2, [x2]
    mov x6, #0x66
    str x6, [x1, #8]
""", stage2=ram_map(**{f"{SPECIAL:#x}": ("normal-wb", "r")}), el2_handler=handler)
    m.tags.set(SPECIAL, 6)
    assert m.run().reason == "end"
    assert m.reg("x3") == 6 and m.tags.get(SPECIAL) == 6 and m.reg("x27") == 0
    stg, store = m.shim.exits
    assert (stg.esr_el2, stg.far_el2, stg.write) == (0x9200004F, 0x0300000000000000 | SPECIAL,
                                                     True)
    assert (store.esr_el2, store.far_el2, store.write) == (0x93C6804F, SPECIAL + 8, True)
    assert ipas == [SPECIAL, SPECIAL + 8]
    assert m.read_mem(SPECIAL + 8, 8, physical=True) == bytes(8)


def test_notagaccess_page_faults_on_tag_access(machine):
    """FEAT_MTE_PERM: a tag access to a NoTagAccess page (MemAttr 0b0100 without FWB) under a
    Tagged stage 1 is a stage-2 Permission fault with ISS2.TagAccess (ESR bit 41); STG's WnR is
    1 (AArch64.S2CheckPermissions: fault.write = tagaccess && write)."""
    m = machine(f"    ldr x1, ={SPECIAL:#x}\n    stg x1, [x1]",
                stage2=ram_map(**{f"{SPECIAL:#x}": ("notagaccess", "rw")}),
                el2_handler=skip_all)
    m.run()
    assert [e.esr_el2 for e in m.shim.exits] == [(1 << 41) | 0x9200004F]


NTA_TAG_ACCESS = 1 << 41       # ESR_EL2.ISS2.TagAccess (FEAT_MTE_PERM)


@pytest.mark.parametrize("body, tcf, expected", [
    # LDG: a tag read, WnR = 0 (fault.write = tagaccess && write)
    ("ldg x2, [x1]", "sync", [NTA_TAG_ACCESS | 0x9200000F]),
    # a tag-checked LDR: stage-2 Permission fault with the instruction syndrome (ISV, SAS 3,
    # SRT 2, SF) and WnR = 0 -- it is no tag access, so fault.write is FALSE
    ("ldr x2, [x1]", "sync", [NTA_TAG_ACCESS | 0x93C2800F]),
    # ... a checked STR the same, WnR = 0 as well
    ("str x2, [x1]", "sync", [NTA_TAG_ACCESS | 0x93C2800F]),
    # with TCF = 0 the access is not tag checked (EffectiveTCF is Ignore): no fault
    ("ldr x2, [x1]", "none", []),
    # SP base, immediate offset, no writeback: not tag checked (DecodeTagChecked): no fault
    ("mov sp, x1\n    ldr x2, [sp, #8]\n    str x2, [sp, #16]", "sync", []),
])
def test_notagaccess_checked_accesses(machine, body, tcf, expected):
    """AArch64.S2CheckPermissions with FEAT_MTE_PERM: a tag-checked access whose TCF is not
    Ignore, or a tag access, to NoTagAccess memory under a Tagged stage 1 faults; any other
    access to it behaves as to Normal WB memory."""
    m = machine(f"    ldr x1, ={SPECIAL:#x}\n    {body}",
                stage2=ram_map(**{f"{SPECIAL:#x}": ("notagaccess", "rw")}),
                el2_handler=skip_all, tcf=tcf)
    assert m.run().reason == "end"
    assert [e.esr_el2 for e in m.shim.exits] == expected


# ---- bad input: one line, status 2, nothing run ------------------------------------------------

BAD_TOML = {
    "overlap": ("[[map]]\nipa = 0x40000000\npa = 0x40000000\nsize = 0x2000\n"
                "[[map]]\nipa = 0x40001000\npa = 0x40100000\nsize = 0x1000\n", "overlaps"),
    "misaligned_ipa": ("[[map]]\nipa = 0x40000800\npa = 0x40000000\nsize = 0x1000\n",
                       "is not a multiple of 4 KiB"),
    "misaligned_size": ("[[map]]\nipa = 0x40000000\npa = 0x40000000\nsize = 0x1800\n",
                        "is not a multiple of 4 KiB"),
    "ipa_out_of_range": ("[[map]]\nipa = 0xFF_FFFF_F000\npa = 0x40000000\nsize = 0x2000\n",
                         "beyond the 40-bit IPA space"),
    "pa_not_ram": ("[[map]]\nipa = 0x40000000\npa = 0x20000000\nsize = 0x1000\n",
                   "is not memory this board has"),
    "pa_past_ram": ("[[map]]\nipa = 0x40000000\npa = 0x47fff000\nsize = 0x2000\n",
                    "is not memory this board has"),
    "zero_size": ("[[map]]\nipa = 0x40000000\npa = 0x40000000\nsize = 0\n", "size is 0"),
    "negative": ("[[map]]\nipa = -4096\npa = 0x40000000\nsize = 0x1000\n",
                 "must be a non-negative integer"),
    "string_size": ('[[map]]\nipa = 0x40000000\npa = 0x40000000\nsize = "4K"\n',
                    "must be a non-negative integer"),
    "bad_attr": ('[[map]]\nipa = 0x40000000\npa = 0x40000000\nsize = 0x1000\n'
                 'attr = "normal-wt"\n', "attr 'normal-wt' is not one of"),
    "bad_perm": ('[[map]]\nipa = 0x40000000\npa = 0x40000000\nsize = 0x1000\n'
                 'perm = "rwz"\n', "must be made of r, w and x"),
    "unknown_key": ("[[map]]\nipa = 0x40000000\npa = 0x40000000\nsize = 0x1000\ncache = 1\n",
                    "unknown key 'cache'"),
    "unknown_table": ("[[maps]]\nipa = 0x40000000\n", "unknown key 'maps'"),
    "missing_pa": ("[[map]]\nipa = 0x40000000\nsize = 0x1000\n", "missing 'pa'"),
    "map_not_list": ("map = 5\n", "'map' must be a list"),
    "not_toml": ("[[map]\nipa = \n", "not TOML"),
    # 300 pages, each alone in its 2 MiB of IPA space: an L3 table each, more than the shim's
    # 1 MiB of host memory for tables
    "tables_too_big": ("".join(f"[[map]]\nipa = {i << 21:#x}\npa = 0x40000000\nsize = 0x1000\n"
                               for i in range(300)), "more host memory than the shim has"),
}


def assert_one_error_line(status, out, err, *needles):
    assert status == 2, (out, err)
    assert out == ""                                # nothing ran, nothing reported
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aarch64mte run: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("name", BAD_TOML)
def test_bad_stage2_toml(tmp_path, cli, name):
    text, needle = BAD_TOML[name]
    src = write(tmp_path, "g.S", guest("    nop"))
    s2 = write(tmp_path, "s2.toml", text)
    assert_one_error_line(*cli(src, "--el2", "shim", "--stage2", s2, "--json"), str(s2),
                          needle)


BAD_OPTIONS = {
    "unknown_field": (["--el2", "shim", "--hcr", "NOPE=1"], "unknown HCR_EL2 field 'NOPE'"),
    "no_value": (["--el2", "shim", "--hcr", "ATA"], "--hcr takes FIELD=VALUE"),
    "too_wide": (["--el2", "shim", "--hcr", "ATA=2"], "HCR_EL2.ATA is 1 bit"),
    "not_a_number": (["--el2", "shim", "--hcr", "ATA=yes"], "is not a number"),
    "hcr_without_shim": (["--hcr", "ATA=1"], "--hcr needs --el2 shim"),
    "stage2_without_shim": (["--stage2", "{s2}"], "--stage2 needs --el2 shim"),
    "handler_without_shim": (["--el2-handler", "{h}"], "--el2-handler needs --el2 shim"),
    "shim_and_boot_el2": (["--el2", "shim", "--boot-el", "2"], "choose one"),
    "missing_stage2": (["--el2", "shim", "--stage2", "{tmp}/none.toml"], "no such file"),
    "missing_handler": (["--el2", "shim", "--el2-handler", "{tmp}/none.py"], "no such file"),
}


@pytest.mark.parametrize("name", BAD_OPTIONS)
def test_bad_el2_options(tmp_path, cli, name):
    args, needle = BAD_OPTIONS[name]
    src = write(tmp_path, "g.S", guest("    nop"))
    s2 = write(tmp_path, "s2.toml", toml(HOLE_MAP))
    h = handler_file(tmp_path, "def make_handler(shim):\n    return None\n")
    args = [a.format(s2=s2, h=h, tmp=tmp_path) for a in args]
    assert_one_error_line(*cli(src, *args, "--json"), needle)


BAD_HANDLERS = {
    "no_make_handler": ("x = 1\n", "defines no make_handler(shim)"),
    "syntax_error": ("def make_handler(shim:\n    pass\n", ":1: cannot load the EL2 handler: "
                     "SyntaxError"),
    "raises_on_import": ("1 / 0\n", ":1: cannot load the EL2 handler: ZeroDivisionError"),
    "make_handler_raises": ("def make_handler(shim):\n    raise RuntimeError('no')\n",
                            ":2: cannot load the EL2 handler: RuntimeError: no"),
    "not_callable": ("def make_handler(shim):\n    return 5\n",
                     "make_handler(shim) returned int"),
}


@pytest.mark.parametrize("name", BAD_HANDLERS)
def test_bad_handler_file(tmp_path, cli, name):
    text, needle = BAD_HANDLERS[name]
    src = write(tmp_path, "g.S", guest("    hvc #0"))
    h = write(tmp_path, "h.py", text)
    assert_one_error_line(*cli(src, "--el2", "shim", "--el2-handler", h, "--json"), str(h),
                          needle)


@pytest.mark.parametrize("body, needle", [
    ("def make_handler(shim):\n    return lambda e: 1 // 0\n",
     ":2: the EL2 handler failed at VM exit #0 (hvc, ESR_EL2 0x5a000000"),
    ("def make_handler(shim):\n    return lambda e: 'resume'\n",
     "the EL2 handler returned 'resume' at VM exit #0"),
])
def test_handler_that_fails_during_the_run(tmp_path, cli, body, needle):
    src = write(tmp_path, "g.S", guest("    hvc #0"))
    h = write(tmp_path, "h.py", body)
    assert_one_error_line(*cli(src, "--el2", "shim", "--el2-handler", h, "--json"), needle)


def test_bad_changes_leave_stage2_and_hcr_as_they_were(machine):
    """Through the Python API a bad mapping, unmap or HCR field is an InputError, and the
    stage 2 the guest runs on (the mappings, the descriptors in host memory) and HCR_EL2 stay
    what they were: the guest then runs as if nothing had been asked."""
    m = machine(f"    ldr x1, ={BUF:#x}\n    ldr x2, [x1]", stage2=HOLE_MAP)
    shim = m.shim
    before = (list(shim.stage2.mappings), bytes(m.host_memory.buf), m.sysreg("HCR_EL2"))
    bad = [lambda: shim.map(BUF, BUF, PAGE),                          # overlaps RAM's mapping
           lambda: shim.map(HOLE + 0x800, HOLE, PAGE),                 # misaligned
           lambda: shim.map(HOLE, 0x2000_0000, PAGE),                  # not RAM
           lambda: shim.map(HOLE, HOLE, PAGE, attr="cached"),
           lambda: shim.map(HOLE, HOLE, PAGE, perm="rwxr"),
           lambda: shim.unmap(BUF + 0x10),
           lambda: shim.set_hcr(NOPE=1),
           lambda: shim.set_hcr(ATA=3)]
    for call in bad:
        with pytest.raises(InputError):
            call()
        assert (list(shim.stage2.mappings), bytes(m.host_memory.buf),
                m.sysreg("HCR_EL2")) == before
    # and tables that do not fit: the mappings that fitted stay
    for i in range(300):
        try:
            shim.map(0x80_0000_0000 + (i << 21), BUF, PAGE)
        except InputError as e:
            assert "more host memory" in str(e)
            break
    else:
        raise AssertionError("the tables never ran out of host memory")
    assert shim.stage2.lookup(0x80_0000_0000 + (i << 21)) is None
    assert m.run().reason == "end" and m.shim.exits == []


# ---- the Python API ----------------------------------------------------------------------------

def test_python_api_runs_the_hyp_guest_with_a_handler_file():
    """Machine(el2="shim", hcr=..., stage2=TOML, el2_handler=FILE.py): asm/hyp's guest, scenario
    2 (TID5, TID3), under asm/hyp/hyp_shim.py -- the CLI's --el2 options as arguments."""
    m = Machine(profile="virt", el2="shim", hcr={"TID5": 1, "TID3": 1},
                stage2=REPO / "asm" / "hyp" / "stage2.toml",
                el2_handler=REPO / "asm" / "hyp" / "hyp_shim.py")
    m.load(str(REPO / "asm" / "hyp" / "guest.S"))
    m.set_reg("x0", 2)
    r = m.run()
    assert (r.reason, r.code) == ("el2-exit", 0)
    assert [l for l in m.console.splitlines() if l.startswith(("ok", "FAIL"))] == [
        "ok tid5.mrs_gmid_el1.esr_el2", "ok tid5.mrs_gmid_el1.emulated",
        "ok tid5.mrs_gmid_el1.exits", "ok tid3.mrs_id_aa64pfr1_el1.esr_el2",
        "ok tid3.mrs_id_aa64pfr1_el1.mte_emulated", "ok tid.exits_total"]
    assert [e.register for e in m.shim.exits if e.reason != "hvc"] == ["GMID_EL1",
                                                                       "ID_AA64PFR1_EL1"]


def test_python_api_defaults_and_misuse():
    m = Machine(el2="shim")
    # RW VM ATA; stage 2 maps RAM onto itself, normal-wb rwx; the handler stops
    assert m.sysreg("HCR_EL2") == (1 << 31) | 1 | (1 << 56)
    [mapping] = m.shim.stage2.mappings
    assert (mapping.ipa, mapping.pa, mapping.size, mapping.attr, mapping.perm) == (
        RAM, RAM, RAM_SIZE, "normal-wb", "rwx")
    assert stage2_descriptor(m, RAM) & 3 == 1                      # a 2 MiB block
    for bad in (dict(hcr={"ATA": 0}), dict(stage2=HOLE_MAP), dict(el2_handler=skip_all)):
        with pytest.raises(ValueError, match="the shim's"):
            Machine(**bad)
    with pytest.raises(ValueError):
        Machine(el=2, el2="shim")
    with pytest.raises(InputError, match="unknown HCR_EL2 field"):
        Machine(el2="shim", hcr={"NOPE": 1})
    with pytest.raises(InputError, match="overlaps"):
        Machine(el2="shim", stage2=HOLE_MAP + HOLE_MAP[:1])
    with pytest.raises(TypeError):
        Stop(code="3")


# ---- the stage-2 tables, for any map -----------------------------------------------------------

def walk(buf: HostMemory, vttbr: int, ipa: int):
    """(descriptor, level) of the leaf for ``ipa``, or (None, level) where the walk ends at an
    invalid descriptor: VMSAv8-64 stage 2, 4 KiB granule, start level 1, two concatenated
    level-1 tables (IPA[39:30]) -- the layout VTCR_EL2 T0SZ 24 / SL0 1 selects."""
    table = vttbr & 0x0000_FFFF_FFFF_FFFE
    index = (ipa >> 30) & 0x3FF
    for level in (1, 2, 3):
        d = buf.read_descriptor(table + 8 * index)
        if not d & 1 or (level == 3 and not d & 2):
            return None, level
        if level == 3 or not d & 2:
            return d, level
        table = d & 0x0000_FFFF_FFFF_F000
        index = (ipa >> (30 - 9 * level)) & 511
    raise AssertionError("unreachable")


@st.composite
def stage2_maps(draw):
    """Non-overlapping mappings of whole pages: IPA anywhere in 40 bits (clustered so they
    share tables), PA in RAM, sizes from a page to a few 2 MiB blocks."""
    n = draw(st.integers(1, 8))
    cursor = draw(st.integers(0, ((1 << 40) - 0x1000_0000) // PAGE)) * PAGE   # one fits
    out = []
    for _ in range(n):
        cursor += draw(st.integers(0, 0x600)) * PAGE
        size = draw(st.sampled_from([1, 2, 17, 512, 513, 1024, 1536])) * PAGE
        if cursor + size > 1 << 40:
            break
        pa = RAM + draw(st.integers(0, (RAM_SIZE - size) // PAGE)) * PAGE
        if draw(st.booleans()):
            pa = RAM + draw(st.integers(0, (RAM_SIZE - size) // 0x20_0000)) * 0x20_0000
            cursor = (cursor + 0x1F_FFFF) & ~0x1F_FFFF
            if cursor + size > 1 << 40:
                break
        attr = draw(st.sampled_from(["normal-wb", "normal-nc", "device", "notagaccess"]))
        perm = draw(st.sampled_from(["", "r", "w", "x", "rw", "rx", "wx", "rwx"]))
        out.append(dict(ipa=cursor, pa=pa, size=size, attr=attr, perm=perm))
        cursor += size
    return out


MEMATTR = {False: {"normal-wb": 0b1111, "normal-nc": 0b0101, "device": 0b0001,
                   "notagaccess": 0b0100},
           True: {"normal-wb": 0b0110, "normal-nc": 0b0101, "device": 0b0001,
                  "notagaccess": 0b1110}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maps=stage2_maps(), fwb=st.booleans(), data=st.data())
def test_stage2_tables_express_the_map(maps, fwb, data):
    """Whatever the map, walking the tables the shim writes gives, for every IPA, the mapped PA
    with the mapping's S2AP (bit 6 read, bit 7 write), XN (bit 54), AF = 1, SH = Inner (0b11)
    and MemAttr (bits 5:2, KVM's encodings, by FWB); and an invalid descriptor outside them."""
    s2 = Stage2Map(maps)
    host = HostMemory()
    writer = TableWriter(host.base, host.size, host.write)
    writer.build(s2, fwb)
    for m in maps:
        for ipa in {m["ipa"], m["ipa"] + m["size"] - PAGE,
                    data.draw(st.integers(m["ipa"], m["ipa"] + m["size"] - 1))}:
            d, level = walk(host, writer.vttbr, ipa)
            assert d is not None
            block = 1 << (12 + 9 * (3 - level))
            assert (d & 0x0000_FFFF_FFFF_F000 & ~(block - 1)) | (ipa & (block - 1)) == \
                m["pa"] + (ipa - m["ipa"])
            assert (d >> 2) & 0xF == MEMATTR[fwb][m["attr"]]
            assert (d >> 6) & 1 == ("r" in m["perm"]) and (d >> 7) & 1 == ("w" in m["perm"])
            assert (d >> 54) & 1 == ("x" not in m["perm"])
            assert (d >> 8) & 3 == 3 and (d >> 10) & 1 == 1
    for ipa in (maps[0]["ipa"] - PAGE, maps[-1]["ipa"] + maps[-1]["size"]):
        if 0 <= ipa < 1 << 40 and s2.lookup(ipa) is None:
            assert walk(host, writer.vttbr, ipa)[0] is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages=st.lists(st.tuples(st.integers(0, (1 << 28) - 1), st.integers(0, 0x7FFF),
                                st.booleans()), min_size=1, max_size=40))
def test_pages_mapped_one_by_one_walk_as_a_full_build(pages):
    """TableWriter.set_page after a build (how a VM maps its memory on demand) leaves tables
    whose walk gives, for every IPA page, what a build of the whole map gives."""
    ipa_of = {}
    for ipa_page, pa_page, writable in pages:
        ipa_of[ipa_page << 12] = (0x4000_0000 + (pa_page << 12), writable)
    s2 = Stage2Map()
    step, whole = HostMemory(), HostMemory()
    one = TableWriter(step.base, step.size, step.write)
    one.build(s2, False)
    for ipa, (pa, w) in ipa_of.items():
        m = s2.add(ipa, pa, PAGE, "normal-wb", "rwx" if w else "rx")
        one.set_page(ipa, pa, m.descriptor_bits(False))
    full = TableWriter(whole.base, whole.size, whole.write)
    full.build(s2, False)
    for ipa in list(ipa_of) + [ipa + PAGE for ipa in ipa_of]:
        assert walk(step, one.vttbr, ipa) == walk(whole, full.vttbr, ipa)


@settings(max_examples=60, deadline=None)
@given(maps=stage2_maps(), data=st.data())
def test_overlapping_mapping_is_refused_and_changes_nothing(maps, data):
    s2 = Stage2Map(maps)
    before = list(s2.mappings)
    victim = data.draw(st.sampled_from(maps))
    start = data.draw(st.integers(max(0, victim["ipa"] // PAGE - 4),
                                  (victim["ipa"] + victim["size"]) // PAGE - 1)) * PAGE
    size = data.draw(st.integers(1, 8)) * PAGE
    if victim["ipa"] - start >= size:
        size = victim["ipa"] - start + PAGE               # reach into the victim
    size = min(size, (1 << 40) - start)                   # and stay in the IPA space
    with pytest.raises(InputError, match="overlaps"):
        s2.add(start, RAM, size)
    assert s2.mappings == before
