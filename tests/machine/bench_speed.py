"""Speed of the machine against raw Unicorn on the same code (run: python tests/machine/bench_speed.py)."""
import time

from unicorn import Uc, UC_ARCH_ARM64, UC_MODE_ARM
from unicorn import arm64_const as A

from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine

N = 300_000
LOOP = f"""
    adr x1, buf
    {{setup}}
    movz x3, #{N & 0xffff}
    movk x3, #{N >> 16}, lsl #16
loop:
    {{body}}
    subs x3, x3, #1
    b.ne loop
    .data
    .balign 4096
buf: .space 4096
"""


def raw(img, n_insns):
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
    uc.mem_map(0x4000_0000, 0x100_0000)
    for s in img.segments:
        uc.mem_write(s.addr, s.data)
    t = time.perf_counter()
    uc.emu_start(img.entry, img.text_end)
    return n_insns / (time.perf_counter() - t)


def ours(img, **kw):
    m = Machine(**kw)
    m.load_image(img)
    t = time.perf_counter()
    r = m.run(max_insns=100_000_000)
    dt = time.perf_counter() - t
    assert r.reason == "end", r
    return m.counters.insns / dt, m.counters.insns


def main():
    cases = {
        "untagged (tag-0 pointers, tag-0 memory)": ("", "ldr x5, [x1]\n    add x5, x5, #1\n    str x5, [x1, #8]"),
        "tagged, uniform page (tag 5 everywhere)": (
            "mov x9, #5\n    orr x1, x1, x9, lsl #56\n    mov x10, #256\nfill: stg x1, [x1], #16\n"
            "    subs x10, x10, #1\n    b.ne fill\n    sub x1, x1, #4096",
            "ldr x5, [x1]\n    add x5, x5, #1\n    str x5, [x1, #8]"),
        "MTE instructions (irg + stg per iteration)": ("", "irg x2, x1\n    stg x2, [x1]"),
    }
    for name, (setup, body) in cases.items():
        img = assemble(LOOP.format(setup=setup, body=body))
        speed, n = ours(img)
        if "MTE" in name:
            rawspeed = None
        else:
            base = assemble(LOOP.format(setup="", body=body))
            rawspeed = raw(base, n)
        extra = f"raw unicorn {rawspeed / 1e6:7.1f} M/s  ratio {speed / rawspeed:5.2f}" if rawspeed else \
            f"MTE insns/s {speed * 2 / 4:10,.0f}"
        print(f"{name:45s} ours {speed / 1e6:7.2f} M insns/s  {extra}")


if __name__ == "__main__":
    main()
