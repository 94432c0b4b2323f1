"""What the guest could otherwise read from the host, made a function of the machine's own state,
so that a run repeats exactly (reverse execution re-executes from snapshots and must arrive at
the state it left).

- The generic timer's counters CNTVCT_EL0 and CNTPCT_EL0 (Unicorn reads the host clock) count
  instructions: a nominal 100 million instructions a second at CNTFRQ_EL0 = 62.5 MHz is 5/8 of
  a tick per instruction.
- Semihosting's clocks run on the same instruction count: SYS_CLOCK (centiseconds),
  SYS_ELAPSED (ticks, SYS_TICKFREQ of them a second), and SYS_TIME is the host's time when the
  machine was built plus the instructions run since, in seconds.
- RNDR and RNDRRS (FEAT_RNG; Unicorn draws from the host) return SplitMix64 of the machine's
  seed and the instruction count, with NZCV = 0000 (success).

The count is the exact number of instructions executed, the reading one included. The board has
no console input (neither SYS_READC nor a UART receiver is offered), so nothing else the guest
sees comes from the host.
"""
from __future__ import annotations

import time

from unicorn import arm64_const as A

INSNS_PER_SECOND = 100_000_000          # the nominal rate behind every clock
CNTFRQ = 62_500_000                     # CNTFRQ_EL0 as the engine reports it
TICKFREQ = INSNS_PER_SECOND             # SYS_TICKFREQ: one SYS_ELAPSED tick per instruction

# MRS encodings (op0, op1, CRn, CRm, op2) of the registers read from the host
CNTPCT_EL0 = (3, 3, 14, 0, 1)
CNTVCT_EL0 = (3, 3, 14, 0, 2)
RNDR = (3, 3, 2, 4, 0)
RNDRRS = (3, 3, 2, 4, 1)
CNTKCTL_EL1 = (3, 0, 14, 1, 0)
_EL0_ENABLE = {CNTPCT_EL0: 1 << 0, CNTVCT_EL0: 1 << 1}     # CNTKCTL_EL1.EL0PCTEN / EL0VCTEN
MASK64 = (1 << 64) - 1


def exact_count(counter, pc: int) -> int:
    """Instructions executed up to and including the one at ``pc`` in the block the block
    counter last counted (it counts a whole block when the block starts)."""
    a, s = counter.last_addr, counter.last_size
    if s and a <= pc < a + s:
        return counter.insns - (a + s - pc) // 4 + 1
    return counter.insns


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class HostInputs:
    def __init__(self, eng, counter_of, seed: int) -> None:
        self.eng = eng
        self.counter_of = counter_of          # () -> the block counter
        self.seed = seed & MASK64
        self.start_time = int(time.time())

    def count(self) -> int:
        return exact_count(self.counter_of(), self.eng.pc())

    # --- MRS (from the engine's MRS hook) ------------------------------------------------------
    def mrs(self, key, el: int, dest: int) -> bool:
        """Answer an MRS of a host-read register into the engine register ``dest``; False when
        ``key`` is not one (or the engine must trap it: EL0 without CNTKCTL_EL1 access)."""
        if key in _EL0_ENABLE:
            if el == 0 and not self.eng.cp_read(*CNTKCTL_EL1) & _EL0_ENABLE[key]:
                return False
            value = self.count() * CNTFRQ // INSNS_PER_SECOND
        elif key in (RNDR, RNDRRS):
            value = splitmix64(self.seed ^ self.count())
            self.eng.wr(A.UC_ARM64_REG_NZCV, 0)
        else:
            return False
        if dest != A.UC_ARM64_REG_XZR:
            self.eng.wr(dest, value)
        return True

    # --- semihosting ---------------------------------------------------------------------------
    def centiseconds(self) -> int:
        return self.count() * 100 // INSNS_PER_SECOND

    def elapsed_ticks(self) -> int:
        return self.count() * TICKFREQ // INSNS_PER_SECOND

    def seconds_since_epoch(self) -> int:
        return self.start_time + self.count() // INSNS_PER_SECOND
