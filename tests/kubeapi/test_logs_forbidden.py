"""`bodywork logs RUN -f` whose stream the API server refuses (403) ends as one `error:`
line with exit code 4 (ClusterError), never a traceback.

The run record is a real ConfigMap (`records.build_record`, created with kubectl); the
command runs as a subprocess whose KUBECONFIG points at the FaultProxy, which answers 403
like RBAC on the pod-log follow (a run with a live controller pod) or on the configmap
watch (a run with none, whose end is waited for).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bodywork.core import config, plan, records
from bodywork.core.errors import ClusterError
from tests.e2e.conftest import kubectl
from tests.kubeapi.faultproxy import FaultProxy
from tests.kubeapi.test_rbac_audit import proxy_kubeconfig

RUN_ID = "20261201-120000-logs"
POD = f"bodywork-workflow--{RUN_ID}-abcde"


def running_record(namespace: str, controller_pod: str | None) -> dict[str, object]:
    """The record a controller writes when its run starts."""
    stages = {
        "train": config.StageConfig(name="train", stage_type="batch", module_path="train/main.py")
    }
    project = config.ProjectConfig(project_name="demo", dag=(("train",),), stages=stages)
    source = plan.Source("git://host/repo.git", "c" * 40, "main", "")
    return records.build_record(
        plan.build_plan(project, source, RUN_ID),
        namespace,
        "manual",
        "2026-12-01T12:00:00Z",
        extra={"controller_pod": controller_pod},
    )


@pytest.mark.parametrize(
    ("controller_pod", "path_regex", "watch", "verb"),
    [
        (POD, rf"/pods/{POD}/log$", None, "get"),  # the live log of the controller pod
        (None, r"/configmaps$", True, "watch"),  # the record, until the run ends
    ],
    ids=["pod-log", "configmap-watch"],
)
def test_logs_follow_refused_by_rbac_is_one_error_line_with_exit_4(
    proxy: FaultProxy,
    namespace: str,
    tmp_path: Path,
    controller_pod: str | None,
    path_regex: str,
    watch: bool | None,
    verb: str,
) -> None:
    kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps(running_record(namespace, controller_pod)),
    )
    user = f"system:serviceaccount:{namespace}:someone"
    proxy.forbid("GET", path_regex, user=user, watch=watch)
    env = {**os.environ, "KUBECONFIG": str(proxy_kubeconfig(proxy, tmp_path))}
    done = subprocess.run(
        ["bodywork", "logs", "-n", namespace, RUN_ID, "-f"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == ClusterError.exit_code == 4, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    assert "forbidden" in lines[0]
    assert f'cannot {verb} resource "' in lines[0]  # the verb RBAC refused, as it names it
    refused = [r for r in proxy.requests("GET") if r.fault == "forbid"]
    assert len(refused) == 1, "a 403 is final: not retried"
