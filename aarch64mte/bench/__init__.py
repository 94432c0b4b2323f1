"""Benchmarks: the emulator's speed against raw Unicorn (and QEMU, where installed)."""
from aarch64mte.bench.core import format_table, run_core_bench

__all__ = ["run_core_bench", "format_table"]
