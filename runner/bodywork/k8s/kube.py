"""Talking to the Kubernetes API: client factory, error translation, retries, discovery.

- `api_client()` builds an ApiClient from the in-cluster service account or kubeconfig;
  everything else receives a client as an argument (no global default configuration).
- `call()` runs one idempotent API call, retrying transient failures (429, 5xx,
  connection errors) with jittered backoff, and turns the rest into a ClusterError that
  names the verb, the object and, for 403, the service account that lacks the right.
- Streams (watches and log follows) go through `bodywork.k8s.streams`, and live caches
  through `bodywork.k8s.informers`; both translate errors with `translate` below.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tenacity import (
    retry as tenacity_retry,
)
from tenacity import (
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from bodywork.core.errors import ClusterError
from bodywork.logs.logger import get_logger

log = get_logger("bodywork.k8s.kube")
T = TypeVar("T")

RETRY_FOR_SECONDS = 60  # transient API trouble longer than this is an outage: give up
SERVICE_ACCOUNT_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def api_client(kubeconfig_context: str | None = None) -> client.ApiClient:
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            configuration = client.Configuration.get_default_copy()
        else:
            configuration = client.Configuration()
            config.load_kube_config(  # type: ignore[no-untyped-call]
                context=kubeconfig_context, client_configuration=configuration
            )
    except config.ConfigException as exc:
        raise ClusterError(
            f"no Kubernetes cluster configured: {exc} (set KUBECONFIG or run in a pod)"
        ) from exc
    return client.ApiClient(configuration)


TRANSIENT_STATUSES = frozenset({0, 429, 500, 502, 503, 504})  # 0: no HTTP answer at all


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: throttling, a server-side failure or a broken connection; never 4xx."""
    if isinstance(exc, (ApiException, ClusterError)):
        return exc.status in TRANSIENT_STATUSES
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
        # RESTResponse is unannotated (its `data` is typed None until read): Any at the seam.
        response: Any = _retry(api.call_api)(method, url, header_params=headers)
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
