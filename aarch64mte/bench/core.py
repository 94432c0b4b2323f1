"""Core speed benchmark: the emulator against raw Unicorn on the same programs, as ratios.

Three loops, each run in one process on both engines:

- ``untagged``: ALU work and loads/stores to Untagged memory (the ``virt`` profile: MMU off),
  i.e. code that touches no tagged memory. Target: >= 0.9x raw Unicorn.
- ``checked``: the same loop through a tagged pointer to Normal Tagged memory, on a 4 KiB page
  whose granules all carry the pointer's tag (the ``snippet`` profile), so every access is tag checked and
  passes. Target: >= 0.5x raw Unicorn.
- ``mte``: IRG, ADDG, STG and LDG in a loop. Raw Unicorn has no MTE, so its run of this program
  has the four MTE instructions replaced by NOPs; the figure that matters is MTE instructions
  per second (target >= 250,000).

"Raw Unicorn" is Unicorn 2.1.4 with the same CPU model (MAX), the same RAM at the same address,
the same bytes, no hooks at all, at EL1 with the MMU off and TBI0 set so tagged pointers work.
Times are wall-clock seconds of the run call alone (best of ``repeat``); assembling, loading and
machine construction are excluded. Optionally the same loops run under QEMU system mode
(``qemu-system-aarch64 -M virt,mte=on -cpu max``), timed end to end with its start-up cost,
measured by an empty run, subtracted.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

RAM_BASE = 0x4000_0000
RAM_SIZE = 128 << 20
BASE = 0x4008_0000
NOP = bytes.fromhex("1f2003d5")


@dataclass
class Workload:
    name: str
    what: str
    profile: str
    setup: str          # runs once; may hold MTE instructions (raw Unicorn gets NOPs)
    body: str           # the loop body, ending in the counted branch
    body_insns: int
    mte_per_iter: int = 0
    target: str = ""
    iter_scale: float = 1.0


# The counter lives in x1; the loop branches back to label 1. x2 accumulates a checksum that
# both engines must agree on.
LOAD_STORE_LOOP = """
1:  ldr     x3, [x0]
    add     x3, x3, x1
    eor     x4, x3, x2
    str     x4, [x0, #8]
    ldr     x5, [x0, #8]
    add     x2, x2, x5
    subs    x1, x1, #1
    b.ne    1b
"""
WORKLOADS = [
    Workload(
        "untagged", "ALU + loads/stores, Untagged memory (MMU off)", "virt",
        setup="",
        body=LOAD_STORE_LOOP, body_insns=8, target=">= 0.9x"),
    Workload(
        "checked", "tag-checked loads/stores, page uniformly tagged", "snippet",
        setup="""
    mov     x9, #5
    bfi     x0, x9, #56, #4     // logical tag 5
    add     x10, x0, #2048      // colour the whole 4 KiB page around the buffer with tag 5,
    sub     x11, x0, #2048      // so its granules share one tag
2:  st2g    x11, [x11]          // (no writeback: raw Unicorn runs MTE instructions as NOPs)
    add     x11, x11, #32
    cmp     x11, x10
    b.ne    2b
""",
        body=LOAD_STORE_LOOP, body_insns=8, target=">= 0.5x"),
    Workload(
        "mte", "IRG/ADDG/STG/LDG loop", "snippet",
        setup="""
    mov     x9, #1              // IRG mask: never tag 0
""",
        body="""
1:  irg     x3, x0, x9
    addg    x4, x3, #16, #1
    stg     x4, [x4]
    ldg     x5, [x4]
    add     x2, x2, #1
    subs    x1, x1, #1
    b.ne    1b
""", body_insns=7, mte_per_iter=4, target=">= 250k MTE/s", iter_scale=0.05),
]


def program(w: Workload, iterations: int, exit_via_semihosting: bool = False) -> str:
    """The workload as a complete source: buffer address, counter, setup, loop."""
    lo, hi = iterations & 0xFFFF, iterations >> 16 & 0xFFFF
    exit_code = ""
    if exit_via_semihosting:
        exit_code = """
    adr     x1, exit_block
    movz    x3, #0x0026
    movk    x3, #0x2, lsl #16   // ADP_Stopped_ApplicationExit
    stp     x3, xzr, [x1]
    mov     x0, #0x18           // SYS_EXIT
    hlt     #0xf000
"""
    return f"""
    .text
    .globl _start
_start:
    adr     x0, buf
    movz    x1, #{lo}
    movk    x1, #{hi}, lsl #16
    mov     x2, #0
{w.setup}
{w.body}
{exit_code}
    .bss
    .balign 4096
            .skip 2048
buf:        .skip 2048          // the loops work in the middle of a 4 KiB page
exit_block: .skip 16
"""


def _assemble(text: str):
    from aarch64mte.assembler import assemble
    return assemble(text, filename="<bench>", base=BASE)


def _without_mte(image) -> list[tuple[int, bytes]]:
    """The image's segments with every MTE instruction replaced by a NOP."""
    from aarch64mte.isa import decode
    out = []
    for seg in image.segments:
        data = bytearray(seg.data)
        if "x" in seg.flags:
            for off in range(0, len(data) - 3, 4):
                word = int.from_bytes(data[off:off + 4], "little")
                if decode(word) is not None:
                    data[off:off + 4] = NOP
        out.append((seg.addr, bytes(data)))
    return out


def _ram():
    try:
        from aarch64mte.machine import memory
        return memory.RAM_BASE, memory.RAM_SIZE_DEFAULT
    except Exception:
        return RAM_BASE, RAM_SIZE


def run_raw(image) -> tuple[float, int]:
    """Run on bare Unicorn (no hooks) -> (seconds, x2)."""
    from unicorn import Uc, UC_ARCH_ARM64, UC_MODE_ARM
    from unicorn import arm64_const as A

    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
    base, size = _ram()
    uc.mem_map(base, size)
    for addr, data in _without_mte(image):
        uc.mem_write(addr, data)
    cp = A.UC_ARM64_REG_CP_REG
    uc.reg_write(cp, (1, 1, 3, 6, 0, 0x401))          # SCR_EL3: NS, RW (else no TBI at EL1)
    uc.reg_write(cp, (1, 1, 3, 4, 0, 1 << 31))        # HCR_EL2.RW
    uc.reg_write(cp, (2, 0, 3, 0, 2, 1 << 37))        # TCR_EL1.TBI0
    uc.reg_write(A.UC_ARM64_REG_PSTATE, 0x3C5)        # EL1h, DAIF masked
    uc.reg_write(A.UC_ARM64_REG_SP, base + size - 16)
    t0 = time.perf_counter()
    uc.emu_start(image.entry, image.text_end)
    dt = time.perf_counter() - t0
    return dt, uc.reg_read(A.UC_ARM64_REG_X2)


def run_machine(image, profile: str) -> tuple[float, int, int]:
    """Run on the emulator -> (seconds, x2, instructions counted)."""
    from aarch64mte.machine import Machine

    # tag provenance (a debugging aid) off: it costs the Python hooks' MTE loop 5-10%
    m = Machine(profile=profile, provenance=False)
    m.load_image(image)
    t0 = time.perf_counter()
    r = m.run(max_insns=1 << 62)
    dt = time.perf_counter() - t0
    if r.reason != "end":
        raise RuntimeError(f"benchmark program stopped with {r.reason!r} "
                           f"(exception {r.exception!r}) at {r.pc:#x}")
    counters = m.counters
    insns = counters["insns"] if isinstance(counters, dict) else getattr(counters, "insns", 0)
    return dt, m.reg("x2"), insns


# --- QEMU system mode (optional) --------------------------------------------------------------

QEMU = "qemu-system-aarch64"
QEMU_PRELUDE = """
    .section .text.boot, "ax"
    .globl _boot
_boot:
    /* A tagged identity map of RAM (MAIR attr 0 = 0xF0), TBI0, SCTLR_EL1.ATA and TCF sync:
       the same environment the emulator's snippet profile gives. */
    adr     x0, boot_l1
    movz    x1, #0x4000, lsl #16
    mov     x2, #0x701          // block | AttrIndx 0 | SH inner | AF
    orr     x1, x1, x2
    str     x1, [x0, #8]
    mov     x1, #0xf0
    msr     mair_el1, x1
    movz    x1, #0x3519
    movk    x1, #0x0080, lsl #16
    movk    x1, #0x0022, lsl #32
    msr     tcr_el1, x1
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    dsb     sy
    isb
    movz    x1, #0x1805
    movk    x1, #0x30d0, lsl #16
    movk    x1, #0x0d40, lsl #32
    msr     sctlr_el1, x1
    isb
    msr     gcr_el1, xzr
    b       _start
    .balign 4096
boot_l1: .skip 4096
"""


def qemu_available() -> bool:
    return bool(shutil.which(QEMU) and shutil.which("aarch64-linux-gnu-gcc"))


def _qemu_build(w: Workload, iterations: int, tmp: str, name: str) -> str:
    src = os.path.join(tmp, f"{name}.S")
    with open(src, "w") as f:
        f.write(".arch armv8.5-a+memtag\n")
        if w.profile == "snippet":
            f.write(QEMU_PRELUDE)
        else:
            f.write('    .section .text.boot, "ax"\n    .globl _boot\n_boot: b _start\n')
        f.write(program(w, iterations, exit_via_semihosting=True))
    ld = os.path.join(tmp, "link.ld")
    with open(ld, "w") as f:
        f.write("ENTRY(_boot)\nSECTIONS {\n . = 0x40080000;\n .text : { *(.text.boot) *(.text*) }\n"
                " . = ALIGN(4096);\n .data : { *(.data*) }\n . = ALIGN(4096);\n"
                " .bss : { *(.bss*) }\n}\n")
    elf = os.path.join(tmp, f"{name}.elf")
    subprocess.run(["aarch64-linux-gnu-gcc", "-nostdlib", "-nostartfiles", "-static",
                    "-march=armv8.5-a+memtag", "-Wl,--build-id=none",
                    "-Wl,--no-warn-rwx-segments", "-T", ld, src, "-o", elf],
                   check=True, capture_output=True)
    return elf


def _qemu_time(elf: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([QEMU, "-M", "virt,mte=on", "-cpu", "max", "-m", "128M", "-nographic",
                    "-net", "none", "-semihosting", "-kernel", elf],
                   check=True, capture_output=True, timeout=300)
    return time.perf_counter() - t0


def run_qemu(w: Workload, iterations: int, repeat: int, scale: int = 50) -> float | None:
    """Seconds QEMU spends on `iterations` of the loop: it runs `scale` times as many (so its
    start-up time does not drown the loop), minus a one-iteration run, divided by `scale`."""
    if not qemu_available():
        return None
    with tempfile.TemporaryDirectory(prefix="aarch64mte-bench-") as tmp:
        try:
            full = _qemu_build(w, min(iterations * scale, 0xFFFF_FFFF), tmp, "full")
            empty = _qemu_build(w, 1, tmp, "empty")
            t_full = min(_qemu_time(full) for _ in range(repeat))
            t_empty = min(_qemu_time(empty) for _ in range(repeat))
        except (subprocess.SubprocessError, OSError):
            return None
    return max(t_full - t_empty, 1e-6) / scale


# --- the benchmark ----------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    what: str
    iterations: int
    insns: int
    raw_s: float
    mte_s: float
    ratio: float                 # emulator speed as a fraction of raw Unicorn's
    target: str
    agree: bool                  # both engines computed the same checksum
    mte_insns_per_s: float | None = None
    qemu_s: float | None = None
    qemu_ratio: float | None = None      # emulator speed as a fraction of QEMU's
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def run_core_bench(iterations: int = 1_000_000, repeat: int = 3, qemu: bool = False,
                   only: list[str] | None = None) -> list[dict]:
    """Run every workload on raw Unicorn and on the emulator -> one dict per workload."""
    rows = []
    for w in WORKLOADS:
        if only and w.name not in only:
            continue
        n = max(1, int(iterations * w.iter_scale))
        image = _assemble(program(w, n))
        raw = [run_raw(image) for _ in range(repeat)]
        emu = [run_machine(image, w.profile) for _ in range(repeat)]
        raw_s = min(t for t, _ in raw)
        mte_s = min(t for t, _, _ in emu)
        insns = emu[0][2]
        row = Row(
            name=w.name, what=w.what, iterations=n, insns=insns, raw_s=raw_s, mte_s=mte_s,
            ratio=raw_s / mte_s if mte_s > 0 else float("inf"), target=w.target,
            agree=all(x2 == raw[0][1] for _, x2 in raw) and all(x2 == raw[0][1] for _, x2, _ in emu),
        )
        if w.mte_per_iter:
            row.mte_insns_per_s = w.mte_per_iter * n / mte_s if mte_s > 0 else float("inf")
        if qemu:
            q = run_qemu(w, n, repeat)
            if q is not None:
                row.qemu_s = q
                row.qemu_ratio = q / mte_s if mte_s > 0 else None
        rows.append(row.as_dict())
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table of run_core_bench() rows."""
    head = ["loop", "iters", "insns", "raw Unicorn s", "emulator s", "ratio", "target", "MTE/s",
            "QEMU s", "vs QEMU", "same result"]
    lines = []
    for r in rows:
        lines.append([
            r["name"], f"{r['iterations']:,}", f"{r['insns']:,}", f"{r['raw_s']:.4f}",
            f"{r['mte_s']:.4f}", f"{r['ratio']:.3f}x", r["target"],
            f"{r['mte_insns_per_s']:,.0f}" if r.get("mte_insns_per_s") else "-",
            f"{r['qemu_s']:.4f}" if r.get("qemu_s") is not None else "-",
            f"{r['qemu_ratio']:.3f}x" if r.get("qemu_ratio") is not None else "-",
            "yes" if r["agree"] else "NO",
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(l, widths)) for l in lines]
    notes = {r["name"]: r["what"] for r in rows}
    out.append("")
    out += [f"{k}: {v}" for k, v in notes.items()]
    out.append("ratio = raw Unicorn time / emulator time (1.0 = as fast as Unicorn with no hooks)")
    return "\n".join(out)
