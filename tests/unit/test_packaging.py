"""The built wheel, which is what the image installs, holds every module of both roots.

Packages are found by setuptools rather than listed, so a new subpackage cannot be left
out; this builds the real wheel and compares its contents with the source tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO_ROOT

ROOTS = (REPO_ROOT / "runner", REPO_ROOT / "stage-bootstrap")


def source_modules() -> set[str]:
    return {
        path.relative_to(root).as_posix()
        for root in ROOTS
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts and ".egg-info" not in path.as_posix()
    }


def test_wheel_contains_every_module_and_subpackage(tmp_path: Path) -> None:
    """Every .py under runner/ and stage-bootstrap/ is in the wheel, at its import path."""
    # Built from a clean copy: setuptools' build/ folder in a work tree can hold stale modules.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for root in ROOTS:
        shutil.copytree(root, source / root.name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("bodywork-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    in_wheel = {n for n in names if n.endswith(".py")}
    expected = source_modules()
    assert {
        "bodywork/core/plan.py",
        "bodywork/k8s/streams.py",
        "bodywork_bootstrap/stage.py",
    } <= expected
    assert in_wheel == expected
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "bodywork = bodywork.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
