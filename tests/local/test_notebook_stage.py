"""A `.ipynb` module: the bootstrapper runs it with `bodywork_bootstrap/notebook.py` in the
stage venv (which has no Jupyter), as a real subprocess against a real git repo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bodywork_bootstrap import EXIT_STAGE_INVALID
from tests.local.test_bootstrap import (
    bootstrap_command,
    head,
    line_reader,
    prepared,
    run_bootstrap,
    wait_for_line,
)

pytestmark = pytest.mark.usefixtures("offline_env")
NOTEBOOK = "notebooks/analysis.ipynb"


def notebook(*cells: tuple[str, str | list[str]]) -> str:
    """nbformat 4 JSON with (cell type, source) cells; a source may be a string or lines."""
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "cells": [
                {"cell_type": kind, "metadata": {}, "source": source}
                | ({"outputs": [], "execution_count": None} if kind == "code" else {})
                for kind, source in cells
            ],
        },
        indent=1,
    )


def lines_of(output: str) -> list[str]:
    return output.splitlines()


def test_notebook_cells_run_in_order_in_one_namespace(make_repo, tmp_path):
    """Code cells run in order sharing names; the final bare expression's repr is shown (not
    None, not after `;`); `%matplotlib inline` is skipped with a note; `!cmd` runs in a shell;
    `%%time` cells run, other cell magics are skipped; args after `--` are sys.argv."""
    cells = notebook(
        ("markdown", ["# Analysis\n", "print('markdown is not run')\n"]),
        ("code", ["print('first cell')\n", "rows = 3\n"]),
        ("code", "%matplotlib inline\nimport sys\nrows = int(sys.argv[-1])"),
        ("code", ["rows * 14"]),
        ("code", "None"),
        ("code", "'hidden by the semicolon';"),
        ("code", "!echo from-the-shell $BODYWORK_STAGE\nlisting = !echo a; echo b\nlisting"),
        ("code", "%%time\nprint('timed cell')\n"),
        ("code", "%%bash\necho bash-cell-not-run\n"),
        ("raw", "print('raw is not run')"),
        (
            "code",
            "import os, venv, helper, nearby\n"
            "print('cwd', os.getcwd())\n"
            "print('venv from', venv.__file__)\n"
            "print('argv', sys.argv)\n"
            "helper.VALUE, nearby.VALUE",
        ),
        ("code", "class Point:\n    pass\nimport pickle as p\ntype(p.loads(p.dumps(Point())))"),
    )  # fmt: skip
    repo = make_repo(
        {
            NOTEBOOK: cells,
            "notebooks/nearby.py": "VALUE = 'next to the notebook'\n",
            "helper.py": "VALUE = 'project root'\n",
        }
    )
    done, workdir = run_bootstrap(
        repo, head(repo), tmp_path, "analysis", "--", "--rows", "3", module=NOTEBOOK
    )
    assert done.returncode == 0, done.stdout
    out = lines_of(done.stdout)
    assert prepared(done.stdout)[4] == NOTEBOOK
    wanted = ["first cell", "42", "from-the-shell analysis", "['a', 'b']", "timed cell"]
    assert [line for line in out if line in wanted] == wanted  # in the cells' order
    assert "[bodywork] skipped IPython magic '%matplotlib inline' in cell 3" in out
    assert "[bodywork] skipped IPython magic '%%time' in cell 8" in out
    assert any(ln.startswith("[bodywork] skipped IPython magic '%%bash' in cell 9") for ln in out)
    for absent in ("None", "hidden by the semicolon", "bash-cell-not-run", "is not run"):
        assert not any(absent in line for line in out), absent
    folder = (workdir / "src" / "notebooks").resolve()
    assert f"cwd {folder}" in out
    assert f"argv ['{folder / 'analysis.ipynb'}', '--rows', '3']" in out
    venv_line = next(ln for ln in out if ln.startswith("venv from "))
    assert "bodywork_bootstrap" not in venv_line  # the stdlib's, not the runner's folder
    assert "('project root', 'next to the notebook')" in out
    assert "<class '__main__.Point'>" in out  # pickle found the class in __main__
    assert "Traceback" not in done.stdout


def test_notebook_output_streams_while_cells_run(make_repo, tmp_path):
    """A cell's output reaches the pipe while a later cell still runs."""
    release = tmp_path / "release"
    cells = notebook(
        ("code", "print('waiting for release')"),
        (
            "code",
            "import pathlib, time\n"
            f"path = pathlib.Path({str(release)!r})\n"
            "deadline = time.monotonic() + 20\n"
            "while not path.exists() and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\n"
            "print('released' if path.exists() else 'never released')",
        ),
    )
    repo = make_repo({NOTEBOOK: cells})
    command, _ = bootstrap_command(repo.as_uri(), head(repo), tmp_path, "nb", module=NOTEBOOK)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        lines = line_reader(process.stdout)
        wait_for_line(lines, "waiting for release", timeout=20)
        assert process.poll() is None
        release.touch()
        assert process.wait(timeout=20) == 0
        assert wait_for_line(lines, "released", timeout=5)[-1] == "released"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cell_that_raises_exits_1_naming_the_cell(make_repo, tmp_path):
    """An exception: its traceback (with the cell's source line), `[bodywork] cell N raised
    Type: message` last, exit 1, and the cells after it do not run."""
    cells = notebook(
        ("markdown", "intro"),
        ("code", "print('before')"),
        ("code", "def check(x):\n    raise ValueError(f'bad value {x}')\ncheck(7)"),
        ("code", "print('after')"),
    )
    repo = make_repo({NOTEBOOK: cells})
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "nb", module=NOTEBOOK)
    assert done.returncode == 1, done.stdout
    out = lines_of(done.stdout)
    assert "before" in out and "after" not in out
    assert "Traceback (most recent call last):" in out
    assert "    raise ValueError(f'bad value {x}')" in out
    assert 'analysis.ipynb, cell 3", line 3' in done.stdout
    assert out[-1] == "[bodywork] cell 3 raised ValueError: bad value 7"


def test_failing_shell_line_fails_its_cell(make_repo, tmp_path):
    """`!cmd` exiting non-zero fails the cell like an exception."""
    cells = notebook(("code", "print('ok')"), ("code", "!exit 3\nprint('after the shell')"))
    repo = make_repo({NOTEBOOK: cells})
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "nb", module=NOTEBOOK)
    assert done.returncode == 1, done.stdout
    assert "after the shell" not in done.stdout
    assert lines_of(done.stdout)[-1].startswith(
        "[bodywork] cell 2 raised CalledProcessError: Command 'exit 3' returned non-zero exit"
    )


def test_sys_exit_in_a_cell_is_the_stage_exit_status(make_repo, tmp_path):
    cells = notebook(("code", "import sys\nsys.exit(4)"), ("code", "print('not reached')"))
    repo = make_repo({NOTEBOOK: cells})
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "nb", module=NOTEBOOK)
    assert done.returncode == 4, done.stdout
    assert "not reached" not in done.stdout
    assert "[bodywork] cell 1 exited: the cells after it were not run" in done.stdout


def test_notebook_that_is_not_json_fails_with_one_line(make_repo, tmp_path):
    """Not JSON: exit 1 and one clear line, no traceback."""
    repo = make_repo({NOTEBOOK: '{"cells": [\n'})
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "nb", module=NOTEBOOK)
    assert done.returncode == 1, done.stdout
    assert lines_of(done.stdout)[-1].startswith(
        "[bodywork] cannot run notebook: analysis.ipynb is not a notebook: not valid JSON ("
    )
    assert "Traceback" not in done.stdout


def test_missing_notebook_is_a_stage_error(make_repo, tmp_path):
    repo = make_repo({"notebooks/other.ipynb": notebook()})
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "nb", module=NOTEBOOK)
    assert done.returncode == EXIT_STAGE_INVALID, done.stdout
    assert f"{NOTEBOOK} does not exist at commit" in done.stdout


def test_runner_is_a_standalone_stdlib_script(tmp_path):
    """notebook.py runs as a plain file where bodywork_bootstrap cannot be imported (-I -S:
    no site-packages, no PYTHONPATH); a cell's source may be one string or a list of lines."""
    import bodywork_bootstrap.notebook as runner

    path = tmp_path / "n.ipynb"
    find = "import importlib.util\nprint(importlib.util.find_spec('bodywork_bootstrap'))"
    path.write_text(notebook(("code", "x = 2"), ("code", ["x", " * 21"]), ("code", find)))
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-u", str(Path(runner.__file__)), str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\nNone\n"
