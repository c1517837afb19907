"""Kubernetes-safe names for projects and stages.

Stage directory names become parts of Kubernetes object names, which must be DNS-1123
labels: lower-case letters, digits and '-', starting and ending with an alphanumeric, at
most 63 characters. `k8s_name` maps any reasonable name onto that alphabet; `object_name`
joins parts and, when the result is too long, truncates and appends a hash of the whole so
that two long names can never collide. `namespace_problem` names the rule a namespace
(given with -n) breaks. Pure: no I/O.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 63  # DNS-1123 label limit, the tightest Kubernetes applies to our objects
HASH_LENGTH = 8  # hex chars of sha256 appended when a name is cut: 2**32 makes collisions moot
_INVALID = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_NAME_CHAR = re.compile(r"[a-zA-Z0-9-]")  # upper case is reported on its own
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def k8s_name(text: str) -> str:
    """Lower-case `text` and replace anything outside [a-z0-9-] with '-'.

    Returns "" when nothing usable is left (e.g. a name made only of symbols or non-ASCII
    letters); callers report that as a config problem.
    """
    name = _INVALID.sub("-", text.lower())
    name = _DASHES.sub("-", name).strip("-")
    return name


def is_dns_label(text: str) -> bool:
    # fullmatch, not match: the pattern's `$` would also accept a trailing newline
    return len(text) <= MAX_NAME_LENGTH and bool(_DNS_LABEL.fullmatch(text))


CRONJOB_NAME_MAX = 52  # the CronJob controller appends an 11-character suffix to its Jobs


def cronjob_name(project: str) -> str:
    """The default CronJob name of a project, within the API's 52 characters."""
    return object_name(project, "retrain", max_length=CRONJOB_NAME_MAX)


def object_name(*parts: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """Join name parts with '--' (the original Bodywork's separator) within `max_length`."""
    full = "--".join(k8s_name(p) for p in parts)
    if len(full) <= max_length:
        return full
    import hashlib  # OpenSSL's load (~2 ms): only for a name too long to keep whole

    digest = hashlib.sha256(full.encode()).hexdigest()[:HASH_LENGTH]
    head = full[: max_length - HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{digest}"


def namespace_problem(text: str) -> str | None:
    """The DNS-1123 label rule `text` breaks as a namespace name, in a user's words; None
    when it is one. The API server refuses any other name, so say why before asking it."""
    if not text:
        return "it is empty"
    if len(text) > MAX_NAME_LENGTH:
        return f"it is {len(text)} characters long: at most {MAX_NAME_LENGTH}"
    bad = sorted({c for c in text if not _NAME_CHAR.fullmatch(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"it has {shown}: only lower-case letters, digits and '-'"
    if text != text.lower():
        return f"it has upper-case letters: namespaces are lower-case ('{text.lower()}')"
    if not is_dns_label(text):
        return "it must start and end with a letter or digit"
    return None
