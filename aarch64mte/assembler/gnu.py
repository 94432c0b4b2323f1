"""The `gnu` backend: aarch64-linux-gnu-as + ld with a linker script for the builtin layout.

The object's sections are assigned to .text/.rodata/.data/.bss by the same rule the builtin
assembler uses, and listed explicitly in the generated script, so both backends produce the
same addresses.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from ..errors import InputError
from ..image import PAGE, SECTION_ORDER, Image

AS_NAMES = ("aarch64-linux-gnu-as", "aarch64-none-elf-as", "aarch64-elf-as")
LD_NAMES = ("aarch64-linux-gnu-ld", "aarch64-none-elf-ld", "aarch64-elf-ld")
AS_FLAGS = ("-march=armv8.5-a+memtag",)


def find_tool(names) -> str | None:
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


# GNU as reads what it is given without limits (`.include "/dev/zero"` grows without end): its
# runs are bounded in time and address space, and exceeding either is an input error.
TOOL_TIMEOUT = 120
TOOL_MEMORY = 4 << 30


def _limit_memory() -> None:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = TOOL_MEMORY if hard == resource.RLIM_INFINITY else min(TOOL_MEMORY, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _run(cmd, what: str, filename: str, workdir: str, srcpath: str) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                           preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        raise InputError(f"{what} did not finish within {TOOL_TIMEOUT} s", filename) from None
    except (OSError, subprocess.SubprocessError) as e:
        raise InputError(f"cannot run {what}: {e}", filename) from None
    if r.returncode != 0:
        raise InputError(_first_error(r.stderr, srcpath, filename, what))


def _first_error(stderr: str, srcpath: str, filename: str, what: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip() and "Assembler messages" not in l]
    msgs = []
    for l in lines:
        l = l.replace(srcpath, filename)
        l = re.sub(r"^/\S*/link\.ld", "linker script", l)
        msgs.append(l)
    return (msgs[0] if msgs else f"{what} failed") + (f" (+{len(msgs) - 1} more)" if len(msgs) > 1 else "")


def linker_script(sections: list[tuple[str, str]], base: int) -> str:
    """sections: (name, output kind) in object order."""
    out = ["ENTRY(_start)", "SECTIONS", "{", f"  . = {base:#x};"]
    first = True
    for kind, _flags in SECTION_ORDER:
        names = [n for n, k in sections if k == kind]
        boot = [n for n in names if n == kind + ".boot"]
        names = boot + [n for n in names if n not in boot]
        if not first:
            out.append(f"  . = ALIGN({PAGE:#x});")
        first = False
        if not names:
            continue
        body = " ".join(f"*({n})" for n in names)
        extra = " *(COMMON)" if kind == ".bss" else ""
        out.append(f"  {kind} : {{ {body}{extra} }}")
    out.append("  /DISCARD/ : { *(.comment) *(.note*) *(.ARM.attributes) *(.eh_frame*) }")
    out.append("}")
    return "\n".join(out) + "\n"


def object_sections(objpath: str) -> list[tuple[str, str]]:
    from elftools.elf.elffile import ELFFile

    from .sections import output_kind
    out = []
    with open(objpath, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            flags = sec["sh_flags"]
            if not flags & 2:  # SHF_ALLOC
                continue
            if sec.name.startswith((".note", ".eh_frame")):
                continue
            fl = ("a" + ("w" if flags & 1 else "") + ("x" if flags & 4 else ""))
            out.append((sec.name, output_kind(sec.name, fl, sec["sh_type"] == "SHT_NOBITS")))
    return out


def assemble_gnu(text: str, filename: str = "<string>", base: int = 0x4008_0000) -> Image:
    as_ = find_tool(AS_NAMES)
    ld = find_tool(LD_NAMES)
    if not as_ or not ld:
        raise InputError("the gnu backend needs aarch64-linux-gnu-as and aarch64-linux-gnu-ld "
                         "(Debian: apt-get install binutils-aarch64-linux-gnu)")
    from ..elf import load_elf
    with tempfile.TemporaryDirectory(prefix="aarch64mte-") as d:
        src = os.path.join(d, "src.s")
        obj = os.path.join(d, "src.o")
        out = os.path.join(d, "out.elf")
        script = os.path.join(d, "link.ld")
        with open(src, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        if filename and not filename.startswith("<"):
            inc = ["-I", os.path.dirname(os.path.abspath(filename))]
        else:
            inc = []
        _run([as_, *AS_FLAGS, *inc, "-o", obj, src], "GNU as", filename, d, src)
        with open(script, "w") as f:
            f.write(linker_script(object_sections(obj), base))
        _run([ld, "-static", "-nostdlib", "--no-warn-rwx-segments", "-z", "max-page-size=4096",
              "-T", script, "-o", out, obj], "GNU ld", filename, d, src)
        image = load_elf(out)
    image.symbols = {k: v for k, v in image.symbols.items() if not k.startswith("$")}
    if "_start" not in image.symbols:
        image.entry = base
    return image
