"""A full disk is named as one: git's own words for it vary by the step that could not write
("Out of diskspace", or "not a git repository" once `git init` wrote nothing), and a plain
write() names no file at all.

For real: TMPDIR (where the planning fetch of a URL goes) or BODYWORK_HOME on a tiny tmpfs, filled
to within a few KiB. Mounting needs root (CI runs as root); elsewhere these skip, saying so.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bodywork.cli.main import describe_os_error
from bodywork.core.errors import GitSourceError
from bodywork_bootstrap import EXIT_FETCH_FAILED
from tests.conftest import git, serve_bare
from tests.local.projects import batch_stage, project_ini


@pytest.fixture
def nearly_full_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        with open(mount / "filler", "wb") as filler:  # leave a few KiB: git init still starts
            filler.write(b"\0" * (248 * 1024))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def project(make_repo: Callable[..., Path]) -> Path:
    stage = batch_stage("train", "pass\n" + "# padding\n" * 2000)  # more than the disk holds
    return make_repo({"bodywork.ini": project_ini("train"), **stage})


def test_a_checkout_onto_a_full_disk_names_the_disk_and_the_fix(
    nearly_full_disk: Path, project: Path, git_daemon: tuple[Path, str]
) -> None:
    """render of a URL fetches the commit into TMPDIR; of a local path it reads the commit in
    the repository itself and needs no room there."""
    env = {**os.environ, "TMPDIR": str(nearly_full_disk)}
    local = subprocess.run(
        ["bodywork", "render", str(project)], capture_output=True, text=True, env=env, timeout=60
    )
    assert local.returncode == 0 and "kind: Job" in local.stdout, local.stderr
    base, url = git_daemon
    serve_bare(project, base)
    done = subprocess.run(
        ["bodywork", "render", f"{url}/project.git"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == GitSourceError.exit_code, done.stderr
    assert "Traceback" not in done.stderr
    assert "not a git repository" not in done.stderr
    assert f"no free space left on the disk holding {nearly_full_disk}" in done.stderr
    assert "point TMPDIR (or BODYWORK_HOME) at a larger disk" in done.stderr


def test_a_write_that_names_no_file_names_where_bodywork_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BODYWORK_HOME", str(tmp_path / "home"))
    line = describe_os_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert line.startswith("No space left on device (ENOSPC): free space in ")
    assert f"BODYWORK_HOME ({tmp_path / 'home'})" in line and "TMPDIR (" in line
    named = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/data/x"))
    assert named == "/data/x: No space left on device (ENOSPC)"  # a named file stays named


def test_a_stage_fetching_onto_a_full_disk_names_the_disk(
    nearly_full_disk: Path, project: Path
) -> None:
    """The bootstrapper's own fetch (a stage pod's emptyDir filling up) says the same."""
    commit = git(project, "rev-parse", "HEAD")
    done = subprocess.run(
        [sys.executable, "-m", "bodywork_bootstrap", "--repo", f"file://{project}",
         "--commit", commit, "--stage", "train", "--module", "train/train.py",
         "--workdir", str(nearly_full_disk / "work"), "--venv-root", str(project.parent / "v"),
         "--artifacts-dir", str(project.parent / "a")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == EXIT_FETCH_FAILED, out
    assert "not a git repository" not in out
    assert f"no free space left on the disk holding {nearly_full_disk}" in out
