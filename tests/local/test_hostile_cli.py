"""Hostile inputs to the real `bodywork` console script (subprocesses, real git repos, real uv
venvs from the offline wheelhouse): each ends in a run that works or in one `error:` line
with an exit code of the documented set, never a traceback.

A 300-character PROJECT_NAME, a relative, file or unwritable BODYWORK_HOME, a bare repo, a
requirements.txt in cp1252 or UTF-16, a UTF-16 bodywork.ini, a path too long for the file
system, standard output on a full disk, a 200 KiB failure line with ON_FAILURE, cron
schedules and namespaces the API server would refuse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GIT_IDENTITY, commit_all, git
from tests.local.projects import WHEEL_REQUIREMENT, batch_stage, project_ini

pytestmark = pytest.mark.usefixtures("offline_env")

DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 130}
NOBODY = 65534


def bodywork(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: int | None = None,
    as_user: int | None = None,
) -> subprocess.CompletedProcess[str]:
    command = ["bodywork", *args]
    if as_user is not None:
        command = [
            "setpriv",
            f"--reuid={as_user}",
            f"--regid={as_user}",
            "--clear-groups",
            shutil.which("bodywork") or "bodywork",
            *args,
        ]
    return subprocess.run(
        command,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """A documented non-zero exit, no traceback, and exactly one `error:` line on stderr."""
    output = (done.stdout or "") + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode in DOCUMENTED_EXIT_CODES - {0}, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def succeeded(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


ONE_STAGE = {"bodywork.ini": project_ini("train"), **batch_stage("train", "print('trained')\n")}


# ---------------------------------------------------------------------------- names and homes
def test_a_300_character_project_name_runs(make_repo, offline_env: Path):
    """The project's name is a directory of the local artifacts (255 bytes at most) and every
    object's label (63): it is cut with a hash, and the run works."""
    name = "a" * 300
    repo = make_repo({**ONE_STAGE, "bodywork.ini": project_ini("train", name=name)})
    done = bodywork("run", str(repo), "--log-format", "console")
    succeeded(done)
    assert "trained" in done.stdout + done.stderr
    projects = offline_env / "projects"
    (folder,) = projects.iterdir()
    assert len(folder.name) == 63 and folder.name.startswith("a" * 40)
    assert "is 300 characters long as a Kubernetes name" in done.stderr


def test_a_relative_bodywork_home_is_taken_from_the_current_directory(make_repo, tmp_path):
    """Each stage runs in its own folder, where a relative BODYWORK_HOME would name another
    place: it is made absolute once, against the directory `bodywork` was started in."""
    repo = make_repo(ONE_STAGE)
    workdir = tmp_path / "here"
    workdir.mkdir()
    done = bodywork("run", str(repo), cwd=workdir, env={"BODYWORK_HOME": "relative/home"})
    succeeded(done)
    home = workdir / "relative" / "home"
    assert (home / "venvs").is_dir() and (home / "projects").is_dir()


def test_a_bodywork_home_that_is_a_file_is_one_error_line(make_repo, tmp_path):
    repo = make_repo(ONE_STAGE)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    done = bodywork("run", str(repo), env={"BODYWORK_HOME": str(a_file)})
    line = one_error_line(done)
    assert done.returncode == 2
    assert line == (
        f"error: BODYWORK_HOME={a_file}: {a_file} is a file, not a directory: point it elsewhere"
    )
    done = bodywork("run", str(repo), env={"BODYWORK_HOME": str(a_file / "below")})
    assert "a part of" in one_error_line(done) and str(a_file) in done.stderr


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is private to this one)."""
    folder = Path(tempfile.mkdtemp(prefix="bodywork-hostile-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_an_unwritable_bodywork_home_is_one_error_line_naming_it(world_readable_dir: Path):
    """As root every directory is writable, so root runs this as `nobody` (setpriv)."""
    user = NOBODY if os.geteuid() == 0 else None
    if user is not None and shutil.which("setpriv") is None:
        pytest.skip("running as root, and setpriv (util-linux) is missing to drop to nobody")
    repo = world_readable_dir / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for relative, text in ONE_STAGE.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(text)
    commit_all(repo, "initial")
    locked = world_readable_dir / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    if user is not None:  # git refuses a repository another user owns
        subprocess.run(["chown", "-R", str(user), str(repo)], check=True)
    env = {"HOME": str(world_readable_dir), **GIT_IDENTITY}
    done = bodywork("run", str(repo), env={**env, "BODYWORK_HOME": str(locked)}, as_user=user)
    assert one_error_line(done) == (
        f"error: BODYWORK_HOME={locked}: {locked} is not writable by this user: point it at a "
        "directory you own"
    )
    assert done.returncode == 2
    below = locked / "below"
    done = bodywork("run", str(repo), env={**env, "BODYWORK_HOME": str(below)}, as_user=user)
    assert one_error_line(done) == (
        f"error: BODYWORK_HOME={below}: cannot create {below}: Permission denied"
    )


# ---------------------------------------------------------------------------- sources
@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_bare_repository_is_named_as_such(make_repo, tmp_path, command):
    repo = make_repo(ONE_STAGE)
    bare = tmp_path / "project.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    done = bodywork(command, str(bare))
    line = one_error_line(done)
    assert done.returncode == 2
    assert line == (
        f"error: {bare} is a bare repository (no checked-out files): clone it "
        f"(git clone {bare}) or pass its URL ({bare.as_uri()})"
    )
    succeeded(bodywork("validate", bare.as_uri()))  # the URL it suggests works


def test_a_utf16_bodywork_ini_validates(make_repo):
    """What Windows Notepad saves as "Unicode" is UTF-16 with its BOM."""
    repo = make_repo(ONE_STAGE)
    (repo / "bodywork.ini").write_bytes(project_ini("train", name="sixteen").encode("utf-16"))
    done = bodywork("validate", str(repo))
    succeeded(done)
    assert "project 'sixteen'" in done.stdout


# ---------------------------------------------------------------------------- requirements
def test_a_cp1252_requirements_file_fails_the_stage_naming_the_file_and_the_fix(make_repo):
    repo = make_repo(ONE_STAGE)
    (repo / "train" / "requirements.txt").write_bytes(
        f"# café\n{WHEEL_REQUIREMENT}\n".encode("cp1252")
    )
    commit_all(repo)
    done = bodywork("run", str(repo), "--log-format", "console")
    line = one_error_line(done)
    assert done.returncode == 5
    assert "requirements.txt is not UTF-8 text (byte 0xe9 on line 1" in line
    assert line.endswith("save it as UTF-8")


def test_a_utf16_requirements_file_installs(make_repo):
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train"),
            **batch_stage("train", "import bwtest_greeting\nprint(bwtest_greeting.greet())\n"),
        }
    )
    (repo / "train" / "requirements.txt").write_bytes(f"{WHEEL_REQUIREMENT}\n".encode("utf-16"))
    commit_all(repo)
    done = bodywork("run", str(repo), "--log-format", "console")
    succeeded(done)
    assert "hello" in done.stdout + done.stderr


# ---------------------------------------------------------------------------- OS errors
@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_path_too_long_for_the_file_system_is_one_error_line(tmp_path, command):
    long_path = tmp_path / ("x" * 300)
    done = bodywork(command, str(long_path))
    line = one_error_line(done)
    assert done.returncode == 1
    assert line.startswith(f"error: {long_path}")
    assert line.endswith(": File name too long (ENAMETOOLONG)")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_standard_output_on_a_full_disk_is_one_error_line(make_repo):
    """/dev/full answers every write with ENOSPC, as a full disk behind `>` does."""
    repo = make_repo(ONE_STAGE)
    with open("/dev/full", "w") as full:
        done = bodywork("validate", str(repo), stdout=full.fileno())
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert done.stderr.strip() == (
        "error: cannot write to standard output: No space left on device (ENOSPC)"
    )


def test_a_200_kib_failure_line_still_starts_the_on_failure_stage(make_repo):
    """Linux refuses one env value over 128 KiB ("argument list too long"): the reason the
    on-failure stage gets is capped, so it runs and reports."""
    repo = make_repo(
        {
            "bodywork.ini": (
                '[default]\nPROJECT_NAME = "demo"\n\n[workflow]\nDAG = train\nON_FAILURE = tidy\n'
            ),
            **batch_stage("train", "raise SystemExit('x' * 200_000)\n"),
            **batch_stage(
                "tidy",
                "import os\nreason = os.environ['BODYWORK_FAILURE_REASON']\n"
                "print('tidy saw', len(reason.encode()), 'bytes:', reason[-40:])\n",
            ),
        }
    )
    done = bodywork("run", str(repo), "--log-format", "console")
    one_error_line(done)
    assert done.returncode == 5
    output = done.stdout + done.stderr
    assert "tidy saw 4096 bytes:" in output or "tidy saw 4095 bytes:" in output
    assert "cut to 4,096]" in output
    rows = [line.split()[:3] for line in done.stdout.splitlines()]
    assert ["tidy", "on-failure", "succeeded"] in rows


# ---------------------------------------------------------------------------- the cluster's rules
def test_cronjob_create_refuses_an_invalid_schedule_before_asking_the_cluster():
    """Checked first: with no cluster configured this is still exit 2, not 4."""
    done = bodywork(
        "cronjob", "create", "https://git.example.invalid/p.git", "--schedule", "61 * * * *"
    )
    assert one_error_line(done) == (
        "error: --schedule '61 * * * *' is not a cron schedule: in the minute field, '61' is "
        "outside 0-59 (it takes 0-59, *, lists a,b, ranges a-b and steps /n)"
    )
    assert done.returncode == 2


def test_render_schedule_refuses_what_the_cronjob_api_would(make_repo):
    repo = make_repo(ONE_STAGE)
    done = bodywork("render", str(repo), "--schedule", "0 3 * * 7")
    line = one_error_line(done)
    assert done.returncode == 2
    assert "'7' is outside 0-6 (Sunday is 0 or SUN)" in line
    done = bodywork("render", str(repo), "--schedule", "0 3 * * SUN")
    succeeded(done)
    assert "schedule: 0 3 * * SUN" in done.stdout


@pytest.mark.parametrize(
    ("namespace", "rule"),
    [
        ("Prod", "it has upper-case letters: namespaces are lower-case ('prod')"),
        ("a" * 64, "it is 64 characters long: at most 63"),
        ("ml_prod", "it has '_': only lower-case letters, digits and '-'"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["cronjob", "list"], ["secret", "list"]])
def test_an_invalid_namespace_is_a_usage_error_naming_the_rule(namespace, rule, command):
    """Before any cluster is asked (none is configured here: that would be exit 4)."""
    done = bodywork(*command, "-n", namespace)
    line = one_error_line(done)
    assert done.returncode == 2
    assert line.startswith(f"error: -n/--namespace '{namespace}' is not a namespace name: {rule}")


def test_validate_refuses_what_the_cluster_would(make_repo):
    """Deadlines out of range, a limit under its request and a secret shadowing PATH: one
    ConfigError, each named with its file, key and line."""
    repo = make_repo(
        {
            **ONE_STAGE,
            "train/config.ini": "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\n"
            "CPU_REQUEST = 2\nCPU_LIMIT = 1\n[batch]\nMAX_COMPLETION_TIME_SECONDS = 1e30\n"
            "[secrets]\nPATH = creds\n",
        }
    )
    done = bodywork("validate", str(repo))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "train/config.ini: MAX_COMPLETION_TIME_SECONDS: must be <= 2592000 (30 days), " in (
        done.stderr
    )
    assert "train/config.ini: PATH: would shadow PATH, " in done.stderr
    (repo / "train" / "config.ini").write_text(
        "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\nCPU_REQUEST = 2\n"
        "CPU_LIMIT = 1\n"
    )
    done = bodywork("validate", str(repo))
    assert done.returncode == 2
    assert "CPU_LIMIT: 1 is below CPU_REQUEST 2: Kubernetes refuses a limit under" in done.stderr
