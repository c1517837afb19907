"""The init-container hand-off, as real processes: Bodywork's side fetches the pinned commit and
hands over the stdlib bootstrapper and uv; another Python with no Bodywork installed (Debian's
/usr/bin/python3 here, as a user's image would have) runs the stage from what was handed over.
The same two commands are what a stage pod's init container and stage container run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bodywork_bootstrap import EXIT_FETCH_FAILED
from tests.local.projects import WHEEL_REQUIREMENT

pytestmark = pytest.mark.usefixtures("offline_env")

OTHER_PYTHON = "/usr/bin/python3"  # not this venv's: it has no bodywork_bootstrap installed

CODE = (
    "import os, sys, bwtest_greeting\n"
    "print('greeting', bwtest_greeting.greet())\n"
    "print('python', sys.executable)\n"
    "print('pythonpath', os.environ.get('PYTHONPATH'))\n"
    "print('args', sys.argv[1:])\n"
)


def common_args(repo: Path, commit: str, work: Path, tmp_path: Path) -> list[str]:
    return [
        "--repo", str(repo),
        "--commit", commit,
        "--stage", "train",
        "--module", "pipeline/train.py",
        "--requirement", WHEEL_REQUIREMENT,
        "--workdir", str(work),
        "--venv-root", str(tmp_path / "venvs"),
        "--artifacts-dir", str(tmp_path / "artifacts"),
    ]  # fmt: skip


def has_no_bodywork(python: str) -> bool:
    done = subprocess.run(
        [python, "-c", "import bodywork_bootstrap"], capture_output=True, env={"PATH": "/usr/bin"}
    )
    return done.returncode != 0


@pytest.fixture
def other_python() -> str:
    if not Path(OTHER_PYTHON).is_file() or not has_no_bodywork(OTHER_PYTHON):
        pytest.skip(f"needs {OTHER_PYTHON} without Bodywork installed, as a user's image has")
    return OTHER_PYTHON


def test_another_python_runs_the_stage_from_the_handed_over_bootstrapper(
    make_repo, tmp_path, other_python
):
    repo = make_repo({"pipeline/train.py": CODE})
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    work, tools = tmp_path / "work", tmp_path / "tools"
    fetched = subprocess.run(
        [sys.executable, "-m", "bodywork_bootstrap", *common_args(repo, commit, work, tmp_path),
         "--fetch-only", "--handoff", str(tools)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    assert (tools / "bodywork_bootstrap" / "stage.py").is_file()
    assert os.access(tools / "bin" / "uv", os.X_OK)
    assert not (tmp_path / "venvs").exists(), "the init container installs nothing"

    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("UV_")},  # offline wheelhouse
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(tools),
        "BODYWORK_UV": str(tools / "bin" / "uv"),
    }
    ran = subprocess.run(
        [other_python, "-m", "bodywork_bootstrap", *common_args(repo, commit, work, tmp_path),
         "--checkout-ready", "--", "--epochs", "3"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert "greeting hello" in lines
    assert "args ['--epochs', '3']" in lines
    python = next(ln.split(" ", 1)[1] for ln in lines if ln.startswith("python "))
    assert python.startswith(str(tmp_path / "venvs"))  # a venv built from the other python
    pythonpath = next(ln.split(" ", 1)[1] for ln in lines if ln.startswith("pythonpath "))
    assert str(tools) not in pythonpath, "the handed-over bootstrapper is not the stage's"
    assert "fetching" not in ran.stderr, "the stage container fetched again"


def test_a_checkout_at_another_commit_is_refused(make_repo, tmp_path, other_python):
    """The hand-off trusts nothing but the SHA: a checkout at another commit fails the stage."""
    repo = make_repo({"pipeline/train.py": CODE})
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    work, tools = tmp_path / "work", tmp_path / "tools"
    subprocess.run(
        [sys.executable, "-m", "bodywork_bootstrap", *common_args(repo, commit, work, tmp_path),
         "--fetch-only", "--handoff", str(tools)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (work / "src" / ".git" / "HEAD").write_text("b" * 40 + "\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(tools)}
    ran = subprocess.run(
        [other_python, "-m", "bodywork_bootstrap", *common_args(repo, commit, work, tmp_path),
         "--checkout-ready"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert ran.returncode == EXIT_FETCH_FAILED
    assert f"is at {'b' * 40}, not {commit[:12]}" in ran.stderr
    assert "greeting" not in ran.stdout
