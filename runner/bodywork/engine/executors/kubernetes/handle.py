"""The Kubernetes executor's per-stage state and the timings every part shares.

A `KubeHandle` is what `start` hands back and `wait`/`stop`/`check`/`rollback` take: the
stage, its object name, its log tail and log followers, for a service what a rollback
needs (the previous pod template and replica count, whether the Service is new), and what
`volumes.check` remembers between its reads of a stuck pod's events.
`stage_result` turns a handle into the StageResult the engine records.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from bodywork.core import results
from bodywork.core.plan import StageSpec
from bodywork.core.results import StageResult
from bodywork_bootstrap.recordclass import field, record

LOG_TAIL_LINES = 500  # kept for the failure report and the run record (size-capped there)
WAIT_GRACE_SECONDS = 60  # beyond a stage's backstop before the controller gives up
INFORMER_SYNC_SECONDS = 30
CLAIM_BIND_SECONDS = 120  # dynamic provisioning takes seconds; two minutes means it won't
CLAIM_CHECK_SECONDS = 5  # a Pending claim's events are read this often while it binds
VOLUME_CHECK_SECONDS = 2.0  # how often the events of a pod stuck on its volumes are read
WAKE_SECONDS = 5.0  # re-check deadlines at least this often while waiting for events
ENDPOINTS_POLL_SECONDS = 0.5  # Endpoints are read, not watched: how often while a rollout is done
FOLLOWER_DRAIN_SECONDS = 5.0  # for a finished pod's last log lines


@record
class KubeHandle:
    stage: StageSpec
    name: str
    started: float = field(default_factory=time.monotonic)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    followed: set[str] = field(default_factory=set)  # pods whose logs we stream
    followers: list[threading.Thread] = field(default_factory=list)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    previous_template: dict[str, Any] | None = None  # for rollback; None = new deployment
    previous_replicas: int | None = None
    created_service: bool = False
    rolled_back: bool = False
    last_failure: str = ""
    # Pods created but not starting for their volumes (volumes.check): when their events are
    # read next, the causes already shown, and the latest problem waited for.
    volumes_checked_at: float = 0.0
    volume_causes_shown: set[str] = field(default_factory=set)
    volume_waiting: Any = None  # a podstatus.VolumeProblem
    # False once reading the Service's Endpoints was forbidden (a Role from before that rule):
    # availability alone then ends the wait, as it did.
    endpoints_readable: bool = True


def stage_result(
    handle: KubeHandle,
    status: str,
    attempts: int,
    reason: str = "",
    url: str | None = None,
) -> StageResult:
    return StageResult(
        stage=handle.stage.name,
        stage_type=handle.stage.config.stage_type,
        status=status,
        attempts=attempts,
        seconds=time.monotonic() - handle.started,
        setup_seconds=results.setup_seconds(handle.tail),
        reason=reason,
        url=url,
        log_tail=list(handle.tail),
    )
