"""A local run reads only its pinned checkout and owns its state (issue 12), with real git repos,
real `bodywork` subprocesses and real bootstrappers: committed symlinks that leave the
repository and project dirs outside it are refused at validate time, naming the link; two
repositories with one PROJECT_NAME keep apart artifacts; a second run of a project waits or
is refused (exit 6) naming the first; a SIGKILLed holder leaves no stale lock."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from bodywork.core.errors import ConfigError, RunInProgress, UsageError
from bodywork.engine import locallock
from tests.conftest import commit_all
from tests.local.conftest import RunEngine
from tests.local.projects import batch_stage, project_ini, run_bodywork, wait_for

pytestmark = pytest.mark.usefixtures("offline_env")


def bodywork(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_bodywork(*args, env=env, timeout=180)


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith(("error:", "  "))]


# ------------------------------------------------------------------- 1. symlinks, project dirs
def outside_stage(tmp_path: Path, marker: Path) -> Path:
    """A stage folder outside every repository, whose code would leave `marker` if it ran."""
    folder = tmp_path / "outside" / "stage"
    folder.mkdir(parents=True)
    (folder / "config.ini").write_text(
        "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\n"
    )
    (folder / "main.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (folder / "requirements.txt").write_text("")
    return folder


def test_symlinks_leaving_the_repo_are_refused_naming_each_link(make_repo, tmp_path):
    """A stage folder linked to an absolute path outside, a module and a requirements file
    linked with `../..` beyond the root, a config.ini linked into .git: validate (as on disk
    and at the pinned commit) and run exit 2 naming every link and its target, and no code
    from outside runs."""
    marker = tmp_path / "outside-ran"
    outside = outside_stage(tmp_path, marker)
    repo = make_repo(
        {
            "bodywork.ini": project_ini("linked >> inner"),
            **batch_stage("inner", "print('inner')\n"),
        }
    )
    os.symlink(outside, repo / "linked")
    (repo / "inner" / "main.py").unlink()
    os.symlink("../../outside/stage/main.py", repo / "inner" / "main.py")
    (repo / "inner" / "requirements.txt").unlink()
    os.symlink("../../outside/stage/requirements.txt", repo / "inner" / "requirements.txt")
    os.symlink("../.git/config", repo / "inner" / "extra.ini")
    commit_all(repo, "links")
    expected = [
        "  inner/extra.ini: is a symlink to '../.git/config', into Git's own folder",
        "  inner/main.py: is a symlink to '../../outside/stage/main.py', which leaves the repo",
        "  inner/requirements.txt: is a symlink to '../../outside/stage/requirements.txt', which",
        f"  linked: is a symlink to '{outside}', which leaves the repository",
    ]
    for args in (["validate", str(repo)], ["validate", repo.as_uri()], ["run", str(repo)]):
        done = bodywork(*args)
        assert done.returncode == ConfigError.exit_code, done.stderr
        lines = error_lines(done)
        assert lines[0] == "error: the project has 4 problems:", lines
        assert [line[: len(want)] for line, want in zip(lines[1:], expected, strict=True)] == (
            expected
        ), lines
        assert "commit the files themselves in place of the link" in lines[1]
    assert not marker.exists(), "code from outside the repository ran"


def test_symlinks_inside_the_repo_keep_working(make_repo, engine: RunEngine):
    """A stage folder linked to another folder of the repo and a module linked to a shared
    file inside it validate and run."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("alias"),
            "shared/helper.py": "print('shared helper ran')\n",
            **batch_stage("real", "print('real stage ran')\n"),
        }
    )
    os.symlink("real", repo / "alias")
    (repo / "real" / "main.py").unlink()
    os.symlink("../shared/helper.py", repo / "real" / "main.py")
    commit_all(repo, "inner links")
    assert bodywork("validate", str(repo)).returncode == 0
    run = engine(repo)
    assert run.status("alias") == "succeeded", run.result("alias").reason
    assert "shared helper ran" in run.sink.of("alias")


def test_a_project_dir_outside_the_repo_is_refused(make_repo, tmp_path):
    """`--project-dir ..`, `../other` and a folder committed as a link to outside are refused
    with one error line naming the way out, for a path and for a URL (exit 2)."""
    marker = tmp_path / "outside-ran"
    outside = outside_stage(tmp_path, marker).parent
    (outside / "bodywork.ini").write_text(project_ini("stage"))
    repo = make_repo({"bodywork.ini": project_ini("train"), **batch_stage("train", "print(1)\n")})
    os.symlink(outside, repo / "elsewhere")
    commit_all(repo, "a linked project folder")
    cases = [
        (["validate", str(repo), "--project-dir", ".."], "leaves the repository (it leads to"),
        (["run", str(repo), "--project-dir", "../outside"], "leaves the repository (it leads to"),
        (["run", str(repo), "--project-dir", "elsewhere"], "leads through a symlink to"),
        (["validate", repo.as_uri(), "--project-dir", "../x"], "climbs above the repository"),
        (["run", repo.as_uri(), "--project-dir", "a/../../x"], "climbs above the repository"),
    ]
    for args, reason in cases:
        done = bodywork(*args)
        assert done.returncode == UsageError.exit_code, (args, done.stderr)
        (line,) = [ln for ln in error_lines(done) if ln.startswith("error:")]
        assert line.startswith(f"error: --project-dir '{args[-1]}' leaves the repository"), line
        assert reason in line, line
    # At the pinned commit, the linked folder is refused as a link leaving the repository.
    done = bodywork("validate", repo.as_uri(), "--project-dir", "elsewhere")
    assert done.returncode == ConfigError.exit_code, done.stderr
    assert f"--project-dir elsewhere: is a symlink to '{outside}'" in done.stderr
    assert not marker.exists()


# ---------------------------------------------------------------- 3. identity of the artifacts
MODEL_STAGE = """
    import os, pathlib
    model = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"]) / "model.txt"
    print("found", model.read_text() if model.exists() else "no model")
    model.write_text({text!r})
"""


def model_repo(make_repo, text: str, name: str) -> Path:
    code = MODEL_STAGE.format(text=text)
    return make_repo({"bodywork.ini": project_ini("train"), **batch_stage("train", code)}, name)


def test_two_repos_with_one_project_name_keep_apart_artifacts(make_repo, engine, offline_env):
    """Two repositories both called 'demo': the second's stage finds no model of the first,
    each has its own folder, named demo-<hash> and recording its repository."""
    first = engine(model_repo(make_repo, "model of A", "a"))
    second = engine(model_repo(make_repo, "model of B", "b"))
    assert "found no model" in first.sink.of("train")
    assert "found no model" in second.sink.of("train"), second.lines
    assert first.artifacts != second.artifacts
    folders = sorted((offline_env / "projects").iterdir())
    assert [f.name.split("-")[0] for f in folders] == ["demo", "demo"]
    recorded = {json.loads((f / "project.json").read_text())["location"] for f in folders}
    assert {Path(url.removeprefix("file://")).name for url in recorded} == {"a", "b"}


def test_the_same_repo_finds_its_own_artifacts_again(make_repo, engine):
    """A second run of the same repository reads what its first run left."""
    repo = model_repo(make_repo, "model v1", "same")
    engine(repo)
    run = engine(repo)
    assert "found model v1" in run.sink.of("train"), run.lines


def test_a_folder_recorded_as_another_projects_is_refused(make_repo, engine, offline_env):
    """A project folder whose project.json names another repository (copied by hand) is one
    error line naming both and the fix (exit 2); nothing is read from it."""
    first = engine(model_repo(make_repo, "model of A", "a"))
    other = model_repo(make_repo, "model of B", "b")
    # Where B's folder will be: its key, from a dry identity of B's plan.
    from bodywork.core import config, plan
    from bodywork.engine import gitsource, localproject

    source = gitsource.resolve(str(other), None, warn=lambda m: None)
    b_plan = plan.build_plan(config.load_project(other), source, plan.new_run_id())
    b_folder = localproject.project_folder(offline_env, localproject.identity_of(b_plan))
    b_folder.parent.mkdir(parents=True, exist_ok=True)
    os.rename(first.artifacts.parent, b_folder)  # A's folder, copied over B's place
    done = bodywork("run", str(other))
    assert done.returncode == UsageError.exit_code, done.stderr
    (line,) = [ln for ln in error_lines(done) if ln.startswith("error:")]
    assert f"{b_folder} holds the artifacts of project 'demo' of " in line, line
    assert "/a, not of this run's project 'demo' of " in line and line.count("/b") >= 1, line
    assert "move that folder away" in line and "BODYWORK_HOME" in line
    assert (b_folder / "artifacts" / "model.txt").read_text() == "model of A"


def test_the_previous_layouts_artifacts_are_taken_over_with_a_warning(make_repo, offline_env):
    """`BODYWORK_HOME/projects/demo/artifacts` from before identities: the first run of a
    'demo' finds its model there, the folder moves to demo-<hash>, and a warning says so."""
    legacy = offline_env / "projects" / "demo" / "artifacts"
    legacy.mkdir(parents=True)
    (legacy / "model.txt").write_text("model from last year")
    repo = model_repo(make_repo, "model v2", "mine")
    done = bodywork("run", str(repo), "--log-format", "console")
    assert done.returncode == 0, done.stderr
    assert "found model from last year" in done.stdout + done.stderr
    assert not (offline_env / "projects" / "demo").exists()
    (moved,) = (offline_env / "projects").iterdir()
    assert moved.name.startswith("demo-") and (moved / "project.json").is_file()
    assert f"moved from {legacy.parent} to {moved}" in done.stderr
    assert "move the folder back" in done.stderr


# ---------------------------------------------------------------------------- 2. the run lock
def waiting_stage(release: Path, started: Path) -> str:
    """Batch code that says it started, then waits (at most 120 s) for `release`."""
    return textwrap.dedent(
        f"""
        import pathlib, time
        pathlib.Path({str(started)!r}).write_text("started")
        print("holding", flush=True)
        deadline = time.monotonic() + 120
        while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        print("released", flush=True)
        """
    )


def start(*args: str, stderr: Path) -> subprocess.Popen[str]:
    with stderr.open("w") as err:
        return subprocess.Popen(
            ["bodywork", *args, "--log-format", "console"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=os.environ,
        )


@contextlib.contextmanager
def finished(*processes: subprocess.Popen[str]):
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()


def test_a_second_run_of_a_project_is_refused_naming_the_first_or_waits_its_turn(
    make_repo, tmp_path
):
    """While a run holds the project, a second `bodywork run` exits 6 naming the holder's
    pid, host, run id, start time and command; with --wait-for-lock it says whom it waits
    for and runs once the first has ended."""
    release, started = tmp_path / "release", tmp_path / "started"
    repo = make_repo(
        {
            "bodywork.ini": project_ini("hold"),
            **batch_stage("hold", waiting_stage(release, started)),
        }
    )
    first = start("run", str(repo), stderr=tmp_path / "first.txt")
    queued: subprocess.Popen[str] | None = None
    with finished(first):
        assert wait_for(started.exists, timeout=60), (tmp_path / "first.txt").read_text()
        done = bodywork("run", str(repo))
        assert done.returncode == RunInProgress.exit_code, done.stderr
        (line,) = [ln for ln in error_lines(done) if ln.startswith("error:")]
        assert line.startswith("error: another `bodywork run` holds project 'demo' of "), line
        assert f"(pid {first.pid} on {os.uname().nodename}, started 20" in line, line
        assert f"command: bodywork run {repo} --log-format console)" in line, line
        assert f"kill {first.pid}" in line and "--wait-for-lock" in line
        assert "stage" not in done.stdout  # nothing of the second run started

        started.unlink()
        queued = start("run", str(repo), "--wait-for-lock", stderr=tmp_path / "second.txt")
        with finished(queued):
            said = tmp_path / "second.txt"
            assert wait_for(lambda: "waiting for run" in said.read_text(), timeout=60)
            assert not started.exists()  # the second waits: its stage has not started
            release.write_text("go")
            assert first.wait(timeout=60) == 0
            assert queued.wait(timeout=90) == 0, said.read_text()
            assert started.exists()
            assert f"(pid {first.pid} on " in said.read_text()


def test_a_sigkilled_holder_leaves_no_stale_lock(make_repo, tmp_path, offline_env):
    """`bodywork run` SIGKILLed while its stage runs: once its stage has gone too (it held
    the lock's descriptor), the lock is free and the next run of the project succeeds."""
    release, started = tmp_path / "release", tmp_path / "started"
    repo = make_repo(
        {
            "bodywork.ini": project_ini("hold"),
            **batch_stage("hold", waiting_stage(release, started)),
        }
    )
    first = start("run", str(repo), stderr=tmp_path / "first.txt")
    with finished(first):
        assert wait_for(started.exists, timeout=60)
        (lock,) = (offline_env / locallock.LOCKS).glob("*.lock")
        assert locallock.is_held(lock)
        first.kill()
        first.wait()
        assert wait_for(lambda: not locallock.is_held(lock), timeout=20)
    release.write_text("go")
    started.unlink()
    done = bodywork("run", str(repo))
    assert done.returncode == 0, done.stderr
    assert started.exists()


def test_different_projects_run_at_once(make_repo, tmp_path):
    """The lock is per project: another project runs while the first holds its own."""
    release, started = tmp_path / "release", tmp_path / "started"
    holding = make_repo(
        {
            "bodywork.ini": project_ini("hold"),
            **batch_stage("hold", waiting_stage(release, started)),
        }
    )
    other = make_repo({"bodywork.ini": project_ini("quick"), **batch_stage("quick", "print(1)\n")})
    first = start("run", str(holding), stderr=tmp_path / "first.txt")
    with finished(first):
        assert wait_for(started.exists, timeout=60)
        assert bodywork("run", str(other)).returncode == 0
        release.write_text("go")
        assert first.wait(timeout=60) == 0
