"""Stage output on Kubernetes: live pod logs and the Warning events of a failed stage.

Each started pod of a stage gets one daemon thread following its log through
`streams.Stream`; lines go to the handle's tail and to the executor's LogSink (prefixed
with the pod's suffix for a multi-replica service). A lost log stream never fails the
stage. `report_events` adds the scheduler's and kubelet's Warning events to the output
of a stage that failed, `events_of` lists the events about one object, and `report_line`
adds one line of Bodywork's own (a refused pod it keeps waiting for) to the output.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from bodywork.core.errors import ClusterError
from bodywork.engine.executors.kubernetes.handle import KubeHandle
from bodywork.k8s import kube, streams
from bodywork.logs.logger import get_logger

if TYPE_CHECKING:
    from bodywork.engine.executors.kubernetes.executor import KubernetesExecutor

log = get_logger("bodywork.kubernetes")


def follow(ex: KubernetesExecutor, handle: KubeHandle, pods: list[Any]) -> None:
    """Start following the log of every pod that has started and is not followed yet."""
    for pod in pods:
        name = pod.metadata.name
        statuses = pod.status.container_statuses or []
        started = any(s.state.running or s.state.terminated for s in statuses)
        if name in handle.followed or not started:
            continue
        handle.followed.add(name)
        thread = threading.Thread(
            target=_stream_log, args=(ex, handle, name), daemon=True, name=f"log-{name}"
        )
        handle.followers.append(thread)
        thread.start()


def _stream_log(ex: KubernetesExecutor, handle: KubeHandle, pod: str) -> None:
    prefix = (
        ""
        if handle.stage.config.replicas <= 1 or not handle.stage.config.is_service
        else f"[{pod.rsplit('-', 1)[-1]}] "
    )
    try:
        for line in streams.Stream(
            f"follow the log of pod {pod}",
            ex.namespace,
            ex.core.read_namespaced_pod_log,
            pod,
            ex.namespace,
            container="stage",
            follow=True,
        ):
            handle.tail.append(line)
            ex.sink(handle.stage.name, f"{prefix}{line}")
    except ClusterError as exc:  # a lost log stream must not fail the stage
        log.debug("log_stream_ended", pod=pod, status=exc.status)


def events_of(ex: KubernetesExecutor, name: str, kind: str | None = None) -> list[Any]:
    """The events about one object (a pod, a Job, the artifacts claim), oldest first."""
    selector = f"involvedObject.name={name}" + (f",involvedObject.kind={kind}" if kind else "")
    events: list[Any] = kube.call(
        "list events",
        ex.namespace,
        ex.core.list_namespaced_event,
        ex.namespace,
        field_selector=selector,
    ).items
    return events


def report_line(ex: KubernetesExecutor, handle: KubeHandle, line: str) -> None:
    """One line in the stage's output and log tail, as its events are shown."""
    handle.tail.append(line)
    ex.sink(handle.stage.name, line)


def report_events(ex: KubernetesExecutor, handle: KubeHandle, pods: list[Any]) -> None:
    """Print the Warning events of a failed stage's pods (scheduler, kubelet)."""
    for pod in pods[-2:]:
        try:
            events = events_of(ex, pod.metadata.name)
        except ClusterError:
            return
        for event in events:
            if event.type == "Warning":
                line = f"[event] {event.reason}: {event.message}"
                handle.tail.append(line)
                ex.sink(handle.stage.name, line)
