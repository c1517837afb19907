"""Fixtures for API-fault tests: the opted-in cluster (BODYWORK_TEST_KUBECONFIG) behind a
FaultProxy.

These run with the e2e layer (marked `e2e`) and skip, with the reason, unless the cluster
is named and answers. The namespace and git-daemon fixtures are the e2e layer's own.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from bodywork.core import objects
from tests.e2e.conftest import (
    IMAGE,
    MANIFESTS,
    _cluster_problem,
    git_server,
    kubectl,
    namespace,
    publish,
)
from tests.kubeapi.faultproxy import FaultProxy

__all__ = ["git_server", "namespace", "publish"]  # fixtures shared with tests/e2e


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [i for i in items if "tests/kubeapi/" in str(i.fspath)]
    if not ours:
        return
    problem = _cluster_problem()
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        if problem:
            item.add_marker(pytest.mark.skip(reason=f"API-fault tests skipped: {problem}"))


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    """A FaultProxy in front of the real API server, with no rules yet."""
    with FaultProxy() as running:
        yield running


@pytest.fixture
def api(proxy: FaultProxy) -> Iterator[client.ApiClient]:
    """An ApiClient that reaches the cluster only through `proxy`."""
    with client.ApiClient(client.Configuration(host=proxy.url)) as api_client:
        yield api_client


@pytest.fixture(scope="module")
def workflow_namespace() -> Iterator[str]:
    """One namespace (manifests/ applied) for this module's workflows, with project `e2e`'s
    artifacts claim already bound: the lab's volumes are never reused once released, so
    the workflows share one, and a lab that has run out fails here instead of hanging."""
    name = f"bw-faults-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    try:
        docs = []
        for file in ("serviceaccounts.yaml", "role.yaml", "rolebinding.yaml"):
            docs += list(yaml.safe_load_all((MANIFESTS / file).read_text()))
        kubectl("apply", "-n", name, "-f", "-", stdin=yaml.safe_dump_all(docs))
        claim = objects.build_artifacts_claim("e2e", objects.RunSettings(name, IMAGE))
        kubectl("create", "-n", name, "-f", "-", stdin=json.dumps(claim))
        claim_name = claim["metadata"]["name"]
        deadline = time.monotonic() + 60
        while kubectl("get", "pvc", "-n", name, claim_name, "-o", "jsonpath={.status.phase}") != (
            "Bound"
        ):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"claim {claim_name} did not bind in 60 s: the lab has no free volume "
                    "(re-run k8s-lab's up.sh to recycle Released ones)"
                )
            time.sleep(0.5)
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)
