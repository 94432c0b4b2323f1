"""Static AArch64 ELF files: `load_elf(path) -> Image` (pyelftools), `write_elf(image, path)`."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from .errors import InputError, host_failures, read_input
from .image import Image, Segment

EM_AARCH64 = 183
ET_EXEC, ET_DYN, ET_REL = 2, 3, 1
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 1, 2, 3, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
PT_NOTE = 4
PN_XNUM = 0xFFFF
SHN_XINDEX = 0xFFFF
#: Images asking for more memory than this are refused before it is allocated (the machine
#: passes its RAM size instead).
MAX_IMAGE_BYTES = 1 << 30
#: Segment.name of a PT_LOAD segment that holds only the ELF and program headers and notes.
HEADERS_SEGMENT = "ELF headers"
_MACHINES = {0: "none", 3: "x86 (i386)", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 40: "ARM (32-bit)",
             62: "x86-64", 183: "AArch64", 243: "RISC-V"}


def load_elf(path: str, max_bytes: int = MAX_IMAGE_BYTES) -> Image:
    """Read a static AArch64 executable: PT_LOAD segments (memsz beyond filesz zero-filled),
    symbols from .symtab (functions and objects, no mapping or section symbols), the entry.

    `max_bytes` bounds the memory the segments may ask for (the machine passes its RAM size),
    checked before any of it is allocated. Raises InputError for anything else than a regular,
    well-formed file."""
    return parse_elf(read_input(path), path, max_bytes)


def parse_elf(raw: bytes, path: str = "<bytes>", max_bytes: int = MAX_IMAGE_BYTES) -> Image:
    """The Image an ELF file's bytes describe. Every table is bounds-checked against the file
    before it is read, so a corrupt file gets one InputError naming the field at fault; the
    section headers are only needed for symbols and names, so when they are unusable the image
    loads without them and says so in `Image.notes`."""
    with host_failures(path, "corrupt ELF file"):
        return _parse(raw, path, max_bytes)


def _parse(raw: bytes, path: str, max_bytes: int) -> Image:
    header = _header(raw, path)
    loads = _loads(raw, path, header, max_bytes)
    sections, symbols, notes = _sections(raw, path, header)
    metadata = _metadata_ranges(raw, header)
    segments = []
    for p in loads:
        data = raw[p.offset:p.offset + p.filesz] + bytes(p.memsz - p.filesz)
        flags = "".join(c for bit, c in ((PF_R, "r"), (PF_W, "w"), (PF_X, "x")) if p.flags & bit)
        inside = [s for s in sections if s.flags & SHF_ALLOC and s.size and
                  p.vaddr <= s.addr < p.vaddr + p.memsz]
        name = min(inside, key=lambda s: s.addr).name if inside else \
            ("text" if "x" in flags else "data")
        optional = _headers_only(raw, p, header, metadata)
        segments.append(Segment(p.vaddr, data, flags, HEADERS_SEGMENT if optional else name,
                                optional=optional))
    entry = header.entry
    text = next((s for s in sections if s.name == ".text" and s.flags & SHF_ALLOC), None)
    text_end = text.addr + text.size if text is not None else None
    if text_end is None or not any("x" in s.flags and s.addr < text_end <= s.end
                                   for s in segments):
        seg = next((s for s in segments if entry in s and "x" in s.flags), None) or \
            next((s for s in segments if "x" in s.flags), segments[0])
        text_end = seg.end
    return Image(segments, symbols, entry, text_end, notes=notes)


# --- reading, one table at a time -------------------------------------------------------------


_EHDR = struct.Struct("<HHIQQQIHHHHHH")           # after e_ident
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")


@dataclass(frozen=True)
class _Header:
    entry: int
    phoff: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int


@dataclass(frozen=True)
class _Load:
    index: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class _Section:
    name: str
    flags: int
    addr: int
    size: int




def _header(raw: bytes, path: str) -> _Header:
    if len(raw) < 4 or raw[:4] != b"\x7fELF":
        raise InputError("not an ELF file (no \\x7fELF magic)", path)
    if len(raw) < 64:
        raise InputError(f"truncated ELF file ({len(raw)} bytes, header needs 64)", path)
    if raw[4] != 2:
        raise InputError("not a 64-bit ELF file (ELFCLASS32): AArch64 executables are ELF64", path)
    if raw[5] != 1:
        raise InputError("big-endian ELF file: only little-endian AArch64 is supported", path)
    (e_type, e_machine, _version, entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
     shentsize, shnum, shstrndx) = _EHDR.unpack_from(raw, 16)
    if e_machine != EM_AARCH64:
        what = _MACHINES.get(e_machine, f"machine {e_machine}")
        raise InputError(f"not an AArch64 ELF file (e_machine {e_machine}: {what})", path)
    if e_type == ET_REL:
        raise InputError("relocatable object file (ET_REL), not an executable: link it first", path)
    if e_type not in (ET_EXEC, ET_DYN):
        raise InputError(f"not an executable ELF file (e_type {e_type})", path)
    if phnum == 0:
        raise InputError("ELF file has no program headers (nothing to load)", path)
    if phnum == PN_XNUM:
        raise InputError("ELF file has 65535 or more program headers (PN_XNUM): not supported",
                         path, offset=56)
    if phentsize != _PHDR.size:
        raise InputError(f"corrupt ELF header: e_phentsize is {phentsize}, not {_PHDR.size}",
                         path, offset=54)
    if phoff > len(raw) or phnum * _PHDR.size > len(raw) - phoff:
        raise InputError(f"truncated ELF file: {phnum} program headers at {phoff:#x} run past "
                         f"its end ({len(raw):#x} bytes)", path, offset=32)
    return _Header(entry, phoff, phnum, shoff, shentsize, shnum, shstrndx)


def _loads(raw: bytes, path: str, h: _Header, max_bytes: int) -> list[_Load]:
    """The PT_LOAD entries that occupy memory, each checked against the file and the others."""
    out = []
    total = 0
    for i in range(h.phnum):
        at = h.phoff + i * _PHDR.size
        p_type, flags, offset, vaddr, _paddr, filesz, memsz, _align = _PHDR.unpack_from(raw, at)
        if p_type != PT_LOAD or memsz == 0 and filesz == 0:
            continue
        what = f"program header {i} (PT_LOAD at {vaddr:#x})"
        if memsz < filesz:
            raise InputError(f"corrupt {what}: memory size {memsz:#x} is smaller than its file "
                             f"size {filesz:#x}", path, offset=at)
        if vaddr + memsz > 1 << 64:
            raise InputError(f"corrupt {what}: {memsz:#x} bytes from {vaddr:#x} pass the end of "
                             f"the 64-bit address space", path, offset=at)
        # p_offset only matters for bytes that come from the file: a .bss-only segment
        # (p_filesz = 0) may name any offset, and ld's often lies past the end.
        if filesz and (offset > len(raw) or filesz > len(raw) - offset):
            raise InputError(f"truncated ELF file: {what} needs file bytes {offset:#x}.."
                             f"{offset + filesz:#x}, the file has {len(raw):#x}", path, offset=at)
        total += memsz
        if total > max_bytes:
            raise InputError(f"{what} brings the image to {total:,} bytes of memory; at most "
                             f"{max_bytes:,} can be loaded", path, offset=at)
        out.append(_Load(i, flags, offset, vaddr, filesz, memsz))
    if not out:
        raise InputError("ELF file has no loadable (PT_LOAD) segments", path)
    return out


def _metadata_ranges(raw: bytes, h: _Header) -> list:
    """The file ranges a loader need not map: the ELF header, the program header table and
    PT_NOTE contents, sorted."""
    ranges = [(0, 64), (h.phoff, h.phoff + h.phnum * _PHDR.size)]
    for i in range(h.phnum):
        p_type, _f, offset, _v, _pa, filesz, _m, _a = _PHDR.unpack_from(
            raw, h.phoff + i * _PHDR.size)
        if p_type == PT_NOTE:
            ranges.append((offset, offset + filesz))
    return sorted(ranges)


def _headers_only(raw: bytes, p: _Load, h: _Header, metadata: list) -> bool:
    """Whether a segment maps nothing but the ELF header, the program header table and PT_NOTE
    contents (and zero padding between them): what ld maps below a high -Ttext. It is read-only,
    holds no code and not the entry point, so a bare-metal program does not read it and it may be
    left out where the board has no memory for it. Decided from the program headers alone, as a
    loader sees the file (a stripped file too)."""
    if p.flags & (PF_W | PF_X) or p.vaddr <= h.entry < p.vaddr + p.memsz or \
            p.memsz != p.filesz or not p.filesz:
        return False
    pos, end = p.offset, p.offset + p.filesz
    for lo, hi in metadata:
        if pos >= end:
            break
        if hi <= pos:
            continue
        if lo > pos:
            if any(raw[pos:min(lo, end)]):      # bytes that are neither metadata nor padding
                return False
        pos = max(pos, hi)
    return pos >= end or not any(raw[pos:end])


def _sections(raw: bytes, path: str, h: _Header) -> tuple[list, dict, list]:
    """(sections, symbols, notes): what the section headers say, or nothing and a note when
    they cannot be read. Only tables that lie inside the file are handed to pyelftools."""
    if h.shoff == 0 and h.shnum == 0:
        return [], {}, []                       # none at all (sstrip): nothing to say
    problem = _section_table_problem(raw, h)
    if problem is None:
        try:
            with host_failures(path, "section headers", also=_PYELFTOOLS_FAILURES):
                elf = _elffile(raw)
                sections = [_Section(s.name, s["sh_flags"], s["sh_addr"], s["sh_size"])
                            for s in elf.iter_sections()]
                symbols = _symbols(elf)
            return sections, symbols, []
        except InputError as e:                 # pyelftools' failures, translated
            problem = e.message
    return [], {}, [f"section headers unusable ({problem}): loaded without symbols"]


# Malformed data makes pyelftools raise ordinary Python exceptions too.
_PYELFTOOLS_FAILURES = (ValueError, KeyError, IndexError, TypeError, AttributeError,
                        AssertionError)


def _section_table_problem(raw: bytes, h: _Header) -> str | None:
    n = len(raw)
    if h.shnum == 0:
        return "extended section numbering (e_shnum 0) is not supported"
    if h.shentsize != _SHDR.size:
        return f"e_shentsize is {h.shentsize}, not {_SHDR.size}"
    if h.shoff > n or h.shnum * _SHDR.size > n - h.shoff:
        return f"{h.shnum} section headers at {h.shoff:#x} run past the end of the file"
    if h.shstrndx == SHN_XINDEX or h.shstrndx >= h.shnum:
        return f"e_shstrndx {h.shstrndx} names no section"
    for i in range(h.shnum):
        (_name, sh_type, _flags, _addr, offset, size, _link, _info, _align,
         entsize) = _SHDR.unpack_from(raw, h.shoff + i * _SHDR.size)
        if sh_type in (SHT_NOBITS, 0):
            continue
        if offset > n or size > n - offset:
            return f"section {i} (bytes {offset:#x}..{offset + size:#x}) runs past the end of " \
                   f"the file"
        if sh_type == SHT_SYMTAB and entsize != 24:
            return f"section {i}: symbol table entry size {entsize}, not 24"
    return None


def _elffile(raw: bytes):
    from io import BytesIO

    from elftools.elf.elffile import ELFFile
    return ELFFile(BytesIO(raw))


def _symbols(elf) -> dict[str, int]:
    out: dict[str, int] = {}
    from elftools.elf.sections import SymbolTableSection
    tab = elf.get_section_by_name(".symtab")
    if not isinstance(tab, SymbolTableSection):
        return out
    for sym in tab.iter_symbols():
        name = sym.name
        if not name or name.startswith("$") or name.startswith(".L"):
            continue
        if sym["st_info"]["type"] in ("STT_SECTION", "STT_FILE", "STT_TLS"):
            continue
        if sym["st_shndx"] in ("SHN_UNDEF", "SHN_ABS"):
            continue
        if sym["st_info"]["bind"] == "STB_LOCAL" and name in out:
            continue
        out[name] = sym["st_value"]
    return out


# --- writing ------------------------------------------------------------------------------

def write_elf(image: Image, path: str) -> None:
    """Write a static ET_EXEC ELF64 AArch64 file: one PT_LOAD per segment (a segment named
    .bss is NOBITS), section headers, .symtab/.strtab, entry point."""
    data = elf_bytes(image)
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise InputError(f"cannot write: {e.strerror}", path) from None
    try:
        os.chmod(path, 0o755)
    except OSError:
        pass


def _strtab(names: list[str]) -> tuple[bytes, dict[str, int]]:
    out = bytearray(b"\0")
    index = {"": 0}
    for n in names:
        if n not in index:
            index[n] = len(out)
            out += n.encode() + b"\0"
    return bytes(out), index


def elf_bytes(image: Image) -> bytes:
    PAGE = 0x1000
    segs = [s for s in image.segments]
    nph = len(segs)
    ehsize, phentsize, shentsize = 64, 56, 64
    offset = ehsize + phentsize * nph
    body = bytearray()
    placed = []  # (segment, file offset, filesz, nobits)
    for s in segs:
        nobits = s.name == ".bss" and not any(s.data)
        filesz = 0 if nobits else len(s.data)
        off = offset + len(body)
        # p_offset congruent to p_vaddr modulo the page size
        pad = (s.addr - off) % PAGE
        body += bytes(pad)
        off += pad
        if not nobits:
            body += s.data
        placed.append((s, off, filesz, nobits))
    sec_names = []
    for s, *_ in placed:
        n = s.name if s.name.startswith(".") else f".seg{len(sec_names)}"
        while n in sec_names:
            n += "_"
        sec_names.append(n)
    # symbols: ordered by address; all global, in the section that holds them
    syms = sorted(image.symbols.items(), key=lambda kv: (kv[1], kv[0]))
    strtab, stridx = _strtab([n for n, _ in syms])
    shstrtab, shidx = _strtab(sec_names + [".symtab", ".strtab", ".shstrtab"])
    symtab = bytearray(bytes(24))  # null symbol
    for name, value in syms:
        shndx = 0xFFF1  # SHN_ABS
        stype = 0  # STT_NOTYPE
        for i, (s, *_r) in enumerate(placed):
            if s.addr <= value < s.end or (value == s.end and len(s.data) and value == s.addr):
                shndx = i + 1
                stype = 2 if "x" in s.flags else 1  # STT_FUNC / STT_OBJECT
                break
        info = (1 << 4) | stype  # STB_GLOBAL
        symtab += struct.pack("<IBBHQQ", stridx[name], info, 0, shndx, value, 0)
    tail_off = offset + len(body)
    symtab_off = (tail_off + 7) & ~7
    body += bytes(symtab_off - tail_off)
    body += symtab
    strtab_off = offset + len(body)
    body += strtab
    shstr_off = offset + len(body)
    body += shstrtab
    shoff = (offset + len(body) + 7) & ~7
    body += bytes(shoff - offset - len(body))
    shdrs = bytearray(bytes(shentsize))
    for (s, off, filesz, nobits), n in zip(placed, sec_names):
        flags = SHF_ALLOC | (SHF_WRITE if "w" in s.flags else 0) | (SHF_EXECINSTR if "x" in s.flags else 0)
        shdrs += struct.pack("<IIQQQQIIQQ", shidx[n], SHT_NOBITS if nobits else SHT_PROGBITS, flags,
                             s.addr, off, len(s.data), 0, 0, 16 if "x" not in s.flags else 4, 0)
    nsec = len(placed)
    shdrs += struct.pack("<IIQQQQIIQQ", shidx[".symtab"], SHT_SYMTAB, 0, 0, symtab_off, len(symtab),
                         nsec + 2, 1, 8, 24)
    shdrs += struct.pack("<IIQQQQIIQQ", shidx[".strtab"], SHT_STRTAB, 0, 0, strtab_off, len(strtab),
                         0, 0, 1, 0)
    shdrs += struct.pack("<IIQQQQIIQQ", shidx[".shstrtab"], SHT_STRTAB, 0, 0, shstr_off,
                         len(shstrtab), 0, 0, 1, 0)
    shnum = nsec + 4
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", ET_EXEC, EM_AARCH64, 1, image.entry, ehsize,
                                 shoff, 0, ehsize, phentsize, nph, shentsize, shnum, shnum - 1)
    phdrs = bytearray()
    for s, off, filesz, nobits in placed:
        flags = (PF_R if "r" in s.flags or not s.flags else 0) | (PF_W if "w" in s.flags else 0) | \
            (PF_X if "x" in s.flags else 0)
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, flags, off, s.addr, s.addr, filesz, len(s.data), PAGE)
    return bytes(header + phdrs + body + shdrs)
