"""Informers: a live local copy of one kind of object, so waiting never polls the API.

List, then watch from the list's resourceVersion; re-list after 410 Gone; reconnect on
dropped or stalled streams (all through `streams.Stream`); wake every waiter on each
change. A permanent failure (403, 404) is handed to the waiters, who raise it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bodywork.core.errors import ClusterError
from bodywork.k8s import kube, streams
from bodywork.logs.logger import get_logger

log = get_logger("bodywork.informers")

WATCH_SERVER_TIMEOUT_SECONDS = 240  # server closes idle watches; we resume from last rv
WATCH_READ_TIMEOUT_SECONDS = 300  # no byte for this long = a stalled stream: reconnect
RECONNECT_PAUSE_SECONDS = 1.0


class Changes:
    """A change counter several informers bump, so one waiter can wait on all of them."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.version = 0
        self.error: ClusterError | None = None  # a permanent watch failure, for waiters

    def bump(self, error: ClusterError | None = None) -> None:
        with self.condition:
            self.version += 1
            self.error = error or self.error
            self.condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until something changed after version `seen` (or `timeout`); return now's."""
        with self.condition:
            self.condition.wait_for(
                lambda: self.version != seen or self.error is not None, max(0.0, timeout)
            )
            if self.error is not None:
                raise self.error
            return self.version


class Informer:
    """A live cache of objects of one kind matching a label selector in one namespace."""

    def __init__(
        self,
        list_fn: Callable[..., Any],
        namespace: str,
        label_selector: str,
        kind: str,
        changes: Changes,
        read_timeout: float = WATCH_READ_TIMEOUT_SECONDS,
    ):
        self.list_fn = list_fn
        self.namespace = namespace
        self.label_selector = label_selector
        self.kind = kind
        self.changes = changes
        self.read_timeout = read_timeout  # seconds without a byte before a watch is stalled
        self.objects: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()
        self._stopped = threading.Event()
        self._stream: streams.Stream | None = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{kind}", daemon=True)

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._stream is not None:
            self._stream.stop()

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.objects.values())

    def get(self, name: str) -> Any:
        with self._lock:
            return self.objects.get(name)

    def _notify(self) -> None:
        self.changes.bump()

    def _list(self) -> str:
        listing = kube.call(
            f"list {self.kind}",
            self.namespace,
            self.list_fn,
            self.namespace,
            label_selector=self.label_selector,
        )
        with self._lock:
            self.objects = {item.metadata.name: item for item in listing.items}
        self.synced.set()
        self._notify()
        resource_version: str = listing.metadata.resource_version
        return resource_version

    def _run(self) -> None:
        resource_version = None
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    try:
                        resource_version = self._list()
                    except ClusterError as exc:  # `call` already retried transient trouble
                        self.changes.bump(exc)
                        return
                self._stream = streams.Stream(
                    f"watch {self.kind}",
                    self.namespace,
                    self.list_fn,
                    self.namespace,
                    label_selector=self.label_selector,
                    resource_version=resource_version,
                    timeout_seconds=WATCH_SERVER_TIMEOUT_SECONDS,
                    _request_timeout=(10, self.read_timeout),
                )
                for event in self._stream:
                    if self._stopped.is_set():
                        break
                    obj = event["object"]
                    resource_version = obj.metadata.resource_version
                    with self._lock:
                        if event["type"] == "DELETED":
                            self.objects.pop(obj.metadata.name, None)
                        else:
                            self.objects[obj.metadata.name] = obj
                    self._notify()
                # the server closed the watch (timeout_seconds): resume from resource_version
            except ClusterError as exc:
                if self._stopped.is_set():
                    return
                if exc.status == 410:
                    log.debug("watch_expired", kind=self.kind)
                    resource_version = None  # our version is too old: list again
                    continue
                if not kube.is_transient(exc):
                    self.changes.bump(exc)  # waiters raise it: a 403 is the user's to fix
                    return
                # dropped, stalled or throttled: reconnect from the last resourceVersion
                log.debug("watch_reconnect", kind=self.kind, status=exc.status)
                time.sleep(RECONNECT_PAUSE_SECONDS)
