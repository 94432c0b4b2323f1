"""Build step for the native hot paths (metadata lives in setup.cfg).

The extension ``aarch64mte.machine._native`` holds the Unicorn hooks written in C: the block
counter, the tag check and the MTE instruction trap. Its decoder table is generated from the
project's one table of MTE encodings (``aarch64mte/isa/table.py``) at build time, and it
compiles against the headers the unicorn wheel ships. It is optional: where it cannot be built
the package installs anyway and the machine runs the same paths in Python.
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE = os.path.join("aarch64mte", "machine", "_native")


def _unicorn_include():
    try:
        import unicorn
    except ImportError:
        return None
    inc = os.path.join(os.path.dirname(unicorn.__file__), "include")
    return inc if os.path.isdir(os.path.join(inc, "unicorn")) else None


class BuildNative(build_ext):
    """Generate mte_isa.h from the isa table, then compile (optional: failure is a warning)."""

    def build_extensions(self):
        gen_dir = os.path.join(self.build_temp, "gen")
        os.makedirs(gen_dir, exist_ok=True)
        sys.path.insert(0, HERE)
        try:
            from aarch64mte.isa.table import DECODE_FORMS  # noqa: F401  (pure Python)
            from aarch64mte.isa.cheader import c_header
        finally:
            sys.path.pop(0)
        with open(os.path.join(gen_dir, "mte_isa.h"), "w") as f:
            f.write(c_header())
        inc = _unicorn_include()
        for ext in self.extensions:
            ext.include_dirs = [gen_dir, os.path.join(HERE, NATIVE)] + ([inc] if inc else [])
        super().build_extensions()


setup(
    ext_modules=[Extension(
        "aarch64mte.machine._native",
        sources=[os.path.join(NATIVE, n) for n in ("module.c", "layout.c", "blocks.c", "fill.c",
                                                   "tagcheck.c", "mtetrap.c", "syshook.c")],
        depends=[os.path.join(NATIVE, n) for n in ("core.h", "provenance.h")],
        extra_compile_args=["-O2", "-std=gnu99", "-Wall", "-Wno-unused-function"],
        optional=True,
    )],
    cmdclass={"build_ext": BuildNative},
)
