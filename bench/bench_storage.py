"""Benchmark the cache choices of the storage modes: warm and cold stage start, claim vs
per-pod emptyDir.

Run from the repository root with a cluster in KUBECONFIG (e.g. `source
/var/tmp/k8s-lab/env` and `build-image.sh . bodywork:e2e`); pods install from PyPI:

    python bench/bench_storage.py [--rounds N] [--image IMAGE] [--host-ip IP]
                                  [--requirement flask==3.0.3 ...]

A throw-away repo with one batch stage (its requirements, then `pass`) is served by
`git daemon` on the address pods use to reach this host. Its Job body is the one the
executor submits (objects.build_job); the two cache choices differ only in the volume at
/bodywork/data, where the uv cache and the venvs live:

- claim: the project's artifacts claim (ReadWriteOnce here, as with the default mode, or
  a ReadWriteMany claim: the same for a pod's start). Cold: its caches wiped by a Job just
  before (as on a new claim); warm: the run right after another.
- emptyDir: what the S3 backend gives each pod without a ReadWriteMany claim. Nothing
  survives a pod, so "warm" (the run right after another) is cold again: the figure shows
  what the choice costs, run after run.

For each, min / median / max over the rounds of: Job created → Complete (scheduling,
containers, fetch, install, `pass`, the Job controller), and the bootstrapper's own
"prepared in" (fetch + venv, from the pod's log). The S3 sync containers (pull before,
push after) are not in these figures: they add one listing and the artifacts' transfer.
Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bodywork.core import config, objects, plan
from bodywork.engine import gitsource
from bodywork.k8s import kube

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kubernetes import free_port, git  # noqa: E402 (the sibling benchmark's helpers)

REPO_ROOT = Path(__file__).resolve().parents[1]
PREPARED = re.compile(r"\[bodywork\] prepared in ([0-9.]+)s")
JOB_SECONDS = 900  # a cold install from PyPI on a slow link
_counter = iter(range(1_000_000))


def make_project(root: Path, requirements: list[str]) -> None:
    (root / "bodywork.ini").write_text(
        "[default]\nPROJECT_NAME = bench-storage\n[workflow]\nDAG = start\n"
    )
    (root / "start").mkdir()
    (root / "start" / "config.ini").write_text(
        "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\nCPU_REQUEST = 0.1\n"
        "[batch]\nMAX_COMPLETION_TIME_SECONDS = 60\n"
    )
    (root / "start" / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))
    (root / "start" / "main.py").write_text("pass\n")


def serve(served: Path, host_ip: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git", "daemon", "--reuseaddr", "--export-all", f"--base-path={served}",
            f"--listen={host_ip}", f"--port={port}", str(served),
        ]
    )  # fmt: skip
    time.sleep(0.5)
    return daemon, f"git://{host_ip}:{port}"


def load(url: str) -> plan.Plan:
    source = gitsource.resolve(url, "main", warn=print)
    with tempfile.TemporaryDirectory() as tmp:
        root = gitsource.checkout(source, Path(tmp) / "src")
        project = config.load_project(root)
    return plan.build_plan(project, source, plan.new_run_id())


def stage_job(the_plan: plan.Plan, settings: objects.RunSettings, cache: str) -> dict[str, Any]:
    """The stage's Job as the executor submits it; for `emptyDir`, with the caches' volume
    each pod's own (as in the S3 backend without a ReadWriteMany claim)."""
    body: dict[str, Any] = objects.build_job(the_plan.stages[0], settings.image, settings)
    body["metadata"]["name"] = f"bench-{cache.lower()}-{next(_counter)}"
    pod = body["spec"]["template"]["spec"]
    if cache == "emptyDir":
        pod["volumes"][0] = {"name": "data", "emptyDir": {}}
        pod.pop("affinity", None)
    return body


def wipe_job(the_plan: plan.Plan, settings: objects.RunSettings) -> dict[str, Any]:
    """A Job of the stage's own pod spec that empties the claim's caches: a cold claim."""
    body = stage_job(the_plan, settings, "wipe")
    container = body["spec"]["template"]["spec"]["containers"][0]
    container.pop("args")
    container["command"] = [
        "python3",
        "-c",
        "import shutil; [shutil.rmtree(p, ignore_errors=True) for p in "
        f"('{objects.DATA_MOUNT}/venvs', '{objects.DATA_MOUNT}/uv-cache')]",
    ]
    return body


def run_job(
    core: client.CoreV1Api, batch: client.BatchV1Api, ns: str, body: dict[str, Any]
) -> tuple[float, float | None]:
    """(seconds from the create call to the Complete condition, the pod's "prepared in")."""
    name = body["metadata"]["name"]
    version = batch.list_namespaced_job(ns, limit=1).metadata.resource_version
    began = time.monotonic()
    batch.create_namespaced_job(ns, body)
    stream = watch.Watch()
    took = None
    try:
        for event in stream.stream(
            batch.list_namespaced_job,
            ns,
            field_selector=f"metadata.name={name}",
            resource_version=version,
            timeout_seconds=JOB_SECONDS,
        ):
            conditions = (event["object"].status and event["object"].status.conditions) or []
            done = {c.type for c in conditions if c.status == "True"}
            if "Failed" in done:
                sys.exit(f"Job {name} failed: {conditions}")
            if "Complete" in done:
                took = time.monotonic() - began
                break
    finally:
        stream.stop()
    if took is None:
        sys.exit(f"Job {name} did not complete within {JOB_SECONDS} s")
    pods = core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items
    log = core.read_namespaced_pod_log(pods[-1].metadata.name, ns, container="stage")
    found = PREPARED.findall(log)
    return took, float(found[-1]) if found else None


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"{min(values):7.2f} / {statistics.median(values):7.2f} / {max(values):7.2f} s"
        f"  (n={len(values)})"
    )


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def wait_bound(ns: str, claim: str) -> None:
    deadline = time.monotonic() + 120
    while kubectl("get", "pvc", "-n", ns, claim, "-o", "jsonpath={.status.phase}") != "Bound":
        if time.monotonic() > deadline:
            sys.exit(f"claim {claim} did not bind in 120 s")
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", default=os.environ.get("BODYWORK_E2E_IMAGE", "bodywork:e2e"))
    parser.add_argument("--host-ip", default=os.environ.get("K8S_LAB_HOST_IP", "10.88.0.1"))
    parser.add_argument(
        "--requirement",
        action="append",
        help="a requirement of the stage (repeatable; default: the example's flask==3.0.3)",
    )
    args = parser.parse_args()
    requirements = args.requirement or ["flask==3.0.3"]
    print(
        f"bodywork storage benchmark: {args.rounds} rounds, requirements {' '.join(requirements)}"
    )
    with tempfile.TemporaryDirectory(prefix="bodywork-bench-storage-") as tmp:
        work, served = Path(tmp) / "work", Path(tmp) / "served"
        work.mkdir()
        served.mkdir()
        git(work, "init", "-q", "-b", "main")
        make_project(work, requirements)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "bench")
        git(served, "clone", "-q", "--bare", str(work), "bench.git")
        daemon, base = serve(served, args.host_ip)
        ns = f"bw-bench-storage-{os.getpid()}"
        kubectl("create", "namespace", ns)
        kubectl("apply", "-n", ns, "-f", str(REPO_ROOT / "manifests" / "serviceaccounts.yaml"))
        api = kube.api_client()
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        rows: dict[str, tuple[list[float], list[float]]] = {
            label: ([], [])
            for label in ("claim, cold", "claim, warm", "emptyDir, cold", "emptyDir, warm")
        }

        def record(label: str, figures: tuple[float, float | None]) -> None:
            rows[label][0].append(figures[0])
            if figures[1] is not None:
                rows[label][1].append(figures[1])

        try:
            the_plan = load(f"{base}/bench.git")
            settings = objects.RunSettings(namespace=ns, image=args.image)
            claim = objects.build_artifacts_claim(the_plan.project, settings)
            core.create_namespaced_persistent_volume_claim(ns, claim)
            wait_bound(ns, claim["metadata"]["name"])
            run_job(core, batch, ns, stage_job(the_plan, settings, "claim"))  # image, node warm
            for round_number in range(1, args.rounds + 1):
                run_job(core, batch, ns, wipe_job(the_plan, settings))
                record(
                    "claim, cold", run_job(core, batch, ns, stage_job(the_plan, settings, "claim"))
                )
                record(
                    "claim, warm", run_job(core, batch, ns, stage_job(the_plan, settings, "claim"))
                )
                record(
                    "emptyDir, cold",
                    run_job(core, batch, ns, stage_job(the_plan, settings, "emptyDir")),
                )
                record(
                    "emptyDir, warm",
                    run_job(core, batch, ns, stage_job(the_plan, settings, "emptyDir")),
                )
                print(f"   round {round_number} done", flush=True)
                batch.delete_collection_namespaced_job(
                    ns, label_selector="bodywork.dev/project", propagation_policy="Background"
                )
        finally:
            subprocess.run(
                ["kubectl", "delete", "namespace", ns, "--wait=false"], capture_output=True
            )
            daemon.terminate()
    print(
        f"\n{'cache, start':<16} {'Job created → Complete (min / median / max)':<44} "
        'bootstrapper\'s fetch + venv ("prepared in")'
    )
    for label, (walls, prepared) in rows.items():
        print(f"{label:<16} {spread(walls):<44} {spread(prepared)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
