"""The assembler's limits. Every way a source can make the assembler run away (recursion,
expansion, size, nesting) stops at one of these, with a message that names the limit, so bad
input costs bounded time and memory and never reaches a host failure (RecursionError,
MemoryError) or hangs Keystone.

Each is above anything GNU as accepts in practice, or equal to GNU as's own where it has one.
The size of the image itself is bounded by the machine's RAM (image.too_large).
"""
from __future__ import annotations

# Nested macro, .rept, .irp and .irpc expansions active at once. GNU as stops at the same
# depth ("macros nested too deeply"): a macro that invokes itself ends here.
MAX_EXPANSION_DEPTH = 100
# Statements and characters produced by all expansions together (a macro that doubles its
# argument on every level, a .rept with a huge count).
MAX_EXPANSION_LINES = 200_000
MAX_EXPANSION_CHARS = 16 << 20
# One source file or .include, and all of them read together (an include inside a .rept
# counts each time it is read).
MAX_SOURCE_BYTES = 8 << 20
MAX_SOURCE_TOTAL = 32 << 20
# Nested .include files (a file that includes itself ends here).
MAX_INCLUDE_DEPTH = 32
# Symbols defined through other symbols, resolved one inside another (.equ a, b+1 ...).
MAX_SYMBOL_DEPTH = 100
# Longest instruction statement, after its operands are resolved to numbers.
MAX_INSTRUCTION_CHARS = 1024
