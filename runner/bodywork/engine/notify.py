"""Completion webhooks: POST a JSON summary of a run to a URL the user keeps in a Secret.

`[notify] WEBHOOK_URL_SECRET = secret-name` in bodywork.ini names a Secret whose key
WEBHOOK_URL holds the URL; the controller Job gets it as the env var BODYWORK_WEBHOOK_URL
through a secretKeyRef, so the controller never reads Secrets. A webhook that fails is
logged and never fails the run; the URL (which often embeds a token) is never logged.
"""

from __future__ import annotations

import json
from typing import Any

from bodywork.core.plan import Plan
from bodywork.core.results import RunOutcome
from bodywork.logs.logger import get_logger
from bodywork_bootstrap import envnames

log = get_logger("bodywork.engine.notify")
WEBHOOK_ENV = envnames.WEBHOOK_URL
WEBHOOK_KEY = "WEBHOOK_URL"  # the key inside the user's Secret
TIMEOUT_SECONDS = 10


def summary(plan: Plan, outcome: RunOutcome) -> dict[str, Any]:
    failed = outcome.failed_result
    return {
        "project": plan.project,
        "run_id": plan.run_id,
        "commit": plan.source.commit,
        "result": "succeeded" if outcome.succeeded else "failed",
        "failed_stage": failed.stage if failed else None,
        "reason": failed.reason if failed else None,
        "duration_seconds": round(outcome.seconds, 2),
        "stages": {r.stage: r.status for r in outcome.results},
    }


def send(url: str, payload: dict[str, Any]) -> bool:
    """POST `payload`; True on a 2xx answer. Never raises. (urllib.request is imported here,
    when a webhook is sent: it costs a command that sends none 10-20 ms to start.)"""
    import urllib.error
    import urllib.request

    try:
        # Inside the try: a malformed URL raises ValueError (quoting the URL) right here.
        request = urllib.request.Request(
            url,
            data=json.dumps(payload).encode(),
            headers={"content-type": "application/json", "user-agent": "bodywork"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            status: int = response.status
            log.info("webhook_sent", status=status)
            return 200 <= status < 300
    except urllib.error.HTTPError as exc:
        log.warning("webhook_failed", status=exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        log.warning("webhook_failed", error=str(reason))
    return False
