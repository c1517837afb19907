"""Talking to the Kubernetes API: client factory, error translation, retries, informers.

- `api_client()` builds an ApiClient from the in-cluster service account or kubeconfig;
  everything else receives a client as an argument (no global default configuration).
- `call()` runs one idempotent API call, retrying transient failures (429, 5xx,
  connection errors) with jittered backoff, and turns the rest into a ClusterError that
  names the verb, the object and, for 403, the service account that lacks the right.
- `Informer` keeps a live local copy of one kind of object (list, then watch from the
  list's resourceVersion; re-list after 410 Gone; reconnect on dropped or stalled
  streams) and wakes waiters on every change, so waiting never polls the API.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
import urllib3
from bodywork.errors import ClusterError
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from tenacity import (
    retry as tenacity_retry,
)
from tenacity import (
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

log = structlog.get_logger("bodywork.kube")
T = TypeVar("T")

RETRY_FOR_SECONDS = 60  # transient API trouble longer than this is an outage: give up
WATCH_SERVER_TIMEOUT_SECONDS = 240  # server closes idle watches; we resume from last rv
WATCH_READ_TIMEOUT_SECONDS = 300  # no byte for this long = a stalled stream: reconnect
RECONNECT_PAUSE_SECONDS = 1.0
SERVICE_ACCOUNT_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def api_client(kubeconfig_context: str | None = None) -> client.ApiClient:
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            configuration = client.Configuration.get_default_copy()
        else:
            configuration = client.Configuration()
            config.load_kube_config(context=kubeconfig_context, client_configuration=configuration)
    except config.ConfigException as exc:
        raise ClusterError(
            f"no Kubernetes cluster configured: {exc} (set KUBECONFIG or run in a pod)"
        ) from exc
    return client.ApiClient(configuration)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in (429, 500, 502, 503, 504) or exc.status == 0
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


_retry = tenacity_retry(
    retry=retry_if_exception(is_transient),
    stop=stop_after_delay(RETRY_FOR_SECONDS),
    wait=wait_exponential_jitter(multiplier=0.2, max=5),
    reraise=True,
)


def _message_of(exc: ApiException) -> str:
    import json

    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def translate(exc: ApiException, what: str, namespace: str) -> ClusterError:
    """ApiException → ClusterError whose text says what failed and what to do."""
    detail = _message_of(exc)
    if exc.status == 403:
        text = (
            f"cannot {what} in namespace '{namespace}': forbidden ({detail}); "
            "grant it in the controller's Role (manifests/role.yaml)"
        )
    elif exc.status == 404:
        text = f"cannot {what} in namespace '{namespace}': not found ({detail})"
    elif exc.status == 422:
        text = f"cannot {what}: the object is invalid ({detail})"
    elif exc.status == 401:
        text = f"cannot {what}: not authenticated to the cluster ({detail})"
    else:
        text = f"cannot {what} in namespace '{namespace}': {exc.status} {detail}"
    return ClusterError(text, status=exc.status, reason=exc.reason)


def call(what: str, namespace: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one API call with retries for transient failures; `what` is for messages."""
    try:
        return _retry(fn)(*args, **kwargs)
    except ApiException as exc:
        raise translate(exc, what, namespace) from exc
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        raise ClusterError(f"cannot {what}: the API server is unreachable ({exc})") from exc


def exists(what: str, namespace: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Like `call` for a read, but a 404 returns None."""
    try:
        return call(what, namespace, fn, *args, **kwargs)
    except ClusterError as exc:
        if exc.status == 404:
            return None
        raise


def create(what: str, namespace: str, fn: Callable[..., T], *args: Any) -> T | None:
    """Create an object; None if it already exists.

    Creates are retried on transient errors like every call, so a create whose answer was
    lost (a 504, a dropped connection) comes back as 409 on the retry. Bodywork's names
    are per project/stage (and per run for Jobs), so the existing object is ours.
    """
    try:
        return call(what, namespace, fn, *args)
    except ClusterError as exc:
        if exc.status != 409:
            raise
        log.warning("already_exists", what=what)
        return None


def delete(what: str, namespace: str, fn: Callable[..., Any], name: str, **kwargs: Any) -> bool:
    """Delete one object; False if it was already gone.

    The response body is not deserialised: API servers answer some deletes with a Status
    where newer clients expect the object, and we need nothing from it anyway.
    """
    try:
        response = call(what, namespace, fn, name, namespace, _preload_content=False, **kwargs)
        response.release_conn()  # unread bodies would keep pool connections busy
        return True
    except ClusterError as exc:
        if exc.status == 404:
            return False
        raise


def discover(api: client.ApiClient, group_version: str) -> set[str] | None:
    """The resource kinds an API group/version serves, or None if the cluster lacks it."""
    import json

    path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    method, url, headers, _, _ = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    try:
        response = _retry(api.call_api)(method, url, header_params=headers)
        response.read()
    except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
        raise ClusterError(f"cannot discover {group_version}: API server unreachable") from exc
    if response.status == 404:
        return None
    if response.status >= 400:
        raise ClusterError(
            f"cannot discover {group_version}: {response.status}", status=response.status
        )
    return {r.get("kind") for r in json.loads(response.data).get("resources", [])}


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
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{kind}", daemon=True)

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.objects.values())

    def get(self, name: str) -> Any:
        with self._lock:
            return self.objects.get(name)

    def _notify(self) -> None:
        self.changes.bump()

    def _list(self) -> str:
        listing = call(
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
        return listing.metadata.resource_version

    def _run(self) -> None:
        resource_version = None
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    resource_version = self._list()
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self.list_fn,
                    self.namespace,
                    label_selector=self.label_selector,
                    resource_version=resource_version,
                    timeout_seconds=WATCH_SERVER_TIMEOUT_SECONDS,
                    _request_timeout=(10, self.read_timeout),
                ):
                    if self._stopped.is_set():
                        break
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        raise ApiException(status=getattr(obj, "code", 500) or 500)
                    resource_version = obj.metadata.resource_version
                    with self._lock:
                        if event["type"] == "DELETED":
                            self.objects.pop(obj.metadata.name, None)
                        else:
                            self.objects[obj.metadata.name] = obj
                    self._notify()
                # the server closed the watch (timeout_seconds): resume from resource_version
            except ApiException as exc:
                if exc.status == 410:
                    log.debug("watch_expired", kind=self.kind)
                    resource_version = None  # our version is too old: list again
                    continue
                if not is_transient(exc):
                    self.changes.bump(translate(exc, f"watch {self.kind}", self.namespace))
                    return
                log.debug("watch_retry", kind=self.kind, status=exc.status)
                time.sleep(RECONNECT_PAUSE_SECONDS)
            except ClusterError as exc:
                self.changes.bump(exc)
                return
            except Exception as exc:  # noqa: BLE001 - dropped/stalled streams: reconnect
                if self._stopped.is_set():
                    return
                log.debug("watch_reconnect", kind=self.kind, error=type(exc).__name__)
                time.sleep(RECONNECT_PAUSE_SECONDS)
