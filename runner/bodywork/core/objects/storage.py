"""Where a run keeps its artifacts and its caches, decided once from the run's settings.

Three modes, from `RunSettings` already merged with the project's keys
(`with_project_storage`):

- claim, ReadWriteOnce (the default): artifacts and caches (uv cache, venvs) on the claim;
  a required podAffinity keeps every pod that mounts it on the node holding it.
- claim, ReadWriteMany (ARTIFACTS_PVC_ACCESS_MODE): the same, with no placement rule.
- S3 (ARTIFACTS_URL): artifacts in each pod's emptyDir, pulled before the stage and pushed
  after a batch stage; caches on a ReadWriteMany claim named in ARTIFACTS_PVC, else in
  each pod's emptyDir; no placement rule, and no claim created.

Caches never add a placement constraint of their own: S3 with a ReadWriteOnce claim named
for them is refused (`StorageError`), as it would pin the project for caches alone.
`pod_affinity` and `spread` give the pod-spec fields of the placement; the controller's own
pod mounts no claim in any mode. Pure: no client, no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bodywork.core import names
from bodywork.core.errors import ConfigError, Problem
from bodywork.core.objects import conventions as conv
from bodywork_bootstrap.recordclass import record

if TYPE_CHECKING:
    from bodywork.core.objects.stage import RunSettings

CLAIM = "claim"  # values of Storage.backend
S3 = "s3"
SETTINGS_FILE = "the run's artifacts settings"  # a Problem's `file`: project keys or flags


class StorageError(ConfigError):
    """A combination of artifacts settings that cannot be rendered (exit 2, as config)."""

    def __init__(self, key: str, message: str):
        super().__init__([Problem(SETTINGS_FILE, message, key=key)])


@record(frozen=True, slots=True)
class Storage:
    """The artifacts backend and cache placement of one run's pods."""

    backend: str  # CLAIM or S3
    claim: str | None  # the claim mounted at DATA_MOUNT; None: an emptyDir there
    create_claim: bool  # Bodywork creates `claim` (ARTIFACTS_PVC names none)
    access_mode: str  # the claim's: requested when created, trusted when named
    artifacts_url: str | None = None  # s3://bucket[/prefix] (S3 only)
    endpoint_url: str | None = None
    s3_secret: str | None = None

    @property
    def pinned(self) -> bool:
        """Whether the pods must share the claim's node (a ReadWriteOnce claim)."""
        return self.claim is not None and self.access_mode == conv.READ_WRITE_ONCE

    @property
    def artifacts_dir(self) -> str:
        return conv.S3_ARTIFACTS_DIR if self.backend == S3 else conv.ARTIFACTS_DIR

    @property
    def caches(self) -> str:
        """Where the uv cache and the venvs live: "claim" or "emptyDir"."""
        return "claim" if self.claim is not None else "emptyDir"


def claim_name(project: str, settings: RunSettings) -> str:
    """The claim named in ARTIFACTS_PVC, else the one Bodywork creates for the project."""
    return settings.artifacts_pvc or names.object_name(project, "artifacts")


def storage_of(project: str, settings: RunSettings) -> Storage:
    """The storage mode of a run of `project` with `settings`; StorageError for an S3
    bucket without the Secret of its credentials, or with a ReadWriteOnce claim for caches."""
    mode = settings.artifacts_pvc_access_mode or conv.DEFAULT_ACCESS_MODE
    if settings.artifacts_url is None:
        return Storage(CLAIM, claim_name(project, settings), settings.artifacts_pvc is None, mode)
    if not settings.artifacts_s3_secret:
        raise StorageError(
            "ARTIFACTS_S3_SECRET",
            "ARTIFACTS_URL needs ARTIFACTS_S3_SECRET: the name of a Secret with "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN, "
            "AWS_REGION), the only place the pods' artifacts sync takes credentials from",
        )
    s3 = {
        "artifacts_url": settings.artifacts_url,
        "endpoint_url": settings.artifacts_s3_endpoint_url,
        "s3_secret": settings.artifacts_s3_secret,
    }
    if settings.artifacts_pvc is None:  # caches in each pod; no claim at all
        return Storage(S3, None, False, mode, **s3)
    if mode != conv.READ_WRITE_MANY:
        raise StorageError(
            "ARTIFACTS_PVC",
            f"ARTIFACTS_URL keeps the artifacts in S3, so claim '{settings.artifacts_pvc}' "
            f"would hold only the caches, and as a {mode} claim it would pin every pod of the "
            "project to one node for caches alone: set ARTIFACTS_PVC_ACCESS_MODE = "
            "ReadWriteMany if the claim is ReadWriteMany, or remove ARTIFACTS_PVC (each pod "
            "then keeps its own caches)",
        )
    return Storage(S3, settings.artifacts_pvc, False, mode, **s3)


def label_value(text: str) -> str:
    """`text` as a label value: as is up to 63 characters (a claim's name already uses only
    label characters), else cut and ended by a hash of the whole, so two never collide."""
    if len(text) <= names.MAX_NAME_LENGTH:
        return text
    import hashlib  # OpenSSL's load: only for a name too long to keep whole

    digest = hashlib.sha256(text.encode()).hexdigest()[: names.HASH_LENGTH]
    head = text[: names.MAX_NAME_LENGTH - names.HASH_LENGTH - 1].rstrip("-.")
    return f"{head}-{digest}"


def pod_labels(storage: Storage) -> dict[str, str]:
    """The labels a pod of this run carries for its placement: the claim's identity on
    every pod that mounts a ReadWriteOnce claim (what their podAffinity selects)."""
    if not storage.pinned:
        return {}
    assert storage.claim is not None
    return {conv.CLAIM_LABEL: label_value(storage.claim)}


def pod_affinity(storage: Storage) -> dict[str, Any]:
    """The pod-spec `affinity` of a pod mounting a ReadWriteOnce claim: REQUIRED to share a
    node with the pods that already mount it. The scheduler lets a pod that matches its own
    term land anywhere when no pod matches yet, so the first one chooses the node (or the
    volume's node affinity does); finished pods no longer count."""
    labels = pod_labels(storage)
    if not labels:
        return {}
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": conv.HOSTNAME_TOPOLOGY}
    return {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}


def spread(storage: Storage, replicas: int, selector: dict[str, str]) -> dict[str, Any]:
    """The pod-spec `topologySpreadConstraints` of a service's pods: across nodes when it
    can (ScheduleAnyway: never a reason to stay Pending), for more than one replica that no
    ReadWriteOnce claim keeps on one node."""
    if replicas <= 1 or storage.pinned:
        return {}
    constraint = {
        "maxSkew": 1,
        "topologyKey": conv.HOSTNAME_TOPOLOGY,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": dict(selector)},
    }
    return {"topologySpreadConstraints": [constraint]}
