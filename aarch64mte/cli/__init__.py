"""Command line: `aarch64mte <command>`; one module per command (see main.py)."""
