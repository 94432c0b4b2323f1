"""Run counters (``Machine.counters``)."""
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
    mte_insns: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__, by_class=dict(self.by_class))
