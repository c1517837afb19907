"""A stage's placement and devices as pod-spec fields: where its pods run, what they ask for.

`pod_placement` gives the fields to merge into a stage pod's spec (nodeSelector, tolerations,
imagePullSecrets; each left out when empty), `extended_limits` the extended resources (GPUs
and other devices) for its container's resources. Kubernetes takes an extended resource's
request to be its limit, and refuses a request that differs, so `stage` writes them as both
(render == live). Read from `GPUS`, `EXTENDED_RESOURCES`, `NODE_SELECTOR`, `TOLERATIONS` and
`IMAGE_PULL_SECRETS` (see docs/configuration.md); `bodywork run` on this machine ignores them.
Pure: no client, no I/O.
"""

from __future__ import annotations

from typing import Any

from bodywork.core.config import StageConfig, Toleration
from bodywork.core.config.schema import GPU_RESOURCE


def extended_limits(config: StageConfig) -> dict[str, str]:
    """The container's extended resources, name → count as Kubernetes writes it back
    ({"nvidia.com/gpu": "1"}); empty when the stage asks for none."""
    limits: dict[str, str] = {}
    if config.gpus:
        limits[GPU_RESOURCE] = str(config.gpus)
    for name, count in config.extended_resources:
        limits[name] = str(count)
    return limits


def toleration_body(toleration: Toleration) -> dict[str, Any]:
    """A toleration as the pod spec has it, without the fields Kubernetes leaves empty."""
    body: dict[str, Any] = {}
    if toleration.key:
        body["key"] = toleration.key
    body["operator"] = toleration.operator
    if toleration.value:
        body["value"] = toleration.value
    if toleration.effect:
        body["effect"] = toleration.effect
    if toleration.seconds is not None:
        body["tolerationSeconds"] = toleration.seconds
    return body


def pod_placement(config: StageConfig) -> dict[str, Any]:
    """The pod-spec fields of the stage's placement: nodeSelector, tolerations and
    imagePullSecrets, each only when the stage sets it (so an unset stage adds nothing)."""
    fields: dict[str, Any] = {}
    if config.node_selector:
        fields["nodeSelector"] = dict(config.node_selector)
    if config.tolerations:
        fields["tolerations"] = [toleration_body(t) for t in config.tolerations]
    if config.image_pull_secrets:
        unique = dict.fromkeys(config.image_pull_secrets)  # in order, each once
        fields["imagePullSecrets"] = [{"name": name} for name in unique]
    return fields
