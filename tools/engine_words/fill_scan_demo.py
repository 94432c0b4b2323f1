#!/usr/bin/env python3
"""Two ways to keep aborting words away from the translator from the TLB fill hook, each
shown on a guest that stores an aborting word over code it has already run.

    tools/engine_words/fill_scan_demo.py wx       # scan on fetch fills, never W and X together
    tools/engine_words/fill_scan_demo.py alias    # fetch from a patched copy of the page

``wx``: a fetch fill scans the 1 KiB page and refuses it (UC_ERR_EXCEPTION, PC at the page's
first fetch) if it holds an aborting word; fetch entries get R|X, write entries R|W, read
entries R, so a page written after it ran comes back through a fetch fill before it runs again.
(Refusing the page would also stop a correct program whose literal pool holds such a word.)

``alias``: a page whose bytes hold an aborting word (here a literal in the code page) is
fetched from a copy with those words replaced by ``udf #0xdead``, execute-only; its data
accesses go to the original. A write to the page drops the translated code, since blocks
translated from the copy do not see stores to the original.

Each run prints the fills the hook saw and how the run ended; it runs in a child process, so an
abort shows as a signal instead of killing the demo.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GUEST = """
    adr   x3, target
    bl    target                 // run target once: its page is fetched and translated
    movz  w4, #0x2dba
    movk  w4, #0x4e56, lsl #16   // an aborting word
    str   w4, [x3]               // store it over target
    dc    cvau, x3
    dsb   ish
    ic    ivau, x3
    dsb   ish
    isb
    bl    target
    brk   #1
    .balign 4096
target:
    nop
    ret
"""
# the alias demo adds an aborting word as data in the code page, as a literal pool would
LITERAL = "    .inst 0x4e562dba\n"

PAGE = 0x400                     # Unicorn's AArch64 target page: 1 KiB
ALIAS = 0x1_0000_0000            # where patched copies of code pages live
TRAP = 0x0000DEAD                # udf #0xdead


def make_fill(mode: str, log: list):
    from unicorn import UC_MEM_FETCH, UC_MEM_WRITE
    from aarch64mte.machine.engine_words import aborting_offsets
    aliased: set = set()

    def fill(uc, vaddr, access, entry, ud):
        page = vaddr & ~(PAGE - 1)
        entry.paddr = page
        if access == UC_MEM_FETCH:
            data = bytes(uc.mem_read(page, PAGE))
            bad = aborting_offsets(data)
            log.append(f"fetch fill {vaddr:#x}: aborting words at {bad}")
            if not bad:
                entry.perms = 5                  # R|X
                return True
            if mode == "wx":
                return False                     # the machine stops here
            code = bytearray(data)
            for off in bad:
                code[off:off + 4] = TRAP.to_bytes(4, "little")
            uc.mem_write(ALIAS + page, bytes(code))
            aliased.add(page)
            entry.paddr, entry.perms = ALIAS + page, 4       # execute only
            return True
        if access == UC_MEM_WRITE:
            log.append(f"write fill {vaddr:#x}")
            entry.perms = 3                      # R|W: the next fetch fills again
            if page in aliased:
                aliased.discard(page)
                uc.ctl_flush_tb()
                log.append("  translated code dropped")
            return True
        log.append(f"read fill {vaddr:#x}")
        entry.perms = 1
        return True
    return fill


def run(mode: str) -> str:
    from harness import STATES, Harness, A
    from aarch64mte.assembler import assemble
    image = assemble(GUEST + (LITERAL if mode == "alias" else ""), base=0x4000_0000)
    log: list = []
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            Harness._fill = staticmethod(make_fill(mode, log))
            h = Harness(STATES["el1"])
            h.uc.mem_map(ALIAS + 0x4000_0000, 0x10000)
            for seg in image.segments:
                h.uc.mem_write(seg.addr, bytes(seg.data))
            seen = []
            h.eng.hook_intr(lambda handle, intno, ud: (seen.append(intno), h.eng.emu_stop()))
            try:
                h.uc.emu_start(0x4000_0000, 0, 0, 100)
                end = "ran"
            except Exception as e:
                end = f"stopped: {e}"
            pc = h.eng.rd(A.UC_ARM64_REG_PC)
            log.append(f"{end}; interrupts {seen}; PC {pc:#x}")
        except Exception as e:
            log.append(f"demo error: {e!r}")
        os.write(w, "\n".join(log).encode())
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    text = out.decode()
    if os.WIFSIGNALED(status):
        text += f"\nthe engine died: signal {os.WTERMSIG(status)}"
    return text


def main(argv=None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    modes = args or ["wx", "alias"]
    for m in modes:
        if m not in ("wx", "alias"):
            print(f"fill_scan_demo: unknown mode {m!r} (wx, alias)", file=sys.stderr)
            return 2
    for m in modes:
        print(f"== {m}\n{run(m)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
