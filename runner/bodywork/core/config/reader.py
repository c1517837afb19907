"""`parse_project`: a `ProjectFiles` snapshot, in either format, → `ProjectConfig`.

A project has `bodywork.yaml` (read by `yamlfile`) or `bodywork.ini` with a `config.ini` per
stage (read by `inifiles`), never both. Each reader fills a `Draft`; the checks both formats
share run here (Kubernetes names, the original's image, services on one port, GPUs given
twice, limits below requests), and one `ConfigError` lists every problem found. Unknown keys
and sections are warnings, or errors with `strict`; notes never fail. A project name too long
for Kubernetes is cut, with a hash of the whole (`names.object_name`), and a note says so.
`read_project_files` and `load_project` are the small loaders that take the snapshot from a
checkout (`decode_text`: UTF-8, a BOM dropped, or UTF-16 with its BOM); `load_project` names
a bare repository instead of reporting its missing files. `tree_project_files` takes the
same snapshot from a listing of a commit's paths and a reader of its blobs (no checkout).
"""

from __future__ import annotations

import codecs
import functools
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from bodywork.core import names
from bodywork.core.config import checks, inifiles
from bodywork.core.config import schema as s
from bodywork.core.config.draft import Draft
from bodywork.core.config.model import ProjectConfig, ProjectFiles, StageDir
from bodywork.core.errors import ConfigError, Problem, UsageError

_SKIP_DIRS = {"__pycache__", "node_modules", "venv", ".venv"}
# Never holds a project's modules; walking them only costs time (and the file cap).
_SKIP_WALKING = {".git", *_SKIP_DIRS, ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache"}

BOTH_FILES = (
    f"{s.PROJECT_FILE} is at the project root too: keep one ({s.YAML_FILE}, or "
    f"{s.PROJECT_FILE} with a {s.STAGE_FILE} per stage directory)"
)
NEITHER_FILE = (
    f"not found at the project root, nor is {s.PROJECT_FILE}: start one, either {s.YAML_FILE} "
    'with version: "1.1", a pipeline: with name: and DAG: "stage-1 >> stage-2", and stages: '
    f"(each with executable_module_path: and batch: or service:), or {s.PROJECT_FILE} with "
    '[default] PROJECT_NAME and [workflow] DAG = "stage-1 >> stage-2", and a '
    f"{s.STAGE_FILE} in each stage's directory"
)


def local_port_conflicts(project: ProjectConfig) -> list[tuple[str, str, int]]:
    """(first service, second service, port) for services that share a port on one machine.

    Every service of the DAG runs at once in `bodywork run` (a service keeps running after
    its step), so these cannot all start locally; in a cluster they do not collide.
    """
    return checks.port_conflicts(project.dag, project.stages)


def _shared_checks(draft: Draft, files: ProjectFiles, problems: list[Problem]) -> str:
    """Checks both formats share; returns the project name to use."""
    values = draft.values
    project_name = values.get(s.PROJECT_NAME.name) or files.fallback_name
    _, name_key, _ = draft.where(None, s.PROJECT_NAME)
    _, dag_key, _ = draft.where(None, s.DAG)
    in_dag = [stage for step in draft.steps for stage in step]
    problems += checks.k8s_names(
        project_name, in_dag, draft.file, name_key, dag_key, draft.stage_noun
    )
    k8s_project = names.k8s_name(project_name)
    if len(k8s_project) > names.MAX_NAME_LENGTH:
        # It names every object and labels them all (a label value takes 63), and locally it
        # is a directory name (255 bytes at most): cut it, keeping distinct names distinct.
        project_name = names.object_name(k8s_project)
        file, key, line = draft.where(None, s.PROJECT_NAME)
        problems.append(
            Problem(
                file,
                f"'{k8s_project[:40]}…' is {len(k8s_project)} characters long as a "
                f"Kubernetes name, which takes at most {names.MAX_NAME_LENGTH}: the project is "
                f"called '{project_name}' (set a shorter name to choose it)",
                key=key,
                line=line,
                severity="note",
            )
        )
    image = values.get(s.DOCKER_IMAGE.name)
    if image and checks.is_original_image(image):
        values[s.DOCKER_IMAGE.name] = None
        file, key, line = draft.where(None, s.DOCKER_IMAGE)
        problems.append(checks.original_image_note(file, key, image, line))
    for name, stage in draft.stages.items():
        file, key, line = draft.where(name, s.GPUS)
        _, resources_key, _ = draft.where(name, s.EXTENDED_RESOURCES)
        if (twice := checks.gpus_given_twice(stage, file, key, line, resources_key)) is not None:
            problems.append(twice)
        problems += checks.limits_below_requests(stage, functools.partial(draft.where, name))
    for first, second, port in checks.port_conflicts(draft.steps, draft.stages):
        file, key, line = draft.where(second, s.PORT)
        problems.append(checks.port_conflict_warning(file, key, line, first, second, port))
    problems += checks.artifacts_backend(values, functools.partial(draft.where, None))
    return project_name


def parse_project(files: ProjectFiles, strict: bool = False) -> ProjectConfig:
    """Validate a whole project; raise ConfigError listing every problem found.

    `strict`: unknown keys and sections are errors, not warnings.
    """
    problems: list[Problem] = []
    draft: Draft | None = None
    if files.bodywork_ini is not None and files.bodywork_yaml is not None:
        problems.append(Problem(s.YAML_FILE, BOTH_FILES))
    elif files.bodywork_yaml is not None:
        from bodywork.core.config import yamlfile  # PyYAML: imported for bodywork.yaml only

        draft = yamlfile.read(files, problems, strict)
    elif files.bodywork_ini is not None:
        draft = inifiles.read(files, problems, strict)
    else:
        problems.append(Problem(s.YAML_FILE, NEITHER_FILE))
    project_name = _shared_checks(draft, files, problems) if draft is not None else ""
    if draft is None or any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    values = draft.values
    return ProjectConfig(
        project_name=names.k8s_name(project_name),
        dag=draft.steps,
        stages=draft.stages,
        docker_image=values.get(s.DOCKER_IMAGE.name),
        artifacts_pvc=values.get(s.ARTIFACTS_PVC.name),
        artifacts_pvc_access_mode=values.get(s.ARTIFACTS_PVC_ACCESS_MODE.name)
        or s.default_of(s.ARTIFACTS_PVC_ACCESS_MODE),
        artifacts_url=values.get(s.ARTIFACTS_URL.name),
        artifacts_s3_endpoint_url=values.get(s.ARTIFACTS_S3_ENDPOINT_URL.name),
        artifacts_s3_secret=values.get(s.ARTIFACTS_S3_SECRET.name),
        on_failure=draft.on_failure,
        webhook_url_secret=values.get(s.WEBHOOK_URL_SECRET.name),
        log_level=values.get(s.LOG_LEVEL.name) or s.default_of(s.LOG_LEVEL),
        batch_stages_first=bool(values.get(s.BATCH_STAGES_FIRST.name, False)),
        namespace=values.get(s.NAMESPACE.name),
        config_file=draft.file,
        warnings=tuple(p for p in problems if p.severity != "error"),
    )


# ---------------------------------------------------------------------------- loading
def decode_text(data: bytes) -> str:
    """A configuration file's text: UTF-8 as the original read it (a BOM dropped, a bad byte
    read as U+FFFD), or UTF-16 when it starts with UTF-16's BOM (Windows editors' "Unicode")."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    return data.decode("utf-8-sig", errors="replace")


def _read_text(path: str | None) -> str | None:
    """The decoded text of the file at `path`; None for no path (no such file)."""
    if path is None:
        return None
    with open(path, "rb") as file:
        return decode_text(file.read())


def _is(entry: os.DirEntry[str], kind: str) -> bool:
    """entry.is_file() / is_dir(), following a link as Path.is_file() does: a link that
    cannot be followed (a loop, a dangling or over-long one) is neither."""
    try:
        return bool(entry.is_file() if kind == "file" else entry.is_dir())
    except OSError:
        return False


Listings = dict[str, list[os.DirEntry[str]]]  # a folder's path → its entries, by name


def listing(directory: str, listings: Listings | None = None) -> list[os.DirEntry[str]]:
    """`directory`'s entries sorted by name (OSError if it cannot be listed), from
    `listings` when an earlier walk of the same snapshot listed it: the symlink check, the
    stage folders and the yaml file paths each walk the project, a folder listed once."""
    if listings is not None and (known := listings.get(directory)) is not None:
        return known
    with os.scandir(directory) as entries:
        found = sorted(entries, key=lambda entry: entry.name)
    if listings is not None:
        listings[directory] = found
    return found


def _regular_files(directory: str, listings: Listings | None) -> dict[str, str]:
    """The regular files of `directory` (a link to one counts, as with Path.is_file), name →
    path: one listing, where asking each name with is_file() would stat it again."""
    return {e.name: e.path for e in listing(directory, listings) if _is(e, "file")}


def is_bare_repository(path: Path) -> bool:
    """Is `path` a bare git repository (a git directory with no working tree)? Git's own
    test for a git directory: HEAD, objects/ and refs/ (and no bodywork files, which a
    project holding those names would have)."""
    return (
        (path / "HEAD").is_file()
        and (path / "objects").is_dir()
        and (path / "refs").is_dir()
        and not (path / ".git").exists()
        and not (path / s.PROJECT_FILE).exists()
        and not (path / s.YAML_FILE).exists()
    )


def bare_repository_message(path: Path) -> str:
    where = path.resolve()
    return (
        f"{path} is a bare repository (no checked-out files): clone it (git clone {where}) "
        f"or pass its URL ({where.as_uri()})"
    )


def _file_paths(
    top: str, max_files: int | None = None, listings: Listings | None = None
) -> tuple[frozenset[str], bool]:
    """Every file under `top`, relative and POSIX, up to `max_files` (MAX_PROJECT_FILES);
    and whether there were more. As os.walk(top) finds them, folders in name order: a link
    to a folder is a folder, not entered; a folder that cannot be listed is passed over."""
    max_files = s.MAX_PROJECT_FILES if max_files is None else max_files
    found: list[str] = []
    todo = [(top, "")]
    while todo:
        directory, prefix = todo.pop()
        try:
            entries = listing(directory, listings)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if not _is(entry, "dir"):
                found.append(prefix + entry.name)
                if len(found) > max_files:
                    return frozenset(found[:max_files]), True
            elif entry.name not in _SKIP_WALKING and not entry.is_symlink():
                subdirs.append((entry.path, f"{prefix}{entry.name}/"))
        todo += reversed(subdirs)  # depth first, in name order, as os.walk goes
    return frozenset(found), False


def read_project_files(
    root: Path,
    fallback_name: str = s.FALLBACK_PROJECT_NAME,
    max_files: int | None = None,
    listings: Listings | None = None,
) -> ProjectFiles:
    """Snapshot a project checkout: its configuration texts, each top-level directory's files
    (bodywork.ini projects) and, when there is a bodywork.yaml, every file's path.

    One listing per directory (os.scandir, whose entries already know their type), and a file
    is read only when the listing shows it is a regular one: a 10,000-stage project is 10,001
    listings and as many reads, not a stat of every name besides."""
    dirs = {}
    top_files: dict[str, str] = {}
    top = os.path.abspath(root)  # the key of its listing, as confinement's walk has it
    for child in listing(top, listings):
        if _is(child, "file"):
            top_files[child.name] = child.path
        if child.name.startswith(".") or child.name in _SKIP_DIRS or not _is(child, "dir"):
            continue
        files = _regular_files(child.path, listings)
        dirs[child.name] = StageDir(
            config_ini=_read_text(files.get(s.STAGE_FILE)), files=frozenset(files)
        )
    yaml_text = _read_text(top_files.get(s.YAML_FILE))
    paths, too_many = (
        _file_paths(top, max_files, listings) if yaml_text is not None else (frozenset(), False)
    )
    return ProjectFiles(
        bodywork_ini=_read_text(top_files.get(s.PROJECT_FILE)),
        dirs=dirs,
        fallback_name=fallback_name,
        bodywork_yaml=yaml_text,
        paths=paths,
        too_many_files=too_many,
    )


def tree_project_files(
    files: Iterable[str],
    dirs: Iterable[str],
    read: Callable[[list[str]], Mapping[str, bytes]],
    fallback_name: str = s.FALLBACK_PROJECT_NAME,
    max_files: int | None = None,
) -> ProjectFiles:
    """The snapshot `read_project_files` takes of a checkout, from a listing of the commit
    instead: `files` are the project's regular files and `dirs` its folders (each relative
    to the project root, POSIX; a submodule is an empty folder, as a checkout shows it), and
    `read(paths)` gives the bytes of the files asked for (one call). No symlinks: a listing
    holding one is read from a checkout. `max_files`: MAX_PROJECT_FILES by default."""
    max_files = s.MAX_PROJECT_FILES if max_files is None else max_files
    file_set = set(files)
    children: dict[str, list[str]] = {}  # folder ("" the root) → its files' names
    subdirs: dict[str, list[str]] = {}
    for path in file_set:
        folder, _, name = path.rpartition("/")
        children.setdefault(folder, []).append(name)
    for path in set(dirs):
        folder, _, name = path.rpartition("/")
        subdirs.setdefault(folder, []).append(name)
    top = set(children.get("", ()))
    stage_dirs = sorted(
        d for d in subdirs.get("", ()) if not d.startswith(".") and d not in _SKIP_DIRS
    )
    wanted = [name for name in (s.PROJECT_FILE, s.YAML_FILE) if name in top]
    wanted += [f"{d}/{s.STAGE_FILE}" for d in stage_dirs if f"{d}/{s.STAGE_FILE}" in file_set]
    texts = read(wanted)

    def text(path: str) -> str | None:
        data = texts.get(path)
        return None if data is None else decode_text(data)

    snapshot_dirs = {
        d: StageDir(config_ini=text(f"{d}/{s.STAGE_FILE}"), files=frozenset(children.get(d, ())))
        for d in stage_dirs
    }
    yaml_text = text(s.YAML_FILE)
    paths: frozenset[str] = frozenset()
    too_many = False
    if yaml_text is not None:  # os.walk's order: a folder's files, then each subfolder's
        found: list[str] = []
        todo = [""]
        while todo and not too_many:
            folder = todo.pop()
            for name in sorted(children.get(folder, ())):
                found.append(f"{folder}/{name}" if folder else name)
                if len(found) > max_files:
                    found, too_many = found[:max_files], True
                    break
            walked = sorted(d for d in subdirs.get(folder, ()) if d not in _SKIP_WALKING)
            todo += [f"{folder}/{d}" if folder else d for d in reversed(walked)]
        paths = frozenset(found)
    return ProjectFiles(
        bodywork_ini=text(s.PROJECT_FILE),
        dirs=snapshot_dirs,
        fallback_name=fallback_name,
        bodywork_yaml=yaml_text,
        paths=paths,
        too_many_files=too_many,
    )


def load_project(
    root: Path,
    fallback_name: str = s.FALLBACK_PROJECT_NAME,
    strict: bool = False,
    listings: Listings | None = None,
) -> ProjectConfig:
    if is_bare_repository(root):
        raise UsageError(bare_repository_message(root))
    files = read_project_files(root, fallback_name, listings=listings)
    return parse_project(files, strict=strict)
