"""Pass 1's statement loop: conditionals, labels, assignments, and dispatch to macros,
directives and instructions."""
from __future__ import annotations

from .errors import _Err, at_line
from .source import Line, parse_assignment, split_args, take_labels


class _ExitMacro(Exception):
    """.exitm: leave the innermost macro expansion."""


class _Frame:
    """A block being read: the file, an .include, or the expansions of one macro, .rept, .irp
    or .irpc statement (`blocks` yields each repetition's statements in turn). `opened_at` is
    the statement that opened it; `conds` the depth of the .if stack when it was opened."""

    __slots__ = ("kind", "blocks", "lines", "i", "opened_at", "conds")

    def __init__(self, kind: str, blocks, opened_at: Line, conds: int):
        self.kind = kind
        self.blocks = blocks
        self.lines: list[Line] = []
        self.i = 0
        self.opened_at = opened_at
        self.conds = conds


class StatementsMixin:
    def _process(self, lines: list[Line]) -> None:
        """Run a file's statements. Macro, .rept/.irp and .include bodies are pushed on a stack
        of frames and read in this one loop, so nesting them costs no Python recursion."""
        frames = self.frames = [_Frame("file", iter((lines,)), Line(self.filename, None, ""), 0)]
        while frames and not self.ended:
            f = frames[-1]
            if f.i >= len(f.lines):
                with at_line(f.opened_at):
                    block = next(f.blocks, None)
                if block is None:
                    frames.pop()
                else:
                    f.lines, f.i = block, 0
                continue
            try:
                with at_line(f.lines[f.i]):
                    f.i = self._statement(f.lines, f.i)
            except _ExitMacro:
                while frames[-1].kind != "macro":
                    frames.pop()
                del self.cond_stack[frames.pop().conds:]

    def _collect_block(self, lines: list[Line], i: int, opens: tuple[str, ...],
                       close: tuple[str, ...]) -> tuple[list[Line], int]:
        """Lines of a .macro/.rept body: from i+1 to the matching close; returns (body, index
        after the close)."""
        depth = 1
        j = i + 1
        while j < len(lines):
            word = lines[j].text.split(None, 1)[0].lower() if lines[j].text.split() else ""
            _, rest = take_labels(lines[j].text)
            word = rest.split(None, 1)[0].lower() if rest.split() else word
            if word in opens:
                depth += 1
            elif word in close:
                depth -= 1
                if depth == 0:
                    return lines[i + 1:j], j + 1
            j += 1
        raise _Err(f"missing {close[0]} for {lines[i].text.split()[0]}")

    def _active(self) -> bool:
        return all(c[0] for c in self.cond_stack)

    def _statement(self, lines: list[Line], i: int) -> int:
        ln = lines[i]
        text = ln.text
        head = text.split(None, 1)[0].lower() if text else ""
        # conditionals are seen even while skipping
        if head in (".if", ".ifdef", ".ifndef", ".ifeq", ".ifne", ".ifgt", ".ifge", ".iflt",
                    ".ifle", ".ifc", ".ifnc", ".ifb", ".ifnb", ".ifeqs", ".ifnes", ".ifnotdef"):
            if not self._active():
                self.cond_stack.append([False, True])
            else:
                v = self._condition(head, text.split(None, 1)[1] if " " in text.strip() else "")
                self.cond_stack.append([v, v])
            return i + 1
        if head in (".else", ".elseif"):
            if not self.cond_stack:
                raise _Err(f"{head} without .if")
            top = self.cond_stack[-1]
            outer = all(c[0] for c in self.cond_stack[:-1])
            if top[1] or not outer:
                top[0] = False
            elif head == ".else":
                top[0] = top[1] = True
            else:
                v = self._condition(".if", text.split(None, 1)[1] if " " in text.strip() else "")
                top[0] = top[1] = v
            return i + 1
        if head == ".endif":
            if not self.cond_stack:
                raise _Err(".endif without .if")
            self.cond_stack.pop()
            return i + 1
        if not self._active():
            if head == ".macro":
                _, j = self._collect_block(lines, i, (".macro",), (".endm",))
                return j
            return i + 1

        labels, rest = take_labels(text)
        for lab in labels:
            self._define_label(lab, ln)
        if not rest:
            return i + 1
        assign = parse_assignment(rest)
        if assign and not rest.lstrip().startswith("."):
            self._set_symbol(assign[0], assign[1], ln, final=False)
            return i + 1
        if assign and rest.split(None, 1)[0].lower() not in (".set", ".equ", ".equiv", ".eqv"):
            self._set_symbol(assign[0], assign[1], ln, final=False)
            return i + 1
        parts = rest.split(None, 1)
        word = parts[0]
        args = parts[1].strip() if len(parts) > 1 else ""
        lw = word.lower()
        if lw == ".macro":
            body, j = self._collect_block(lines, i, (".macro",), (".endm",))
            self._define_macro(args, body, ln)
            return j
        if lw in (".rept", ".irp", ".irpc"):
            body, j = self._collect_block(lines, i, (".rept", ".irp", ".irpc"), (".endr",))
            self._repeat(lw, args, body, ln)
            return j
        if lw in (".endm", ".endr"):
            raise _Err(f"{lw} without a matching {'.macro' if lw == '.endm' else '.rept'}")
        if lw == ".exitm":
            if not any(f.kind == "macro" for f in self.frames):
                raise _Err(".exitm outside a macro")
            raise _ExitMacro()
        if word in self.macros or lw in self.macros:
            self._expand_macro(self.macros.get(word) or self.macros[lw], args, ln)
            return i + 1
        if word.startswith("."):
            self._directive(lw, args, ln)
        else:
            self._instruction(word, args, ln)
        return i + 1

    def _condition(self, head: str, arg: str) -> bool:
        arg = arg.strip()
        if head in (".ifdef", ".ifndef", ".ifnotdef"):
            defined = arg in self.labels or arg in self.equs
            return defined if head == ".ifdef" else not defined
        if head in (".ifb", ".ifnb"):
            return (not arg) == (head == ".ifb")
        if head in (".ifc", ".ifnc", ".ifeqs", ".ifnes"):
            a = split_args(arg)
            if len(a) != 2:
                raise _Err(f"{head} needs two operands")
            x, y = (s.strip().strip('"').strip("'") for s in a)
            return (x == y) == (head in (".ifc", ".ifeqs"))
        v = self._eval_now(arg)
        if not isinstance(v, int):
            raise _Err(f"{head} needs an absolute expression")
        return {".if": v != 0, ".ifne": v != 0, ".ifeq": v == 0, ".ifgt": v > 0,
                ".ifge": v >= 0, ".iflt": v < 0, ".ifle": v <= 0}[head]

