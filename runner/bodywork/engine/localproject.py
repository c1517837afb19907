"""A local project's identity, and the artifacts folder under BODYWORK_HOME it owns.

Locally, a project is its name *and* where it comes from: two repositories whose
PROJECT_NAME normalise alike are two projects, and must not read each other's model. The
identity is the name plus a short hash of the repository (its URL, or its working tree's
path) and the project folder inside it; the folder `BODYWORK_HOME/projects/<name>-<hash>/`
keeps the name readable, holds `artifacts/` and `project.json`, which records the identity
that owns it. A folder whose record names another identity (copied by hand, or a hash
collision) is refused naming both, with the fix. The run lock (`locallock`) uses the same key.

Two clones of one remote at different paths are two projects locally (each keeps its own
artifacts); a URL and a local clone of it too. The URL is compared without a trailing `/`
or `.git`.

Migration: before identities, the folder was `BODYWORK_HOME/projects/<name>/` with no
`project.json`. The first run of a project of that name after the upgrade takes it over: it
is renamed to the keyed folder (so the artifacts of earlier runs are kept), recorded as this
identity's, and a warning says so, and how to move it back if it belonged to another
repository named alike (no earlier version recorded where a folder came from).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from bodywork.core.errors import UsageError
from bodywork.core.plan import Plan
from bodywork_bootstrap import envnames
from bodywork_bootstrap.recordclass import asdict, record
from bodywork_bootstrap.redaction import redact

PROJECTS = "projects"
MARKER = "project.json"
ARTIFACTS = "artifacts"
HASH_CHARS = 10  # 40 bits: a collision is named by project.json, never silently shared
MAX_KEY_CHARS = 63  # a readable folder name (and far below a file name's 255 bytes)


@record(frozen=True)
class ProjectIdentity:
    name: str  # PROJECT_NAME as planned (a Kubernetes name, at most 63 characters)
    location: str  # the repository: its URL, or its working tree as a file:// URI
    project_dir: str = ""  # the project's folder inside the repository ("" = its root)

    @property
    def key(self) -> str:
        """`<name>-<hash>`, at most MAX_KEY_CHARS: the project's folder and lock name."""
        material = f"{self.location}\0{self.project_dir}".encode()
        digest = hashlib.sha256(material).hexdigest()[:HASH_CHARS]
        return f"{self.name[: MAX_KEY_CHARS - HASH_CHARS - 1]}-{digest}"

    def describe(self) -> str:
        where = redact(self.location)
        if self.project_dir:
            where += f" (folder {self.project_dir})"
        return f"project '{self.name}' of {where}"


def _normal_location(repo_url: str) -> str:
    location = repo_url.rstrip("/")
    return location.removesuffix(".git") if not location.startswith("file:") else location


def identity_of(plan: Plan) -> ProjectIdentity:
    return ProjectIdentity(
        name=plan.project,
        location=_normal_location(plan.source.repo_url),
        project_dir=plan.source.project_dir,
    )


def project_folder(home: Path, identity: ProjectIdentity) -> Path:
    return home / PROJECTS / identity.key


def recorded_identity(folder: Path) -> ProjectIdentity | None:
    """The identity a project folder's project.json records (None: none, or unreadable)."""
    try:
        data = json.loads((folder / MARKER).read_text())
        return ProjectIdentity(str(data["name"]), str(data["location"]), str(data["project_dir"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record(folder: Path, identity: ProjectIdentity) -> None:
    """Write project.json atomically (a reader never sees half of it)."""
    temporary = folder / f".{MARKER}.{os.getpid()}"
    temporary.write_text(json.dumps({**asdict(identity), "key": identity.key}, indent=1) + "\n")
    os.replace(temporary, folder / MARKER)


def _collision(folder: Path, owner: ProjectIdentity, identity: ProjectIdentity) -> UsageError:
    return UsageError(
        f"{folder} holds the artifacts of {owner.describe()}, not of this run's "
        f"{identity.describe()} (its {MARKER} says so): move that folder away (its artifacts "
        f"go with it), or point {envnames.HOME} at another directory"
    )


def _adopt_legacy(home: Path, identity: ProjectIdentity, folder: Path) -> Path | None:
    """Rename the previous layout's `projects/<name>/` to `folder`, if it is one (a
    folder of that name with artifacts and no project.json). Returns where it was."""
    legacy = home / PROJECTS / identity.name
    if legacy == folder or not (legacy / ARTIFACTS).is_dir() or (legacy / MARKER).exists():
        return None
    try:
        os.rename(legacy, folder)
    except FileNotFoundError:  # another project of that name took it over just now
        return None
    except OSError:
        return None  # left where it is; this identity starts afresh
    return legacy


def artifacts_dir(
    home: Path, identity: ProjectIdentity, warn: Callable[[str], None] = lambda _: None
) -> Path:
    """The artifacts folder of `identity` under `home`, created and recorded as its own;
    a UsageError when the folder is recorded as another identity's."""
    folder = project_folder(home, identity)
    owner = recorded_identity(folder)
    if owner is not None and owner != identity:
        raise _collision(folder, owner, identity)
    if not folder.exists():
        legacy = _adopt_legacy(home, identity, folder)
        if legacy is not None:
            warn(
                f"the artifacts of earlier runs of '{identity.name}' moved from {legacy} to "
                f"{folder}: local artifacts are now kept per repository too, and these are "
                f"taken to belong to {identity.describe()}; if they belong to another "
                f"repository named alike, move the folder back to {legacy} before running that "
                "one"
            )
    (folder / ARTIFACTS).mkdir(parents=True, exist_ok=True)
    if owner is None:
        with contextlib.suppress(FileExistsError):
            _record(folder, identity)
        recorded = recorded_identity(folder)  # another run may have recorded it meanwhile
        if recorded is not None and recorded != identity:
            raise _collision(folder, recorded, identity)
    return folder / ARTIFACTS
