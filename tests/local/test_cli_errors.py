"""The cluster-facing `bodywork` commands as real subprocesses with no cluster: every mistake
ends in one clear `error:` line (argparse's in `usage:`), never a traceback; `render` works
offline and prints nothing but YAML on stdout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from bodywork.core import names, objects
from tests.local.projects import batch_stage, project_ini, service_stage

RUN_ID = "20261125-120000-abcd"
NO_CLUSTER = "no Kubernetes cluster configured"


@pytest.fixture
def no_cluster_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine with no cluster: KUBECONFIG names a missing file."""
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
    env["BODYWORK_HOME"] = str(tmp_path / "bodywork-home")
    return env


def bodywork(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bodywork", *args], capture_output=True, text=True, timeout=60, env=env)


def assert_one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """Non-zero exit, nothing on stdout, exactly one stderr line starting 'error:'."""
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["deploy", "bootstrap"])
def test_commands_run_by_the_cluster_refuse_a_local_path(no_cluster_env, command):
    """deploy/bootstrap need a URL the cluster can reach: exit 2 saying so."""
    done = bodywork(no_cluster_env, command, "/local/path")
    line = assert_one_error_line(done)
    assert done.returncode == 2
    assert f"`bodywork {command}` needs a git URL" in line
    assert "'/local/path'" in line


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "20261125"],
        ["logs", "RUN"],
        ["cronjob", "list"],
        ["cronjob", "delete", "nightly"],
        ["cronjob", "history", "nightly"],
        ["secret", "list"],
        ["secret", "delete", "creds"],
        ["secret", "create", "creds", "KEY=value"],
        ["cleanup"],
        ["deploy", "https://git.example.invalid/org/project.git"],
        ["cronjob", "create", "https://git.example.invalid/p.git", "--schedule", "0 3 * * *"],
    ],
    ids=" ".join,
)
def test_without_a_cluster_each_command_exits_4_in_one_line(no_cluster_env, args):
    """No kubeconfig: exit 4 and one line naming the missing cluster, no traceback."""
    done = bodywork(no_cluster_env, *args)
    line = assert_one_error_line(done)
    assert done.returncode == 4
    assert NO_CLUSTER in line
    assert "KUBECONFIG" in line


def test_secret_create_without_values_is_a_usage_error_before_any_cluster_call(no_cluster_env):
    """`secret create NAME` alone exits 2 saying values are needed (not a cluster error)."""
    done = bodywork(no_cluster_env, "secret", "create", "creds")
    line = assert_one_error_line(done)
    assert done.returncode == 2
    assert "secret create needs KEY=VALUE pairs or --from-env-file" in line


def test_secret_create_with_a_malformed_pair_never_echoes_the_value(no_cluster_env):
    """A value without KEY= is refused by position, and the value is not printed."""
    done = bodywork(no_cluster_env, "secret", "create", "creds", "OK=1", "hunter2-no-key")
    line = assert_one_error_line(done)
    assert done.returncode == 2
    assert "secret value #2 is not KEY=VALUE (value not shown)" in line
    assert "hunter2" not in done.stderr


def test_secret_create_from_a_missing_env_file_is_one_error_line(no_cluster_env, tmp_path):
    """--from-env-file naming no file exits 2 saying it cannot be read (no traceback)."""
    missing = tmp_path / "missing.env"
    done = bodywork(no_cluster_env, "secret", "create", "creds", "--from-env-file", str(missing))
    line = assert_one_error_line(done)
    assert done.returncode == 2
    assert line == f"error: cannot read env file {missing}: No such file or directory"


@pytest.mark.parametrize(
    "args",
    [
        ["deploy", "--bogus", "https://h/r.git"],
        ["secret", "delete"],
        ["cronjob", "create", "https://h/r.git"],
        ["logs"],
    ],
    ids=" ".join,
)
def test_argparse_usage_errors_exit_2_with_usage_and_no_traceback(no_cluster_env, args):
    """Unknown flags and missing arguments: argparse's usage line and exit 2."""
    done = bodywork(no_cluster_env, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: bodywork")
    assert "error: " in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_flag_is_named_in_the_usage_error(no_cluster_env):
    """`deploy --bogus` says which argument it does not know."""
    done = bodywork(no_cluster_env, "deploy", "--bogus", "https://h/r.git")
    assert "unrecognized arguments: --bogus" in done.stderr


def test_validate_on_a_file_not_a_directory_is_one_error_line(no_cluster_env, tmp_path):
    """`validate FILE` says it is not a directory."""
    file = tmp_path / "bodywork.ini"
    file.write_text("[default]\n")
    line = assert_one_error_line(bodywork(no_cluster_env, "validate", str(file)))
    assert line == f"error: {file} is not a directory"


def test_render_of_a_broken_project_lists_its_problems_without_traceback(no_cluster_env, make_repo):
    """A bad project exits 2: 'error:' first, then each problem; nothing on stdout."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train >> missing"),
            **batch_stage("train", "print('x')\n"),
        }
    )
    done = bodywork(no_cluster_env, "render", str(repo))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "error: the project has 1 problem:"
    assert "stage 'missing' has no directory 'missing/'" in lines[1]


def test_render_of_a_path_outside_git_is_one_error_line(no_cluster_env, tmp_path):
    """`render` needs committed code: exit 3 with one line."""
    plain = tmp_path / "plain"
    plain.mkdir()
    done = bodywork(no_cluster_env, "render", str(plain))
    line = assert_one_error_line(done)
    assert done.returncode == 3
    assert "is not inside a git repository" in line


def test_render_of_a_good_project_prints_only_yaml_with_controller_and_stages(
    no_cluster_env, make_repo
):
    """`render PATH --run-id R` exits 0; stdout parses as the controller Job + stage objects."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train >> serve"),
            **batch_stage("train", "print('x')\n"),
            **service_stage("serve", 8000, "print('y')\n"),
        }
    )
    (repo / "train" / "main.py").write_text("print('uncommitted')\n")  # logs a warning
    done = bodywork(no_cluster_env, "render", str(repo), "-n", "ml", "--run-id", RUN_ID)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "uncommitted" in done.stderr  # the warning goes to stderr ...
    docs = list(yaml.safe_load_all(done.stdout))  # ... as log lines on stdout break this
    assert [(d["kind"], d["metadata"].get("name")) for d in docs] == [
        ("Job", names.object_name("bodywork-workflow", RUN_ID)),
        ("PersistentVolumeClaim", "demo--artifacts"),
        ("Job", names.object_name("demo", "train", RUN_ID)),
        ("Deployment", "demo--serve"),
        ("Service", "demo--serve"),
    ]
    assert docs[0]["metadata"]["name"] == f"bodywork-workflow--{RUN_ID}"
    assert all(d["metadata"]["namespace"] == "ml" for d in docs)
    assert docs[2]["metadata"]["labels"][objects.RUN_LABEL] == RUN_ID


def test_a_deploy_time_s3_backend_reaches_the_cronjob_and_the_stage_objects(
    no_cluster_env, make_repo
):
    """`--artifacts-url` on the command line is what the scheduled controller is told, and
    what the stage objects are rendered with: no artifacts claim."""
    repo = make_repo({"bodywork.ini": project_ini("train"), **batch_stage("train", "pass\n")})
    done = bodywork(
        no_cluster_env, "render", str(repo), "--schedule", "0 3 * * *",
        "--artifacts-url", "s3://team-bucket/models", "--artifacts-s3-secret", "s3-creds",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert "PersistentVolumeClaim" not in [d["kind"] for d in docs]
    cron_args = docs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert cron_args[cron_args.index("--artifacts-url") + 1] == "s3://team-bucket/models"
    assert cron_args[cron_args.index("--artifacts-s3-secret") + 1] == "s3-creds"
    bad = bodywork(no_cluster_env, "render", str(repo), "--artifacts-url", "https://x")
    assert bad.returncode == 2 and "--artifacts-url: must be s3://bucket" in bad.stderr


def test_render_with_a_schedule_prints_a_cronjob_and_no_controller_job(no_cluster_env, make_repo):
    """`render --schedule` swaps the controller Job for a batch/v1 CronJob."""
    repo = make_repo({"bodywork.ini": project_ini("train"), **batch_stage("train", "pass\n")})
    done = bodywork(no_cluster_env, "render", str(repo), "--schedule", "0 3 * * *")
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in docs] == ["CronJob", "PersistentVolumeClaim", "Job"]
    assert docs[0]["apiVersion"] == "batch/v1"
    assert docs[0]["spec"]["schedule"] == "0 3 * * *"
