"""The builtin assembler: GNU-as syntax, own layout, Keystone for base A64, the isa table for MTE.

Pass 1 walks the statements in order (expanding macros, .rept/.irp and conditionals), assigns
every label a section-relative offset, and records what each statement emits. Instructions are
4 bytes, so the layout needs no encoding. Literals of `ldr Rt, =expr` go to the section's pool,
emitted at `.ltorg` or at the end of the section, 4-byte entries first, then 8, then 16, each
aligned to its size (as GNU as does). Pass 2 fixes section addresses and encodes.
"""
from __future__ import annotations

from ..errors import InputError
from ..image import DEFAULT_BASE, Image
from .directives import DirectivesMixin
from .instructions import InstructionsMixin
from .link import LinkMixin
from .macros import MacrosMixin
from .sections import SectionsMixin, _Section
from .source import Line, read_lines
from .statements import StatementsMixin
from .symbols import SymbolsMixin


class Assembler(StatementsMixin, MacrosMixin, DirectivesMixin, SymbolsMixin, SectionsMixin,
                InstructionsMixin, LinkMixin):
    def __init__(self, filename: str = "<string>", base: int = DEFAULT_BASE,
                 include_dirs: tuple[str, ...] = ()):
        self.filename = filename
        self.base = base
        self.include_dirs = include_dirs
        self.sections: dict[str, _Section] = {}
        self.section_stack: list[tuple[_Section, _Section | None]] = []
        self.cur: _Section = self._section(".text")
        self.prev: _Section | None = None
        self.labels: dict[str, tuple[_Section, int]] = {}
        self.label_where: dict[str, Line] = {}
        self.equs: dict[str, object] = {}      # name -> int | Rel | ('expr', text, Line)
        self.equ_final: set[str] = set()       # defined with .equiv: no redefinition
        self.macros: dict[str, tuple[list[tuple[str, str | None]], list[Line], Line]] = {}
        self.num_defs: dict[str, int] = {}
        self.macro_count = 0
        self.expanded = 0
        self.expanded_chars = 0
        self.source_chars = 0
        self.frames: list = []
        self.cond_stack: list[list[bool]] = []  # [active, taken, parent_active]
        self.ended = False
        self.resolving: set[str] = set()

    def run(self, text: str) -> Image:
        lines = read_lines(text, self.filename)
        self._process(lines)
        if self.cond_stack:
            raise InputError("missing .endif", self.filename, None)
        for s in self.sections.values():
            self._flush_pools(s)
        return self._link()
