"""Sets of instruction words to scan, named by short strings, that any worker can re-create
from the name and an index range (so a task travels as a few integers, not a list of words).

    random:N[:SEED]     N words drawn uniformly from the 32-bit space (reproducible by SEED)
    pattern:VALUE/MASK  every word w with w & MASK == VALUE (hex), in increasing order
    range:LO:HI         every word LO <= w < HI (hex)
    file:PATH           the words in PATH, one hex number a line ('#' starts a comment)
    words:W1,W2,...     the words listed (hex)
"""
from __future__ import annotations

import random


class Space:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        kind, _, rest = spec.partition(":")
        self.kind = kind
        if kind == "random":
            n, _, seed = rest.partition(":")
            self.size = int(n)
            self.seed = int(seed or 0)
        elif kind == "pattern":
            value, _, mask = rest.partition("/")
            self.value, self.mask = int(value, 16), int(mask, 16)
            if self.value & ~self.mask:
                raise ValueError(f"{spec}: value has bits outside the mask")
            free = [b for b in range(32) if not (self.mask >> b) & 1]
            self.size = 1 << len(free)
            # deposit tables: byte k of the index -> its bits placed on the free positions
            self._dep = []
            for k in range(0, len(free), 8):
                bits = free[k:k + 8]
                self._dep.append([sum(1 << bits[j] for j in range(len(bits)) if (n >> j) & 1)
                                  for n in range(1 << len(bits))])
        elif kind == "range":
            lo, _, hi = rest.partition(":")
            self.lo, self.hi = int(lo, 16), int(hi, 16)
            self.size = self.hi - self.lo
        elif kind == "words":
            self._words = [int(w, 16) for w in rest.split(",") if w.strip()]
            self.size = len(self._words)
        elif kind == "file":
            with open(rest) as f:
                self._words = [int(line.split("#")[0], 16) for line in f
                               if line.split("#")[0].strip()]
            self.size = len(self._words)
        else:
            raise ValueError(f"unknown space {spec!r} (random:, pattern:, range:, file:, words:)")

    def words(self, start: int, count: int) -> list[int]:
        """Words ``start`` .. ``start + count - 1`` of the space."""
        end = min(self.size, start + count)
        if self.kind == "random":
            # one generator per 2**16 block keeps any slice reproducible without replaying
            out = []
            i = start
            while i < end:
                block, off = divmod(i, 1 << 16)
                rng = random.Random((self.seed << 32) ^ block)
                ws = [rng.getrandbits(32) for _ in range(min(1 << 16, self.size - block * 65536))]
                take = min(end - i, len(ws) - off)
                out.extend(ws[off:off + take])
                i += take
            return out
        if self.kind == "pattern":
            v, dep = self.value, self._dep
            out = []
            for n in range(start, end):
                w = v
                k = 0
                while n:
                    w |= dep[k][n & 0xFF]
                    n >>= 8
                    k += 1
                out.append(w)
            return out
        if self.kind == "range":
            return list(range(self.lo + start, self.lo + end))
        return self._words[start:end]
