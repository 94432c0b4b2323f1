"""Fixtures of the conformance tests: the two hook paths, and the harness shared by every
module (its bodies are registered at import, so one ELF and one QEMU run serve them all)."""
from __future__ import annotations

import pytest

from aarch64mte.machine import native as native_lib

import conformance_support as cs

NATIVE_BUILT = native_lib.library() is not None
PATHS = [pytest.param(True, id="native",
                      marks=pytest.mark.skipif(not NATIVE_BUILT,
                                               reason="the native extension is not built here")),
         pytest.param(False, id="python")]

@pytest.fixture(params=PATHS)
def native(request) -> bool:
    """True for the native hooks, False for the pure-Python ones (AARCH64MTE_NATIVE=0's)."""
    return request.param


@pytest.fixture(params=cs.SIDES)
def side(request) -> str:
    """Where a harness body runs: 'qemu' (the oracle), 'native' or 'python' (the emulator)."""
    s = request.param
    if s == "qemu":
        missing = cs.harness_missing()
        if missing:
            pytest.skip("needs " + ", ".join(missing))
    elif s == "native" and not NATIVE_BUILT:
        pytest.skip("the native extension is not built here")
    elif cs.harness_missing():
        pytest.skip("building the harness needs " + ", ".join(cs.harness_missing()))
    return s


@pytest.fixture(scope="session")
def harness(tmp_path_factory) -> cs.Harness:
    h = cs.REGISTRY
    h.workdir = tmp_path_factory.mktemp("conformance_harness")
    return h
