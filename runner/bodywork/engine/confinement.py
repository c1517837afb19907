"""What a run reads stays inside the pinned checkout: the project dir and the symlinks.

A symlink committed to the repository is checked out as a link: one to `/srv/models` or to
`../../elsewhere` makes a stage folder, a module, a requirements file or a configuration
file come from outside the commit, so the run would execute code the commit does not hold.
`refuse_links_leaving` walks a project (before any of its files is read) and raises one
ConfigError naming every such link and where it points (the message is core's
`checks.link_leaving_repo`); links that stay inside the repository keep working.
`project_dir_in_url_repo` and `check_local_project_dir` refuse a `--project-dir` that
leaves the repository (`..`, an absolute path, or a symlinked folder pointing out).

A link counts as leaving when its target is absolute (a checkout elsewhere would not hold
it, even if it names a path inside this working tree today), when following it leaves the
repository's root, or when it leads into `.git`. The walk skips the folders the config
reader skips (virtualenvs, caches) and stops after MAX_PROJECT_FILES entries, as the
reader's snapshot does; the bootstrapper still refuses a module or requirements file that
resolves outside the checkout at run time.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from bodywork.core.config import checks
from bodywork.core.config import schema as s
from bodywork.core.config.reader import Listings, listing
from bodywork.core.errors import ConfigError, Problem, UsageError

# The config reader's own skip list (core.config.reader): never a project's modules.
SKIPPED_DIRS = frozenset(
    {".git", "__pycache__", "node_modules", "venv", ".venv", ".tox", ".nox", ".mypy_cache",
     ".pytest_cache", ".ruff_cache"}
)  # fmt: skip


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _link_problem(link: str, relative: str, repo: str) -> Problem | None:
    """The problem with the symlink at `link` (shown as `relative`), if it leaves `repo`."""
    try:
        target = os.readlink(link)
    except OSError:
        return None  # it went away while we looked: nothing left to read through it
    resolved = os.path.realpath(link)
    if os.path.isabs(target) or not _inside(resolved, repo):
        return checks.link_leaving_repo(relative, target)
    in_repo = os.path.relpath(resolved, repo).split(os.sep)
    if in_repo[0] == ".git":
        return checks.link_leaving_repo(relative, target, into_git=True)
    return None


def links_leaving(
    project_root: Path, repo_root: Path, listings: Listings | None = None
) -> list[Problem]:
    """A problem for each symlink under `project_root` (and for the project folder itself,
    or a folder above it inside the repository, when that is a link) that leaves
    `repo_root`."""
    repo = os.path.realpath(repo_root)
    problems: list[Problem] = []
    # The folders from the repository's root down to the project: one may be a link.
    relative_dir = os.path.relpath(os.path.abspath(project_root), os.path.abspath(repo_root))
    if relative_dir != "." and not relative_dir.startswith(".."):
        walked = os.path.abspath(repo_root)
        for part in relative_dir.split(os.sep):
            walked = os.path.join(walked, part)
            if os.path.islink(walked):
                shown = os.path.relpath(walked, os.path.abspath(repo_root))
                problem = _link_problem(walked, f"--project-dir {shown}", repo)
                if problem is not None:
                    return [problem]  # nothing under it is the repository's
    root = os.path.abspath(project_root)
    for path, shown in _symlinks(root, listings):
        problem = _link_problem(path, shown, repo)
        if problem is not None:
            problems.append(problem)
    return problems


def _symlinks(root: str, listings: Listings | None = None) -> list[tuple[str, str]]:
    """(path, path relative to `root` in POSIX form) of every symlink under `root`, linked
    folders not entered, skipped folders not walked, at most MAX_PROJECT_FILES entries
    looked at. Entries' types come from the directory listing: no stat per file."""
    found: list[tuple[str, str]] = []
    seen = 0
    todo = [(root, "")]
    while todo:
        directory, relative = todo.pop()
        try:
            entries = listing(directory, listings)  # kept for the reads that follow
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > s.MAX_PROJECT_FILES:
                return found
            shown = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_symlink():
                found.append((entry.path, shown))
            elif entry.name not in SKIPPED_DIRS and entry.is_dir(follow_symlinks=False):
                todo.append((entry.path, shown))
    return found


def refuse_links_leaving(
    project_root: Path, repo_root: Path, listings: Listings | None = None
) -> None:
    """Raise ConfigError (exit 2) naming every symlink of the project that leaves the
    repository, before any configuration file is read through one. `listings` keeps the
    folders' listings for the reads that follow."""
    problems = links_leaving(project_root, repo_root, listings)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.file))


def project_dir_in_url_repo(project_dir: str) -> str:
    """`--project-dir` for a repository given by URL, normalised (no `.`, no doubled or
    outer `/`); a UsageError when it leaves the repository (`..` above its root)."""
    given = project_dir.strip().strip("/")  # "/ml/" has always meant the folder ml
    if "\\" in given or (len(given) > 1 and given[1] == ":"):
        raise UsageError(_outside(project_dir, "write it with '/', relative to the root"))
    normal = posixpath.normpath(given) if given else ""
    if normal == ".." or normal.startswith("../"):
        raise UsageError(_outside(project_dir, "its '..' climbs above the repository's root"))
    return "" if normal in ("", ".") else normal


def check_local_project_dir(location: Path, project_dir: str, repo_root: Path) -> None:
    """`--project-dir` for a local repository: it must lead to a folder inside `repo_root`
    (the working tree `location` is in), also once its symlinks are followed."""
    if not project_dir:
        return
    if Path(project_dir).is_absolute():
        raise UsageError(_outside(project_dir, "it is absolute"))
    top = os.path.normpath(os.path.abspath(repo_root))
    wanted = os.path.normpath(os.path.abspath(location / project_dir))
    if not _inside(wanted, top):
        raise UsageError(_outside(project_dir, f"it leads to {wanted}, outside {top}"))
    resolved = os.path.realpath(wanted)
    if not _inside(resolved, os.path.realpath(top)):
        raise UsageError(
            _outside(project_dir, f"it leads through a symlink to {resolved}, outside {top}")
        )


def _outside(project_dir: str, why: str) -> str:
    return (
        f"--project-dir '{project_dir}' leaves the repository ({why}): give the project's "
        "folder relative to the repository's root, inside it (e.g. --project-dir ml/project)"
    )


def repo_root_of(path: Path) -> Path:
    """The working tree `path` is in: the nearest folder at or above it holding `.git`
    (a folder, or a worktree's file), else `path` itself."""
    start = Path(os.path.abspath(path))
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start
