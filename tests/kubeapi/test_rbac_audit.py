"""RBAC audit: every API call the controller makes across real runs is allowed by the shipped
Role, and every verb the Role grants is used (least privilege, checked, not claimed).

The controller (`bodywork workflow`, as a subprocess) talks to the lab's API server through
the recording FaultProxy; each request is mapped to its RBAC (group, resource, verb)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import yaml

from bodywork.k8s import lease
from tests.e2e.conftest import IMAGE, MANIFESTS, kubectl
from tests.e2e.test_kubernetes import (
    batch_config,
    http_server_script,
    project_files,
    service_config,
)
from tests.kubeapi.faultproxy import FaultProxy, describe_request


def role_permissions() -> set[tuple[str, str, str]]:
    role = yaml.safe_load((MANIFESTS / "role.yaml").read_text())
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def proxy_kubeconfig(proxy: FaultProxy, directory: Path) -> Path:
    path = directory / "kubeconfig-proxy"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
        "clusters": [{"name": "proxy", "cluster": {"server": proxy.url}}],
        "users": [{"name": "proxy", "user": {}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
    }))  # fmt: skip
    return path


def test_controller_uses_exactly_the_permissions_the_role_grants(
    proxy: FaultProxy, namespace: str, publish, tmp_path: Path
) -> None:
    """Five runs (deploy, redeploy, ingress off, failure with rollback, resume) stay inside
    the Role, and together they use every permission it grants."""
    env = {**os.environ, "KUBECONFIG": str(proxy_kubeconfig(proxy, tmp_path))}

    def workflow(url: str, *extra: str, pod: str | None = None) -> subprocess.CompletedProcess:
        run_env = {**env, "POD_NAME": pod} if pod else env
        image = [] if pod else ["--image", IMAGE]  # in a pod, it reads its own image
        return subprocess.run(
            ["bodywork", "workflow", "-n", namespace, *image, url, *extra],
            capture_output=True,
            text=True,
            timeout=600,
            env=run_env,
        )

    ingress_on = "INGRESS = True\n"
    # prep outlives one lease renewal period, so renewing the Lease is exercised too.
    slow_prep = f"import time\ntime.sleep({lease.RENEW_SECONDS + 3})\nprint('prepared')\n"
    url, _ = publish("audit", project_files("prep >> web", {
        "prep": (batch_config(), slow_prep),
        "web": (service_config(8080, 60, ingress_on), http_server_script("v1", 8080)),
    }))  # fmt: skip
    first = workflow(url)  # creates: claim, Jobs, Deployment, Service, Ingress, record, Lease
    assert first.returncode == 0, first.stdout + first.stderr

    publish("audit", {"prep/main.py": "print('prepared')\n",
                      "web/config.ini": service_config(8081, 60, ingress_on),
                      "web/main.py": http_server_script("v2", 8081)})  # fmt: skip
    pod = kubectl("get", "pods", "-n", namespace, "-l", "bodywork.dev/stage=web",
                  "-o", "jsonpath={.items[0].metadata.name}")  # fmt: skip
    second = workflow(url, pod=pod)  # updates Deployment, Service, Ingress; reads own image
    assert second.returncode == 0, second.stdout + second.stderr

    publish("audit", {"web/config.ini": service_config(8081, 60)})
    third = workflow(url)  # INGRESS turned off: the Ingress is deleted
    assert third.returncode == 0, third.stdout + third.stderr

    publish("audit", project_files("prep >> broken, slow, fresh", {
        "prep": (batch_config(), "print('prepared')\n"),
        "broken": (batch_config(), "raise SystemExit('broken on purpose')\n"),
        "slow": (batch_config(), "import time\ntime.sleep(120)\n"),
        "fresh": (service_config(9090, 60), "raise SystemExit('no model')\n"),
    }))  # fmt: skip
    fourth = workflow(url)  # a failure stops a sibling Job and removes a new service
    assert fourth.returncode == 5, fourth.stdout + fourth.stderr
    failed_run = next(ln.split()[1] for ln in fourth.stdout.splitlines() if ln.startswith("run "))
    time.sleep(1)
    fifth = workflow(url, "--resume", failed_run)  # finds the record, same commit
    assert fifth.returncode == 5, fifth.stdout + fifth.stderr

    used = set()
    for request in proxy.requests():
        attributes = describe_request(request.method, request.path, request.query)
        if attributes["resource"]:  # discovery (/apis/<group>/<version>) needs no grant
            used.add((attributes["group"], attributes["resource"], attributes["verb"]))
    granted = role_permissions()
    assert used - granted == set(), "calls the Role does not allow"
    assert granted - used == set(), "granted but never used"
