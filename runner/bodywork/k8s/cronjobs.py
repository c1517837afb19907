"""Scheduled retraining: CronJobs that run the controller, on whichever CronJob API the
cluster serves (batch/v1 since Kubernetes 1.21, batch/v1beta1 before; found by discovery).

CronJobs go through the generic custom-objects endpoint so one code path serves both
API versions; the bodies come from objects.build_cronjob.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client

from bodywork.core import objects
from bodywork.core.errors import ClusterError
from bodywork.k8s import kube

GROUP, PLURAL = "batch", "cronjobs"
VERSIONS = ("v1", "v1beta1")  # newest first


def api_version(api: client.ApiClient) -> str:
    """'batch/v1' or 'batch/v1beta1', whichever serves CronJobs here; else a clear error."""
    for version in VERSIONS:
        if "CronJob" in (kube.discover(api, f"{GROUP}/{version}") or set()):
            return f"{GROUP}/{version}"
    raise ClusterError("this cluster serves no CronJob API (neither batch/v1 nor batch/v1beta1)")


def create_or_update(api: client.ApiClient, body: dict[str, Any]) -> str:
    version = body["apiVersion"].split("/")[1]
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    custom = client.CustomObjectsApi(api)
    # Custom objects come back as their JSON: the client types them as plain `object`.
    current = cast(
        "dict[str, Any] | None",
        kube.exists(
            f"get cronjob {name}",
            namespace,
            custom.get_namespaced_custom_object,
            GROUP,
            version,
            namespace,
            PLURAL,
            name,
        ),
    )
    if current is None:
        kube.call(
            f"create cronjob {name}",
            namespace,
            custom.create_namespaced_custom_object,
            GROUP,
            version,
            namespace,
            PLURAL,
            body,
        )
        return "created"
    if (
        current.get("spec", {}).get("schedule") == body["spec"]["schedule"]
        and current["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        == body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    ):
        return "unchanged"
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    kube.call(
        f"update cronjob {name}",
        namespace,
        custom.replace_namespaced_custom_object,
        GROUP,
        version,
        namespace,
        PLURAL,
        name,
        body,
    )
    return "updated"


def list_cronjobs(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    version = api_version(api).split("/")[1]
    found = cast(
        "dict[str, Any]",
        kube.call(
            "list cronjobs",
            namespace,
            client.CustomObjectsApi(api).list_namespaced_custom_object,
            GROUP,
            version,
            namespace,
            PLURAL,
            label_selector=f"{objects.ROLE_LABEL}=controller",
        ),
    )
    rows = []
    for item in found.get("items", []):
        container = item["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        rows.append({
            "name": item["metadata"]["name"],
            "schedule": item["spec"]["schedule"],
            "repo": args[-1],
            "branch": args[args.index("--branch") + 1] if "--branch" in args else "HEAD",
            "last_schedule": (item.get("status") or {}).get("lastScheduleTime"),
            "suspended": bool(item["spec"].get("suspend")),
        })  # fmt: skip
    return rows


def delete(api: client.ApiClient, namespace: str, name: str) -> bool:
    version = api_version(api).split("/")[1]
    custom = client.CustomObjectsApi(api)
    try:
        kube.call(
            f"delete cronjob {name}",
            namespace,
            custom.delete_namespaced_custom_object,
            GROUP,
            version,
            namespace,
            PLURAL,
            name,
        )
        return True
    except ClusterError as exc:
        if exc.status == 404:
            return False
        raise
