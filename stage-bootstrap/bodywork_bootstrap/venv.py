"""The stage's virtualenv, built with uv and reused while nothing it depends on changes.

A venv is keyed by the hash of the stage's requirements text (its requirements file, or the
inline list written to a file), the Python version and the stage name, so a second run of an
unchanged stage skips installation entirely (the "warm start"), and the uv cache directory is
shared by all stages so even a changed requirements list mostly links files already
downloaded. A file lock serialises two stages building the same venv.

uv runs in `install_cwd` (the requirements file's folder in the checkout), so a relative
requirement such as `./mylib` is the one in the pinned checkout, never the caller's. With a
`deadline`, waiting for the lock and every uv call stop then (uv and whatever it started are
killed) and InstallTimedOut is raised. A requirements file is read as UTF-8 (with or without
a BOM) or as UTF-16 with its BOM, as uv reads it; anything else is an InstallError naming the
file and the fix, not a traceback.
"""

from __future__ import annotations

import codecs
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

from bodywork_bootstrap import envnames, redaction, supervise

READY_MARKER = ".bodywork-ready"  # written last: a venv without it is incomplete
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


LOCK_POLL_SECONDS = 0.1


class InstallError(Exception):
    pass


class InstallTimedOut(InstallError):
    """The install did not finish by its deadline (uv was killed)."""


def uv_executable() -> str:
    """uv: the one handed over by the init container (BODYWORK_UV), else the installed one."""
    handed_over = os.environ.get(envnames.UV)
    if handed_over:
        if not os.access(handed_over, os.X_OK):
            raise InstallError(f"{envnames.UV}={handed_over} is not an executable uv")
        return handed_over
    try:
        from uv import find_uv_bin  # the `uv` wheel ships the binary and this locator

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise InstallError("uv is not installed: `pip install uv`") from None
        return found


def read_requirements(path: Path, label: str | None = None) -> str:
    """The text of a requirements file: UTF-8 (a BOM is dropped), or UTF-16 when it starts
    with UTF-16's BOM (what Windows editors save as "Unicode"); uv reads these too. Any other
    encoding (cp1252, Latin-1...) raises InstallError naming the file and the fix."""
    name = label or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InstallError(f"cannot read {name}: {exc.strerror or exc}") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InstallError(
                f"{name} starts with UTF-16's byte order mark but is not UTF-16 text: "
                "save it as UTF-8"
            ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InstallError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}; "
            "Windows-1252 or Latin-1 perhaps): save it as UTF-8"
        ) from None


def requirement_lines(text: str) -> list[tuple[int, str]]:
    """(line number, requirement) for every line that asks for a package."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def interpreter_identity() -> str:
    """What tells two Pythons apart, even at one path with one version in two images (ours
    and a user's DOCKER_IMAGE share a PVC): version, ABI, the real binary and its size."""
    real = os.path.realpath(sys.executable)
    try:
        size = os.stat(real).st_size
    except OSError:
        size = -1
    return "\0".join([sys.version, sys.implementation.cache_tag or "", real, str(size)])


def venv_key(requirements: str, stage: str) -> str:
    material = f"{interpreter_identity()}\0{sys.executable}\0{stage}\0{requirements}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _explain_failure(output: str, requirements: str, source: str, listed: bool = False) -> str:
    """Name the requirement uv could not install, with its line, and uv's own reason.

    `source`: the requirements file's name; `listed`: the requirements are the stage's inline
    list (written to a file), so a requirement is named by its place in that list."""
    uv_lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    lowered = _norm(output)
    culprits = []
    for number, line in requirement_lines(requirements):
        match = _REQUIREMENT_NAME.match(line)
        if match and re.search(rf"(?<![a-z0-9-]){re.escape(_norm(match[1]))}(?![a-z0-9])", lowered):
            where = f"{source} line {number}"
            if listed:
                where = f"requirement {number} of the stage's list"
            culprits.append(f"'{line}' ({where})")
    fallback = "the stage's requirements" if listed else source
    head = f"requirement {', '.join(culprits)}" if culprits else fallback
    detail = "\n".join(uv_lines[-12:]) or "uv exited without a message"
    # A requirement may be `git+https://user:token@host/...`: uv echoes it, and so do we.
    return redaction.redact(f"{head} could not be installed:\n{detail}")


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise InstallTimedOut("the time for installing ran out")
    return left


def _lock(lock: int, deadline: float | None) -> None:
    """Take the venv's lock, waiting for another stage building it no later than `deadline`."""
    if deadline is None:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            _remaining(deadline)
            time.sleep(LOCK_POLL_SECONDS)


def _uv(
    command: list[str], env: dict[str, str], cwd: Path | None, deadline: float | None
) -> subprocess.CompletedProcess[str]:
    """Run uv; past `deadline` kill it and the build backends it started."""
    timeout = _remaining(deadline)
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        supervise.kill_tree(process)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        raise InstallTimedOut("uv did not finish in time") from None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def ensure_venv(
    requirements_file: Path,
    venv_root: Path,
    stage: str,
    cache_dir: Path | None,
    say: Callable[[str], None],
    *,
    install_cwd: Path | None = None,
    deadline: float | None = None,
    label: str | None = None,
    listed: bool = False,
) -> Path:
    """Return the python executable of a ready venv for this stage's requirements.

    `install_cwd`: where uv runs, so relative requirements resolve there; `deadline` (a
    `time.monotonic()` value) bounds the whole build; `label`: how messages name the file
    (default: its name); `listed`: the file holds the stage's inline requirement list (only
    changes how a failing requirement is named)."""
    requirements = ""
    if requirements_file.is_file():
        requirements = read_requirements(requirements_file, label)
    venv = venv_root / f"{stage}-{venv_key(requirements, stage)}"
    python = venv / "bin" / "python"
    venv_root.mkdir(parents=True, exist_ok=True)
    with open(venv_root / f"{venv.name}.lock", "w") as lock:
        _lock(lock.fileno(), deadline)  # another stage may be building this same venv
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
        try:
            made = _uv(
                [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], env, None, deadline
            )
            if made.returncode != 0:
                raise InstallError(f"cannot create a virtualenv: {made.stderr.strip()}")
            wanted = requirement_lines(requirements)
            if wanted:
                say(f"installing {len(wanted)} requirement(s) with uv")
                install = [uv, "pip", "install", "--python", str(python)]
                installed = _uv(
                    [*install, "-r", str(requirements_file.resolve())], env, install_cwd, deadline
                )
                if installed.returncode != 0:
                    raise InstallError(
                        _explain_failure(
                            installed.stderr + installed.stdout,
                            requirements,
                            label or requirements_file.name,
                            listed,
                        )
                    )
                summary = [ln for ln in installed.stderr.splitlines() if ln.startswith("Installed")]
                say(summary[-1] if summary else "requirements already satisfied")
        except InstallError:
            shutil.rmtree(venv, ignore_errors=True)  # never leave a half-built venv behind
            raise
        (venv / READY_MARKER).write_text(f"{time.monotonic() - started:.2f}s\n")
        return python
