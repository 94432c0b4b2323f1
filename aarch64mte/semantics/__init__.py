"""Pure MTE semantics, with no emulator underneath.

- ``tags``: ``TagStorage``, one 4-bit allocation tag per 16-byte physical granule;
- ``pseudocode``: the Arm ARM shared pseudocode functions (ChooseNonExcludedTag, the RGSR_EL1
  LFSR, AllocationTagAccessIsEnabled, AccessIsTagChecked, EffectiveTCF, ...) on plain ints;
- ``syndrome``: ESR_ELx values, vector offsets, SPSR packing;
- ``execute``: the effect of each MTE instruction against the ``cpu.Cpu`` protocol;
- ``faults``: the exceptions the semantics raise.
"""
