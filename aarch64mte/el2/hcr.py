"""HCR_EL2 by field name, for the shim's ``--hcr FIELD=VALUE`` and its Python API.

Bit positions from the Arm ARM register description (D24.2.62 HCR_EL2)."""
from __future__ import annotations

from typing import Dict, Iterable, Tuple

from ..errors import InputError

FIELDS: Dict[str, Tuple[int, int]] = {      # name -> (lowest bit, width)
    "VM": (0, 1), "SWIO": (1, 1), "PTW": (2, 1), "FMO": (3, 1), "IMO": (4, 1), "AMO": (5, 1),
    "VF": (6, 1), "VI": (7, 1), "VSE": (8, 1), "FB": (9, 1), "BSU": (10, 2), "DC": (12, 1),
    "TWI": (13, 1), "TWE": (14, 1), "TID0": (15, 1), "TID1": (16, 1), "TID2": (17, 1),
    "TID3": (18, 1), "TSC": (19, 1), "TIDCP": (20, 1), "TACR": (21, 1), "TSW": (22, 1),
    "TPCP": (23, 1), "TPU": (24, 1), "TTLB": (25, 1), "TVM": (26, 1), "TGE": (27, 1),
    "TDZ": (28, 1), "HCD": (29, 1), "TRVM": (30, 1), "RW": (31, 1), "CD": (32, 1),
    "ID": (33, 1), "E2H": (34, 1), "TLOR": (35, 1), "TERR": (36, 1), "TEA": (37, 1),
    "MIOCNCE": (38, 1), "APK": (40, 1), "API": (41, 1), "NV": (42, 1), "NV1": (43, 1),
    "AT": (44, 1), "NV2": (45, 1), "FWB": (46, 1), "FIEN": (47, 1), "TID4": (49, 1),
    "TICAB": (50, 1), "AMVOFFEN": (51, 1), "TOCU": (52, 1), "ENSCXT": (53, 1),
    "TTLBIS": (54, 1), "TTLBOS": (55, 1), "ATA": (56, 1), "DCT": (57, 1), "TID5": (58, 1),
}


def field_value(value: int, name: str) -> int:
    lo, width = FIELDS[name]
    return (value >> lo) & ((1 << width) - 1)


def with_fields(value: int, fields: Dict[str, int]) -> int:
    """``value`` with each named field set; InputError for an unknown field or a value that
    does not fit it."""
    for name, v in fields.items():
        key = name.upper()
        if key not in FIELDS:
            raise InputError(f"unknown HCR_EL2 field {name!r} (known: {', '.join(FIELDS)})")
        lo, width = FIELDS[key]
        if not 0 <= v < 1 << width:
            raise InputError(f"HCR_EL2.{key} is {width} bit{'s' if width > 1 else ''}: "
                             f"{v} does not fit")
        value = (value & ~(((1 << width) - 1) << lo)) | (v << lo)
    return value


def parse_assignments(items: Iterable[str]) -> Dict[str, int]:
    """``['VM=1', 'ata=0']`` -> ``{'VM': 1, 'ATA': 0}``; InputError for anything else."""
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().upper()
        if not sep or not name or not text.strip():
            raise InputError(f"--hcr takes FIELD=VALUE, not {item!r}")
        if name not in FIELDS:
            raise InputError(f"unknown HCR_EL2 field {name!r} in --hcr {item!r} "
                             f"(known: {', '.join(FIELDS)})")
        try:
            out[name] = int(text.strip().replace("_", ""), 0)
        except ValueError:
            raise InputError(f"--hcr {item!r}: {text.strip()!r} is not a number") from None
    with_fields(0, out)                      # ranges
    return out
