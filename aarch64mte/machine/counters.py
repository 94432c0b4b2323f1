"""Run counters (``Machine.counters``).

- ``tag_granules_read`` / ``tag_granules_written``: allocation-tag storage traffic of the
  executed instructions (LDG 1 read; STG, STZG, STGP 1 write; ST2G, STZ2G 2; LDGM, STGM, STZGM,
  DC GVA, DC GZVA one per granule of their block), as the tag storage saw it: Untagged memory
  and disabled tag access move no tags.
- ``tag_checks``: tag-checked accesses; ``checked_granules_read`` / ``checked_granules_written``:
  granules those checks compared (by the direction of the checked access; DC ZVA is a write).
- ``data_bytes_read`` / ``data_bytes_written`` and ``by_class`` (need ``count_classes=True``):
  the data every executed instruction moved, from its encoding (a read-modify-write counts
  both directions; an exclusive store counts whether or not it succeeds; an access that faults
  counts nothing), plus the data STGP, STZG, STZ2G, STZGM, DC GZVA and DC ZVA write.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

CLASSES = ("irg", "gmi", "addg", "subg", "subp", "subps", "ldg", "stg", "stzg", "st2g", "stz2g",
           "stgp", "ldgm", "stgm", "stzgm", "dc_gva", "dc_gzva", "dc_zva", "load", "store",
           "load_pair", "store_pair", "branch", "alu", "simd", "system", "svc", "eret", "other")


@dataclass
class Counters:
    insns: int = 0
    by_class: Dict[str, int] = field(default_factory=dict)
    tag_granules_read: int = 0
    tag_granules_written: int = 0
    data_bytes_read: int = 0
    data_bytes_written: int = 0
    exceptions_taken: int = 0
    exception_returns: int = 0
    tag_checks: int = 0
    checked_granules_read: int = 0
    checked_granules_written: int = 0
    mte_insns: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__, by_class=dict(self.by_class))
