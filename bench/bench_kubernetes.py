"""Benchmark the Kubernetes executor: a trivial stage beside a bare Job, and where it spends.

Run from the repository root with a cluster in KUBECONFIG (e.g. after
`source /var/tmp/k8s-lab/env` and `build-image.sh . bodywork:e2e`):

    python bench/bench_kubernetes.py [--stages N] [--rounds R] [--image IMAGE] [--host-ip IP]

A throw-away repo with N sequential no-op batch stages (`pass`, no requirements) is served
by `git daemon` on the address pods use to reach this host. One run warms the PVC (venvs,
the commit cache), then R rounds each time, in this order, one after the other:

- N bare Jobs, back to back: the same image, `python3 -c pass`, no volumes (what any pod
  costs here);
- N Jobs of the stage's own pod spec (PVC, emptyDirs, security context) running `pass`;
- a run of the N stages through the engine, each step timed from start() to wait(), and
  each stage's Job from its create call to the watch seeing it Complete.

The two Jobs are timed from the create call to a watch seeing their Complete condition,
the same way the engine's informer sees a stage's Job. Each figure is printed as
min / median / max, and the trivial stage as a ratio of the bare Job measured in the same
rounds. Target: trivial stage ≤ 1.3× the bare Job. The bootstrapper's timing line (when
the image prints one) gives the in-pod breakdown: Job created → process started → code
checked out → venv ready → module started → exited → the engine saw it done.

`--handoff-image IMAGE` also times the init-container path (DOCKER_IMAGE = IMAGE, an image
without Bodywork). Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, watch

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
RATIO_TARGET = 1.3
PAUSE_SECONDS = 2.0  # before a Job timed alone: the previous pod is gone by then
# The bootstrapper's timing line (bodywork_bootstrap.stage): absolute start, then offsets.
_TIMING = re.compile(r"\[bodywork\] timing start=([0-9.]+)((?: [a-z_]+=\+[0-9.]+)*)")
PHASES = [("checkout", "code checked out"), ("venv", "venv ready"), ("module", "module started")]


class TimedExecutor(KubernetesExecutor):
    """Records when each stage was started and when the engine saw it finish."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: dict[str, float] = {}
        self.started_wall: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.finished_wall: dict[str, float] = {}
        self.results: dict[str, Any] = {}
        self.job_names: dict[str, str] = {}

    def start(self, stage: Any) -> Any:
        self.started[stage.name] = time.monotonic()
        self.started_wall[stage.name] = time.time()
        handle = super().start(stage)
        self.job_names[stage.name] = handle.name
        return handle

    def wait(self, handle: Any) -> Any:
        result = super().wait(handle)
        self.finished[handle.stage.name] = time.monotonic()
        self.finished_wall[handle.stage.name] = time.time()
        self.results[handle.stage.name] = result
        return result


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


def load(url: str) -> plan.Plan:
    source = gitsource.resolve(url, "main", warn=print)
    with tempfile.TemporaryDirectory() as tmp:
        root = gitsource.checkout(source, Path(tmp) / "src")
        project = config.load_project(root)
    return plan.build_plan(project, source, plan.new_run_id())


def run_once(url: str, namespace: str, image: str) -> tuple[TimedExecutor, plan.Plan, float]:
    the_plan = load(url)
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


# ---------------------------------------------------------------------------- bare Jobs
_counter = iter(range(1_000_000))


def bare_job(image: str, name: str) -> dict[str, Any]:
    """The least a Job can be: our image running `python3 -c pass`."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"bench": "bare"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 60,
            "template": {
                "metadata": {"labels": {"bench": "bare"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "bare",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", "pass"],
                        }
                    ],
                },
            },
        },
    }


def stage_spec_job(the_plan: plan.Plan, image: str, namespace: str, name: str) -> dict[str, Any]:
    """The first stage's own Job body (volumes, PVC, security context) running `pass`."""
    settings = objects.RunSettings(namespace=namespace, image=image)
    body: dict[str, Any] = objects.build_job(the_plan.stages[0], image, settings)
    body["metadata"] = {"name": name, "labels": {"bench": "stage-spec"}}
    spec = body["spec"]
    # Its labels less the stage's own (the engine's informers must not take it for a
    # stage); the rest stay, as the pod's affinity may select them (the artifacts claim's).
    own = {objects.STAGE_LABEL, objects.RUN_LABEL, objects.ROLE_LABEL}
    labels = spec["template"]["metadata"].get("labels", {})
    kept = {k: v for k, v in labels.items() if k not in own}
    spec["template"]["metadata"] = {"labels": {**kept, "bench": "stage-spec"}}
    spec["backoffLimit"] = 0
    container = spec["template"]["spec"]["containers"][0]
    container["command"] = ["python3", "-c", "pass"]
    container.pop("args", None)
    return body


def time_job(batch: client.BatchV1Api, namespace: str, body: dict[str, Any]) -> float:
    """Seconds from the create call to a watch seeing the Job's Complete condition."""
    name = body["metadata"]["name"]
    version = batch.list_namespaced_job(namespace, limit=1).metadata.resource_version
    began = time.monotonic()
    batch.create_namespaced_job(namespace, body)
    stream = watch.Watch()
    try:
        for event in stream.stream(
            batch.list_namespaced_job,
            namespace,
            field_selector=f"metadata.name={name}",
            resource_version=version,
            timeout_seconds=120,
        ):
            job = event["object"]
            for condition in (job.status and job.status.conditions) or []:
                if condition.status == "True" and condition.type in ("Complete", "Failed"):
                    if condition.type == "Failed":
                        sys.exit(f"bare Job {name} failed: {condition.message}")
                    return time.monotonic() - began
    finally:
        stream.stop()
    sys.exit(f"bare Job {name} did not complete within 120 s")


class CompletionWatch:
    """Every Job of the namespace, and when a watch first saw it Complete (wall clock):
    the stage's Jobs timed as the bare Job is, apart from the engine."""

    def __init__(self, batch: client.BatchV1Api, namespace: str):
        self.complete: dict[str, float] = {}
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(batch, namespace), daemon=True)
        self._thread.start()

    def _run(self, batch: client.BatchV1Api, namespace: str) -> None:
        with contextlib.suppress(Exception):  # stopped at the end, or the namespace went
            for event in self._watch.stream(batch.list_namespaced_job, namespace):
                job = event["object"]
                for condition in (job.status and job.status.conditions) or []:
                    if condition.type == "Complete" and condition.status == "True":
                        self.complete.setdefault(job.metadata.name, time.time())

    def stop(self) -> None:
        self._watch.stop()


def delete_bench_jobs(batch: client.BatchV1Api, namespace: str) -> None:
    batch.delete_collection_namespaced_job(
        namespace, label_selector="bench", propagation_policy="Background"
    )


# ---------------------------------------------------------------------------- figures
def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"{min(values):6.2f} / {statistics.median(values):6.2f} / {max(values):6.2f} s"
        f"  (n={len(values)})"
    )


def timings(lines: list[str]) -> dict[str, float]:
    """The last timing line's start (absolute) and offsets, from a stage's log tail."""
    found: dict[str, float] = {}
    for line in lines:
        match = _TIMING.search(line)
        if match is None:
            continue
        if found.get("start") != float(match[1]):
            found = {"start": float(match[1])}
        for key, value in re.findall(r"([a-z_]+)=\+([0-9.]+)", match[2]):
            found[key] = float(value)
    return found


def breakdown(executors: list[TimedExecutor], completions: CompletionWatch) -> None:
    """The in-pod breakdown, median over every stage of the timed runs."""
    rows: dict[str, list[float]] = {}

    def add(label: str, value: float) -> None:
        rows.setdefault(label, []).append(value)

    for ex in executors:
        for name, result in ex.results.items():
            found = timings(list(result.log_tail))
            if "start" not in found:
                continue
            start = found["start"]
            add("Job created → bootstrapper process started", start - ex.started_wall[name])
            previous = 0.0
            for key, label in PHASES:
                if key in found:
                    add(f"  → {label}", found[key] - previous)
                    previous = found[key]
            if "exited" in found:
                add("  → module exited", found["exited"] - previous)
                complete = completions.complete.get(ex.job_names.get(name, ""))
                if complete is not None:
                    add("exited → Job Complete (Kubernetes)", complete - start - found["exited"])
                    add(
                        "Job Complete → the engine's wait() returned",
                        ex.finished_wall[name] - complete,
                    )
                else:
                    add(
                        "exited → the engine saw the stage done",
                        ex.finished_wall[name] - start - found["exited"],
                    )
                add("whole in-pod time (process start → exit)", found["exited"])
    if not rows:
        print("   in-pod breakdown: n/a (this image's bootstrapper prints no timing line)")
        return
    print("   in-pod breakdown, min / median / max over the stages:")
    for label, values in rows.items():
        print(f"     {label:<46} {spread(values)}")


def real_stage_job(the_plan: plan.Plan, image: str, namespace: str, name: str) -> dict[str, Any]:
    """The first stage's real Job (the bootstrapper, fetch, venv, module), under another
    name and without the stage's own labels, timed like a bare Job outside the engine."""
    body = stage_spec_job(the_plan, image, namespace, name)
    real: dict[str, Any] = objects.build_job(
        the_plan.stages[0], image, objects.RunSettings(namespace=namespace, image=image)
    )
    ours = body["spec"]["template"]["spec"]["containers"][0]
    theirs = real["spec"]["template"]["spec"]["containers"][0]
    ours.pop("command", None)
    ours["args"] = theirs["args"]
    if "command" in theirs:
        ours["command"] = theirs["command"]
    return body


def bench_variant(
    label: str,
    url: str,
    namespace: str,
    image: str,
    rounds: int,
    batch: client.BatchV1Api,
) -> None:
    print(f"\n== {label}")
    run_once(url, namespace, image)  # warm-up: PVC bound, venvs and commit cache filled
    figures: dict[str, list[float]] = {
        key: [] for key in ("bare", "bare alone", "spec", "stage alone", "steps", "jobs", "walls")
    }
    executors = []
    completions = CompletionWatch(batch, namespace)
    for _ in range(rounds):
        the_plan = load(url)
        stages = len(the_plan.stages)
        # Alone: after a pause in which the last pod is torn down. Back to back (as many
        # as the run has steps): each Job starts while the previous pod is torn down, as a
        # step's Job does, and that costs the kubelet time too.
        for key, make in (("bare alone", bare_job), ("stage alone", None)):
            for _ in range(stages):
                time.sleep(PAUSE_SECONDS)
                name = f"alone-{next(_counter)}"
                body = (
                    make(image, name) if make else real_stage_job(the_plan, image, namespace, name)
                )
                figures[key].append(time_job(batch, namespace, body))
        for _ in range(stages):
            body = bare_job(image, f"bare-{next(_counter)}")
            figures["bare"].append(time_job(batch, namespace, body))
        for _ in range(stages):
            body = stage_spec_job(the_plan, image, namespace, f"spec-{next(_counter)}")
            figures["spec"].append(time_job(batch, namespace, body))
        executor, the_plan, wall = run_once(url, namespace, image)
        executors.append(executor)
        figures["walls"].append(wall / len(the_plan.stages))
        figures["steps"] += [executor.finished[n] - executor.started[n] for n in executor.started]
        time.sleep(0.5)  # the watch's last events
        for name, job in executor.job_names.items():
            if job in completions.complete:
                figures["jobs"].append(completions.complete[job] - executor.started_wall[name])
        delete_bench_jobs(batch, namespace)
    completions.stop()
    rows = [
        ("bare Job (python3 -c pass), alone", "bare alone"),
        ("the stage's real Job, alone (no engine)", "stage alone"),
        ("bare Jobs, back to back", "bare"),
        ("stage pod spec running `pass`, back to back", "spec"),
        ("trivial stage through the engine: start→wait", "steps"),
        ("  its Job, create → Complete (same watch)", "jobs"),
        ("  whole run ÷ stages", "walls"),
    ]
    for text, key in rows:
        print(f"   {text:<46} {spread(figures[key])}")
    for text, slow, fast in (
        ("engine step ÷ bare Job back to back", "steps", "bare"),
        ("stage Job alone ÷ bare Job alone", "stage alone", "bare alone"),
        ("engine step ÷ bare Job alone", "steps", "bare alone"),
    ):
        ratio = statistics.median(figures[slow]) / statistics.median(figures[fast])
        mark = "ok" if ratio <= RATIO_TARGET else "MISSED"
        print(f"   {text:<46} {ratio:6.2f}×  (medians)  target ≤ {RATIO_TARGET}×  {mark}")
    breakdown(executors, completions)


def serve(served: Path, host_ip: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git", "daemon", "--reuseaddr", "--export-all", f"--base-path={served}",
            f"--listen={host_ip}", f"--port={port}", str(served),
        ],
        stderr=subprocess.DEVNULL,  # it logs each probe below as a hang-up
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host_ip, port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return daemon, port


def kubectl(*args: str) -> None:
    subprocess.run(["kubectl", *args], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default=os.environ.get("BODYWORK_E2E_IMAGE", "bodywork:e2e"))
    parser.add_argument("--host-ip", default=os.environ.get("K8S_LAB_HOST_IP", "10.88.0.1"))
    parser.add_argument(
        "--handoff-image",
        default="",
        help="also time the init-container path: the same stages with this DOCKER_IMAGE "
        "(an image without Bodywork, e.g. python:3.11-slim)",
    )
    args = parser.parse_args()

    variants: dict[str, tuple[str, str | None]] = {
        f"single container ({args.image}): {args.stages} sequential no-op batch stages": (
            "bench",
            None,
        )
    }
    if args.handoff_image:
        variants[f"init-container hand-off ({args.handoff_image})"] = (
            "bench-handoff",
            args.handoff_image,
        )
    print(f"bodywork Kubernetes benchmark: {args.rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="bodywork-bench-k8s-") as tmp:
        work, served = Path(tmp) / "work", Path(tmp) / "served"
        work.mkdir()
        served.mkdir()
        for repo, docker_image in variants.values():
            (work / repo).mkdir()
            git(work / repo, "init", "-q", "-b", "main")
            make_project(work / repo, args.stages, docker_image)
            git(work / repo, "add", "-A")
            git(work / repo, "commit", "-q", "-m", "bench")
            git(served, "clone", "-q", "--bare", str(work / repo), f"{repo}.git")
        daemon, port = serve(served, args.host_ip)
        namespace = f"bw-bench-{os.getpid()}"
        kubectl("create", "namespace", namespace)
        kubectl(
            "apply", "-n", namespace, "-f", str(REPO_ROOT / "manifests" / "serviceaccounts.yaml")
        )
        batch = client.BatchV1Api(kube.api_client())
        try:
            for label, (repo, _image) in variants.items():
                url = f"git://{args.host_ip}:{port}/{repo}.git"
                bench_variant(label, url, namespace, args.image, args.rounds, batch)
        finally:
            subprocess.run(
                ["kubectl", "delete", "namespace", namespace, "--wait=false"], capture_output=True
            )
            daemon.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
