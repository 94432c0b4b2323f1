"""ELF reading and writing: round trips, what binutils sees in our files, and bad input."""
from __future__ import annotations

import os
import struct

import pytest

from aarch64mte.assembler import assemble_file
from aarch64mte.elf import load_elf, write_elf
from aarch64mte.errors import InputError
from aarch64mte.image import Image, Segment
from conftest import requires_tool

HERE = os.path.dirname(os.path.abspath(__file__))
DIRECTIVES = os.path.join(HERE, "corpus", "directives.S")
MTE = os.path.join(HERE, "corpus", "mte_insns.s")


@pytest.fixture
def image():
    return assemble_file(DIRECTIVES)


def test_round_trip(image, tmp_path):
    path = str(tmp_path / "p.elf")
    write_elf(image, path)
    back = load_elf(path)
    assert back.entry == image.entry and back.symbols == image.symbols
    assert back.text_end == image.text_end
    assert [(s.addr, s.data, s.flags, s.name) for s in back.segments] == \
        [(s.addr, s.data, s.flags, s.name) for s in image.segments]


def test_bss_is_nobits_and_zero_filled(image, tmp_path):
    path = str(tmp_path / "p.elf")
    write_elf(image, path)
    assert os.path.getsize(path) < image.end - image.start + 0x2000
    bss = load_elf(path).segment(".bss")
    assert bss.data == bytes(len(bss.data)) and len(bss.data) == 272


@requires_tool("aarch64-linux-gnu-readelf")
def test_readelf_accepts_our_file(image, tmp_path, oracle):
    path = str(tmp_path / "p.elf")
    write_elf(image, path)
    out = oracle.run("aarch64-linux-gnu-readelf", "-W", "-h", "-l", "-S", "-s", path).stdout
    assert "EXEC (Executable file)" in out and "AArch64" in out
    assert f"Entry point address:               {image.entry:#x}" in out
    assert out.count("LOAD") == len(image.segments)
    assert ".symtab" in out and " _start" in out and " message" in out


@requires_tool("aarch64-linux-gnu-objdump")
def test_objdump_disassembles_our_file(tmp_path, oracle):
    image = assemble_file(MTE)
    path = str(tmp_path / "m.elf")
    write_elf(image, path)
    out = oracle.run("aarch64-linux-gnu-objdump", "-d", path).stdout
    assert "<f>:" in out
    assert "stgp\tx2, x3, [x1, #64]" in out and "mrs\tx0, gmid_el1" in out


@requires_tool("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")
def test_load_gnu_linked_file(tmp_path, oracle):
    src = tmp_path / "a.s"
    src.write_text(".globl _start\n_start: nop\nb _start\n.data\nd: .quad 1\n.bss\nb: .space 64\n")
    oracle.run("aarch64-linux-gnu-as", "-o", str(tmp_path / "a.o"), str(src))
    oracle.run("aarch64-linux-gnu-ld", "-static", "-Ttext=0x40080000", "-o", str(tmp_path / "a.elf"),
               str(tmp_path / "a.o"))
    img = load_elf(str(tmp_path / "a.elf"))
    assert img.entry == 0x40080000 == img.symbols["_start"]
    assert img.text_end == 0x40080008
    assert img.word(0x40080000) == 0xD503201F
    assert img.read(img.symbols["d"], 8) == (1).to_bytes(8, "little")
    assert img.read(img.symbols["b"], 64) == bytes(64)


# --- bad input ---------------------------------------------------------------------------------

def _elf_bytes(image) -> bytes:
    from aarch64mte.elf import elf_bytes
    return elf_bytes(image)


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file") as e:
        load_elf(str(tmp_path / "nope.elf"))
    assert e.value.file.endswith("nope.elf")


def test_not_elf(tmp_path):
    with pytest.raises(InputError, match="not an ELF file"):
        load_elf(_write(tmp_path, "x.bin", b"\x1f\x20\x03\xd5" * 4))


def test_truncated_header(image, tmp_path):
    with pytest.raises(InputError, match="truncated"):
        load_elf(_write(tmp_path, "t.elf", _elf_bytes(image)[:40]))


def test_truncated_segment(image, tmp_path):
    data = _elf_bytes(image)
    with pytest.raises(InputError, match="truncated"):
        load_elf(_write(tmp_path, "t.elf", data[:0x1800]))


def test_not_aarch64(image, tmp_path):
    data = bytearray(_elf_bytes(image))
    struct.pack_into("<H", data, 18, 62)  # e_machine = x86-64
    with pytest.raises(InputError, match=r"not an AArch64 ELF file \(e_machine 62: x86-64\)"):
        load_elf(_write(tmp_path, "x86.elf", bytes(data)))


def test_32bit(image, tmp_path):
    data = bytearray(_elf_bytes(image))
    data[4] = 1
    with pytest.raises(InputError, match="not a 64-bit"):
        load_elf(_write(tmp_path, "e32.elf", bytes(data)))


def test_relocatable(image, tmp_path):
    data = bytearray(_elf_bytes(image))
    struct.pack_into("<H", data, 16, 1)  # ET_REL
    with pytest.raises(InputError, match="relocatable object file"):
        load_elf(_write(tmp_path, "r.o", bytes(data)))


def test_no_program_headers(tmp_path):
    img = Image([Segment(0x1000, b"\0" * 4, "rx", ".text")], {}, 0x1000, 0x1004)
    data = bytearray(_elf_bytes(img))
    struct.pack_into("<H", data, 56, 0)  # e_phnum = 0
    with pytest.raises(InputError, match="no program headers"):
        load_elf(_write(tmp_path, "n.elf", bytes(data)))


def test_image_helpers(image):
    base, raw = image.to_binary()
    assert base == image.start and raw[:4] == image.read(base, 4)
    assert image.symbolize(image.symbols["func"] + 4) == "func+0x4"
    assert image.symbolize(image.symbols["_start"]) == "_start"
    assert image.segment_at(image.entry).name == ".text"
