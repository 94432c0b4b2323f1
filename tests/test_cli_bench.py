"""`aarch64mte bench tagcopy` refuses bad options before it sweeps (minutes of work), with one
line and exit status 2: page counts out of range, an output directory it cannot make, a plot
path that is a directory (matplotlib would have written DIR.png beside it)."""
from __future__ import annotations

import contextlib
import io

import pytest

from aarch64mte.cli.main import main


def bench(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["bench", "tagcopy", "--no-progress", *map(str, args)])
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args,expect", [
    (["--pages", "0"], "--pages: page counts are 1..4194304, not [0]"),
    (["--measure", "1,2,5000"], "--measure: page counts are 1..4096, not [5000]"),
    (["--bs", "7"], "GMID_EL1.BS must be 2..6"),
    (["--ops", "nosuch"], "unknown operation"),
    (["--profile", "/dev/zero"], "no cost profile"),
])
def test_bad_values(tmp_path, args, expect):
    status, out, err = bench("--quick", "--out", tmp_path / "out", *args)
    assert status == 2 and expect in err and "Traceback" not in err and not out
    assert not (tmp_path / "out" / "tagcopy.csv").exists()


def test_output_directory_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    status, out, err = bench("--quick", "--out", tmp_path / "file" / "sub")
    assert status == 2 and "cannot write the results there" in err and not out


def test_plot_path_that_is_a_directory(tmp_path):
    status, out, err = bench("--quick", "--out", tmp_path / "out", "--plot", tmp_path)
    assert status == 2 and "is a directory; --plot names the image file" in err and not out
    assert not tmp_path.with_suffix(".png").exists()
