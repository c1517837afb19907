"""The image layer: Bodywork's own image (the Dockerfile) in real containers on a real Docker
engine, through the `testcontainers` package. Opt-in like the cluster layers: the tests run
only when BODYWORK_TEST_DOCKER_IMAGE names an image built from this Dockerfile, and skip with
the reason otherwise, or when no engine answers or the image is not in it. `.ci/run` starts
dockerd, loads the lab's base image as python:3.11-slim, builds bodywork:image-test and opts in.

A stage container is run the way its pod would run it: the Job is rendered by the real
planner and object builders, and its containers become `docker run`s with the same image,
command, args, env, user, read-only root, dropped capabilities and volume mounts (each
emptyDir or PVC a host directory, so two containers of one pod can share it). Every
container uses the host's network: dockerd runs with --bridge=none."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Ryuk (testcontainers' reaper) needs a bridge network and a published port; every container
# here is removed by its `with` block instead. Must be set before testcontainers is imported.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

IMAGE_OPT_IN = "BODYWORK_TEST_DOCKER_IMAGE"
# The "user's image" of the hand-off: an image without Bodywork. On the lab this is Debian's
# python3 tagged python:3.11-slim (k8s-lab README, "Images").
BASE_IMAGE = os.environ.get("BODYWORK_TEST_BASE_IMAGE", "python:3.11-slim")
WHEELHOUSE_MOUNT = "/bodywork/wheelhouse"  # the offline wheelhouse, read-only (tests only)
CONTAINER_TIMEOUT = 180  # seconds a container may take to exit before the test fails

Manifest = dict[str, Any]


def opted_in_image() -> str | None:
    return os.environ.get(IMAGE_OPT_IN) or None


@functools.cache
def _image_problem() -> str | None:
    image = opted_in_image()
    if image is None:
        return (
            f"image tests are opt-in: set {IMAGE_OPT_IN}=<an image built from this "
            "Dockerfile> (bash .ci/run starts dockerd, builds bodywork:image-test and sets it)"
        )
    try:
        import docker
    except ImportError:
        return "the docker package (a dependency of testcontainers) is not installed"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine means "skip"
        return f"no Docker engine answers ({exc.__class__.__name__}: {str(exc)[:200]})"
    try:
        for name in (image, BASE_IMAGE):
            try:
                client.images.get(name)
            except docker.errors.ImageNotFound:
                return f"image {name} is not in the Docker engine (.ci/run builds and loads it)"
    finally:
        client.close()
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    layer = [i for i in items if "tests/image/" in str(i.fspath)]
    if not layer:
        return
    problem = _image_problem()
    for item in layer:
        item.add_marker(pytest.mark.image)
        if problem:
            item.add_marker(pytest.mark.skip(reason=f"image tests skipped: {problem}"))


@pytest.fixture(scope="session")
def image() -> str:
    chosen = opted_in_image()
    assert chosen is not None, "collection skips the layer unless the image is named"
    return chosen


# ------------------------------------------------------------------------------ containers
@dataclass(frozen=True)
class Exited:
    code: int
    stdout: str
    stderr: str


def run_to_exit(
    image: str,
    command: list[str] | None = None,
    *,
    entrypoint: list[str] | None = None,
    user: str | None = None,
    env: dict[str, str] | None = None,
    volumes: Iterable[tuple[str, str, str]] = (),
    tmpfs: Iterable[str] = (),
    read_only: bool = True,
    network: str = "host",
    timeout: float = CONTAINER_TIMEOUT,
) -> Exited:
    """Run one container to its end (host network unless `network="none"`, no
    capabilities, no privilege gain, read-only root unless asked) and return its exit code
    and output; it is always removed."""
    from testcontainers.core.container import DockerContainer

    options: dict[str, Any] = {
        "network_mode": network,
        "read_only": read_only,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
    }
    if user is not None:
        options["user"] = user
    if entrypoint is not None:
        options["entrypoint"] = entrypoint
    container = DockerContainer(image, env=env or {}, volumes=list(volumes), **options)
    if command is not None:
        container.with_command(command)
    for path in tmpfs:
        container.tmpfs[path] = "rw,exec,mode=1777"  # like an emptyDir: exec allowed
    with container:
        status = container.get_wrapped_container().wait(timeout=timeout)
        stdout, stderr = container.get_logs()
    return Exited(int(status["StatusCode"]), stdout.decode(), stderr.decode())


def owned_by(path: Path, uid: int) -> Path:
    """Make `path` writable by `uid` in a container, as fsGroup and an emptyDir would."""
    if os.geteuid() == 0:
        os.chown(path, uid, uid)
    else:
        path.chmod(0o777)
    return path


class Pod:
    """One rendered pod, run container by container; its volumes are host directories."""

    def __init__(self, spec: Manifest, root: Path) -> None:
        self.spec = spec
        security = spec["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] != 0
        self.uid: int = security["runAsUser"]
        self.gid: int = security.get("runAsGroup", self.uid)
        self.volumes: dict[str, Path] = {}
        for volume in spec["volumes"]:
            folder = root / "volumes" / volume["name"]
            folder.mkdir(parents=True)
            self.volumes[volume["name"]] = owned_by(folder, self.uid)
        self.termination_logs = root / "termination-logs"
        self.termination_logs.mkdir()

    def termination_message(self, container: Manifest) -> str:
        return (self.termination_logs / container["name"]).read_text()

    def run(
        self,
        container: Manifest,
        extra_env: dict[str, str] | None = None,
        extra_volumes: Iterable[tuple[str, str, str]] = (),
        network: str = "host",
    ) -> Exited:
        """`container` as the kubelet would start it: `command` replaces the image's
        ENTRYPOINT, `args` its CMD; env values (not Secret references); the pod's user; the
        container's securityContext; each volumeMount onto its host directory."""
        security = container.get("securityContext", {})
        assert security.get("readOnlyRootFilesystem") is True
        assert security.get("allowPrivilegeEscalation") is False
        assert security.get("capabilities", {}).get("drop") == ["ALL"]
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        env.update(extra_env or {})
        mounts = [
            (str(self.volumes[m["name"]]), m["mountPath"], "ro" if m.get("readOnly") else "rw")
            for m in container["volumeMounts"]
        ]
        log = self.termination_logs / container["name"]
        log.touch()
        owned_by(log, self.uid)
        mounts.append((str(log), container["terminationMessagePath"], "rw"))
        return run_to_exit(
            container["image"],
            container.get("args"),
            entrypoint=container.get("command"),
            user=f"{self.uid}:{self.gid}",
            env=env,
            volumes=[*mounts, *extra_volumes],
            network=network,
        )


def offline(wheelhouse: Path) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Env and mount that make uv in a container install only from the test wheelhouse."""
    env = {"UV_OFFLINE": "1", "UV_FIND_LINKS": WHEELHOUSE_MOUNT}
    return env, [(str(wheelhouse), WHEELHOUSE_MOUNT, "ro")]
