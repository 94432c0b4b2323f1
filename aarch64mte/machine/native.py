"""The state the native hooks share with Python, and the native library itself when it is there.

``Core`` mirrors ``_native/core.h``'s ``core_t`` field for field. The machine always keeps its
MTE registers, block counter, counters and soft TLB in a ``Core``, so the Python paths and the
native paths read and write the same memory; ``library()`` returns the built extension
(``aarch64mte.machine._native``, compiled when the package is installed) or None, and the
machine then installs Python hooks instead. ``AARCH64MTE_NATIVE=0`` selects the Python paths
even where the library exists (tests run both); ``=1`` makes a missing library an error.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os

from unicorn.unicorn_py3.unicorn import uclib

P = ctypes.c_void_p
U8, U16, U32, U64, I64 = (ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64,
                          ctypes.c_int64)

MAX_REGIONS = 4
STLB_N = 64
STLB_TAGGED, STLB_RAM = 1, 2
WINFO_N = 1024
WI_VALID, WI_CHECKED, WI_POST, WI_INDEX_W, WI_INDEX_SIGNED, WI_HAS_INDEX, WI_RMW = (
    1, 2, 4, 8, 16, 32, 64)
EVENT_TAGS_OF_FAST_PAGE = 1


class Api(ctypes.Structure):
    _fields_ = [(n, P) for n in ("reg_read", "reg_write", "reg_write_batch", "vmem_read",
                                 "emu_stop")]


class Region(ctypes.Structure):
    _fields_ = [("base", U64), ("size", U64), ("host", P), ("tags", P), ("fast", P)]


class StlbEntry(ctypes.Structure):
    _fields_ = [("mask", U64), ("key", U64), ("el", U64), ("pa", U64), ("flags", U64)]


CTLB_N = 64
TC_N = 256
TC_RAM, TC_TAGGED = 1, 2


class TcacheEntry(ctypes.Structure):
    _fields_ = [("key", U64), ("el", U64), ("pa", U64), ("perms", U64), ("flags", U64)]


class TlbEntry(ctypes.Structure):
    """Unicorn's uc_tlb_entry: what a TLB fill answers."""
    _fields_ = [("paddr", U64), ("perms", ctypes.c_int)]



class CtlbEntry(ctypes.Structure):
    _fields_ = [("key", U64), ("host", P)]


class WordInfo(ctypes.Structure):
    _fields_ = [("word", U32), ("filled", U8), ("flags", U8), ("base", U8), ("index", U8),
                ("shift", U8), ("fp", U8), ("pad", U16), ("disp", I64)]


PY_CHECK = ctypes.CFUNCTYPE(None, P, ctypes.c_int, U64, ctypes.c_int)
PY_INTR = ctypes.CFUNCTYPE(None, P, U32, P)
PY_WINFO = ctypes.CFUNCTYPE(ctypes.c_int, U32, ctypes.POINTER(WordInfo))
PY_EVENT = ctypes.CFUNCTYPE(None, ctypes.c_int)
PY_FETCH = ctypes.CFUNCTYPE(I64, U64)
PY_FILL = ctypes.CFUNCTYPE(ctypes.c_bool, P, U64, ctypes.c_int, ctypes.POINTER(TlbEntry), P)


class Core(ctypes.Structure):
    _fields_ = [
        ("api", Api),
        ("insns", U64), ("last_addr", U64), ("last_size", U64), ("limit", U64),
        ("hit_limit", U64),
        ("nregions", U64), ("regions", Region * MAX_REGIONS),
        ("gcr", U64), ("rgsr", U64), ("tfsr_el1", U64), ("tfsre0_el1", U64), ("tfsr_el2", U64),
        ("tco", U64), ("gmid_bs", U64), ("dczid_bytes", U64), ("rng", U64),
        ("tag_access", U8 * 4), ("sysreg_direct", U8 * 4), ("gmid_direct", U8 * 4),
        ("dc_direct", U8 * 4), ("tbi", (U8 * 2) * 4), ("tcma", (U8 * 2) * 4), ("tcf", U8 * 4),
        ("pad", U8 * 4),
        ("regime_valid", U64), ("fast_traps", U64), ("fast_fills", U64), ("check_hooked", U64),
        ("refuse_fills", U64), ("in_fault", U64),
        ("stlb", (StlbEntry * STLB_N) * 2),
        ("ctlb", CtlbEntry * CTLB_N),
        ("tcache", (TcacheEntry * TC_N) * 2),
        ("inst_insns", U64), ("inst_blk", U64), ("inst_pc", U64),
        ("winfo", WordInfo * WINFO_N),
        ("py_check", PY_CHECK), ("py_intr", PY_INTR), ("py_winfo", PY_WINFO),
        ("py_event", PY_EVENT), ("py_fetch", PY_FETCH), ("py_fill", PY_FILL),
        ("tag_checks", U64), ("checked_granules_read", U64), ("checked_granules_written", U64),
        ("mte_insns", U64), ("tag_granules_read", U64), ("tag_granules_written", U64),
        ("insn_bytes_written", U64),
        ("native_checks", U64), ("native_traps", U64), ("native_fills", U64),
        ("fast_touched", U64),
        ("prov_on", U64), ("prov_seq", U64), ("prov_mask", U64), ("prov_ring", P),
        ("prov_last", P * MAX_REGIONS), ("prov_pc", U64), ("prov_meta", U64),
    ]


def invalidate_all(table) -> None:
    """Invalidate every entry of one of the core's soft TLBs (``ctlb``, ``tcache``, ``stlb``):
    an all-zero entry is an invalid one in each (key 0, or mask 0)."""
    ctypes.memset(ctypes.addressof(table), 0, ctypes.sizeof(table))


def new_core() -> Core:
    c = Core()
    c.limit = (1 << 64) - 1
    for name, _ in Api._fields_:
        setattr(c.api, name, ctypes.cast(getattr(uclib, "uc_" + name), P))
    return c


_LIB = None
_TRIED = False


def layout_matches(lib) -> bool:
    """Does the library's core_t have exactly the layout ``Core`` describes?"""
    names = [n for n, _ in Core._fields_]
    want = [getattr(Core, n).offset for n in names] + [
        ctypes.sizeof(Core), ctypes.sizeof(WordInfo), ctypes.sizeof(StlbEntry),
        ctypes.sizeof(Region), ctypes.sizeof(CtlbEntry), ctypes.sizeof(TcacheEntry)]
    out = (ctypes.c_size_t * len(want))()
    lib.mte_core_layout.restype = ctypes.c_size_t
    count = lib.mte_core_layout(out, ctypes.c_size_t(len(want)))
    return count == len(want) and list(out) == want


def library():
    """The native hooks (a ctypes CDLL), or None when they are not built or not wanted."""
    global _LIB, _TRIED
    want = os.environ.get("AARCH64MTE_NATIVE", "")
    if want == "0":
        return None
    if not _TRIED:
        _TRIED = True
        spec = importlib.util.find_spec("aarch64mte.machine._native")
        if spec is not None and spec.origin:
            try:
                lib = ctypes.CDLL(spec.origin)
                _LIB = lib if layout_matches(lib) else None
            except (OSError, AttributeError):
                _LIB = None
    if _LIB is None and want == "1":
        raise RuntimeError("AARCH64MTE_NATIVE=1 but the native extension is not built "
                           "(pip install . builds it; it needs a C compiler)")
    return _LIB
