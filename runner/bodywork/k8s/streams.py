"""The one wrapper every watch and log stream goes through.

The client's `watch.Watch().stream` raises raw `ApiException`s, urllib3 errors for a
dropped or stalled connection, and hands watch ERROR events back as data. `Stream` turns
all of them into `ClusterError`s that name the verb and object (`kube.translate`), so a
403 on `bodywork logs -f` is one `error:` line, never a traceback. A broken connection has
status 0, which `kube.is_transient` counts as worth reconnecting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from bodywork.core.errors import ClusterError
from bodywork.k8s import kube

BROKEN_STREAM = 0  # the status of a stream whose connection dropped or stalled


class Stream:
    """Iterate for watch events (`{"type", "object"}`) or, for a log follow, text lines.

    `what` ("watch pods", "follow the log of pod p") and `namespace` are for messages;
    the rest is passed to `watch.Watch().stream`. `stop()` may be called from another
    thread: iteration then ends at the next event.
    """

    def __init__(
        self, what: str, namespace: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        self.what = what
        self.namespace = namespace
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        # The watch module is unannotated: its Watch is Any here, like the objects it yields.
        self._watch: Any = watch.Watch()  # type: ignore[no-untyped-call]

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self._watch.stream(self._fn, *self._args, **self._kwargs):
                if isinstance(item, dict) and item.get("type") == "ERROR":
                    raise self._error_event(item)
                yield item
        except ApiException as exc:
            raise kube.translate(exc, self.what, self.namespace) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterError(
                f"cannot {self.what}: the stream from the API server broke ({type(exc).__name__})",
                status=BROKEN_STREAM,
            ) from exc

    def stop(self) -> None:
        self._watch.stop()

    def _error_event(self, event: dict[str, Any]) -> ClusterError:
        """A watch ERROR event carries a Status object: 410 Gone, 403, 500..."""
        raw = event.get("raw_object") or {}
        obj = event.get("object")
        status = raw.get("code") if isinstance(raw, dict) else None
        status = status or getattr(obj, "code", None) or 500
        message = (raw.get("message") if isinstance(raw, dict) else None) or str(status)
        return kube.translate(
            ApiException(status=int(status), reason=message), self.what, self.namespace
        )
