"""Benchmarks: the emulator's speed against raw Unicorn and QEMU (core), and what copying
allocation tags costs (tagcopy)."""
