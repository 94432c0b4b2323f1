"""What a user installs works: the README's own set-up, then every command the README shows, run
from a directory outside the checkout against the installed package.

A fresh venv (`--system-site-packages`, so the dependencies already installed are reused) gets
`pip install` of a copy of the checkout, non-editable, exactly as the README's set-up block says.
The commands come from README.md itself -- the set-up block and every fenced `$ aarch64mte ...`
line -- never from a list kept here, and each must exit as the README's output says and print
every line the README shows for it (`...` marks lines the README leaves out). The working
directory holds only the user's own inputs the commands name (`asm/*.S`, `asm/hyp/`,
`asm/kvm/`), so anything else a
command needs must come from the installed package.

This takes a minute or two (a wheel build, the tag-copy sweep).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
pytestmark = pytest.mark.timeout(1200)


# --- what the README says ------------------------------------------------------------------------

def setup_commands(readme: str) -> list[str]:
    """The shell commands of the fenced block under '## Set up', comments dropped, `&&` split."""
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\w*\n(.*?)```", section, re.S).group(1)
    out = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        cmd: list[str] = []
        for w in words + ["&&"]:
            if w == "&&":
                if cmd:
                    out.append(shlex.join(cmd))
                cmd = []
            else:
                cmd.append(w)
    return out


def shown_commands(readme: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines shown after it) for each `$ aarch64mte ...` line in a fenced
    block."""
    out = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", readme, re.S | re.M):
        current = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = None
                if line[2:].startswith("aarch64mte "):
                    current = (line[2:].strip(), [])
                    out.append(current)
            elif current is not None:
                current[1].append(line)
    return out


SETUP = setup_commands(README)
SHOWN = shown_commands(README)


def test_the_readme_has_commands_to_check():
    assert any(c.startswith("pip install") for c in SETUP), SETUP
    assert any(c.startswith("aarch64mte ") for c in SETUP), SETUP
    assert SHOWN, "no fenced `$ aarch64mte` lines in README.md"


# --- the installation --------------------------------------------------------------------------

def _checkout_files() -> list[str]:
    """The files of the checkout, as a clean clone would have them (plus uncommitted work)."""
    try:
        r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, timeout=60, check=True)
        return [f for f in r.stdout.decode().split("\0") if f and (ROOT / f).exists()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", "__pycache__", "build", "dist", ".pytest_cache", ".hypothesis"}
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def _copy_checkout(dest: Path) -> None:
    for rel in _checkout_files():
        src, dst = ROOT / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


class Installed:
    """A venv with the package installed from a copy of the checkout, and a working directory
    outside both holding the user's example inputs."""

    def __init__(self, base: Path):
        self.source = base / "checkout"
        self.venv = base / "venv"
        self.work = base / "work"
        _copy_checkout(self.source)
        r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                            str(self.venv)], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.skip(f"this Python cannot create a venv: {r.stderr.strip()[-300:]}")
        self.bin = self.venv / "bin"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        self.env["PATH"] = str(self.bin) + os.pathsep + self.env.get("PATH", "")
        self.env["VIRTUAL_ENV"] = str(self.venv)
        self.env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        (self.work / "asm").mkdir(parents=True)
        for src in (ROOT / "asm").glob("*.S"):   # the inputs README commands name, no more
            shutil.copy2(src, self.work / "asm" / src.name)
        for sub in ("hyp", "kvm"):                # the hypervisor and KVM guests it names
            shutil.copytree(ROOT / "asm" / sub, self.work / "asm" / sub)
        self.log = []

    def sh(self, command: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
        r = subprocess.run(command, shell=True, cwd=cwd, env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        self.log.append(f"$ {command}  (in {cwd}) -> {r.returncode}")
        return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    inst = Installed(tmp_path_factory.mktemp("install"))
    for command in SETUP:
        if command.startswith("pip install"):
            # `.` is the checkout: pip runs in the copy, with the venv's pip. The test set-up
            # installs in editable mode (so a source tree gets its extension built in place);
            # here its extras go in as a plain install, so that what the user's commands import
            # is the installed package, not the copy.
            command = command.replace("pip install -e ", "pip install ")
            r = inst.sh(f"{inst.bin / 'python'} -m {command}", cwd=inst.source)
            assert r.returncode == 0, f"{command} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return inst


def test_the_installed_package_is_the_one_imported(installed):
    r = installed.sh(f"{installed.bin / 'python'} -c 'import aarch64mte, sys; "
                     f"print(aarch64mte.__file__)'", cwd=installed.work)
    assert r.returncode == 0, r.stderr
    where = Path(r.stdout.strip()).resolve()
    assert str(installed.venv.resolve()) in str(where), where
    assert str(ROOT) not in str(where)


@pytest.mark.parametrize("command", [c for c in SETUP if not c.startswith("pip install")])
def test_setup_block_command(installed, command):
    if command.startswith("python -m pytest"):
        # the test suite itself (this test among it): check that its needs were installed
        r = installed.sh(f"{installed.bin / 'python'} -c 'import pytest, hypothesis, "
                         f"pytest_timeout'", cwd=installed.work)
        assert r.returncode == 0, r.stderr
        return
    r = installed.sh(command, cwd=installed.work)
    assert r.returncode == 0, f"{command}:\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr and r.stdout


@pytest.mark.parametrize("command,shown", SHOWN, ids=[c for c, _ in SHOWN])
def test_readme_command(installed, command, shown):
    r = installed.sh(command, cwd=installed.work)
    assert "Traceback" not in r.stderr, r.stderr
    want = 0
    m = re.search(r"\(exit status (\d+)\)", "\n".join(shown))
    if m:
        want = int(m.group(1))
    assert r.returncode == want, f"{command}: exit {r.returncode}, README says {want}\n{r.stderr}"
    actual = {line.rstrip() for line in r.stdout.splitlines()}
    missing = [line for line in shown if line.strip() and line.strip() != "..."
               and line.rstrip() not in actual]
    assert not missing, (f"{command}: README lines not in its output:\n" + "\n".join(missing)
                         + f"\n--- output:\n{r.stdout[-4000:]}")


def test_python_api_snippet_against_the_installed_package(installed):
    from test_cli_readme import python_snippets
    for i, code in enumerate(python_snippets(README)):
        script = installed.work / f"snippet{i}.py"
        script.write_text(code + "\nprint('snippet finished')\n")
        r = installed.sh(f"{installed.bin / 'python'} {script}", cwd=installed.work)
        assert r.returncode == 0 and "snippet finished" in r.stdout, r.stderr
