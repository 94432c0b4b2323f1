"""Mutated ELF files through `aarch64mte run`: whatever a file holds, the command ends with exit
status 0, 1 or 2 (or the program's own semihosting exit code), one line per error, never a
traceback, a crash, a hang or unbounded memory.

Mutations start from real files: our own `asm` output and, where the cross compiler is installed,
a `aarch64-linux-gnu-gcc -static -nostdlib` program. They set header, program-header and
section-header fields to boundary values, truncate, extend, flip bytes, make segments overlap and
give sizes, offsets and counts huge values. The cases run in batches: one subprocess (this file
run as a script) loads each file in turn through the CLI's `main`, under an address-space limit
and a timeout, and prints one line per case, so a crash still names the case that caused it.

Default: 60 cases. `--long`: 6000 (the figures are printed with -s).
"""
from __future__ import annotations

import json
import os
import random
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conftest import tool  # noqa: E402

ADDRESS_SPACE_LIMIT = 6 << 30       # each Machine reserves ~1.2 GiB of address space (Unicorn)
BATCH_TIMEOUT = 600
MAX_INSNS = "20000"

# ELF64 field offsets and widths (System V ABI, ELF-64 Object File Format)
EHDR_FIELDS = {"e_type": (16, "H"), "e_machine": (18, "H"), "e_version": (20, "I"),
               "e_entry": (24, "Q"), "e_phoff": (32, "Q"), "e_shoff": (40, "Q"),
               "e_ehsize": (52, "H"), "e_phentsize": (54, "H"), "e_phnum": (56, "H"),
               "e_shentsize": (58, "H"), "e_shnum": (60, "H"), "e_shstrndx": (62, "H")}
PHDR_FIELDS = {"p_type": (0, "I"), "p_flags": (4, "I"), "p_offset": (8, "Q"),
               "p_vaddr": (16, "Q"), "p_paddr": (24, "Q"), "p_filesz": (32, "Q"),
               "p_memsz": (40, "Q"), "p_align": (48, "Q")}
SHDR_FIELDS = {"sh_name": (0, "I"), "sh_type": (4, "I"), "sh_flags": (8, "Q"),
               "sh_addr": (16, "Q"), "sh_offset": (24, "Q"), "sh_size": (32, "Q"),
               "sh_link": (40, "I"), "sh_info": (44, "I"), "sh_entsize": (56, "Q")}
WIDTH = {"H": 16, "I": 32, "Q": 64}

RAM = 0x4000_0000
GCC_PROGRAM = r"""
static const char msg[] = "gcc-built\n";
static long block[2];
int counter = 1;
static long semihost(long op, void *arg) {
    register long x0 asm("x0") = op;
    register void *x1 asm("x1") = arg;
    asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
    return x0;
}
void _start(void) {
    semihost(0x04, (void *)msg);
    block[0] = 0x20026; block[1] = counter - 1;
    semihost(0x18, block);
    for (;;);
}
"""


# --- the seeds ---------------------------------------------------------------------------------

def asm_seed(dest: Path) -> Path:
    from aarch64mte.assembler import assemble_file
    from aarch64mte.elf import write_elf
    out = dest / "seed_asm.elf"
    write_elf(assemble_file(str(ROOT / "asm" / "debug_demo.S")), str(out))
    return out


def gcc_seed(dest: Path) -> Path | None:
    gcc = tool("aarch64-linux-gnu-gcc")
    if gcc is None:
        return None
    src = dest / "seed_gcc.c"
    src.write_text(GCC_PROGRAM)
    out = dest / "seed_gcc.elf"
    r = subprocess.run([gcc, "-static", "-nostdlib", "-O1", "-Wl,-Ttext=0x40080000", "-o",
                        str(out), str(src)], capture_output=True, text=True, timeout=120)
    return out if r.returncode == 0 else None


# --- mutations ---------------------------------------------------------------------------------

def _interesting(rng: random.Random, bits: int, size: int) -> int:
    top = (1 << bits) - 1
    return top & rng.choice([0, 1, 2, 4, 7, 0x38, 0x40, 0x1000, size - 1, size, size + 1, top,
                             top - 1, top >> 1, (top >> 1) + 1, 0x7fff_ffff, 0x8000_0000,
                             0x2000_0000, RAM, RAM + (128 << 20), RAM + (128 << 20) - 8,
                             0x40_0000, rng.getrandbits(bits), rng.getrandbits(min(bits, 20))])


def _put(data: bytearray, off: int, fmt: str, value: int) -> None:
    if 0 <= off and off + struct.calcsize("<" + fmt) <= len(data):
        struct.pack_into("<" + fmt, data, off, value)


def _get(data: bytes, off: int, fmt: str, default: int = 0) -> int:
    if 0 <= off and off + struct.calcsize("<" + fmt) <= len(data):
        return struct.unpack_from("<" + fmt, data, off)[0]
    return default


def _tables(data: bytes):
    phoff, phnum = _get(data, 32, "Q"), _get(data, 56, "H")
    shoff, shnum = _get(data, 40, "Q"), _get(data, 60, "H")
    return phoff, min(phnum, 64), shoff, min(shnum, 64)


def mutate(seed: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutated file and a short description of what was done to it."""
    data = bytearray(seed)
    phoff, phnum, shoff, shnum = _tables(seed)
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.choice(["ehdr", "phdr", "phdr", "phdr", "shdr", "truncate", "extend", "flip",
                         "overlap", "huge"])
        if op == "ehdr":
            name = rng.choice(list(EHDR_FIELDS))
            off, fmt = EHDR_FIELDS[name]
            _put(data, off, fmt, _interesting(rng, WIDTH[fmt], len(data)))
            done.append(name)
        elif op in ("phdr", "huge") and phnum:
            i = rng.randrange(phnum)
            name = rng.choice(["p_memsz", "p_filesz", "p_offset", "p_vaddr"]) if op == "huge" \
                else rng.choice(list(PHDR_FIELDS))
            off, fmt = PHDR_FIELDS[name]
            value = rng.choice([1 << 31, 1 << 32, 1 << 63, (1 << 64) - 1, 0x2000_0000]) \
                if op == "huge" else _interesting(rng, WIDTH[fmt], len(data))
            _put(data, phoff + 56 * i + off, fmt, value)
            done.append(f"{name}[{i}]={value:#x}")
        elif op == "shdr" and shnum:
            i = rng.randrange(shnum)
            name = rng.choice(list(SHDR_FIELDS))
            off, fmt = SHDR_FIELDS[name]
            _put(data, shoff + 64 * i + off, fmt, _interesting(rng, WIDTH[fmt], len(data)))
            done.append(f"{name}[{i}]")
        elif op == "truncate":
            n = rng.choice([rng.randrange(len(data) + 1), rng.randrange(min(len(data), 256) + 1)])
            del data[n:]
            done.append(f"truncate {n}")
        elif op == "extend":
            data += bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 15, 4096])))
            done.append("extend")
        elif op == "flip" and data:
            for _ in range(rng.choice([1, 4, 32])):
                data[rng.randrange(min(len(data), rng.choice([64, 512, len(data)])))] ^= \
                    1 << rng.randrange(8)
            done.append("flip")
        elif op == "overlap" and phnum >= 2:
            a, b = rng.sample(range(phnum), 2)
            vaddr = _get(data, phoff + 56 * a + 16, "Q")
            _put(data, phoff + 56 * b + 16, "Q", (vaddr + rng.choice([0, 8, 0x10])) % (1 << 64))
            done.append(f"overlap {a},{b}")
    return ", ".join(done) or "unchanged", bytes(data)


def make_cases(seeds: list[Path], count: int, dest: Path, seed: int) -> list[dict]:
    rng = random.Random(seed)
    cases = []
    raws = [(p.stem, p.read_bytes()) for p in seeds]
    for i in range(count):
        name, raw = raws[i % len(raws)]
        what, data = mutate(raw, rng)
        path = dest / f"case{i:05d}.elf"
        path.write_bytes(data)
        cases.append({"path": str(path), "what": f"{name}: {what}"})
    return cases


# --- the driver (this file run as a script) ----------------------------------------------------

def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def driver(paths: list[str]) -> None:
    """Run each file through the CLI in this process; one JSON line per case on stdout."""
    import contextlib
    import gc
    import io
    import traceback

    from aarch64mte.cli.main import main
    real_stdout = sys.stdout
    for path in paths:
        print(json.dumps({"start": path}), file=real_stdout, flush=True)
        out, err = io.StringIO(), io.StringIO()
        crash = None
        status = None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = main(["run", path, "--max-insns", MAX_INSNS])
        except BaseException:           # what the user would have seen: a traceback
            crash = traceback.format_exc()
        gc.collect()                    # each Machine holds ~1.2 GiB of address space
        print(json.dumps({"path": path, "status": status, "stdout": out.getvalue()[-2000:],
                          "stderr": err.getvalue()[-2000:], "crash": crash}),
              file=real_stdout, flush=True)


def run_batch(paths: list[str]) -> tuple[list[dict], str]:
    """Run the driver on `paths`; (results, what went wrong with the process itself)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        r = subprocess.run([sys.executable, __file__, *paths], capture_output=True, text=True,
                           timeout=BATCH_TIMEOUT, preexec_fn=_limit_memory, env=env)
        out, problem = r.stdout, "" if r.returncode == 0 else \
            f"driver exited with {r.returncode}: {r.stderr[-2000:]}"
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        problem = f"driver timed out after {BATCH_TIMEOUT} s"
    results, started = [], None
    for line in out.splitlines():
        rec = json.loads(line)
        if "start" in rec:
            started = rec["start"]
        else:
            results.append(rec)
            started = None
    if started is not None:
        problem += f" (during {started})"
    return results, problem


def check(cases: list[dict], results: list[dict], problem: str) -> list[str]:
    """Every way the cases broke the promise, one line each."""
    what = {c["path"]: c["what"] for c in cases}
    bad = [f"{problem}: {what.get(problem.rpartition('during ')[2].rstrip(')'), '')}"] \
        if problem else []
    for r in results:
        label = f"{Path(r['path']).name} ({what[r['path']]})"
        text = r["stdout"] + r["stderr"]
        if r["crash"] or "Traceback" in text:
            bad.append(f"{label}: traceback\n{r['crash'] or text}")
            continue
        status = r["status"]
        semihost = "exited through semihosting" in r["stdout"]
        if status not in (0, 1, 2) and not semihost:
            bad.append(f"{label}: exit status {status}")
        errors = [ln for ln in r["stderr"].splitlines() if ": error: " in ln]
        if status == 2 and (len(errors) != 1 or r["stdout"]):
            bad.append(f"{label}: status 2 needs one error line and no report:\n{text}")
    if len(results) != len(cases) and not problem:
        bad.append(f"{len(cases) - len(results)} cases gave no result")
    return bad


def fuzz(tmp_path: Path, count: int, seed: int, batch: int) -> dict:
    seeds = [asm_seed(tmp_path)]
    gcc = gcc_seed(tmp_path)
    if gcc is not None:
        seeds.append(gcc)
    cases = make_cases(seeds, count, tmp_path, seed)
    failures, statuses = [], {}
    for i in range(0, len(cases), batch):
        chunk = cases[i:i + batch]
        results, problem = run_batch([c["path"] for c in chunk])
        failures += check(chunk, results, problem)
        for r in results:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {"cases": len(cases), "seeds": [p.name for p in seeds], "statuses": statuses,
            "failures": failures}


def _report(figures: dict) -> None:
    print(f"\nELF fuzz: {figures['cases']} cases from {', '.join(figures['seeds'])}; exit "
          f"statuses {dict(sorted(figures['statuses'].items(), key=str))}; failures: "
          f"{len(figures['failures'])}")


def test_mutated_elf_files(tmp_path):
    figures = fuzz(tmp_path, count=60, seed=1, batch=60)
    _report(figures)
    assert not figures["failures"], "\n\n".join(figures["failures"][:10])


@pytest.mark.long
@pytest.mark.timeout(3600)
def test_mutated_elf_files_deep(tmp_path):
    figures = fuzz(tmp_path, count=6000, seed=2, batch=500)
    _report(figures)
    assert not figures["failures"], "\n\n".join(figures["failures"][:10])


if __name__ == "__main__":
    driver(sys.argv[1:])
