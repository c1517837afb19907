"""Placement on a real cluster: a stage asking for a device no node has, or for node labels no
node carries, fails at once with the scheduler's reason (not after its time limit), and one
whose placement the node matches runs. The lab is one node without GPUs or taints."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import yaml

from tests.e2e.conftest import IMAGE, run_workflow
from tests.e2e.test_kubernetes import batch_config, project_files

FAIL_FAST_BOUND = 120  # seconds; the reason is known within ~30 s, the bound is generous


def yaml_project(stage_lines: str) -> dict[str, str]:
    """A bodywork.yaml project of one batch stage `gpu` running main.py."""
    stage = "".join(f"    {line}\n" for line in stage_lines.splitlines())
    return {
        "bodywork.yaml": (
            'version: "1.1"\n'
            "pipeline:\n  name: e2e\n  DAG: gpu\n"
            "stages:\n  gpu:\n    executable_module_path: main.py\n    cpu_request: 0.1\n"
            f"{stage}"
            "    batch:\n      max_completion_time_seconds: 600\n"
        ),
        "main.py": "print('ran')\n",
    }


def rendered_job(namespace: str, url: str) -> dict[str, Any]:
    """`bodywork render --dry-run server`: the stage's Job, once the API server accepted it."""
    done = subprocess.run(
        ["bodywork", "render", "-n", namespace, "--image", IMAGE, "--branch", "main"]
        + ["--dry-run", "server", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "objects accepted" in done.stderr, done.stderr
    jobs = [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "Job"]
    stage_jobs = [j for j in jobs if j["metadata"]["labels"].get("bodywork.dev/role") == "stage"]
    assert len(stage_jobs) == 1, done.stdout
    job: dict[str, Any] = stage_jobs[0]
    return job


def test_a_gpu_no_node_has_fails_fast_naming_the_resource(namespace: str, publish) -> None:
    """bodywork.yaml `extended_resources: {nvidia.com/gpu: 1}` on a node without GPUs."""
    url, _ = publish("gpu", yaml_project("extended_resources: {nvidia.com/gpu: 1}"))
    started = time.monotonic()
    done = run_workflow(namespace, url, timeout=300)
    elapsed = time.monotonic() - started
    assert done.returncode == 5, done.stdout + done.stderr
    assert "unschedulable" in done.stderr, done.stderr
    assert "Insufficient nvidia.com/gpu" in done.stderr, done.stderr
    assert elapsed < FAIL_FAST_BOUND, f"took {elapsed:.0f} s to fail"


def test_every_placement_key_reaches_the_job_and_the_api_server_accepts_it(
    namespace: str, publish
) -> None:
    """config.ini's five keys, rendered and dry-run by the lab's API server (1.20)."""
    config_ini = batch_config(
        "GPUS = 1\n"
        "EXTENDED_RESOURCES = example.com/fpga=2\n"
        "NODE_SELECTOR = kubernetes.io/os=linux, bodywork.test/pool=\n"
        "TOLERATIONS = gpu=true:NoSchedule, dedicated:NoExecute:60, *:PreferNoSchedule\n"
        "IMAGE_PULL_SECRETS = RegCred\n"
    )
    url, _ = publish("every", project_files("every", {"every": (config_ini, "print('ran')\n")}))
    pod = rendered_job(namespace, url)["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    devices = {"nvidia.com/gpu": "1", "example.com/fpga": "2"}
    assert resources["limits"] == devices
    assert resources["requests"] == {"cpu": "100m", "memory": "512Mi", **devices}
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "bodywork.test/pool": ""}
    assert pod["tolerations"] == [
        {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
        {"operator": "Exists", "effect": "PreferNoSchedule"},
    ]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_a_node_selector_no_node_matches_fails_fast_naming_it(namespace: str, publish) -> None:
    """config.ini `NODE_SELECTOR = ...` that the lab's node does not carry."""
    config_ini = batch_config("NODE_SELECTOR = bodywork.test/pool=no-such-pool\n")
    url, _ = publish("pool", project_files("pool", {"pool": (config_ini, "print('ran')\n")}))
    started = time.monotonic()
    done = run_workflow(namespace, url, timeout=300)
    elapsed = time.monotonic() - started
    assert done.returncode == 5, done.stdout + done.stderr
    assert "unschedulable" in done.stderr, done.stderr
    # the lab's 1.20 says "didn't match Pod's node affinity", later ones "...affinity/selector",
    # older ones "didn't match node selector"
    assert re.search(r"didn't match (node selector|Pod's node affinity)", done.stderr), done.stderr
    assert elapsed < FAIL_FAST_BOUND, f"took {elapsed:.0f} s to fail"


def test_placement_the_node_matches_runs(namespace: str, publish) -> None:
    """A node selector the node carries and tolerations are accepted by the API server and
    the stage runs to completion."""
    url, _ = publish(
        "fits",
        yaml_project(
            "node_selector: {kubernetes.io/os: linux}\n"
            "tolerations:\n"
            "  - {key: bodywork.test/dedicated, operator: Equal, value: ml, effect: NoSchedule}\n"
            "  - '*:NoExecute:60'"
        ),
    )
    done = run_workflow(namespace, url, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ran" in done.stdout
