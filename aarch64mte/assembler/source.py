"""Reading GNU-as source: comments, statement separators, labels."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .limits import MAX_SOURCE_BYTES


@dataclass
class Line:
    """One statement with where it came from."""

    file: str
    line: int
    text: str


def strip_block_comments(text: str) -> str:
    """Blank out /* ... */ comments, keeping newlines so line numbers stay right."""
    out = []
    i, n = 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"' or c == "\n":
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
            out.append(c)
            i += 1
            continue
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            chunk = text[i:] if end < 0 else text[i:end + 2]
            out.append("".join("\n" if ch == "\n" else " " for ch in chunk))
            i += len(chunk)
            continue
        if c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _lexemes(text: str, char_constants: bool):
    """The characters of `text` one by one, except that a string literal ("..." with its
    backslash escapes) and, if asked, a character constant ('c or '\\c) come whole: so the
    splitters below never split inside them. Yields (chunk, is_literal)."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" and j + 1 < n else 1
            j = min(j + 1, n)
            yield text[i:j], True
            i = j
        elif char_constants and c == "'" and i + 1 < n:
            j = i + 3 if text[i + 1] == "\\" and i + 2 < n else i + 2
            yield text[i:j], True
            i = j
        else:
            yield c, False
            i += 1


def split_statements(line: str) -> list[str]:
    """Split a comment-free line at ';' outside strings; a line whose first non-blank
    character is '#' is a comment (as in GNU as)."""
    if line.lstrip().startswith("#"):
        return []
    parts, cur = [], []
    for chunk, literal in _lexemes(line, char_constants=True):
        if chunk == ";" and not literal:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(chunk)
    parts.append("".join(cur))
    return [p for p in (p.strip() for p in parts) if p]


def read_lines(text: str, filename: str) -> list[Line]:
    out = []
    for no, raw in enumerate(strip_block_comments(text).split("\n"), 1):
        for stmt in split_statements(raw):
            out.append(Line(filename, no, stmt))
    return out


_LABEL = re.compile(r"\s*([A-Za-z_.$][\w.$]*|[0-9]+)\s*:(?!:)")
_ASSIGN = re.compile(r"\s*([A-Za-z_.$][\w.$]*)\s*=(?!=)\s*(.*)$")


def take_labels(text: str) -> tuple[list[str], str]:
    """Leading 'name:' labels of a statement, and the rest."""
    labels = []
    pos = 0
    while True:
        m = _LABEL.match(text, pos)
        if not m:
            return labels, text[pos:].strip()
        labels.append(m.group(1))
        pos = m.end()


def parse_assignment(text: str) -> tuple[str, str] | None:
    m = _ASSIGN.match(text)
    return (m.group(1), m.group(2)) if m else None


def split_args(text: str) -> list[str]:
    """Split at top-level commas (outside strings, (), [] and {})."""
    parts, cur, depth = [], [], 0
    for chunk, literal in _lexemes(text, char_constants=False):
        if not literal and chunk in "([{":
            depth += 1
        elif not literal and chunk in ")]}":
            depth -= 1
        elif not literal and chunk == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(chunk)
    last = "".join(cur).strip()
    if last or parts:
        parts.append(last)
    return parts


_STR_ESC = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "a": "\a",
            "\\": "\\", '"': '"', "'": "'"}


def parse_strings(text: str) -> list[bytes]:
    """The string literals of .ascii/.asciz: '"a\\n", "b"' -> [b'a\\n', b'b']."""
    out = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        if text[i] != '"':
            raise ValueError(f"expected a string in quotes, got '{text[i:].strip()}'")
        i += 1
        buf = bytearray()
        while True:
            if i >= n:
                raise ValueError("unterminated string")
            c = text[i]
            if c == '"':
                i += 1
                break
            if c == "\\":
                i += 1
                e = text[i] if i < n else ""
                if e in "01234567":
                    j = i
                    while j < n and j < i + 3 and text[j] in "01234567":
                        j += 1
                    buf.append(int(text[i:j], 8) & 0xFF)
                    i = j
                    continue
                if e in "xX":
                    j = i + 1
                    while j < n and text[j] in "0123456789abcdefABCDEF":
                        j += 1
                    buf.append(int(text[i + 1:j] or "0", 16) & 0xFF)
                    i = j
                    continue
                buf += _STR_ESC.get(e, e).encode()
                i += 1
                continue
            buf += c.encode("utf-8")
            i += 1
        out.append(bytes(buf))
    return out


class SourceError(Exception):
    """A source or include file that cannot be assembled (message names the problem only)."""


def read_source(path: str, strict: bool = True) -> str:
    """The text of a source file: a regular file of at most MAX_SOURCE_BYTES, read as every
    input is (errors.read_input: a directory, device, pipe or socket is refused before it is
    opened, so /dev/zero cannot fill memory and a FIFO cannot block). `strict`: bytes that are
    not UTF-8 are an error, else replaced."""
    from ..errors import InputError, read_input
    try:
        data = read_input(path, MAX_SOURCE_BYTES)
    except InputError as e:
        raise SourceError(e.message) from None
    try:
        return data.decode("utf-8", errors="strict" if strict else "replace")
    except UnicodeDecodeError:
        raise SourceError("not a text file (is it a binary?)") from None
