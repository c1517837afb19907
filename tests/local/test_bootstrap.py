"""The stage bootstrapper (`python -m bodywork_bootstrap`) as a real subprocess against real
git repos, installing from the offline wheelhouse into real uv venvs."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from queue import Empty, Queue
from typing import IO

import pytest

from bodywork_bootstrap import (
    EXIT_FETCH_FAILED,
    EXIT_INSTALL_FAILED,
    EXIT_NOT_READY,
    EXIT_RUN_TIMED_OUT,
    EXIT_STAGE_INVALID,
    redaction,
)
from tests.conftest import commit_all, free_port, git, write_files
from tests.local.projects import (
    WHEEL_REQUIREMENT,
    http_service_code,
    port_free,
    process_gone,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("offline_env")
_calls = itertools.count()


def bootstrap_command(
    repo: str, commit: str, tmp_path: Path, stage: str = "stage", *extra: str, module: str = ""
) -> tuple[list[str], Path]:
    """The bootstrap command line and the workdir it checks out into (fresh per call).

    Without `module`, the older form `--script main.py` (the module `<stage>/main.py`)."""
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
        *(["--module", module] if module else ["--script", "main.py"]),
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
    repo: Path | str,
    commit: str,
    tmp_path: Path,
    stage: str = "stage",
    *extra: str,
    module: str = "",
    cwd: Path | None = None,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    url = repo.as_uri() if isinstance(repo, Path) else repo
    command, workdir = bootstrap_command(url, commit, tmp_path, stage, *extra, module=module)
    done = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, cwd=cwd
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


def test_credentials_in_a_requirement_url_are_redacted_in_the_failure(make_repo, tmp_path):
    """`git+https://user:TOKEN@host/...` that cannot be installed: uv's message and ours name
    the requirement with the credentials hidden, in the output and the termination log."""
    token = "req-t0k3n-5ecret"
    requirements = f"bwtest-private @ git+https://deploy:{token}@127.0.0.1:9/private.git\n"
    repo = make_repo(stage_files("print('must not run')\n", requirements))
    log = tmp_path / "termination-log"
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "stage", "--termination-log", str(log))
    assert done.returncode == EXIT_INSTALL_FAILED, done.stdout
    assert token not in done.stdout  # stderr is merged into it
    assert "could not be installed" in log.read_text() and token not in log.read_text()
    assert "deploy:" not in done.stdout and "***@127.0.0.1" in done.stdout


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


@pytest.mark.parametrize(
    "limits", [[], ["--max-run-seconds", "30"], ["--port", "1", "--max-startup-seconds", "30"]]
)
def test_sigterm_is_forwarded_to_the_stage(make_repo, tmp_path, limits):
    """SIGTERM to the bootstrapper reaches the stage, whose handler runs; its exit 0 is kept,
    also while the bootstrapper watches a time limit or a port."""
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
    command, _ = bootstrap_command(repo.as_uri(), head(repo), tmp_path, "stage", *limits)
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


# ------------------------------------------------------------------ --module and its contract
PREPARED = re.compile(
    r"^\[bodywork\] prepared in ([0-9.]+)s \(fetch ([0-9.]+)s, install ([0-9.]+)s\); "
    r"running (\S+)$"
)


def prepared(output: str) -> re.Match[str]:
    found = [m for m in map(PREPARED.match, output.splitlines()) if m]
    assert len(found) == 1, output
    return found[0]


def report_code(label: str) -> str:
    """A module printing what it sees as one JSON line starting with `label`."""
    return (
        "import json, os, sys\n"
        "info = {'stage': os.environ['BODYWORK_STAGE'], 'cwd': os.getcwd(),\n"
        "        'argv': sys.argv[1:], 'prefix': sys.prefix, 'file': __file__}\n"
        f"print({label!r} + ' ' + json.dumps(info))\n"
    )


def reported(output: str, label: str) -> dict[str, object]:
    line = next(ln for ln in output.splitlines() if ln.startswith(f"{label} "))
    info: dict[str, object] = json.loads(line.removeprefix(f"{label} "))
    return info


def local_package(
    where: str, sleep_seconds: float = 0, pid_file: Path | None = None
) -> dict[str, str]:
    """A path package `mylib` (mylib.WHERE == where) with an in-tree build backend, so uv builds
    it offline; the backend sleeps `sleep_seconds` and may record its pid (a uv grandchild)."""
    pid = str(pid_file) if pid_file else ""
    backend = textwrap.dedent(
        f"""
        import base64, hashlib, os, pathlib, time, zipfile

        def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
            if {pid!r}:
                pathlib.Path({pid!r}).write_text(str(os.getpid()))
            time.sleep({sleep_seconds!r})
            metadata = "Metadata-Version: 2.1\\nName: mylib\\nVersion: 1.0\\n"
            wheel = "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
            wheel += "Tag: py3-none-any\\n"
            files = {{
                "mylib/__init__.py": "WHERE = {where!r}\\n",
                "mylib-1.0.dist-info/METADATA": metadata,
                "mylib-1.0.dist-info/WHEEL": wheel,
            }}
            record = []
            for path, text in files.items():
                digest = hashlib.sha256(text.encode()).digest()
                encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                record.append(f"{{path}},sha256={{encoded}},{{len(text.encode())}}")
            record.append("mylib-1.0.dist-info/RECORD,,")
            files["mylib-1.0.dist-info/RECORD"] = "\\n".join(record) + "\\n"
            name = "mylib-1.0-py3-none-any.whl"
            with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
                for path, text in files.items():
                    archive.writestr(path, text)
            return name
        """
    )
    pyproject = (
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "mylib"\nversion = "1.0"\n'
    )
    return {"mylib/pyproject.toml": pyproject, "mylib/backend.py": backend}


def in_folder(folder: str, files: dict[str, str]) -> dict[str, str]:
    return {f"{folder}/{path}": text for path, text in files.items()}


def test_module_anywhere_two_stages_share_one_folder(make_repo, tmp_path):
    """--module runs any file under the project root; two stages share a folder, each with its
    own name, cwd = the module's folder, and the prepared-in line names the module."""
    repo = make_repo(
        {
            "pipeline/train.py": "import common\n" + report_code("TRAIN"),
            "pipeline/evaluate.py": "import common\n" + report_code("EVALUATE"),
            "pipeline/common.py": "",
        }
    )
    sha = head(repo)
    train, workdir = run_bootstrap(repo, sha, tmp_path, "train", module="pipeline/train.py")
    evaluate, _ = run_bootstrap(repo, sha, tmp_path, "evaluate", module="pipeline/evaluate.py")
    assert train.returncode == 0, train.stdout
    assert evaluate.returncode == 0, evaluate.stdout
    folder = (workdir / "src" / "pipeline").resolve()
    first, second = reported(train.stdout, "TRAIN"), reported(evaluate.stdout, "EVALUATE")
    assert first["stage"] == "train" and second["stage"] == "evaluate"
    assert first["cwd"] == str(folder)
    assert first["file"] == str(folder / "train.py")
    assert Path(str(first["prefix"])).name.startswith("train-")
    assert Path(str(second["prefix"])).name.startswith("evaluate-")
    timing = prepared(train.stdout)
    assert timing[4] == "pipeline/train.py"
    assert float(timing[1]) >= float(timing[2])
    assert "ready in" not in train.stdout


def test_arguments_after_double_dash_reach_the_module(make_repo, tmp_path):
    """Everything after the first literal `--` is the module's argv, dashes and all."""
    repo = make_repo({"jobs/main.py": report_code("ARGS")})
    module_args = ["--epochs", "3", "-x", "--stage", "other", "--", "last", ""]
    done, _ = run_bootstrap(
        repo, head(repo), tmp_path, "job", "--", *module_args, module="jobs/main.py"
    )
    assert done.returncode == 0, done.stdout
    info = reported(done.stdout, "ARGS")
    assert info["argv"] == module_args
    assert info["stage"] == "job"


def test_usage_needs_exactly_one_of_module_and_script(make_repo, tmp_path):
    """Neither --module nor --script, or both, is a usage error (exit 2)."""
    base = [sys.executable, "-m", "bodywork_bootstrap", "--repo", "x", "--commit", "0" * 40]
    base += ["--stage", "s"]
    for extra in ([], ["--module", "a.py", "--script", "main.py"]):
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done.stderr
        assert "--module" in done.stderr


def test_inline_requirements_install_and_a_changed_list_builds_a_new_venv(make_repo, tmp_path):
    """--requirement SPEC (repeatable) installs that list, written outside the checkout; the
    same list reuses the venv, a changed list builds another."""
    code = "import bwtest_greeting, sys\nprint('greeting', bwtest_greeting.greet(), sys.prefix)\n"
    repo = make_repo({"app/run.py": code})
    sha = head(repo)

    def run(*specs: str) -> tuple[str, str]:
        extra = [arg for spec in specs for arg in ("--requirement", spec)]
        done, workdir = run_bootstrap(repo, sha, tmp_path, "app", *extra, module="app/run.py")
        assert done.returncode == 0, done.stdout
        assert git(workdir / "src", "status", "--porcelain") == ""  # nothing in the checkout
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith("greeting "))
        assert line.split()[1] == "hello"
        return done.stdout, line.split()[2]

    first, first_prefix = run(WHEEL_REQUIREMENT)
    assert "installing 1 requirement(s)" in first
    again, again_prefix = run(WHEEL_REQUIREMENT)
    assert "reusing environment" in again and again_prefix == first_prefix
    changed, changed_prefix = run("bwtest-greeting>=1.0", "bwtest-greeting<2")
    assert "installing 2 requirement(s)" in changed
    assert changed_prefix != first_prefix


def test_failing_inline_requirement_is_named_by_its_place_in_the_list(make_repo, tmp_path):
    """An inline requirement uv cannot install: exit 91 naming it and its place in the list."""
    repo = make_repo({"app/run.py": "print('must not run')\n"})
    extra = ["--requirement", WHEEL_REQUIREMENT, "--requirement", "bwtest-not-in-wheelhouse"]
    done, _ = run_bootstrap(repo, head(repo), tmp_path, "app", *extra, module="app/run.py")
    assert done.returncode == EXIT_INSTALL_FAILED, done.stdout
    assert "'bwtest-not-in-wheelhouse' (requirement 2 of the stage's list)" in done.stdout
    assert "must not run" not in done.stdout


def test_relative_path_requirement_resolves_inside_the_checkout(make_repo, tmp_path):
    """`./mylib` in a requirements file (or the inline list) is the checkout's mylib, although
    the bootstrapper runs in a folder holding a different mylib."""
    code = "import mylib\nprint('mylib from', mylib.WHERE)\n"
    repo = make_repo(
        {
            "pipeline/train.py": code,
            "pipeline/requirements.txt": "./mylib\n",
            **in_folder("pipeline", local_package("checkout")),
        }
    )
    elsewhere = tmp_path / "elsewhere"
    write_files(elsewhere, local_package("caller's cwd"))
    write_files(elsewhere, {"pipeline/requirements.txt": "./mylib\n"})
    write_files(elsewhere, in_folder("pipeline", local_package("caller's cwd")))
    sha = head(repo)
    from_file, _ = run_bootstrap(
        repo, sha, tmp_path, "from-file", "--requirements-file", "pipeline/requirements.txt",
        module="pipeline/train.py", cwd=elsewhere,
    )  # fmt: skip
    inline, _ = run_bootstrap(
        repo, sha, tmp_path, "inline", "--requirement", "./mylib",
        module="pipeline/train.py", cwd=elsewhere,
    )  # fmt: skip
    for done in (from_file, inline):
        assert done.returncode == 0, done.stdout
        assert "mylib from checkout" in done.stdout


def test_missing_requirements_file_means_no_requirements(make_repo, tmp_path):
    """A --requirements-file absent at the commit installs nothing, as a missing file did."""
    repo = make_repo({"a/main.py": "print('no requirements needed')\n"})
    done, _ = run_bootstrap(
        repo, head(repo), tmp_path, "a", "--requirements-file", "a/requirements.txt",
        module="a/main.py",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    assert "no requirements needed" in done.stdout
    assert "installing" not in done.stdout


# ------------------------------------------------------------------------------ time limits
def test_slow_install_does_not_count_against_the_run_limit(make_repo, tmp_path):
    """Installing takes ~3 s, the code well under 1 s: --max-run-seconds 1 passes, because the
    clock starts with the module's process."""
    repo = make_repo(
        {
            "job/main.py": "import mylib\nprint('done with', mylib.WHERE)\n",
            "job/requirements.txt": "./mylib\n",
            **in_folder("job", local_package("slow", sleep_seconds=3)),
        }
    )
    log = tmp_path / "termination-log"
    done, _ = run_bootstrap(
        repo, head(repo), tmp_path, "job", "--requirements-file", "job/requirements.txt",
        "--max-run-seconds", "1", "--termination-log", str(log), module="job/main.py",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    assert "done with slow" in done.stdout
    assert float(prepared(done.stdout)[3]) >= 3  # the install took longer than the limit
    assert not log.exists()


def test_code_running_past_the_limit_exits_93_and_its_children_are_stopped(make_repo, tmp_path):
    """Code still running at --max-run-seconds gets SIGTERM (its handler runs), exit 93, the
    termination log says why, and what it started is stopped with it."""
    marker, child_pid = tmp_path / "got-sigterm", tmp_path / "child.pid"
    code = textwrap.dedent(
        f"""
        import pathlib, signal, subprocess, sys, time
        def handle(signum, frame):
            pathlib.Path({str(marker)!r}).write_text("term")
            sys.exit(0)
        signal.signal(signal.SIGTERM, handle)
        worker = subprocess.Popen(["sleep", "60"])
        pathlib.Path({str(child_pid)!r}).write_text(str(worker.pid))
        print("working", flush=True)
        time.sleep(60)
        """
    )
    repo = make_repo({"job/main.py": code})
    log = tmp_path / "termination-log"
    started = time.monotonic()
    done, _ = run_bootstrap(
        repo, head(repo), tmp_path, "job", "--max-run-seconds", "1",
        "--termination-log", str(log), module="job/main.py",
    )  # fmt: skip
    assert done.returncode == EXIT_RUN_TIMED_OUT == 93, done.stdout
    assert time.monotonic() - started < 30
    expected = (
        "stage code ran longer than 1 s (MAX_COMPLETION_TIME_SECONDS; installation is not counted)"
    )
    assert log.read_text() == expected
    assert done.stdout.rstrip().splitlines()[-1] == f"[bodywork] {expected}"
    assert marker.read_text() == "term"
    assert wait_for(lambda: process_gone(int(child_pid.read_text())), timeout=10)


def test_service_that_never_listens_exits_94(make_repo, tmp_path):
    """A service not accepting on --port within --max-startup-seconds of starting: exit 94."""
    port = free_port()
    repo = make_repo({"svc/main.py": "import time\nprint('not listening')\ntime.sleep(60)\n"})
    log = tmp_path / "termination-log"
    done, _ = run_bootstrap(
        repo, head(repo), tmp_path, "svc", "--port", str(port), "--max-startup-seconds", "1",
        "--termination-log", str(log), module="svc/main.py",
    )  # fmt: skip
    assert done.returncode == EXIT_NOT_READY == 94, done.stdout
    expected = (
        f"service did not listen on port {port} within 1 s of starting "
        "(MAX_STARTUP_TIME_SECONDS; installation is not counted)"
    )
    assert log.read_text() == expected
    assert f"[bodywork] {expected}" in done.stdout
    assert "listening on port" not in done.stdout.replace(expected, "")


def test_service_that_listens_is_announced_and_keeps_running(make_repo, tmp_path):
    """Once the port accepts, `listening on port P after X.XXs` is printed and the service runs
    on past --max-startup-seconds until it is stopped."""
    port = free_port()
    repo = make_repo({"svc/main.py": http_service_code(port, str(tmp_path / "svc.pid"))})
    command, _ = bootstrap_command(
        repo.as_uri(), head(repo), tmp_path, "svc", "--port", str(port),
        "--max-startup-seconds", "1", module="svc/main.py",
    )  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        seen = wait_for_line(line_reader(process.stdout), "listening on port", timeout=30)
        assert re.fullmatch(rf"\[bodywork\] listening on port {port} after \d+\.\d\ds", seen[-1])
        time.sleep(1.5)  # past the startup limit: a ready service is left alone
        assert process.poll() is None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            assert answer.read() == b"ok from svc"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert wait_for(lambda: port_free(port), timeout=10)


def test_install_past_its_bound_exits_91_and_uv_is_stopped(make_repo, tmp_path):
    """A build outlasting --max-install-seconds: uv and its build backend are killed, exit 91
    with the message, and the module never runs."""
    backend_pid = tmp_path / "backend.pid"
    repo = make_repo(
        {
            "job/main.py": "print('must not run')\n",
            "job/requirements.txt": "./mylib\n",
            **in_folder("job", local_package("x", sleep_seconds=60, pid_file=backend_pid)),
        }
    )
    log = tmp_path / "termination-log"
    started = time.monotonic()
    done, _ = run_bootstrap(
        repo, head(repo), tmp_path, "job", "--requirements-file", "job/requirements.txt",
        "--max-install-seconds", "2", "--termination-log", str(log), module="job/main.py",
    )  # fmt: skip
    assert done.returncode == EXIT_INSTALL_FAILED, done.stdout
    assert time.monotonic() - started < 40
    expected = (
        "installing requirements for stage 'job' took longer than 2 s "
        "(MAX_INSTALL_TIME_SECONDS): raise it, or trim requirements"
    )
    assert log.read_text() == expected
    assert f"[bodywork] {expected}" in done.stdout
    assert "must not run" not in done.stdout
    assert wait_for(backend_pid.exists, timeout=1)
    assert wait_for(lambda: process_gone(int(backend_pid.read_text())), timeout=10)
    assert not list((tmp_path / "venvs").glob("job-*/bin"))  # no half-built venv kept


# ----------------------------------------------------------------------------- path safety
@pytest.mark.parametrize(
    ("module", "said"),
    [
        ("../outside.py", "must not contain '..'"),
        ("pipeline/../../outside.py", "must not contain '..'"),
        ("/etc/passwd", "must be relative to the project root"),
        ("pipeline/escape.py", "resolves outside the checkout"),
    ],
)
def test_module_path_outside_the_project_is_refused_with_92(make_repo, tmp_path, module, said):
    """An absolute module path, one with `..`, or a symlink out of the checkout: exit 92,
    naming the path, and nothing runs."""
    outside = tmp_path / "outside.py"
    outside.write_text("print('escaped!')\n")
    repo = make_repo({"pipeline/train.py": "print('x')\n"})
    (repo / "pipeline" / "escape.py").symlink_to(outside)
    sha = commit_all(repo, "a symlink out of the repo")
    log = tmp_path / "termination-log"
    done, _ = run_bootstrap(repo, sha, tmp_path, "s", "--termination-log", str(log), module=module)
    assert done.returncode == EXIT_STAGE_INVALID, done.stdout
    assert f"'{module}'" in log.read_text() and said in log.read_text()
    assert "escaped!" not in done.stdout
    assert "Traceback" not in done.stdout


def test_requirements_file_through_a_symlink_out_of_the_checkout_is_refused(make_repo, tmp_path):
    outside = tmp_path / "outside-requirements.txt"
    outside.write_text(WHEEL_REQUIREMENT + "\n")
    repo = make_repo({"a/main.py": "print('x')\n"})
    (repo / "a" / "requirements.txt").symlink_to(outside)
    sha = commit_all(repo, "symlinked requirements")
    done, _ = run_bootstrap(
        repo, sha, tmp_path, "a", "--requirements-file", "a/requirements.txt", module="a/main.py"
    )
    assert done.returncode == EXIT_STAGE_INVALID, done.stdout
    assert "requirements file 'a/requirements.txt' resolves outside the checkout" in done.stdout
