"""Benchmark the Kubernetes executor: how long the controller adds between steps.

Run from the repository root with a cluster in KUBECONFIG (e.g. after
`eval "$(bash ../shared/k8s-lab/up.sh)"` and `build-image.sh . bodywork:e2e`):

    python bench/bench_kubernetes.py [--stages N] [--image IMAGE] [--host-ip IP]

A throw-away repo with N sequential no-op batch stages is served by `git daemon` on the
address pods use to reach this host, and run once to warm the PVC (venvs), then timed.
For each step it prints:

- the step's wall time as the engine saw it (start() to wait() returning);
- Kubernetes' own time for the Job (creationTimestamp → completionTime, whole seconds:
  scheduling, pod sandbox, container start, the module, the Job controller's update);
- the handoff: from the engine seeing step i finish to it creating step i+1's Job.

Target: the controller adds ≤ 1 s per step beyond Kubernetes' own pod start, i.e.
wall − Kubernetes' time ≤ 1 s (that difference includes the watch latency of noticing
completion). Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from kubernetes import client

from bodywork.core import config, objects, plan
from bodywork.engine import gitsource, workflow
from bodywork.engine.executors.kubernetes import KubernetesExecutor
from bodywork.k8s import kube

REPO_ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
TARGET_GAP_SECONDS = 1.0


class TimedExecutor(KubernetesExecutor):
    """Records when each stage was started and when the engine saw it finish."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def start(self, stage):  # noqa: ANN001, ANN201
        self.started[stage.name] = time.monotonic()
        return super().start(stage)

    def wait(self, handle):  # noqa: ANN001, ANN201
        result = super().wait(handle)
        self.finished[handle.stage.name] = time.monotonic()
        return result


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_project(root: Path, stages: int, docker_image: str | None = None) -> None:
    names = [f"s{i:02d}" for i in range(stages)]
    image = f"DOCKER_IMAGE = {docker_image}\n" if docker_image else ""
    (root / "bodywork.ini").write_text(
        f"[default]\nPROJECT_NAME = bench\n{image}[workflow]\nDAG = {' >> '.join(names)}\n"
    )
    for name in names:
        (root / name).mkdir()
        (root / name / "config.ini").write_text(
            "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\nCPU_REQUEST = 0.1\n"
        )
        (root / name / "requirements.txt").write_text("")
        (root / name / "main.py").write_text("pass\n")


def run_once(url: str, namespace: str, image: str) -> tuple[TimedExecutor, plan.Plan, float]:
    source = gitsource.resolve(url, "main", warn=print)
    with tempfile.TemporaryDirectory() as tmp:
        root = gitsource.checkout(source, Path(tmp) / "src")
        project = config.load_project(root)
    the_plan = plan.build_plan(project, source, plan.new_run_id())
    executor = TimedExecutor(
        kube.api_client(),
        objects.RunSettings(namespace=namespace, image=image),
        lambda stage, line: None,
    )
    began = time.monotonic()
    try:
        outcome = workflow.run_workflow(the_plan, executor)
    finally:
        executor.close()
    if not outcome.succeeded:
        sys.exit(f"benchmark run failed: {outcome.failed_result}")
    return executor, the_plan, time.monotonic() - began


def seconds_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def report(executor: TimedExecutor, the_plan: plan.Plan, wall: float, namespace: str) -> float:
    """Print the per-step table; return the mean wall time per step."""
    batch = client.BatchV1Api(executor.api)
    jobs = {
        j.metadata.labels[objects.STAGE_LABEL]: j
        for j in batch.list_namespaced_job(
            namespace, label_selector=f"{objects.RUN_LABEL}={the_plan.run_id}"
        ).items
    }
    print(f"{'step':<6}{'wall':>8}{'k8s job':>10}{'added':>8}{'handoff':>10}")
    added_all, handoffs = [], []
    names = [s.name for s in the_plan.stages]
    for i, name in enumerate(names):
        job = jobs[name]
        k8s = seconds_between(job.metadata.creation_timestamp, job.status.completion_time)
        step_wall = executor.finished[name] - executor.started[name]
        added = step_wall - k8s
        added_all.append(added)
        handoff = (
            executor.started[names[i + 1]] - executor.finished[name] if i + 1 < len(names) else None
        )
        if handoff is not None:
            handoffs.append(handoff)
        shown = f"{handoff:.3f}s" if handoff is not None else "-"
        print(f"{i + 1:<6}{step_wall:>7.2f}s{k8s:>9.0f}s{added:>7.2f}s{shown:>10}")
    mean_added = sum(added_all) / len(added_all)
    mark = "ok" if mean_added <= TARGET_GAP_SECONDS else "MISSED"
    print(f"\nwhole run {wall:.2f}s for {len(names)} steps ({wall / len(names):.2f}s per step)")
    print(
        f"mean added per step (wall - k8s job, ±1 s timestamp rounding): {mean_added:.2f}s  "
        f"target ≤ {TARGET_GAP_SECONDS:.0f} s  {mark}"
    )
    print(
        f"mean handoff between steps (engine saw done → next Job created): "
        f"{sum(handoffs) / max(1, len(handoffs)) * 1000:.0f} ms"
    )
    return sum(executor.finished[n] - executor.started[n] for n in names) / len(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=6)
    parser.add_argument("--image", default=os.environ.get("BODYWORK_E2E_IMAGE", "bodywork:e2e"))
    parser.add_argument("--host-ip", default=os.environ.get("K8S_LAB_HOST_IP", "10.88.0.1"))
    parser.add_argument(
        "--handoff-image",
        default="python:3.11-slim",
        help="also time the init-container path: the same stages with this DOCKER_IMAGE "
        "(an image without Bodywork); '' to skip",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bodywork-bench-k8s-") as tmp:
        work, served = Path(tmp) / "work", Path(tmp) / "served"
        work.mkdir()
        served.mkdir()
        variants = {"single container (Bodywork's image)": ("bench", None)}
        if args.handoff_image:
            variants[f"init-container hand-off ({args.handoff_image})"] = (
                "bench-handoff",
                args.handoff_image,
            )
        for repo, docker_image in variants.values():
            (work / repo).mkdir()
            git(work / repo, "init", "-q", "-b", "main")
            make_project(work / repo, args.stages, docker_image)
            git(work / repo, "add", "-A")
            git(work / repo, "commit", "-q", "-m", "bench")
            git(served, "clone", "-q", "--bare", str(work / repo), f"{repo}.git")
        port = free_port()
        daemon = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                f"--base-path={served}",
                f"--listen={args.host_ip}",
                f"--port={port}",
                str(served),
            ],
        )
        namespace = f"bw-bench-{os.getpid()}"
        subprocess.run(
            ["kubectl", "create", "namespace", namespace], check=True, capture_output=True
        )
        subprocess.run(
            [
                "kubectl",
                "apply",
                "-n",
                namespace,
                "-f",
                str(REPO_ROOT / "manifests" / "serviceaccounts.yaml"),
            ],
            check=True,
            capture_output=True,
        )
        try:
            time.sleep(0.5)
            per_step: dict[str, float] = {}
            for label, (repo, _image) in variants.items():
                url = f"git://{args.host_ip}:{port}/{repo}.git"
                print(
                    f"\n== {label}: {args.stages} sequential no-op batch stages, "
                    f"Bodywork image {args.image}"
                )
                run_once(url, namespace, args.image)  # warm-up: PVC bound, venvs created
                executor, the_plan, wall = run_once(url, namespace, args.image)
                per_step[label] = report(executor, the_plan, wall, namespace)
            if len(per_step) == 2:
                (single, one), (handoff, other) = per_step.items()
                print(
                    f"\ninit-container path adds {other - one:+.2f}s per stage "
                    f"({other:.2f}s vs {one:.2f}s per step, ratio {other / one:.2f}×)"
                )
        finally:
            subprocess.run(
                ["kubectl", "delete", "namespace", namespace, "--wait=false"], capture_output=True
            )
            daemon.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
