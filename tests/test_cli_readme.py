"""The README's Python API snippet runs as written: it is taken from README.md, not copied."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_snippets(readme: str) -> list[str]:
    """The fenced ```python blocks of the README."""
    return re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)


def test_python_api_snippet_runs_verbatim(tmp_path):
    snippets = python_snippets((ROOT / "README.md").read_text())
    assert snippets, "the README has no Python snippet"
    for i, code in enumerate(snippets):
        # The snippet loads asm/overflow.S relative to the checkout, as a reader would run it.
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        script = tmp_path / f"snippet{i}.py"
        script.write_text(code + "\nprint('snippet finished')\n")
        r = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, env=env)
        assert r.returncode == 0, f"README snippet {i} failed:\n{code}\n{r.stderr}"
        assert "snippet finished" in r.stdout
