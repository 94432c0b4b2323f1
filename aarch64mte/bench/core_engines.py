"""The three engines `bench core` runs each program on, and the programs themselves.

A program is `core_boot.S` followed by a row's source, with `.equ` lines in front (see
core_boot.S). It is assembled once by the project's assembler; the emulator, raw Unicorn and QEMU
all run those same bytes:

- the emulator from QEMU virt's reset state (the ``virt`` profile: EL1, MMU off; the program
  sets up the rest), GMID_EL1.BS = 6 as on QEMU's ``max`` CPU, until the program's semihosting
  exit; the checksums come from its semihosting output;
- raw Unicorn 2.1.4: the MAX CPU model, the same RAM at the same address, no hooks at all, every
  MTE instruction in the text replaced by a NOP (it has no MTE), from the entry to the label
  `done`, where the checksums are in x20 and x21. Only SCR_EL3 and HCR_EL2 are set first, as the
  emulator sets them, so that EL1 is AArch64 and non-secure and TBI applies;
- ``qemu-system-aarch64 -M virt,mte=on -cpu max -semihosting -kernel`` with the image written as
  an ELF file, its checksums read from its semihosting output (QEMU's standard error).

Times are of the run alone: building the machine, loading and assembling are outside them.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, Optional

HERE = Path(__file__).resolve().parent
BOOT = HERE / "core_boot.S"
NOP = bytes.fromhex("1f2003d5")
RAM_BASE = 0x4000_0000
RAM_SIZE = 128 << 20              # QEMU virt's default -m 128M, the emulator's default RAM
GMID_BS = 6                       # QEMU's max CPU: 16 granules per LDGM/STGM
QEMU = "qemu-system-aarch64"
CHECKSUM_LINE = re.compile(r"W=([0-9a-f]{16}) T=([0-9a-f]{16})")
EXIT_MEANING = {3: "an exception", 4: "a self-check failed"}


class BenchError(Exception):
    """A benchmark program did not run to its end on some engine (a bug, not bad input)."""


@dataclass(frozen=True)
class Checksums:
    work: int           # x20: what every engine must agree on
    tags: int           # x21: what the engines with MTE must agree on

    def as_dict(self) -> dict:
        return {"work": f"{self.work:#018x}", "tags": f"{self.tags:#018x}"}


@dataclass
class Run:
    seconds: float
    checksums: Checksums
    insns: Optional[int] = None


def clock(kind: str) -> Callable[[], float]:
    """CPU time of this process (what the run itself cost, robust on a shared machine) or wall
    time."""
    return time.process_time if kind == "cpu" else time.perf_counter


# --- programs ---------------------------------------------------------------------------------

def source(row_source: str, equs: Dict[str, int], iterations: int) -> str:
    """The whole program text of a row at `iterations`."""
    head = "".join(f"        .equ    {k}, {v}\n" for k, v in
                   dict(ITERATIONS=iterations, **equs).items())
    return head + BOOT.read_text() + (HERE / row_source).read_text()


@lru_cache(maxsize=32)
def build(row_source: str, equs: tuple, iterations: int):
    """The row's program assembled (an Image). `equs` is a tuple of (name, value) pairs."""
    from aarch64mte.assembler import assemble
    return assemble(source(row_source, dict(equs), iterations),
                    filename=f"<bench {row_source}>")


def without_mte(image) -> list:
    """(address, bytes) of the image's segments, every MTE instruction in executable ones
    replaced by a NOP. The programs keep data out of .text, so every word there is code."""
    from aarch64mte.isa import decode
    out = []
    for seg in image.segments:
        data = bytearray(seg.data)
        if "x" in seg.flags:
            for off in range(0, len(data) - 3, 4):
                if decode(int.from_bytes(data[off:off + 4], "little")) is not None:
                    data[off:off + 4] = NOP
        out.append((seg.addr, bytes(data)))
    return out


def parse_output(text: str) -> Optional[Checksums]:
    m = CHECKSUM_LINE.search(text)
    return Checksums(int(m.group(1), 16), int(m.group(2), 16)) if m else None


# --- the emulator -----------------------------------------------------------------------------

def run_emulator(image, native: bool, max_insns: int, clock_kind: str = "cpu") -> Run:
    """One run on the emulator (native hooks or the Python paths)."""
    from aarch64mte.machine import Machine
    # tag provenance (a debugging aid) off: it costs the Python hooks' tag-writing rows 8-23%
    m = Machine(profile="virt", gmid_bs=GMID_BS, ram_size=RAM_SIZE, native=native,
                provenance=False)
    m.load_image(image)
    now = clock(clock_kind)
    t0 = now()
    r = m.run(max_insns=max_insns)
    seconds = now() - t0
    if r.reason == "insn-limit":
        raise BenchError(f"the emulator stopped at its limit of {max_insns:,} instructions")
    if r.reason != "semihost-exit" or r.code != 0:
        what = EXIT_MEANING.get(r.code, f"exit status {r.code}") if r.code else r.reason
        raise BenchError(f"the program ended with {what} on the emulator at pc={r.pc:#x}: "
                         f"{m.console.strip() or r.exception!r}")
    sums = parse_output(m.console)
    if sums is None:
        raise BenchError(f"no checksums in the emulator's output {m.console!r}")
    return Run(seconds, sums, m.counters.insns)


# --- raw Unicorn ------------------------------------------------------------------------------

def run_raw(image, timeout_s: float, clock_kind: str = "cpu") -> Run:
    """One run on Unicorn with no hooks, from the entry to `done`."""
    from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc, UcError
    from unicorn import arm64_const as A

    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
    uc.mem_map(RAM_BASE, RAM_SIZE)
    for addr, data in without_mte(image):
        uc.mem_write(addr, data)
    cp = A.UC_ARM64_REG_CP_REG
    uc.reg_write(cp, (1, 1, 3, 6, 0, 0x401))          # SCR_EL3: NS, RW
    uc.reg_write(cp, (1, 1, 3, 4, 0, 1 << 31))        # HCR_EL2.RW
    uc.reg_write(A.UC_ARM64_REG_PSTATE, 0x3C5)        # EL1h, DAIF masked
    done = image.symbols["done"]
    # the limit: a sleeping thread that stops the engine (emu_start's own timeout polls, and
    # its thread's CPU time would count as the run's)
    watchdog = threading.Timer(timeout_s, uc.emu_stop)
    watchdog.daemon = True
    now = clock(clock_kind)
    watchdog.start()
    t0 = now()
    try:
        uc.emu_start(image.entry, done)
    except UcError as e:
        raise BenchError(f"raw Unicorn stopped at pc={uc.reg_read(A.UC_ARM64_REG_PC):#x}: "
                         f"{e}") from None
    finally:
        seconds = now() - t0
        watchdog.cancel()
    pc = uc.reg_read(A.UC_ARM64_REG_PC)
    if pc != done:
        raise BenchError(f"raw Unicorn did not reach `done` within {timeout_s:.3g} s "
                         f"(pc={pc:#x})")
    return Run(seconds, Checksums(uc.reg_read(A.UC_ARM64_REG_X20),
                                  uc.reg_read(A.UC_ARM64_REG_X21)))


# --- QEMU system mode -------------------------------------------------------------------------

def qemu_path() -> Optional[str]:
    return shutil.which(os.environ.get("AARCH64MTE_QEMU_SYSTEM_AARCH64", QEMU))


def qemu_version(exe: str) -> Optional[str]:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"version (\S+)", out.stdout)
    return m.group(1) if m else None


def run_qemu(exe: str, image, timeout_s: float, clock_kind: str = "cpu") -> Run:
    """One run under QEMU, start-up included. CPU time is the child's user + system time."""
    from aarch64mte.elf import write_elf
    with tempfile.TemporaryDirectory(prefix="aarch64mte-bench-") as tmp:
        elf = os.path.join(tmp, "bench.elf")
        write_elf(image, elf)
        cmd = [exe, "-M", "virt,mte=on", "-cpu", "max", "-m", f"{RAM_SIZE >> 20}M",
               "-display", "none", "-serial", "none", "-monitor", "none", "-net", "none",
               "-semihosting", "-kernel", elf]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BenchError(f"QEMU did not finish within {timeout_s:.0f} s") from None
        except OSError as e:
            raise BenchError(f"cannot run {exe}: {e.strerror}") from None
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        what = EXIT_MEANING.get(p.returncode, f"exit status {p.returncode}")
        raise BenchError(f"the program ended with {what} under QEMU: "
                         f"{(p.stdout + p.stderr).strip()[:200]}")
    sums = parse_output(p.stdout + p.stderr)      # semihosting writes to stderr
    if sums is None:
        raise BenchError(f"no checksums in QEMU's output {(p.stdout + p.stderr)[:200]!r}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(cpu if clock_kind == "cpu" else wall, sums)
