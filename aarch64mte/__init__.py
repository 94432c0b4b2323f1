"""aarch64mte: an AArch64 emulator with the architectural behaviour of the Memory Tagging Extension."""

__version__ = "0.1.0"
