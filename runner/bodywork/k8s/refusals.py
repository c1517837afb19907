"""Why the API refused to create a stage's pod, and what fixes it: pure, no calls.

A pod the API refuses is never created, so no pod watch ever sees it. What remains is the
message of the refusal: the Job controller puts it in a `FailedCreate` Warning event on the
Job, the ReplicaSet controller in one on the ReplicaSet, and the Deployment copies it into
its `ReplicaFailure` condition (podstatus reads both). `classify` names the cause in that
message (the namespace is not set up, a ResourceQuota, a LimitRange, Pod Security
admission or a PodSecurityPolicy, an admission webhook, an invalid pod) with the fix, and
says whether the same pod would be refused again (`permanent`: fail the stage now) or may
be admitted later (a quota that is full now, a webhook that does not answer: keep waiting,
bounded by the stage's backstop, and show the reason). Tested on messages captured from
the lab (tests/unit/fixtures/k8s/event-*.json, deployment-refused-*.json).
"""

from __future__ import annotations

import re
from decimal import Decimal

from kubernetes.utils import parse_quantity

from bodywork.core.objects import conventions
from bodywork_bootstrap.recordclass import record

SERVICE_ACCOUNT = "service account missing"
QUOTA = "ResourceQuota"
QUOTA_FULL = "ResourceQuota full"
QUOTA_UNSET = "ResourceQuota needs requests or limits"
LIMIT_RANGE = "LimitRange"
INVALID = "invalid pod"
POD_SECURITY = "Pod Security admission"
POD_SECURITY_POLICY = "PodSecurityPolicy"
WEBHOOK = "admission webhook"
WEBHOOK_UNREACHABLE = "admission webhook unreachable"
OTHER = "other"

# Which config.ini key sets the pod's share of a quota'd or limited resource.
CONFIG_KEYS = {
    "cpu": "CPU_REQUEST",
    "requests.cpu": "CPU_REQUEST",
    "memory": "MEMORY_REQUEST_MB",
    "requests.memory": "MEMORY_REQUEST_MB",
    "limits.cpu": "CPU_LIMIT",
    "limits.memory": "MEMORY_LIMIT_MB",
}

_PREFIXES = ("(combined from similar events): ", "Error creating: ")
_OBJECT = re.compile(r'^(?:pods|Pod) "[^"]*" is (?:forbidden|invalid): ')
_SERVICE_ACCOUNT = re.compile(
    r'error looking up service account [^/\s]+/(?P<name>[^:\s]+): serviceaccount "[^"]*" not found'
)
_QUOTA = re.compile(
    r"exceeded quota: (?P<name>[^,]+), requested: (?P<requested>.*?), "
    r"used: (?P<used>.*?), limited: (?P<limited>.*)$"
)
_QUOTA_UNSET = re.compile(r"failed quota: (?P<name>[^:]+): must specify (?P<resources>\S+)")
_LIMIT_RANGE = re.compile(
    r"(?:maximum|minimum) \S+ usage per (?:Container|Pod) is|limit to request ratio per"
)
_POD_SECURITY = re.compile(r'violates PodSecurity "(?P<level>[^"]+)": ')
_POD_SECURITY_POLICY = re.compile(
    r"PodSecurityPolicy: unable to admit pod|unable to validate against any pod security policy"
)
_WEBHOOK = re.compile(r'admission webhook "(?P<name>[^"]+)" denied the request: ')
_WEBHOOK_UNREACHABLE = re.compile(r'failed calling webhook "(?P<name>[^"]+)": ')


@record(frozen=True, slots=True)
class Refusal:
    cause: str  # one of the names above
    reason: str  # what refused the pod, in the API's words, and the fix
    permanent: bool  # the same pod would be refused again: the stage cannot start


def not_set_up(namespace: str, repo_url: str, account: str) -> str:
    """The reason and fix for a namespace without Bodywork's service accounts and Role."""
    return (
        f"namespace '{namespace}' is not set up for Bodywork (service account {account} "
        f"not found): run `bodywork bootstrap -n {namespace} {repo_url}`, or "
        f"`kubectl apply -k manifests/` with `namespace: {namespace}` in "
        "manifests/kustomization.yaml"
    )


def detail_of(message: str) -> str:
    """The API's reason alone: without the event's prefixes and the refused pod's name."""
    text = message.strip()
    for prefix in _PREFIXES:
        text = text.removeprefix(prefix)
    return _OBJECT.sub("", text)


def _amounts(listing: str) -> dict[str, str]:
    """ "pods=1,requests.cpu=100m" → {"pods": "1", "requests.cpu": "100m"}."""
    pairs = (item.partition("=") for item in listing.split(",") if item)
    return {name.strip(): value.strip() for name, _, value in pairs}


def _quantity(text: str) -> Decimal:
    value: Decimal = parse_quantity(text)  # type: ignore[no-untyped-call]
    return value


def _never_fits(requested: dict[str, str], limited: dict[str, str]) -> list[str]:
    """The resources of which the pod alone asks more than the quota allows at all."""
    over = []
    for name, amount in requested.items():
        if name not in limited:
            continue
        try:
            if _quantity(amount) > _quantity(limited[name]):
                over.append(name)
        except ValueError:  # a quantity we cannot read: assume the worst
            over.append(name)
    return over


def _shown(amounts: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in amounts.items())


def _quota(match: re.Match[str], namespace: str) -> Refusal:
    name = match["name"].strip()
    requested, used, limited = (_amounts(match[k]) for k in ("requested", "used", "limited"))
    figures = f"requested {_shown(requested)}, used {_shown(used)}, limited {_shown(limited)}"
    over = _never_fits(requested, limited)
    if not over:  # it fits an empty namespace: it may fit once other pods end
        return Refusal(
            QUOTA_FULL,
            f"waiting for room in ResourceQuota {name} ({figures}): other pods in namespace "
            f"'{namespace}' use it; it is admitted when they end",
            permanent=False,
        )
    keys = sorted({CONFIG_KEYS[r] for r in over if r in CONFIG_KEYS})
    fix = f"raise the quota (kubectl edit resourcequota {name} -n {namespace})"
    if keys:
        fix += f" or lower {'/'.join(keys)} in the stage's config"
    return Refusal(QUOTA, f"the pod exceeds ResourceQuota {name}: {figures} — {fix}", True)


def _quota_unset(match: re.Match[str], namespace: str) -> Refusal:
    name, resources = match["name"].strip(), match["resources"].split(",")
    keys = sorted({CONFIG_KEYS.get(r, r) for r in resources})
    return Refusal(
        QUOTA_UNSET,
        f"ResourceQuota {name} admits only pods that set {', '.join(resources)}: set "
        f"{'/'.join(keys)} in the stage's config, or give namespace '{namespace}' a "
        "LimitRange with defaults",
        permanent=True,
    )


def classify(message: str, namespace: str, repo_url: str = "URL") -> Refusal:
    """The cause of a refused pod create (an event's or a condition's message) and its fix."""
    detail = detail_of(message)
    if match := _SERVICE_ACCOUNT.search(detail):
        return Refusal(SERVICE_ACCOUNT, not_set_up(namespace, repo_url, match["name"]), True)
    if match := _QUOTA.search(detail):
        return _quota(match, namespace)
    if match := _QUOTA_UNSET.search(detail):
        return _quota_unset(match, namespace)
    if _LIMIT_RANGE.search(detail):
        return Refusal(
            LIMIT_RANGE,
            f"refused by the LimitRange of namespace '{namespace}': {detail.strip('[]')} — "
            "keep CPU_REQUEST/CPU_LIMIT/MEMORY_REQUEST_MB/MEMORY_LIMIT_MB within it "
            f"(kubectl describe limitrange -n {namespace})",
            permanent=True,
        )
    if match := _POD_SECURITY.search(detail):
        return Refusal(
            POD_SECURITY,
            f"refused by Pod Security admission ({match['level']}): "
            f"{detail[match.end() :]} — the namespace's pod-security.kubernetes.io/enforce "
            "label decides what it admits",
            permanent=True,
        )
    if _POD_SECURITY_POLICY.search(detail):
        return Refusal(
            POD_SECURITY_POLICY,
            f"refused by PodSecurityPolicy: {detail} — let service account "
            f"{conventions.STAGE_SERVICE_ACCOUNT} use a policy that admits the stage pod",
            permanent=True,
        )
    if match := _WEBHOOK.search(detail):
        return Refusal(
            WEBHOOK,
            f"refused by admission webhook {match['name']}: {detail[match.end() :]}",
            permanent=True,
        )
    if match := _WEBHOOK_UNREACHABLE.search(detail):
        return Refusal(
            WEBHOOK_UNREACHABLE,
            f"waiting for admission webhook {match['name']}, which does not answer: {detail}",
            permanent=False,
        )
    if "is invalid: " in message:
        hint = (
            " (a LimitRange's default limit may be below the stage's request: set "
            "CPU_LIMIT/MEMORY_LIMIT_MB, or lower the request)"
            if "limit" in detail
            else ""
        )
        return Refusal(INVALID, f"the API refuses the pod as invalid: {detail}{hint}", True)
    return Refusal(OTHER, f"pod creation refused: {detail}", permanent=False)


def while_refused(reason: str, refusal: Refusal | None) -> str:
    """A stage's failure reason (a deadline, a stalled rollout), with the refusal that kept
    its pod from being created meanwhile, if one did."""
    return reason if refusal is None else f"{reason}; its pod was refused: {refusal.reason}"
