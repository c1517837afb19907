"""The Kubernetes-shaped values of a stage's placement, each checked by Kubernetes' own rules.

Label keys and values (node selectors; a toleration's key and value), extended resource
names (`nvidia.com/gpu`) and their counts, Secret names (imagePullSecrets) and tolerations.
A value the API server would refuse is a config problem with its file, key and line here,
not a failed run later. Each function returns the value in its normal form or raises
ValueError saying what is wrong and how to write it; `schema` builds its parsers from them
and `model` re-exports `Toleration`. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from bodywork_bootstrap.recordclass import record

INT64_MAX = 2**63 - 1  # Kubernetes' int64 fields (tolerationSeconds) and quantities
LABEL_NAME_MAX = 63  # a label value, or a qualified name's part after the '/'
DNS_SUBDOMAIN_MAX = 253  # a qualified name's prefix, and a Secret's name
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

EQUAL, EXISTS = "Equal", "Exists"
OPERATORS = (EQUAL, EXISTS)
NO_EXECUTE = "NoExecute"
EFFECTS = ("NoSchedule", "PreferNoSchedule", NO_EXECUTE)  # or "": every effect
# bodywork.yaml's toleration fields, as Kubernetes spells them (read in any case)
TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
ANY_KEY = "*"  # the compact syntax's "every taint" (Kubernetes: no key, operator Exists)

# Native resources a stage cannot ask for as extended ones, and what to use instead.
_NATIVE_RESOURCES = {
    "cpu": "set cores with CPU_REQUEST / CPU_LIMIT (cpu_request / cpu_limit in bodywork.yaml)",
    "memory": "set MiB with MEMORY_REQUEST_MB / MEMORY_LIMIT_MB (memory_request_mb / "
    "memory_limit_mb in bodywork.yaml)",
    "ephemeral-storage": "Bodywork does not set it",
}


def shown(raw: str, limit: int = 40) -> str:
    """A value as a message quotes it: a long one cut, so an error stays one readable line."""
    return raw if len(raw) <= limit else f"{raw[:limit]}… ({len(raw):,} characters)"


def _is_label_name(text: str) -> bool:
    return len(text) <= LABEL_NAME_MAX and _LABEL_NAME.fullmatch(text) is not None


def is_dns_subdomain(text: str) -> bool:
    return len(text) <= DNS_SUBDOMAIN_MAX and _DNS_SUBDOMAIN.fullmatch(text) is not None


def _qualified_name_problem(text: str) -> str | None:
    """What is wrong with `text` as a Kubernetes qualified name ([prefix/]name), or None."""
    prefix, slash, name = text.rpartition("/")
    if slash and not is_dns_subdomain(prefix):
        return (
            f"its prefix '{prefix}' is not a DNS name (lower-case letters, digits, '-' and '.', "
            f"at most {DNS_SUBDOMAIN_MAX})"
        )
    if not _is_label_name(name):
        part = f"its name '{name}'" if slash else "it"
        return (
            f"{part} must be 1–{LABEL_NAME_MAX} letters, digits, '-', '_' or '.', starting "
            "and ending with a letter or digit"
        )
    return None


def label_key(text: str) -> str:
    """A label (or taint) key: `name` or `prefix/name`, e.g. `kubernetes.io/arch`."""
    key = text.strip()
    if not key:
        raise ValueError("has an empty label key")
    if (problem := _qualified_name_problem(key)) is not None:
        raise ValueError(
            f"'{key}' is not a Kubernetes label key: {problem} (e.g. disktype or "
            "kubernetes.io/arch)"
        )
    return key


def label_value(text: str) -> str:
    """A label (or taint) value: empty, or up to 63 letters, digits, '-', '_' and '.'."""
    value = text.strip()
    if value and not _is_label_name(value):
        raise ValueError(
            f"'{value}' is not a Kubernetes label value: at most {LABEL_NAME_MAX} letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return value


def resource_name(text: str) -> str:
    """An extended resource: a qualified name with its vendor's domain, e.g. `amd.com/gpu`."""
    name = text.strip()
    lowered = name.lower()
    if lowered in _NATIVE_RESOURCES or lowered.startswith("hugepages-"):
        how = _NATIVE_RESOURCES.get(lowered, "Bodywork does not set it")
        raise ValueError(f"'{name}' is a native resource, not an extended one: {how}")
    if not name:
        raise ValueError("has an empty resource name")
    prefix, slash, _ = name.rpartition("/")
    if not slash:
        raise ValueError(
            f"'{name}' needs its vendor's domain, e.g. nvidia.com/{name} or amd.com/{name} "
            "(the name the node's device plugin advertises)"
        )
    if prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io"):
        raise ValueError(
            f"'{name}' is in Kubernetes' own kubernetes.io domain: extended resources are "
            "named in their vendor's domain, e.g. nvidia.com/gpu"
        )
    if name.startswith("requests."):
        raise ValueError(f"'{name}' cannot start with 'requests.' (Kubernetes reserves it)")
    if (problem := _qualified_name_problem(name)) is not None:
        raise ValueError(f"'{name}' is not a resource name: {problem}")
    return name


def resource_count(text: str) -> int:
    """An extended resource's count: a whole number ≥ 1 (devices are not shared by halves)."""
    raw = text.strip()
    if not raw:
        raise ValueError("needs a count, a whole number ≥ 1")
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"count must be a whole number ≥ 1, got '{raw}'") from None
    if not math.isfinite(number) or not number.is_integer() or number < 1:
        raise ValueError(f"count must be a whole number ≥ 1, got '{shown(raw)}'")
    if number > INT64_MAX:
        raise ValueError(f"count must be at most {INT64_MAX} (a 64-bit number), got '{shown(raw)}'")
    return int(number)


def secret_name(text: str) -> str:
    """A Secret's name, lower-cased (as the stages' secrets are): a DNS-1123 subdomain."""
    name = text.strip().lower()
    if not is_dns_subdomain(name):
        raise ValueError(
            f"'{name}' is not a Kubernetes Secret's name (lower-case letters, digits, '-' and "
            f"'.', starting and ending with a letter or digit, at most {DNS_SUBDOMAIN_MAX})"
        )
    return name


# ---------------------------------------------------------------------------- tolerations
@record(frozen=True, slots=True)
class Toleration:
    """One of a pod's tolerations, as Kubernetes has it: `key` "" with Exists tolerates every
    taint, `effect` "" every effect; `seconds` (NoExecute only) bounds the stay on a node
    tainted after the pod started."""

    key: str = ""
    operator: str = EQUAL
    value: str = ""
    effect: str = ""
    seconds: int | None = None


def _canonical(raw: str, options: tuple[str, ...], what: str) -> str:
    by_lower = {option.lower(): option for option in options}
    found = by_lower.get(raw.strip().lower())
    if found is None:
        raise ValueError(f"{what} must be one of {', '.join(options)}, got '{raw.strip()}'")
    return found


def _toleration(
    key: str, operator: str, value: str, effect: str, seconds: int | None
) -> Toleration:
    """The toleration these parts make, by Kubernetes' rules for them."""
    if key:
        key = label_key(key)
    elif operator == EQUAL:
        raise ValueError(
            "has no key: an empty key (every taint) needs operator Exists, written '*' in the "
            "compact form"
        )
    if operator == EXISTS and value:
        raise ValueError(
            f"operator Exists matches any value: drop value '{value}', or use operator Equal"
        )
    value = label_value(value) if operator == EQUAL else ""
    if effect:
        effect = _canonical(effect, EFFECTS, "effect")
    if seconds is not None and effect != NO_EXECUTE:
        raise ValueError(
            "tolerationSeconds applies only to effect NoExecute (how long the pod may stay "
            "on a node that gets the taint)"
        )
    return Toleration(key=key, operator=operator, value=value, effect=effect, seconds=seconds)


def _seconds(raw: str) -> int:
    try:
        seconds = int(raw.strip())
    except ValueError:
        raise ValueError(
            f"tolerationSeconds must be a whole number ≥ 0, got '{shown(raw)}'"
        ) from None
    if seconds < 0:
        raise ValueError(f"tolerationSeconds must be a whole number ≥ 0, got '{raw}'")
    if seconds > INT64_MAX:
        raise ValueError(
            f"tolerationSeconds must be at most {INT64_MAX} (Kubernetes' is a 64-bit number), "
            f"got '{shown(raw)}'"
        )
    return seconds


def toleration(text: str) -> Toleration:
    """The compact form: `KEY=VALUE[:EFFECT[:SECONDS]]` (operator Equal),
    `KEY[:EFFECT[:SECONDS]]` (Exists: any value), `*[:EFFECT]` (every taint)."""
    item = text.strip()
    match_part, *rest = item.split(":")
    if len(rest) > 2:
        raise ValueError(f"'{item}': write KEY=VALUE:EFFECT, KEY:EFFECT or *:EFFECT")
    effect = rest[0].strip() if rest else ""
    if rest and not effect:
        raise ValueError(
            f"'{item}': after ':' give the effect, {', '.join(EFFECTS)} (or leave out ':' "
            "for every effect)"
        )
    try:
        seconds = _seconds(rest[1]) if len(rest) == 2 else None
    except ValueError as exc:
        raise ValueError(f"'{item}': {exc}") from None
    key, equals, value = (part.strip() for part in match_part.partition("="))
    if key == ANY_KEY:
        if equals:
            raise ValueError(f"'{item}': '*' (every taint) takes no value")
        key, operator = "", EXISTS
    elif not key:
        raise ValueError(f"'{item}' has no taint key: write KEY=VALUE:EFFECT, KEY:EFFECT or *")
    else:
        operator = EQUAL if equals else EXISTS
    try:
        return _toleration(key, operator, value, effect, seconds)
    except ValueError as exc:
        raise ValueError(f"'{item}': {exc}") from None


def toleration_from_fields(fields: Mapping[str, str | None]) -> Toleration:
    """bodywork.yaml's form, Kubernetes' own: `{key:, operator:, value:, effect:,
    tolerationSeconds:}` (fields by their lower-cased names; operator defaults to Equal)."""
    unknown = sorted(set(fields) - {name.lower() for name in TOLERATION_FIELDS})
    if unknown:
        raise ValueError(
            f"has no field {unknown[0]} (a toleration has {', '.join(TOLERATION_FIELDS)})"
        )

    def text(name: str) -> str:
        return (fields.get(name) or "").strip()

    operator = _canonical(text("operator"), OPERATORS, "operator") if text("operator") else EQUAL
    raw_seconds = text("tolerationseconds")
    seconds = _seconds(raw_seconds) if raw_seconds else None
    return _toleration(text("key"), operator, text("value"), text("effect"), seconds)
