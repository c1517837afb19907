"""The init-container hand-off with real containers: a stage whose DOCKER_IMAGE has no
Bodywork (python:3.11-slim) is rendered as a Job with a `fetch` init container in Bodywork's
image and a `stage` container in the plain image. Run in that order on shared volumes (host
directories), the first fetches the pinned commit from a real `git daemon` and hands over the
stdlib bootstrapper and uv; the second runs the stage with the plain image's own python3 and
no network at all: it never needs the Git server, nor anything from Bodywork's image."""

from __future__ import annotations

import os

import pytest

from bodywork.core.objects import conventions as conv
from bodywork_bootstrap import EXIT_FETCH_FAILED
from tests.conftest import git, serve_bare
from tests.image.conftest import BASE_IMAGE, Pod, offline, run_to_exit
from tests.image.test_image_runtime import rendered_pod, stage_project

HANDOFF_FLAGS = ("--fetch-only", "--handoff", "--checkout-ready")
CODE = """\
    import os, sys, bwtest_greeting
    print("greeting", bwtest_greeting.greet())
    print("python", sys.executable)
    print("pythonpath", os.environ.get("PYTHONPATH"))
    print("uv", os.environ.get("BODYWORK_UV"))
"""


@pytest.fixture(scope="module")
def handoff_image(image: str) -> str:
    """The image, once its bootstrapper has the hand-off flags (skipped, naming the missing
    ones, if not); and a plain image that really has no Bodywork."""
    usage = run_to_exit(image, ["stage", "--help"], tmpfs=["/tmp"])
    assert usage.code == 0, usage
    missing = [flag for flag in HANDOFF_FLAGS if flag not in usage.stdout]
    if missing:
        pytest.skip(
            f"pending: `bodywork stage --help` in {image} has no {', '.join(missing)} "
            "(the init-container hand-off is not in this image yet)"
        )
    plain = run_to_exit(
        BASE_IMAGE, ["-c", "import bodywork_bootstrap"], entrypoint=["python3"], user="10001"
    )
    assert plain.code != 0, f"{BASE_IMAGE} must not have Bodywork inside: {plain}"
    return image


def test_a_plain_image_runs_the_stage_handed_over_by_the_fetch_init_container(
    handoff_image: str, make_repo, git_daemon, wheelhouse, tmp_path
) -> None:
    base, daemon_url = git_daemon
    repo = stage_project(make_repo, CODE)
    commit = git(repo, "rev-parse", "HEAD")
    serve_bare(repo, base)
    url = f"{daemon_url}/project.git"
    pod = rendered_pod(repo, url, commit, handoff_image, stage_image=BASE_IMAGE)
    (fetch,) = pod["initContainers"]
    (stage,) = pod["containers"]
    assert fetch["image"] == handoff_image and stage["image"] == BASE_IMAGE
    running = Pod(pod, tmp_path)

    fetched = running.run(fetch)
    assert fetched.code == 0, fetched
    assert f"[bodywork] fetching {url} at {commit[:12]}" in fetched.stderr
    tools = running.volumes[conv.TOOLS_VOLUME]
    assert (tools / "bodywork_bootstrap" / "stage.py").is_file()
    assert os.access(tools / "bin" / "uv", os.X_OK)
    checkout = running.volumes[conv.WORK_VOLUME] / "src"  # owned by the container's user
    assert git(checkout, "-c", "safe.directory=*", "rev-parse", "HEAD") == commit
    assert not (running.volumes[conv.DATA_VOLUME] / "venvs").exists(), "fetch installs nothing"

    env, mounts = offline(wheelhouse)
    ran = running.run(stage, env, mounts, network="none")
    assert ran.code == 0, ran
    lines = ran.stdout.splitlines()
    assert "greeting hello" in lines
    python = next(ln.split(" ", 1)[1] for ln in lines if ln.startswith("python "))
    assert python.startswith(f"{conv.VENV_ROOT}/"), "a venv built from the plain image's python"
    # The project root only: the handed-over bootstrapper (and BODYWORK_UV) are not the stage's.
    assert f"pythonpath {conv.WORK_MOUNT}/src" in lines
    assert "uv None" in lines
    assert "fetching" not in ran.stderr, "the stage container fetched again"
    assert running.termination_message(stage) == ""


def test_a_checkout_at_another_commit_is_refused_by_the_stage_container(
    handoff_image: str, make_repo, git_daemon, tmp_path
) -> None:
    base, daemon_url = git_daemon
    repo = stage_project(make_repo, CODE)
    commit = git(repo, "rev-parse", "HEAD")
    serve_bare(repo, base)
    pod = rendered_pod(
        repo, f"{daemon_url}/project.git", commit, handoff_image, stage_image=BASE_IMAGE
    )
    running = Pod(pod, tmp_path)
    assert running.run(pod["initContainers"][0]).code == 0
    (running.volumes[conv.WORK_VOLUME] / "src" / ".git" / "HEAD").write_text("b" * 40 + "\n")

    (stage,) = pod["containers"]
    refused = running.run(stage, network="none")
    assert refused.code == EXIT_FETCH_FAILED, refused
    assert f"is at {'b' * 40}, not {commit[:12]}" in running.termination_message(stage)
    assert "greeting" not in refused.stdout
