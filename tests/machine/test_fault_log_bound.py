"""The logs a run keeps are bounded: a loop whose every pass fails an asynchronous tag check
(TFSR_EL1.TF1 set each time, the run going on) must not grow memory with the run."""
from aarch64mte.assembler import assemble
from aarch64mte.machine import Machine
from aarch64mte.machine.tagunit import FAULT_LOG_LIMIT

LOOP = """
_start:
    adr  x0, buf
    movk x0, #0x0500, lsl #48      // pointer tag 5; buf's granules hold tag 0
1:  ldr  x1, [x0]
    b    1b
    .data
    .balign 4096
buf: .skip 64
"""


def test_async_fault_log_is_bounded():
    m = Machine(tcf="async")
    m.load_image(assemble(LOOP))
    r = m.run(3 * 2 * FAULT_LOG_LIMIT * 2)
    assert r.reason == "insn-limit"
    assert m.reg("tfsr_el1") & 1                 # TF0: the async fault was recorded
    assert 0 < len(m.tag_faults) <= 2 * FAULT_LOG_LIMIT
    assert m.tagunit.faults_dropped > 0
    last = m.tag_faults[-1]
    assert (last.logical_tag, last.allocation_tag, last.mode) == (5, 0, "async")
