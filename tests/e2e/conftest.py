"""E2E fixtures: a real cluster, a git daemon that pods can reach, and a fresh namespace per
test with manifests/ applied. Opt-in: they run only when BODYWORK_TEST_KUBECONFIG names the
cluster's kubeconfig (tests/conftest.py), and skip, with the reason, otherwise or when that
cluster does not answer. `.ci/run` starts the k8s-lab cluster, builds the image, opts in."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    CLUSTER_OPT_IN,
    REPO_ROOT,
    SshServer,
    commit_all,
    free_port,
    git,
    opted_in_kubeconfig,
    running_sshd,
    write_files,
)

LAB_HOST_IP = os.environ.get("K8S_LAB_HOST_IP", "10.88.0.1")  # the host, as pods see it
IMAGE = os.environ.get("BODYWORK_E2E_IMAGE", "bodywork:e2e")
MANIFESTS = REPO_ROOT / "manifests"


def kubectl(*args: str, stdin: str | None = None, check: bool = True, timeout: int = 120) -> str:
    done = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def _cluster_problem() -> str | None:
    chosen = opted_in_kubeconfig()
    if chosen is None:
        return (
            f"cluster tests are opt-in: set {CLUSTER_OPT_IN}=<kubeconfig of a cluster they may "
            "create namespaces in> (bash .ci/run starts ../shared/k8s-lab and sets it)"
        )
    if not Path(chosen).is_file():
        return f"{CLUSTER_OPT_IN}={chosen}: no such file"
    if shutil.which("kubectl") is None:
        return "kubectl is not on PATH"
    try:
        done = subprocess.run(
            ["kubectl", "get", "--raw", "/readyz"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return f"the cluster in {CLUSTER_OPT_IN} did not answer within 10 s"
    if done.returncode != 0:
        return f"the cluster in {CLUSTER_OPT_IN} is not ready: {done.stderr.strip()[:200]}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e = [i for i in items if "tests/e2e/" in str(i.fspath)]
    if not e2e:
        return
    problem = _cluster_problem()
    for item in e2e:
        item.add_marker(pytest.mark.e2e)
        if problem:
            item.add_marker(pytest.mark.skip(reason=f"e2e skipped: {problem}"))


def _recycle_lab_volumes() -> None:
    """k8s-lab's hostPath volumes are Retain: a deleted test namespace leaves its volume
    Released. Wipe such a volume (it is a directory on this host) and make it Available
    again, so a long session cannot run out and no test sees another's artifacts."""
    import json

    volumes = json.loads(kubectl("get", "pv", "-o", "json"))["items"]
    for volume in volumes:
        path = Path((volume["spec"].get("hostPath") or {}).get("path", "/nonexistent"))
        if (
            volume["spec"].get("storageClassName") != "lab-hostpath"
            or volume["status"].get("phase") != "Released"
            or not path.is_dir()
        ):
            continue
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        kubectl(
            "patch",
            "pv",
            volume["metadata"]["name"],
            "--type=json",
            "-p",
            '[{"op":"remove","path":"/spec/claimRef"}]',
            check=False,
        )


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """`git daemon` on the lab host IP, so stage pods can fetch test repos."""
    base = tmp_path_factory.mktemp("git-served")
    port = free_port()
    process = subprocess.Popen(
        [
            "git",
            "-c",
            "uploadpack.allowReachableSHA1InWant=true",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={base}",
            f"--listen={LAB_HOST_IP}",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield base, f"git://{LAB_HOST_IP}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def publish(
    git_server: tuple[Path, str], tmp_path: Path
) -> Callable[[str, dict[str, str]], tuple[str, str]]:
    """Commit `files` to repo `name` (creating it or adding a commit); return (url, sha)."""
    base, url = git_server

    def publish(name: str, files: dict[str, str]) -> tuple[str, str]:
        work = tmp_path / f"work-{name}"
        bare = base / f"{name}.git"
        if not work.exists():
            work.mkdir()
            git(work, "init", "-q", "-b", "main")
        write_files(work, files)
        sha = commit_all(work, "e2e")
        if not bare.exists():
            git(base, "init", "-q", "--bare", "-b", "main", str(bare))
        git(work, "push", "-q", "-f", str(bare), "main")
        return f"{url}/{name}.git", sha

    return publish


@pytest.fixture
def lab_sshd(tmp_path: Path) -> Iterator[SshServer]:
    """sshd on the lab host IP (a free port), so stage and controller pods can reach it."""
    with running_sshd(tmp_path, listen=LAB_HOST_IP) as server:
        yield server


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh namespace with the service accounts, Role and RoleBinding from manifests/."""
    name = f"bw-e2e-{secrets.token_hex(3)}"
    _recycle_lab_volumes()
    kubectl("create", "namespace", name)
    docs = []
    for file in ("serviceaccounts.yaml", "role.yaml", "rolebinding.yaml"):
        docs += list(yaml.safe_load_all((MANIFESTS / file).read_text()))
    kubectl("apply", "-n", name, "-f", "-", stdin=yaml.safe_dump_all(docs))
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def run_workflow(
    namespace: str, url: str, *extra: str, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """`bodywork workflow` from this machine against the cluster (the laptop mode)."""
    return subprocess.run(
        ["bodywork", "workflow", "-n", namespace, "--image", IMAGE, url, *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
