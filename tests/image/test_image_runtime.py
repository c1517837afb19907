"""Bodywork's image as a stage pod and a controller pod run it: as UID 10001, on a read-only
root filesystem with only /tmp (and the pod's volumes) writable, no capabilities.

The stage's container is the one the real planner renders into its Job (args, env, mounts,
securityContext); it fetches the pinned commit from a real `git daemon` on this host and
installs its requirement from the offline wheelhouse with the image's own uv."""

from __future__ import annotations

from pathlib import Path

from bodywork import __version__
from bodywork.core import config, objects, plan
from bodywork.core.objects import conventions as conv
from bodywork_bootstrap import EXIT_FETCH_FAILED
from tests.conftest import git, serve_bare
from tests.image.conftest import Manifest, Pod, offline, run_to_exit
from tests.local.projects import WHEEL_REQUIREMENT, batch_stage, project_ini

RUN_ID = "20261202-000000-test"
STAGE_CODE = """\
    import os, pathlib, sys
    import bwtest_greeting
    print("greeting", bwtest_greeting.greet())
    print("uid", os.getuid())
    print("commit", os.environ["BODYWORK_GIT_COMMIT"])
    print("python", sys.executable)
    pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.txt").write_text("trained")
    sys.exit(int(os.environ.get("STAGE_EXIT", "0")))
"""


def stage_project(make_repo, code: str = STAGE_CODE) -> Path:
    return make_repo(
        {
            "bodywork.ini": project_ini("s", "image-test"),
            **batch_stage("s", code, WHEEL_REQUIREMENT),
        }
    )


def rendered_pod(
    repo: Path, url: str, commit: str, image: str, stage_image: str | None = None
) -> Manifest:
    """The pod template of stage `s`'s Job, as `bodywork workflow` would create it."""
    project = config.load_project(repo, "image-test")
    the_plan = plan.build_plan(project, plan.Source(url, commit, "main"), RUN_ID)
    (stage,) = the_plan.steps[0].stages
    settings = objects.RunSettings(namespace="ml", image=image)
    job = objects.build_job(stage, stage_image or image, settings)
    spec: Manifest = job["spec"]["template"]["spec"]
    return spec


def test_the_image_runs_as_uid_10001_on_a_read_only_root(image: str, make_repo, tmp_path) -> None:
    """No user given: the image's own is 10001 (what pod specs ask for), and `bodywork`
    works with nothing but /tmp writable: --version, and validate of a read-only project."""
    whoami = run_to_exit(image, ["-u"], entrypoint=["id"], tmpfs=["/tmp"])
    assert (whoami.code, whoami.stdout.strip()) == (0, str(objects.STAGE_UID)), whoami

    version = run_to_exit(image, ["--version"], tmpfs=["/tmp"])
    assert version.code == 0, version
    assert version.stdout.strip() == f"bodywork {__version__}"

    repo = stage_project(make_repo)
    checked = run_to_exit(
        image, ["validate", "/project"], volumes=[(str(repo), "/project", "ro")], tmpfs=["/tmp"]
    )
    assert checked.code == 0, checked
    assert "bodywork.ini OK: project 'image-test', 1 stage(s) in 1 step(s)" in checked.stdout
    assert "Traceback" not in checked.stderr

    written = run_to_exit(image, ["-c", "touch /home/bodywork/x"], entrypoint=["sh"])
    assert written.code != 0 and "Read-only file system" in written.stderr, written


def test_validate_clones_a_git_url_with_only_tmp_writable(
    image: str, make_repo, git_daemon
) -> None:
    base, daemon_url = git_daemon
    serve_bare(stage_project(make_repo), base)
    checked = run_to_exit(image, ["validate", f"{daemon_url}/project.git"], tmpfs=["/tmp"])
    assert checked.code == 0, checked
    assert "bodywork.ini OK: project 'image-test'" in checked.stdout


def test_a_rendered_stage_container_fetches_installs_and_runs_the_pinned_commit(
    image: str, make_repo, git_daemon, wheelhouse, tmp_path
) -> None:
    base, daemon_url = git_daemon
    repo = stage_project(make_repo)
    commit = git(repo, "rev-parse", "HEAD")
    serve_bare(repo, base)
    url = f"{daemon_url}/project.git"
    pod = rendered_pod(repo, url, commit, image)
    (container,) = pod["containers"]
    assert "initContainers" not in pod, "Bodywork's own image needs no hand-off"
    assert container["args"][:1] == ["stage"] and container["image"] == image
    env, mounts = offline(wheelhouse)

    running = Pod(pod, tmp_path)
    done = running.run(container, env, mounts)
    assert done.code == 0, done
    lines = done.stdout.splitlines()
    assert "greeting hello" in lines
    assert f"uid {objects.STAGE_UID}" in lines
    assert f"commit {commit}" in lines
    python = next(ln.split(" ", 1)[1] for ln in lines if ln.startswith("python "))
    assert python.startswith(f"{objects.DATA_MOUNT}/"), "the venv lives on the project's PVC"
    assert f"[bodywork] fetching {url} at {commit[:12]}" in done.stderr
    data = running.volumes[conv.DATA_VOLUME]
    assert (data / "artifacts" / "model.txt").read_text() == "trained"
    assert running.termination_message(container) == ""


def test_the_stage_exit_code_and_a_bootstrap_failure_reach_kubernetes(
    image: str, make_repo, git_daemon, wheelhouse, tmp_path
) -> None:
    """tini passes the stage's own exit code on (the Job counts it); a failure before the
    code runs is also the termination message, which names it without reading logs."""
    base, daemon_url = git_daemon
    repo = stage_project(make_repo)
    serve_bare(repo, base)
    url = f"{daemon_url}/project.git"
    env, mounts = offline(wheelhouse)

    pod = rendered_pod(repo, url, git(repo, "rev-parse", "HEAD"), image)
    exit3 = {**env, "STAGE_EXIT": "3"}
    exited = Pod(pod, tmp_path / "exit3").run(pod["containers"][0], exit3, mounts)
    assert exited.code == 3, exited
    assert "greeting hello" in exited.stdout

    missing = "0123456789abcdef" * 2 + "01234567"
    pod = rendered_pod(repo, url, missing, image)
    running = Pod(pod, tmp_path / "nofetch")
    failed = running.run(pod["containers"][0], env, mounts)
    assert failed.code == EXIT_FETCH_FAILED, failed
    message = running.termination_message(pod["containers"][0])
    assert missing[:12] in message, message
    assert message in failed.stderr
    assert "greeting" not in failed.stdout
