"""Local mode's S3 artifacts backend: the bucket synced from `bodywork run` itself.

With ARTIFACTS_URL in the project (or `bodywork run --artifacts-url`), the local executor
keeps the project's artifacts directory as it always has, and also syncs it with
`<prefix>/<project>/` in the bucket: before each stage starts it pulls (files identical
here are skipped; a file changed here since the last sync while the bucket's copy did not
change is kept, so a running stage's output is never overwritten), and after each batch
stage succeeds it pushes what is new or changed. Both run in this process, with
bodywork_bootstrap.artifacts, using the AWS_* credentials of this process's environment;
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are then removed from every
stage's environment (a stage that needs them declares them in its [secrets]). Before any
stage starts, the prefix is listed: missing credentials, a wrong endpoint or bucket, or a
refusal end the run at once, naming the bucket and what to set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bodywork.core.errors import BodyworkError, UsageError
from bodywork.core.plan import Plan
from bodywork_bootstrap import EXIT_ARTIFACTS_CONFIG, envnames
from bodywork_bootstrap.recordclass import field, record

if TYPE_CHECKING:
    from bodywork_bootstrap import artifacts, s3

# The S3 client (http.client, ssl, email: ~20 ms) is imported only by a run with a bucket.

FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION, AWS_SESSION_TOKEN if "
    "needed) in the environment of `bodywork run`, and check ARTIFACTS_URL and "
    "ARTIFACTS_S3_ENDPOINT_URL (or --artifacts-url, --artifacts-s3-endpoint-url)"
)


@record
class BucketSync:
    """The project's bucket prefix and its local directory; one transfer at a time."""

    client: s3.S3Client
    target: artifacts.Target
    directory: Path
    manifest: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pull(self, say: Callable[[str], None]) -> str | None:
        """Pull into the directory; None, or why it failed (one line)."""
        from bodywork_bootstrap import artifacts

        with self._lock:
            try:
                artifacts.pull(self.client, self.target, self.directory, self.manifest, say)
            except artifacts.ArtifactsError as exc:
                return f"artifacts pull failed: {exc}"
        return None

    def push(self, say: Callable[[str], None]) -> str | None:
        """Push what is new or changed; None, or why it failed (one line)."""
        from bodywork_bootstrap import artifacts

        with self._lock:
            try:
                artifacts.push(self.client, self.target, self.directory, self.manifest, say)
            except artifacts.ArtifactsError as exc:
                return f"artifacts push failed: {exc}"
        return None

    def close(self) -> None:
        with self._lock:
            self.client.close()


def connect(
    plan: Plan,
    directory: Path,
    env: Mapping[str, str],
    url: str | None = None,
    endpoint_url: str | None = None,
) -> BucketSync | None:
    """The bucket of this run (`url` wins over the project's ARTIFACTS_URL; the same for the
    endpoint), checked by listing its prefix; None when the project has none."""
    url = url or plan.artifacts_url
    if not url:
        return None
    from bodywork_bootstrap import artifacts

    endpoint_url = endpoint_url or plan.artifacts_s3_endpoint_url
    try:
        target = artifacts.parse_target(url, plan.project)
        client = artifacts.make_client(target, endpoint_url, env)
    except artifacts.ArtifactsError as exc:
        raise UsageError(f"artifacts in S3: {exc}") from None
    try:
        artifacts.check_access(client, target)
    except artifacts.ArtifactsError as exc:
        client.close()
        error = UsageError if exc.code == EXIT_ARTIFACTS_CONFIG else BodyworkError
        raise error(f"artifacts in S3: {exc}; {FIX}") from None
    return BucketSync(client, target, directory, artifacts.default_manifest(directory))


def without_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the S3 credentials: what a stage's bootstrapper is started with."""
    return {k: v for k, v in env.items() if k not in envnames.S3_CREDENTIAL_ENV}
