"""A repository another user owns: git refuses it ("detected dubious ownership", git 2.35.2
on), and Bodywork says so in one line naming the repository and the fix.

For real: the repository is chowned to another uid (we run as root; else skipped) and HOME is
an empty folder, so no gitconfig trusts it. The same with git's own switch for this
(GIT_TEST_ASSUME_DIFFERENT_OWNER), which needs no root. A local run reads the working tree
and then its first stage fetches from its `.git`, and git checks both: the message names both,
and with only the first trusted that fetch is refused and named the same way (render, which
reads the commit in the working tree's repository and fetches nothing, then works).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bodywork.core.errors import GitSourceError
from tests.local.projects import batch_stage, project_ini

OTHER_UID = 12_345
EXIT_GIT = GitSourceError.exit_code


@pytest.fixture
def lonely_home(tmp_path: Path) -> dict[str, str]:
    """An environment whose git trusts nothing: an empty HOME, no system gitconfig."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(home)}


@pytest.fixture
def project(make_repo: Callable[..., Path]) -> Path:
    return make_repo({"bodywork.ini": project_ini("train"), **batch_stage("train", "pass")})


def bodywork(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bodywork", *args], capture_output=True, text=True, timeout=60, env=env)


def trust(env: dict[str, str], path: Path) -> None:
    subprocess.run(
        ["git", "config", "--global", "--add", "safe.directory", str(path)], env=env, check=True
    )


def assert_dubious(done: subprocess.CompletedProcess[str], named: Path) -> str:
    assert done.returncode == EXIT_GIT, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]  # events
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith(f"error: git refuses to read the repository at {named}: ")
    assert "owned by another user" in line
    return line


def test_a_repository_chowned_to_another_user_is_named_with_the_fix(
    project: Path, lonely_home: dict[str, str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    subprocess.run(["chown", "-R", f"{OTHER_UID}:{OTHER_UID}", str(project)], check=True)
    line = assert_dubious(bodywork(lonely_home, "render", str(project)), project)
    assert f"git config --global --add safe.directory {project} && " in line
    assert f"git config --global --add safe.directory {project}/.git`" in line

    trust(lonely_home, project)  # the working tree only: render reads the commit there,
    done = bodywork(lonely_home, "render", str(project))
    assert done.returncode == 0, done.stderr
    # but a run's first stage fetches the commit from .git, and that fetch is refused: the
    # stage fails before its code runs, naming the git directory and the same fix
    done = bodywork(lonely_home, "run", str(project))
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert "git refuses to read the repository at " in line  # the summary may cut the middle
    assert line.endswith("/.git`, or run Bodywork as the user who owns it"), line
    said = done.stdout + done.stderr  # the stage's own line, whole
    assert f"git refuses to read the repository at {project}/.git: " in said
    fix = f"safe.directory {project} && git config --global --add safe.directory {project}/.git`"
    assert fix in said

    trust(lonely_home, project / ".git")  # the fix, as given: now the run gets past the fetch
    done = bodywork(lonely_home, "run", str(project))
    assert "dubious ownership" not in done.stderr and "refuses" not in done.stderr, done.stderr


def test_git_assuming_another_owner_gives_the_same_line_without_root(
    project: Path, lonely_home: dict[str, str]
) -> None:
    env = {**lonely_home, "GIT_TEST_ASSUME_DIFFERENT_OWNER": "1"}
    for command in ("render", "run"):
        line = assert_dubious(bodywork(env, command, str(project / "train")), project)
        assert f"safe.directory {project}/.git" in line
