"""Tag a buffer from Python, run a snippet against it, and look at the fault it takes.

    python examples/tag_and_check.py
"""
from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine

SOURCE = """
    .text
    .globl _start
_start:
    adr   x1, buf
    orr   x1, x1, #(3 << 56)   // pointer with logical tag 3
    ldr   x2, [x1]             // granule 0 was tagged 3 from Python: no fault
    ldr   x3, [x1, #16]        // granule 1 still has tag 0: synchronous tag-check fault
    .bss
    .balign 16
buf: .skip 32
"""

m = Machine()                                  # 'snippet': EL1, MMU on, Tagged RAM, TCF sync
m.load_image(assemble(SOURCE, "demo.s"))
buf = m.symbols["buf"]
m.write_tags(buf, [3])                         # allocation tag of the first granule
result = m.run()

print("stopped:", result.reason)
fault = result.exception
print(f"ESR={fault.esr:#x} FAR={fault.far:#x} at {m.symbolize(fault.pc)}")
print(f"logical tag {fault.tag_fault.logical_tag:#x}, allocation tag {fault.tag_fault.allocation_tag:#x}")
print("x3 untouched by the faulting load:", hex(m.reg("x3")))
print("tags of buf:", m.read_tags(buf, 32))
