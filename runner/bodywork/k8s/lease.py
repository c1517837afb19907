"""One controller per project at a time: a coordination.k8s.io Lease per project.

A manual deploy while the CronJob fires must not give two controllers fighting over the
same Deployment. The controller takes the project's Lease before it touches anything and
renews it while it runs; a second controller is refused with who holds it and since when.
A controller that dies stops renewing, so its Lease expires after LEASE_SECONDS and never
blocks the project for good.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from kubernetes import client

from bodywork.core import names, objects
from bodywork.core.errors import ClusterError, RunInProgress
from bodywork.k8s import kube
from bodywork.logs.logger import get_logger

log = get_logger("bodywork.k8s.lease")
LEASE_SECONDS = 30  # a dead controller blocks the project for at most this long
RENEW_SECONDS = 10  # three renewals per lease period: one lost request does not lose it


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_name(project: str) -> str:
    return names.object_name(project, "lock")


class ProjectLease:
    def __init__(
        self, api: client.ApiClient, namespace: str, project: str, run_id: str, holder: str
    ):
        self.coordination = client.CoordinationV1Api(api)
        self.run_id = run_id
        self.namespace = namespace
        self.project = project
        self.holder = holder
        self.name = lease_name(project)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self, resource_version: str | None, acquired: datetime) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {**objects.MANAGED_BY, objects.PROJECT_LABEL: self.project},
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version  # lose, don't clobber, a race
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": LEASE_SECONDS,
                "acquireTime": _micro_time(acquired),
                "renewTime": _micro_time(now),
            },
        }

    def _replace(self, resource_version: str | None, acquired: datetime) -> None:
        """Write our Lease over the version we read: a 409 means someone else wrote first."""
        kube.call(
            f"update lease {self.name}",
            self.namespace,
            self.coordination.replace_namespaced_lease,
            self.name,
            self.namespace,
            self._body(resource_version, acquired),
        )

    def _refuse(self, current: Any) -> RunInProgress:
        spec = current.spec
        since = spec.acquire_time.strftime("%Y-%m-%d %H:%M:%S UTC") if spec.acquire_time else "?"
        return RunInProgress(
            f"project '{self.project}' is already being run by {spec.holder_identity} "
            f"(since {since}) in namespace '{self.namespace}': wait for it to finish, or "
            "follow it with `bodywork status`"
        )

    def acquire(self) -> None:
        what = f"get lease {self.name}"
        current = kube.exists(
            what, self.namespace, self.coordination.read_namespaced_lease, self.name, self.namespace
        )
        acquired = datetime.now(timezone.utc)
        try:
            if current is None:
                kube.call(
                    f"create lease {self.name}",
                    self.namespace,
                    self.coordination.create_namespaced_lease,
                    self.namespace,
                    self._body(None, acquired),
                )
            else:
                spec, metadata = current.spec, current.metadata
                assert spec is not None and metadata is not None, "API server Leases have both"
                renewed = spec.renew_time or spec.acquire_time
                expired = (
                    renewed is None
                    or renewed + timedelta(seconds=spec.lease_duration_seconds or LEASE_SECONDS)
                    < acquired
                )
                # The same run re-attaching (its controller died) may take it at once.
                same_run = (spec.holder_identity or "").startswith(f"run {self.run_id}")
                if spec.holder_identity and not same_run and not expired:
                    raise self._refuse(current)
                if same_run and spec.acquire_time:
                    acquired = spec.acquire_time
                self._replace(metadata.resource_version, acquired)
        except ClusterError as exc:
            if exc.status != 409:
                raise
            # Another controller created or took it between our read and write.
            latest = kube.call(
                what,
                self.namespace,
                self.coordination.read_namespaced_lease,
                self.name,
                self.namespace,
            )
            raise self._refuse(latest) from exc
        log.info("lease_acquired", lease=self.name, holder=self.holder)
        self._acquired = acquired
        self._thread = threading.Thread(target=self._renew, daemon=True, name="lease-renew")
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                current = kube.call(
                    f"get lease {self.name}",
                    self.namespace,
                    self.coordination.read_namespaced_lease,
                    self.name,
                    self.namespace,
                )
                spec, metadata = current.spec, current.metadata
                assert spec is not None and metadata is not None, "API server Leases have both"
                if spec.holder_identity != self.holder:
                    log.error("lease_lost", lease=self.name, holder=spec.holder_identity)
                    return
                self._replace(metadata.resource_version, self._acquired)
            except ClusterError as exc:
                log.warning("lease_not_renewed", lease=self.name, error=str(exc))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            kube.delete(
                f"delete lease {self.name}",
                self.namespace,
                self.coordination.delete_namespaced_lease,
                self.name,
            )
        except ClusterError as exc:  # it expires by itself anyway
            log.warning("lease_not_released", lease=self.name, error=str(exc))
