"""Step through IRG with a fixed RGSR_EL1 seed and print each tag it chooses.

With GCR_EL1.RRND = 0, IRG draws from the RGSR_EL1 LFSR, so the sequence repeats exactly:
GCR_EL1 = 0x0001 (exclude tag 0) and SEED = 0x1234 give e, 5, 9, b, 7, 5, 5, a.

    python examples/step_irg.py
"""
from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine

SOURCE = """
    .text
_start:
    mov  x1, #0x40000000
    irg  x0, x1
    irg  x0, x1
    irg  x0, x1
    irg  x0, x1
    irg  x0, x1
    irg  x0, x1
    irg  x0, x1
    irg  x0, x1
"""

m = Machine()
m.load_image(assemble(SOURCE, "irg.s"))
m.set_reg("gcr_el1", 0x0001)
m.set_reg("rgsr_el1", 0x1234 << 8)
m.step(1)                                      # mov
tags = []
for _ in range(8):
    m.step(1)
    tags.append(f"{m.reg('x0') >> 56 & 0xF:x}")
print("IRG tags:", " ".join(tags))
print(f"RGSR_EL1 now {m.reg('rgsr_el1'):#x}; instructions executed: {m.counters.insns}")
