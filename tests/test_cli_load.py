"""Loading a program through `aarch64mte run`: what does not fit the board, what is not a file,
and ELF files as linkers really write them. Each case ends in one clear line and exit status 2
(or runs, when the file is valid), never a traceback.

The board (QEMU virt's map, aarch64mte.machine.memory): RAM [0x4000_0000, 0x4800_0000), 128 MiB;
nothing else but the UART page can hold a program's bytes.
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import subprocess
from pathlib import Path

import pytest

from aarch64mte.assembler import assemble
from aarch64mte.cli.main import main
from aarch64mte.elf import elf_bytes, load_elf, parse_elf, write_elf
from aarch64mte.errors import InputError
from aarch64mte.image import Image, Segment
from conftest import requires_tool

ROOT = Path(__file__).resolve().parent.parent
RAM_BASE, RAM_END = 0x4000_0000, 0x4800_0000
EXIT_SOURCE = """
        .text
        .globl _start
_start: adr x1, block
        mov x0, #0x18           // SYS_EXIT
        hlt #0xf000
        .data
block:  .quad 0x20026, 0        // ADP_Stopped_ApplicationExit, status 0
"""


def aarch64mte(*args, cwd=None):
    """The command line run in this process (as the console script would): its exit status and
    what it printed."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main([str(a) for a in args])
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def one_error(r, *fragments):
    """Exit status 2, no report, exactly one error line holding every fragment."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and not r.stdout
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1, r.stderr
    for f in fragments:
        assert f in errors[0], (f, errors[0])
    return errors[0]


def asm_elf(tmp_path, source: str, *options) -> Path:
    src = tmp_path / "prog.S"
    src.write_text(source)
    out = tmp_path / "prog.elf"
    r = aarch64mte("asm", src, "-o", out, *options)
    assert r.returncode == 0, r.stderr
    return out


# --- segments outside RAM ------------------------------------------------------------------------

@pytest.mark.parametrize("base", ["0x1000", "0x80000000"])
def test_asm_output_linked_outside_ram(tmp_path, base):
    elf = asm_elf(tmp_path, EXIT_SOURCE, "--base", base)
    line = one_error(aarch64mte("run", elf), "prog.elf", "outside RAM", ".text",
                     "it holds the entry point", "0x40000000..0x48000000")
    assert f"{int(base, 16):#x}" in line


def test_skip_past_the_end_of_ram_from_source(tmp_path):
    # .bss of 128 MiB from 0x4008_2000 runs past the end of RAM (0x4800_0000). (The case seen
    # was .skip 0x20000000; 128 MiB is enough to pass the end and assembles faster.)
    src = tmp_path / "big.S"
    src.write_text(EXIT_SOURCE + "        .bss\n        .skip 0x8000000\n")
    one_error(aarch64mte("run", src), "big.S", ".bss", "runs past the end of RAM")


def _patch_last_memsz(elf: Path, memsz: int) -> None:
    data = bytearray(elf.read_bytes())
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    struct.pack_into("<Q", data, phoff + 56 * (phnum - 1) + 40, memsz)   # the .bss p_memsz
    elf.write_bytes(bytes(data))


def test_skip_past_the_end_of_ram_as_elf(tmp_path):
    # what `asm` writes for `.bss; .skip 0x20000000`: a NOBITS segment of 512 MiB. Refused
    # before its zeros are made: the image alone is larger than RAM.
    elf = asm_elf(tmp_path, EXIT_SOURCE + "        .bss\n        .skip 16\n")
    _patch_last_memsz(elf, 0x2000_0000)
    one_error(aarch64mte("run", elf), "prog.elf", "134,217,728")


def test_segment_straddling_the_end_of_ram(tmp_path):
    image = assemble(EXIT_SOURCE, base=RAM_END - 0x1000)     # .text fits, .data does not
    path = tmp_path / "straddle.elf"
    write_elf(image, str(path))
    one_error(aarch64mte("run", path), ".data", "is outside RAM", "the program writes it")
    image = Image([Segment(RAM_END - 0x800, b"\x1f\x20\x03\xd5" * 0x400, "rx", ".text")], {},
                  RAM_END - 0x800, RAM_END + 0x800)
    write_elf(image, str(path))
    one_error(aarch64mte("run", path), "runs past the end of RAM")


def test_two_gib_memsz(tmp_path):
    elf = asm_elf(tmp_path, EXIT_SOURCE + "        .bss\n        .skip 16\n")
    _patch_last_memsz(elf, 2 << 30)
    one_error(aarch64mte("run", elf), "program header", "at most 134,217,728")


def test_snippet_page_tables_are_not_overwritten():
    # The snippet profile builds its page tables in the top 64 KiB of RAM: an image reaching
    # there would be silently overwritten, so it is refused. The virt profile builds none.
    from aarch64mte.machine import Machine
    image = assemble(EXIT_SOURCE + "        .bss\n        .skip 0x10000\n", base=0x47fe0000)
    with pytest.raises(InputError, match=r"\.bss .* reaches into 0x47ff0000\.\.0x48000000, "
                                         r"where the snippet profile builds its page tables"):
        Machine(profile="snippet").load_image(image)
    m = Machine(profile="virt")
    m.load_image(image)
    assert m.run().reason == "semihost-exit"


def test_overlapping_segments(tmp_path):
    image = Image([Segment(0x4008_0000, b"\x1f\x20\x03\xd5" * 8, "rx", ".text"),
                   Segment(0x4008_0010, b"\x00" * 32, "rw", ".data")], {}, 0x4008_0000,
                  0x4008_0020)
    path = tmp_path / "overlap.elf"
    write_elf(image, str(path))
    one_error(aarch64mte("run", path), "overlap")


def test_entry_point_outside_ram(tmp_path):
    image = assemble(EXIT_SOURCE)
    image.entry = 0x10
    path = tmp_path / "entry.elf"
    write_elf(image, str(path))
    one_error(aarch64mte("run", path), "entry point 0x10 is outside RAM")


# --- mutated headers -----------------------------------------------------------------------------

def _exit_elf_bytes() -> bytearray:
    return bytearray(elf_bytes(assemble(EXIT_SOURCE)))


def test_e_shoff_1_loads_without_symbols(tmp_path):
    data = _exit_elf_bytes()
    struct.pack_into("<Q", data, 40, 1)                 # e_shoff = 1: pyelftools overflowed
    path = tmp_path / "shoff.elf"
    path.write_bytes(bytes(data))
    image = parse_elf(bytes(data), str(path))
    assert image.symbols == {} and image.notes and "section headers unusable" in image.notes[0]
    r = aarch64mte("run", path)
    assert r.returncode == 0, r.stderr
    assert "note:" in r.stderr and "loaded without symbols" in r.stderr


@pytest.mark.parametrize("field,offset,fmt,value,expect", [
    ("p_memsz", 40, "Q", 1 << 63, "at most"),                   # OverflowError making zeros
    ("p_memsz", 40, "Q", (1 << 64) - 1, "64-bit address space"),
    ("p_filesz", 32, "Q", (1 << 64) - 1, "smaller than its file size"),
    ("p_offset", 8, "Q", (1 << 64) - 1, "truncated ELF file"),
    ("p_vaddr", 16, "Q", (1 << 64) - 8, "64-bit address space"),
])
def test_huge_program_header_fields(tmp_path, field, offset, fmt, value, expect):
    data = _exit_elf_bytes()
    phoff = struct.unpack_from("<Q", data, 32)[0]
    struct.pack_into("<" + fmt, data, phoff + offset, value)
    path = tmp_path / f"{field}.elf"
    path.write_bytes(bytes(data))
    one_error(aarch64mte("run", path), "program header 0", expect)


@pytest.mark.parametrize("offset,fmt,value,expect", [
    (32, "Q", (1 << 64) - 1, "program headers"),    # e_phoff
    (56, "H", 0xFFFF, "PN_XNUM"),                  # e_phnum
    (54, "H", 1, "e_phentsize"),
    (32, "Q", 0x10000, "run past its end"),
])
def test_bad_elf_header_fields(tmp_path, offset, fmt, value, expect):
    data = _exit_elf_bytes()
    struct.pack_into("<" + fmt, data, offset, value)
    with pytest.raises(InputError, match=expect):
        parse_elf(bytes(data), "x.elf")


# --- valid files linkers write -------------------------------------------------------------------

def test_bss_only_segment_with_offset_past_the_end_of_the_file(tmp_path):
    # ld gives a .bss-only PT_LOAD (p_filesz = 0) whatever p_offset it likes, often past the
    # end of the file: nothing is read from the file for it, so it is valid.
    image = assemble(EXIT_SOURCE + "        .bss\nbuf:    .skip 64\n")
    data = bytearray(elf_bytes(image))
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    last = phoff + 56 * (phnum - 1)
    assert struct.unpack_from("<Q", data, last + 32)[0] == 0        # p_filesz of .bss
    struct.pack_into("<Q", data, last + 8, len(data) + 0x10000)     # p_offset past the end
    path = tmp_path / "bss.elf"
    path.write_bytes(bytes(data))
    assert load_elf(str(path)).segment(".bss").data == bytes(64)
    r = aarch64mte("run", path)
    assert r.returncode == 0, r.stderr


GCC_PROGRAM = r"""
static const char msg[] = "hello from gcc\n";
static long block[2];
int counter = 41;
static long semihost(long op, void *arg) {
    register long x0 asm("x0") = op;
    register void *x1 asm("x1") = arg;
    asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
    return x0;
}
void _start(void) {
    counter++;
    semihost(0x04, (void *)msg);                 /* SYS_WRITE0 */
    block[0] = 0x20026; block[1] = counter;      /* ADP_Stopped_ApplicationExit, 42 */
    semihost(0x18, block);                       /* SYS_EXIT */
    for (;;);
}
"""


def _gcc(oracle, tmp_path, *flags) -> Path:
    gcc = oracle.require("aarch64-linux-gnu-gcc")
    src = tmp_path / "hello.c"
    src.write_text(GCC_PROGRAM)
    out = tmp_path / "hello.elf"
    oracle_run = subprocess.run([gcc, "-static", "-nostdlib", "-O1", *flags, "-o", str(out),
                                 str(src)], capture_output=True, text=True, timeout=120)
    assert oracle_run.returncode == 0, oracle_run.stderr
    return out


@requires_tool("aarch64-linux-gnu-gcc")
def test_plain_gcc_static_nostdlib_elf_runs(tmp_path, oracle):
    # ld maps the ELF and program headers (and the build-id note) in a read-only segment at
    # 0x400000, below RAM: the program never reads it, so it is left out with a note.
    elf = _gcc(oracle, tmp_path, "-Wl,-Ttext=0x40080000")
    r = aarch64mte("run", elf)
    assert r.returncode == 42, r.stderr                 # the program's semihosting exit code
    assert "hello from gcc" in r.stdout
    notes = [ln for ln in r.stderr.splitlines() if "note:" in ln]
    assert len(notes) == 1 and "ELF headers" in notes[0] and "0x400000" in notes[0]
    assert "error" not in r.stderr


@requires_tool("aarch64-linux-gnu-gcc")
def test_gcc_elf_without_section_headers_runs(tmp_path, oracle):
    # what the loader decides comes from the program headers alone: with the section headers
    # gone (e_shoff = e_shnum = e_shstrndx = 0, as sstrip leaves a file) the headers-only
    # segment is still recognised and left out
    elf = _gcc(oracle, tmp_path, "-Wl,-Ttext=0x40080000")
    data = bytearray(elf.read_bytes())
    struct.pack_into("<Q", data, 40, 0)
    struct.pack_into("<HH", data, 60, 0, 0)
    elf.write_bytes(bytes(data))
    image = load_elf(str(elf))
    assert image.symbols == {} and not image.notes
    assert [s.optional for s in image.segments] == [True, False, False]
    r = aarch64mte("run", elf)
    assert r.returncode == 42 and "hello from gcc" in r.stdout, r.stderr


@requires_tool("aarch64-linux-gnu-gcc")
def test_gcc_elf_with_data_outside_ram_is_refused(tmp_path, oracle):
    # .data linked at 0x10000: the program writes it, so it cannot be left out.
    elf = _gcc(oracle, tmp_path, "-Wl,-Ttext=0x40080000", "-Wl,-Tdata=0x10000")
    one_error(aarch64mte("run", elf), ".data", "outside RAM", "the program writes it")


# --- not a file ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,expect", [
    ("/dev/zero", "is a character device, not a file"),
    ("/dev/urandom", "is a character device, not a file"),
    (".", "is a directory, not a file"),
    ("no-such.elf", "no such file"),
])
def test_program_that_is_not_a_regular_file(tmp_path, path, expect):
    for command in (["run", path], ["debug", path, "--batch"], ["disasm", path],
                    ["gdbserver", path, "--port", "0"]):
        r = aarch64mte(*command, cwd=tmp_path)
        assert r.returncode == 2, (command, r.stderr)
        assert expect in r.stderr and "Traceback" not in r.stderr, (command, r.stderr)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "prog.elf"
    os.mkfifo(fifo)
    one_error(aarch64mte("run", fifo), "is a FIFO")


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "secret.elf"
    path.write_bytes(elf_bytes(assemble(EXIT_SOURCE)))
    path.chmod(0)
    one_error(aarch64mte("run", path), "permission denied")
