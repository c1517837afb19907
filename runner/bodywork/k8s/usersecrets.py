"""The Secrets a project's `[secrets]` sections refer to: create, list, delete.

Values go from the command line or an env file straight into the API request and are
never printed, logged or echoed back: listings show secret names and key names only.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from bodywork.core import objects
from bodywork.core.errors import UsageError
from bodywork.k8s import kube


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE strings → dict; a malformed one is refused without echoing its value."""
    found = {}
    for number, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"secret value #{number} is not KEY=VALUE (value not shown)")
        found[key] = value
    return found


def read_env_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"cannot read env file {path}: {reason}") from exc
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise UsageError(f"{path} line {number}: expected KEY=VALUE")
        found[key.strip()] = value.strip().strip("'\"")
    return found


def apply(core: Any, namespace: str, name: str, values: dict[str, str]) -> str:
    """Create or update Secret `name` with `values`; 'created', 'updated' or 'unchanged'."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(objects.MANAGED_BY)},
        "data": encoded,
    }
    current = kube.exists(
        f"get secret {name}", namespace, core.read_namespaced_secret, name, namespace
    )
    if current is None:
        kube.call(
            f"create secret {name}", namespace, core.create_namespaced_secret, namespace, body
        )
        return "created"
    if (current.data or {}) == encoded:
        return "unchanged"
    body["metadata"]["resourceVersion"] = current.metadata.resource_version
    kube.call(
        f"update secret {name}", namespace, core.replace_namespaced_secret, name, namespace, body
    )
    return "updated"


def list_secrets(core: Any, namespace: str) -> list[dict[str, Any]]:
    """Bodywork-managed Secrets: names and key names only, never values."""
    listing = kube.call(
        "list secrets",
        namespace,
        core.list_namespaced_secret,
        namespace,
        label_selector="app.kubernetes.io/managed-by=bodywork",
    )
    return [{"name": s.metadata.name, "keys": sorted((s.data or {}).keys())} for s in listing.items]


def delete(core: Any, namespace: str, name: str) -> bool:
    return kube.delete(f"delete secret {name}", namespace, core.delete_namespaced_secret, name)
