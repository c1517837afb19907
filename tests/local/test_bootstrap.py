"""The stage bootstrapper (`python -m bodywork_bootstrap`) as a real subprocess against real
git repos, installing from the offline wheelhouse into real uv venvs."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from queue import Empty, Queue
from typing import IO

import pytest

from bodywork_bootstrap import EXIT_FETCH_FAILED, EXIT_INSTALL_FAILED, redaction
from tests.conftest import commit_all, git, write_files
from tests.local.projects import WHEEL_REQUIREMENT

pytestmark = pytest.mark.usefixtures("offline_env")
_calls = itertools.count()


def bootstrap_command(
    repo: str, commit: str, tmp_path: Path, stage: str = "stage", *extra: str
) -> tuple[list[str], Path]:
    """The bootstrap command line and the workdir it checks out into (fresh per call)."""
    workdir = tmp_path / f"work{next(_calls)}"
    command = [
        sys.executable,
        "-m",
        "bodywork_bootstrap",
        "--repo",
        repo,
        "--commit",
        commit,
        "--stage",
        stage,
        "--script",
        "main.py",
        "--project",
        "proj",
        "--run-id",
        "run-1",
        "--workdir",
        str(workdir),
        "--venv-root",
        str(tmp_path / "venvs"),
        "--artifacts-dir",
        str(tmp_path / "artifacts"),
        *extra,
    ]
    return command, workdir


def run_bootstrap(
    repo: Path | str, commit: str, tmp_path: Path, stage: str = "stage", *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    url = repo.as_uri() if isinstance(repo, Path) else repo
    command, workdir = bootstrap_command(url, commit, tmp_path, stage, *extra)
    done = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60
    )
    return done, workdir


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def stage_files(code: str, requirements: str = "", stage: str = "stage") -> dict[str, str]:
    return {f"{stage}/main.py": code, f"{stage}/requirements.txt": requirements}


def line_reader(stream: IO[str]) -> Queue[str]:
    """Lines of `stream` as they arrive, read on a thread so the test can time out."""
    lines: Queue[str] = Queue()

    def pump() -> None:
        for line in iter(stream.readline, ""):
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines: Queue[str], wanted: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except Empty:
            raise AssertionError(f"no line {wanted!r} within {timeout}s; saw {seen}") from None
        seen.append(line)
        if wanted in line:
            return seen


def test_installs_requirement_from_wheelhouse_and_stage_imports_it(make_repo, tmp_path):
    """A requirement in requirements.txt is installed into the venv the stage runs in."""
    code = "import bwtest_greeting, sys\nprint('greeting:', bwtest_greeting.greet(), sys.prefix)\n"
    repo = make_repo(stage_files(code, WHEEL_REQUIREMENT + "\n"))
    done, _ = run_bootstrap(repo, head(repo), tmp_path)
    assert done.returncode == 0, done.stdout
    assert "installing 1 requirement(s)" in done.stdout
    greeting = next(ln for ln in done.stdout.splitlines() if ln.startswith("greeting:"))
    assert greeting.split()[1] == "hello"
    assert Path(greeting.split()[2]).parent == tmp_path / "venvs"


def test_stage_exit_code_is_propagated(make_repo, tmp_path):
    """The bootstrapper exits with the stage module's own exit code."""
    repo = make_repo(stage_files("import sys\nprint('failing on purpose')\nsys.exit(3)\n"))
    done, _ = run_bootstrap(repo, head(repo), tmp_path)
    assert done.returncode == 3
    assert "failing on purpose" in done.stdout


def test_stage_sees_bodywork_env_cwd_and_project_root_on_pythonpath(make_repo, tmp_path):
    """BODYWORK_* are set, cwd is the stage dir, and modules at the repo root import."""
    code = (
        "import json, os, helper\n"
        "keys = ['BODYWORK_PROJECT', 'BODYWORK_STAGE', 'BODYWORK_RUN_ID',\n"
        "        'BODYWORK_GIT_COMMIT', 'BODYWORK_ARTIFACTS_DIR', 'PYTHONPATH']\n"
        "info = {k: os.environ.get(k) for k in keys}\n"
        "info.update(cwd=os.getcwd(), helper=helper.VALUE)\n"
        "print('INFO ' + json.dumps(info))\n"
    )
    repo = make_repo({**stage_files(code, stage="train"), "helper.py": "VALUE = 'from-root'\n"})
    sha = head(repo)
    done, workdir = run_bootstrap(repo, sha, tmp_path, "train")
    assert done.returncode == 0, done.stdout
    info_line = next(ln for ln in done.stdout.splitlines() if ln.startswith("INFO "))
    info = json.loads(info_line.removeprefix("INFO "))
    project_root = (workdir / "src").resolve()
    assert info["BODYWORK_PROJECT"] == "proj"
    assert info["BODYWORK_STAGE"] == "train"
    assert info["BODYWORK_RUN_ID"] == "run-1"
    assert info["BODYWORK_GIT_COMMIT"] == sha
    assert info["BODYWORK_ARTIFACTS_DIR"] == str(tmp_path / "artifacts")
    assert info["cwd"] == str(project_root / "train")
    assert info["PYTHONPATH"].split(os.pathsep)[0] == str(project_root)
    assert info["helper"] == "from-root"


def test_runs_the_pinned_commit_not_the_branch_head(make_repo, tmp_path):
    """Given an older SHA, the stage runs that commit's code although main moved on."""
    repo = make_repo(stage_files("print('version one')\n"))
    first = head(repo)
    write_files(repo, stage_files("print('version two')\n"))
    second = commit_all(repo, "second")
    assert first != second
    done, _ = run_bootstrap(repo, first, tmp_path)
    assert done.returncode == 0, done.stdout
    assert "version one" in done.stdout
    assert "version two" not in done.stdout


def test_venv_is_reused_and_rebuilt_when_requirements_change(make_repo, tmp_path):
    """An unchanged requirements.txt reuses the venv; a changed one builds a new venv."""
    code = "import sys\nprint('prefix', sys.prefix)\n"
    repo = make_repo(stage_files(code, WHEEL_REQUIREMENT + "\n"))
    sha = head(repo)

    def prefix(output: str) -> str:
        return next(ln for ln in output.splitlines() if ln.startswith("prefix "))

    first, _ = run_bootstrap(repo, sha, tmp_path)
    assert first.returncode == 0, first.stdout
    assert "installing 1 requirement(s)" in first.stdout
    assert "reusing environment" not in first.stdout

    second, _ = run_bootstrap(repo, sha, tmp_path)
    assert second.returncode == 0, second.stdout
    assert "reusing environment" in second.stdout
    assert "installing" not in second.stdout
    assert prefix(second.stdout) == prefix(first.stdout)

    write_files(repo, {"stage/requirements.txt": WHEEL_REQUIREMENT + "\n# pinned\n"})
    changed = commit_all(repo, "requirements changed")
    third, _ = run_bootstrap(repo, changed, tmp_path)
    assert third.returncode == 0, third.stdout
    assert "reusing environment" not in third.stdout
    assert "installing 1 requirement(s)" in third.stdout
    assert prefix(third.stdout) != prefix(first.stdout)


def test_failed_install_exits_91_naming_requirement_and_line(make_repo, tmp_path):
    """A requirement absent from the wheelhouse fails with 91, its name and its line."""
    requirements = f"# deps\n{WHEEL_REQUIREMENT}\nbwtest-not-in-wheelhouse==2.0\n"
    repo = make_repo(stage_files("print('must not run')\n", requirements))
    done, _ = run_bootstrap(repo, head(repo), tmp_path)
    assert done.returncode == EXIT_INSTALL_FAILED, done.stdout
    assert "'bwtest-not-in-wheelhouse==2.0' (requirements.txt line 3)" in done.stdout
    assert "must not run" not in done.stdout
    assert "Traceback" not in done.stdout


def test_missing_commit_exits_90_with_clear_message(make_repo, tmp_path):
    """A SHA that is not in the repo fails with 90 and a last line naming commit and repo."""
    repo = make_repo(stage_files("print('must not run')\n"))
    missing = "0123456789abcdef0123456789abcdef01234567"
    done, _ = run_bootstrap(repo, missing, tmp_path)
    assert done.returncode == EXIT_FETCH_FAILED, done.stdout
    said = [ln for ln in done.stdout.splitlines() if ln.startswith("[bodywork] ")]
    assert said[-1].startswith(f"[bodywork] commit {missing} is not in {repo.as_uri()}: ")
    assert "must not run" not in done.stdout
    assert "Traceback" not in done.stdout


def test_termination_log_receives_the_failure_reason(make_repo, tmp_path):
    """--termination-log holds the reason a bootstrap failed, for Kubernetes to show."""
    repo = make_repo(stage_files("print('x')\n", "bwtest-not-in-wheelhouse\n"))
    log = tmp_path / "termination-log"
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "stage", "--termination-log", str(log))
    assert done.returncode == EXIT_INSTALL_FAILED, done.stdout
    text = log.read_text()
    assert text.startswith("cannot install requirements for stage 'stage'")
    assert "'bwtest-not-in-wheelhouse' (requirements.txt line 1)" in text


def test_termination_log_untouched_when_stage_succeeds(make_repo, tmp_path):
    """A successful stage writes nothing to --termination-log."""
    repo = make_repo(stage_files("print('fine')\n"))
    log = tmp_path / "termination-log"
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "stage", "--termination-log", str(log))
    assert done.returncode == 0, done.stdout
    assert not log.exists()


def test_output_streams_live_while_stage_runs(make_repo, tmp_path):
    """A stage's line reaches the pipe while the stage is still running, not at exit."""
    release = tmp_path / "release"
    code = (
        "import pathlib, time\n"
        "print('waiting for release')\n"
        f"path = pathlib.Path({str(release)!r})\n"
        "deadline = time.monotonic() + 20\n"
        "while not path.exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print('released' if path.exists() else 'never released')\n"
    )
    repo = make_repo(stage_files(code))
    command, _ = bootstrap_command(repo.as_uri(), head(repo), tmp_path)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        lines = line_reader(process.stdout)
        wait_for_line(lines, "waiting for release", timeout=20)
        assert process.poll() is None  # the line arrived while the stage still runs
        release.touch()
        assert process.wait(timeout=20) == 0
        assert "released" in wait_for_line(lines, "released", timeout=5)[-1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_is_forwarded_to_the_stage(make_repo, tmp_path):
    """SIGTERM to the bootstrapper reaches the stage, whose handler runs; its exit 0 is kept."""
    marker = tmp_path / "got-sigterm"
    code = (
        "import pathlib, signal, sys, time\n"
        "def handle(signum, frame):\n"
        f"    pathlib.Path({str(marker)!r}).write_text(str(signum))\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, handle)\n"
        "print('handler installed', flush=True)\n"
        "time.sleep(60)\n"
        "sys.exit(7)\n"
    )
    repo = make_repo(stage_files(code))
    command, _ = bootstrap_command(repo.as_uri(), head(repo), tmp_path)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        wait_for_line(line_reader(process.stdout), "handler installed", timeout=20)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
        assert marker.read_text() == str(int(signal.SIGTERM))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class _NotGit(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the stdlib names it so
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


def test_credentials_in_https_url_are_redacted(make_repo, tmp_path):
    """A token in the repo URL never appears in the bootstrapper's output or reason."""
    server = HTTPServer(("127.0.0.1", 0), _NotGit)  # speaks plain HTTP: TLS fails at once
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://someone:s3cr3t-t0ken@127.0.0.1:{server.server_port}/org/project.git"
        log = tmp_path / "termination-log"
        done, _ = run_bootstrap(url, "0" * 40, tmp_path, "stage", "--termination-log", str(log))
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == EXIT_FETCH_FAILED, done.stdout
    assert "s3cr3t-t0ken" not in done.stdout
    assert "s3cr3t-t0ken" not in log.read_text()
    assert f"https://***@127.0.0.1:{server.server_port}/org/project.git" in done.stdout
    assert redaction.redact(f"fatal: unable to access '{url}/'") == (
        f"fatal: unable to access 'https://***@127.0.0.1:{server.server_port}/org/project.git/'"
    )
