"""Shared fixtures: finding the oracle tools (GNU binutils, llvm-mc, QEMU, gdb) and skipping
with the reason where one is missing.

    from conftest import requires_tool, tool
    @requires_tool("aarch64-linux-gnu-as")
    def test_x(): ...
    def test_y(oracle):
        as_ = oracle.require("aarch64-linux-gnu-as")   # path, or pytest.skip with the reason
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Alternative names for each tool, first found wins
ALIASES: dict[str, tuple[str, ...]] = {
    "aarch64-linux-gnu-as": ("aarch64-linux-gnu-as", "aarch64-none-elf-as", "aarch64-elf-as"),
    "aarch64-linux-gnu-ld": ("aarch64-linux-gnu-ld", "aarch64-none-elf-ld", "aarch64-elf-ld"),
    "aarch64-linux-gnu-objdump": ("aarch64-linux-gnu-objdump", "aarch64-none-elf-objdump"),
    "aarch64-linux-gnu-readelf": ("aarch64-linux-gnu-readelf", "readelf"),
    "aarch64-linux-gnu-gcc": ("aarch64-linux-gnu-gcc", "aarch64-none-elf-gcc"),
    "llvm-mc": ("llvm-mc", "llvm-mc-19", "llvm-mc-18", "llvm-mc-17", "llvm-mc-16", "llvm-mc-15",
                "llvm-mc-14"),
    "qemu-system-aarch64": ("qemu-system-aarch64",),
    "qemu-aarch64": ("qemu-aarch64", "qemu-aarch64-static"),
    "gdb-multiarch": ("gdb-multiarch", "aarch64-linux-gnu-gdb"),
}
INSTALL_HINT = "install the oracles: sudo /work/shared/oracles/install.sh (or see tests' README)"


def tool(name: str) -> str | None:
    """Path of an oracle tool (or one of its aliases), or None."""
    env = os.environ.get("AARCH64MTE_" + name.upper().replace("-", "_"))
    if env:
        return env if os.path.exists(env) or shutil.which(env) else None
    for n in ALIASES.get(name, (name,)):
        p = shutil.which(n)
        if p:
            return p
    return None


def requires_tool(*names: str):
    """Decorator: skip the test (with the reason) unless every tool is installed."""
    missing = [n for n in names if tool(n) is None]
    return pytest.mark.skipif(bool(missing), reason=f"oracle tool missing: {', '.join(missing)}"
                                                    f" ({INSTALL_HINT})")


class Oracle:
    """Tool lookup and running for tests."""

    def path(self, name: str) -> str | None:
        return tool(name)

    def require(self, name: str) -> str:
        p = tool(name)
        if p is None:
            pytest.skip(f"oracle tool missing: {name} ({INSTALL_HINT})")
        return p

    def run(self, name: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        exe = self.require(name)
        r = subprocess.run([exe, *args], input=input, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{name} {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r

    def gnu_as_bytes(self, source: str, tmp_path) -> bytes:
        """.text bytes of `source` assembled by GNU as (-march=armv8.5-a+memtag)."""
        src = tmp_path / "oracle_src.s"
        obj = tmp_path / "oracle_src.o"
        src.write_text(source)
        self.run("aarch64-linux-gnu-as", "-march=armv8.5-a+memtag", "-o", str(obj), str(src))
        return section_bytes(str(obj), ".text")

    def llvm_mc_bytes(self, source: str, tmp_path) -> bytes:
        """.text bytes of `source` assembled by llvm-mc (-mattr=+mte)."""
        src = tmp_path / "oracle_src_llvm.s"
        obj = tmp_path / "oracle_src_llvm.o"
        src.write_text(source)
        self.run("llvm-mc", "-triple=aarch64", "-mattr=+mte", "-filetype=obj", "-o", str(obj),
                 str(src))
        return section_bytes(str(obj), ".text")


def section_bytes(objpath: str, name: str) -> bytes:
    from elftools.elf.elffile import ELFFile
    with open(objpath, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        return sec.data() if sec is not None else b""


ORACLE = Oracle()


@pytest.fixture(scope="session")
def oracle() -> Oracle:
    return ORACLE


@pytest.fixture(scope="session")
def repo_root() -> str:
    return ROOT


# --- deep runs ---------------------------------------------------------------------------------
# Fuzz and differential suites have a small default size; `--long` (or AARCH64MTE_LONG=1) runs
# the tests marked `long` and lets suites scale up.
def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="run the deep (long) fuzz and differential tests")


def pytest_configure(config):
    config.addinivalue_line("markers", "long: a deep run, only with --long")
    if config.getoption("--long"):
        os.environ["AARCH64MTE_LONG"] = "1"     # for settings fixed at import time


def pytest_collection_modifyitems(config, items):
    # test_install.py builds a venv and runs the README's commands (a minute or two): last
    items.sort(key=lambda item: os.path.basename(str(item.fspath)) == "test_install.py")
    if config.getoption("--long") or os.environ.get("AARCH64MTE_LONG") == "1":
        return
    skip = pytest.mark.skip(reason="deep run: pass --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def long_run(request) -> bool:
    """True for a deep run (--long): suites use it to pick their size."""
    return bool(request.config.getoption("--long") or os.environ.get("AARCH64MTE_LONG") == "1")


LONG = os.environ.get("AARCH64MTE_LONG") == "1"


def examples(default: int, deep: int) -> int:
    """A hypothesis example count: ``default`` normally, ``deep`` under --long."""
    return deep if os.environ.get("AARCH64MTE_LONG") == "1" else default


def native_built() -> bool:
    from aarch64mte.machine import native as native_lib
    return native_lib.library() is not None


# the machine's two paths, for tests that run under both: the native hooks (skipped where the
# extension is not built) and the pure-Python ones (AARCH64MTE_NATIVE=0's)
NATIVE_PATHS = [pytest.param(True, id="native",
                             marks=pytest.mark.skipif(not native_built(),
                                                      reason="the native extension is not built")),
                pytest.param(False, id="python")]


def checkout_env(**extra: str) -> dict:
    """The environment for a subprocess that runs this checkout's aarch64mte (``python -m
    aarch64mte ...``), whatever else is installed; ``extra`` variables on top."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
