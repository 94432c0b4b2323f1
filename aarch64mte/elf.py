"""Static AArch64 ELF files: `load_elf(path) -> Image` (pyelftools), `write_elf(image, path)`."""
from __future__ import annotations

import os
import struct

from .errors import InputError
from .image import Image, Segment

EM_AARCH64 = 183
ET_EXEC, ET_DYN, ET_REL = 2, 3, 1
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 1, 2, 3, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
_MACHINES = {0: "none", 3: "x86 (i386)", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 40: "ARM (32-bit)",
             62: "x86-64", 183: "AArch64", 243: "RISC-V"}


def load_elf(path: str) -> Image:
    """Read a static AArch64 executable: PT_LOAD segments (memsz beyond filesz zero-filled),
    symbols from .symtab (functions and objects, no mapping or section symbols), the entry."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an ELF file", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    return parse_elf(raw, path)


def parse_elf(raw: bytes, path: str = "<bytes>") -> Image:
    if len(raw) < 4 or raw[:4] != b"\x7fELF":
        raise InputError("not an ELF file (no \\x7fELF magic)", path)
    if len(raw) < 64:
        raise InputError(f"truncated ELF file ({len(raw)} bytes, header needs 64)", path)
    if raw[4] != 2:
        raise InputError("not a 64-bit ELF file (ELFCLASS32): AArch64 executables are ELF64", path)
    if raw[5] != 1:
        raise InputError("big-endian ELF file: only little-endian AArch64 is supported", path)
    e_type, e_machine = struct.unpack_from("<HH", raw, 16)
    if e_machine != EM_AARCH64:
        what = _MACHINES.get(e_machine, f"machine {e_machine}")
        raise InputError(f"not an AArch64 ELF file (e_machine {e_machine}: {what})", path)
    if e_type == ET_REL:
        raise InputError("relocatable object file (ET_REL), not an executable: link it first", path)
    if e_type not in (ET_EXEC, ET_DYN):
        raise InputError(f"not an executable ELF file (e_type {e_type})", path)
    from io import BytesIO

    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        elf = ELFFile(BytesIO(raw))
        segments = []
        phnum = elf.num_segments()
        if phnum == 0:
            raise InputError("ELF file has no program headers (nothing to load)", path)
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD":
                continue
            off, filesz, memsz = seg["p_offset"], seg["p_filesz"], seg["p_memsz"]
            if off + filesz > len(raw):
                raise InputError(f"truncated ELF file: segment at {seg['p_vaddr']:#x} needs bytes "
                                 f"{off:#x}..{off + filesz:#x}, file has {len(raw):#x}", path)
            if memsz < filesz:
                raise InputError("bad ELF segment: memory size smaller than file size", path)
            data = raw[off:off + filesz] + bytes(memsz - filesz)
            flags = ("r" if seg["p_flags"] & PF_R else "") + ("w" if seg["p_flags"] & PF_W else "") \
                + ("x" if seg["p_flags"] & PF_X else "")
            segments.append(Segment(seg["p_vaddr"], data, flags, ""))
        if not segments:
            raise InputError("ELF file has no loadable (PT_LOAD) segments", path)
        text_end = None
        names = []
        try:
            for sec in elf.iter_sections():
                if sec["sh_flags"] & SHF_ALLOC and sec["sh_size"]:
                    names.append((sec["sh_addr"], sec.name))
                    if sec.name == ".text":
                        text_end = sec["sh_addr"] + sec["sh_size"]
        except (ELFError, struct.error, ValueError):
            names = []
        for s in segments:
            inside = sorted(n for n in names if s.addr <= n[0] < s.end or (n[0] == s.addr))
            s.name = inside[0][1] if inside else ("text" if "x" in s.flags else "data")
        symbols = _symbols(elf)
        entry = elf.header["e_entry"]
        if text_end is None:
            seg = next((s for s in segments if entry in s and "x" in s.flags), None) or \
                next((s for s in segments if "x" in s.flags), segments[0])
            text_end = seg.end
        return Image(segments, symbols, entry, text_end)
    except InputError:
        raise
    except (ELFError, struct.error, ValueError, KeyError, IndexError) as e:
        raise InputError(f"corrupt or truncated ELF file ({e})", path) from None


def _symbols(elf) -> dict[str, int]:
    out: dict[str, int] = {}
    from elftools.elf.sections import SymbolTableSection
    try:
        tab = elf.get_section_by_name(".symtab")
    except Exception:
        return out
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
