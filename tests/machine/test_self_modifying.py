"""Code that changes under the engine never reaches Unicorn's translator with a word it aborts
on. Unicorn retranslates written code by itself, without a TLB fill, so the machine keeps pages
it fetched code from unwritable in the engine: a write to one runs alone and the page is
scanned again before it runs (``Mmu.code_pages``).

Without DC CVAU / IC IVAU the architecture lets either the old or the new word run; with them,
the new one. Either way a word of an unallocated encoding is UNDEFINED (EC 0x00). Each case runs
in a child process, so an abort fails the test instead of killing the run.
"""
import json
import subprocess
import sys

import pytest

from conftest import checkout_env

ABORTING = 0x4E562DBA        # FP16 three-same: aborts Unicorn 2.1.4's translator; UNDEFINED

PATCH_EXECUTED = f"""
    .globl _start
_start:
    bl   func                   // the original runs: x0 = 1
    mov  x19, x0
    adr  x1, func
    ldr  w2, ={ABORTING:#x}
    {{store}}
    {{sync}}
    bl   func
    mov  x20, #7
    brk  #0
    .balign 2048
func:
    mov  x0, #1
    ret
"""

COPY_THEN_RUN = f"""
    .globl _start
_start:
    adr  x1, buf                // JIT-like: write code into a data page, then branch to it
    ldr  w2, ={ABORTING:#x}
    str  w2, [x1]
    ldr  w2, =0xd65f03c0        // ret
    str  w2, [x1, #4]
    {{sync}}
    blr  x1
    mov  x20, #7
    brk  #0
    .data
    .balign 4096
buf: .skip 64
"""

SYNC = {"none": "", "ic": "dc cvau, x1\n    dsb ish\n    ic ivau, x1\n    dsb ish\n    isb"}
STORES = {"str": "str w2, [x1]", "stp": "stp w2, w2, [x1]", "stlr": "stlr w2, [x1]"}


def _run(tmp_path, text, native):
    src = tmp_path / "smc.S"
    src.write_text(text)
    p = subprocess.run([sys.executable, "-m", "aarch64mte", "run", str(src), "--json",
                        "--max-insns", "10000"], capture_output=True, text=True, timeout=120,
                       env=checkout_env(AARCH64MTE_NATIVE="1" if native else "0"))
    assert p.returncode in (0, 1), p.stderr[-2000:]
    return json.loads(p.stdout)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
@pytest.mark.parametrize("sync", sorted(SYNC))
@pytest.mark.parametrize("store", sorted(STORES))
def test_patching_executed_code_with_an_aborting_word_is_undefined(tmp_path, native, sync,
                                                                   store):
    text = PATCH_EXECUTED.format(store=STORES[store], sync=SYNC[sync])
    d = _run(tmp_path, text, native)
    assert d["exit"]["reason"] == "exception"
    assert d["exception"]["kind"] == "undefined" and int(d["exception"]["esr"], 16) == 0x02000000
    assert int(d["regs"]["x19"], 16) == 1                  # the old word ran the first time
    assert d["regs"].get("x20", "0x0") == "0x0"            # the call took the exception


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
@pytest.mark.parametrize("sync", sorted(SYNC))
def test_code_written_before_its_first_fetch_is_undefined(tmp_path, native, sync):
    d = _run(tmp_path, COPY_THEN_RUN.format(sync=SYNC[sync]), native)
    assert d["exit"]["reason"] == "exception"
    assert d["exception"]["kind"] == "undefined"


def test_ordinary_self_modifying_code_runs_the_new_word(tmp_path):
    # mov x0, #1 patched to mov x0, #2 (0xd2800040), with DC CVAU/IC IVAU: the new word runs
    text = PATCH_EXECUTED.replace(f"={ABORTING:#x}", "=0xd2800040").format(
        store=STORES["str"], sync=SYNC["ic"]).replace("mov  x20, #7", "mov  x20, x0")
    d = _run(tmp_path, text, True)
    assert d["exit"]["reason"] == "brk"
    assert (int(d["regs"]["x19"], 16), int(d["regs"]["x20"], 16)) == (1, 2)
