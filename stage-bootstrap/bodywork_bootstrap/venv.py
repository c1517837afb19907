"""The stage's virtualenv, built with uv and reused while nothing it depends on changes.

A venv is keyed by the hash of requirements.txt, the Python version and the stage name, so
a second run of an unchanged stage skips installation entirely (the "warm start"), and the
uv cache directory is shared by all stages so even a changed requirements file mostly
links files already downloaded. A file lock serialises two stages building the same venv.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

READY_MARKER = ".bodywork-ready"  # written last: a venv without it is incomplete
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class InstallError(Exception):
    pass


def uv_executable() -> str:
    try:
        from uv import find_uv_bin  # the `uv` wheel ships the binary and this locator

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise InstallError("uv is not installed: `pip install uv`") from None
        return found


def requirement_lines(text: str) -> list[tuple[int, str]]:
    """(line number, requirement) for every line that asks for a package."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def venv_key(requirements: str, stage: str) -> str:
    material = f"{sys.version}\0{sys.executable}\0{stage}\0{requirements}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _explain_failure(output: str, requirements: str) -> str:
    """Name the requirement uv could not install, with its line, and uv's own reason."""
    uv_lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    lowered = _norm(output)
    culprits = []
    for number, line in requirement_lines(requirements):
        match = _REQUIREMENT_NAME.match(line)
        if match and re.search(rf"(?<![a-z0-9-]){re.escape(_norm(match[1]))}(?![a-z0-9])", lowered):
            culprits.append(f"'{line}' (requirements.txt line {number})")
    head = f"requirement {', '.join(culprits)}" if culprits else "requirements.txt"
    detail = "\n".join(uv_lines[-12:]) or "uv exited without a message"
    return f"{head} could not be installed:\n{detail}"


def ensure_venv(
    requirements_file: Path,
    venv_root: Path,
    stage: str,
    cache_dir: Path | None,
    say: Callable[[str], None],
) -> Path:
    """Return the python executable of a ready venv for this stage's requirements."""
    requirements = requirements_file.read_text() if requirements_file.is_file() else ""
    venv = venv_root / f"{stage}-{venv_key(requirements, stage)}"
    python = venv / "bin" / "python"
    venv_root.mkdir(parents=True, exist_ok=True)
    with open(venv_root / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another stage may be building this same venv
        if (venv / READY_MARKER).is_file():
            say(f"reusing environment {venv.name} (requirements unchanged)")
            return python
        shutil.rmtree(venv, ignore_errors=True)
        env = dict(os.environ)
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            env["UV_CACHE_DIR"] = str(cache_dir)
            if "UV_LINK_MODE" not in env and os.stat(cache_dir).st_dev != os.stat(venv_root).st_dev:
                env["UV_LINK_MODE"] = "copy"  # hard links cannot cross filesystems
        uv = uv_executable()
        started = time.monotonic()
        made = subprocess.run(
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise InstallError(f"cannot create a virtualenv: {made.stderr.strip()}")
        wanted = requirement_lines(requirements)
        if wanted:
            say(f"installing {len(wanted)} requirement(s) with uv")
            installed = subprocess.run(
                [uv, "pip", "install", "--python", str(python), "-r", str(requirements_file)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if installed.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise InstallError(
                    _explain_failure(installed.stderr + installed.stdout, requirements)
                )
            summary = [ln for ln in installed.stderr.splitlines() if ln.startswith("Installed")]
            say(summary[-1] if summary else "requirements already satisfied")
        (venv / READY_MARKER).write_text(f"{time.monotonic() - started:.2f}s\n")
        return python
