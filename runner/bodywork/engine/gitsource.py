"""Pin a run to one commit: resolve a path or URL plus a branch/tag/SHA to a full SHA, once.

Everything after resolution (the controller reading config, every stage) uses that SHA, so
a push during the run, or a service pod restarting next week, never runs other code.
Local paths run their committed HEAD; uncommitted changes are reported, not silently lost.
Fetching a commit is the bootstrapper's `gitfetch`, shared so both sides fetch the same way;
`ls-remote` runs through it too, so a server that accepts the connection and then says nothing
ends in one line naming it (BODYWORK_GIT_STALL_SECONDS) instead of a silent wait.
A local repository is read with the git executable too (`rev-parse`, `status`): three short
processes, and no git library to import before a command can start. A repository another
user owns, which git refuses to read ("dubious ownership"), is named with the fix.
`read_commit` reads a project at its commit from git's objects (`ls-tree`, `cat-file`) for
commands that need no checkout (render, deploy, validate of a URL); what only a checkout
shows as it is (symlinks, attributes) is still checked out.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bodywork.core.errors import GitSourceError, UsageError
from bodywork.engine import confinement
from bodywork_bootstrap.redaction import redact

if TYPE_CHECKING:
    import subprocess

    from bodywork.core.config import ProjectFiles
    from bodywork.core.plan import Source

# gitfetch (subprocess, selectors, threads: ~15 ms) is imported by the functions that run git,
# and the plan (its record classes, secrets, datetime: ~6 ms) by those that pin a Source, so
# `bodywork validate PATH`, which only asks `is_url`, starts without them.

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}$")
_URL = re.compile(r"^(file|https?|git|ssh)://|^[\w.-]+@[\w.-]+:")
_TRANSIENT = re.compile(
    r"could not resolve host|connection (refused|reset|timed out)|timed out|early eof|"
    r"hung up unexpectedly|temporary failure|http 5\d\d|503|502",
    re.IGNORECASE,
)
LS_REMOTE_ATTEMPTS = 3


def is_url(location: str) -> bool:
    return bool(_URL.match(location))


class _LsRemoteFailed(Exception):
    """git ls-remote exited non-zero; `stderr` is what it said."""

    def __init__(self, stderr: str):
        super().__init__(stderr)
        self.stderr = stderr


def _git_error_reason(stderr: str, url: str | None = None) -> str:
    from bodywork_bootstrap import gitfetch

    explained = gitfetch.explain_auth_failure(stderr, url)
    if explained:
        return explained
    line = gitfetch.last_message(stderr) or "git failed"
    return redact(line.split("fatal:", 1)[-1].strip())


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _LsRemoteFailed) and bool(_TRANSIENT.search(exc.stderr))


def _ls_remote(url: str, *patterns: str, env: Mapping[str, str] | None = None) -> str:
    """`git ls-remote URL PATTERNS`, retried on a transient failure (tenacity, imported
    only when a URL is read); see `_ls_remote_once`."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

    retrying = Retrying(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(LS_REMOTE_ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=0.5, max=4),
        reraise=True,
    )
    listing: str = retrying(_ls_remote_once, url, *patterns, env=env)
    return listing


def _ls_remote_once(url: str, *patterns: str, env: Mapping[str, str] | None = None) -> str:
    """`git ls-remote URL PATTERNS`, held to gitfetch's stall bound: a server that accepts
    the connection and says nothing is GitStalled (not retried), with git killed."""
    from bodywork_bootstrap import gitfetch

    merged = {**os.environ, **(env or {})}
    git_vars = {k: v for k, v in gitfetch.git_env(env, url=url).items() if k.startswith("GIT_")}
    done = gitfetch.run_git(
        ["ls-remote", url, *patterns],
        None,
        {**os.environ, **git_vars, "LANGUAGE": "C", "LC_ALL": "C"},  # messages we can parse
        url=url,
        stall=gitfetch.stall_seconds(merged),
    )
    if done.returncode != 0:
        raise _LsRemoteFailed(done.stderr)
    return done.stdout


def resolve_remote(url: str, ref: str | None, env: Mapping[str, str] | None = None) -> Source:
    """`env`: where git credentials come from (see gitfetch.git_env); default os.environ."""
    from bodywork.core.plan import Source
    from bodywork_bootstrap import gitfetch

    if ref and _FULL_SHA.match(ref):
        return Source(repo_url=url, commit=ref, ref=ref)
    if ref and _SHORT_SHA.match(ref):
        raise GitSourceError(
            f"'{ref}' looks like a short commit SHA: give all 40 characters for a remote repo"
        )
    wanted = ref or "HEAD"
    try:
        # `ls-remote URL v1` omits the peeled `refs/tags/v1^{}` line: ask for it by name.
        listing = _ls_remote(url, wanted, f"{wanted}^{{}}", env=env)
    except _LsRemoteFailed as exc:
        raise GitSourceError(
            f"cannot read {redact(url)}: {_git_error_reason(exc.stderr, url)}"
        ) from exc
    except gitfetch.FetchError as exc:  # a stalled server; the SSH key or known_hosts unusable
        raise GitSourceError(f"cannot read {redact(url)}: {exc}") from exc
    refs: dict[str, str] = {}
    for line in listing.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    for name in (
        wanted,
        f"refs/heads/{wanted}",
        f"refs/tags/{wanted}^{{}}",  # an annotated tag's commit, not the tag object
        f"refs/tags/{wanted}",
    ):
        if name in refs:
            return Source(repo_url=url, commit=refs[name], ref=wanted)
    if wanted == "HEAD":
        raise GitSourceError(f"{redact(url)} has no default branch (HEAD): pass --branch")
    raise GitSourceError(
        f"no branch or tag '{wanted}' in {redact(url)}: check the name with "
        f"`git ls-remote {redact(url)}`"
    )


NOT_A_REPO = (
    "{path} is not inside a git repository: Bodywork runs committed code, so "
    "`git init && git add -A && git commit -m 'first'` first"
)


def _git_here(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in the local repository at `cwd`, its messages in English so they parse.
    The repository is on this machine: no server, so no stall bound is needed."""
    from bodywork_bootstrap import gitfetch

    env = {**os.environ, "LANGUAGE": "C", "LC_ALL": "C"}
    try:
        return gitfetch.run_git(args, cwd, env)
    except gitfetch.FetchError as exc:  # git is not installed
        raise GitSourceError(str(exc)) from exc


def dubious_ownership(stderr: str, path: Path) -> GitSourceError | None:
    """git refuses a repository another user owns ("detected dubious ownership", git 2.35.2
    on): the error naming the repository and the fix, or None when git said something else.
    A local run reads the working tree and then fetches from its git directory, and git
    checks each: both need the exception when the git directory is `.git` inside it."""
    from bodywork_bootstrap import gitfetch

    explained = gitfetch.explain_dubious_ownership(stderr, path)
    return GitSourceError(explained) if explained else None


def _git_failure(done: subprocess.CompletedProcess[str], path: Path) -> GitSourceError | None:
    return dubious_ownership(done.stderr, path) if done.returncode != 0 else None


def resolve_local(path: Path, ref: str | None, warn: Callable[[str], None]) -> Source:
    here = path if path.is_dir() else path.parent
    wanted = ref or "HEAD"
    # HEAD's uncommitted changes are asked for at once, beside the pin (a second process
    # while the first runs), and read only once the pin says this is a repository.
    status = _start_status(here, path) if ref is None else None
    try:
        return _resolve_local(path, here, wanted, ref, status, warn)
    finally:
        if status is not None and status.returncode is None:
            status.kill()
            status.communicate()


def _start_status(here: Path, path: Path) -> subprocess.Popen[str]:
    """`git status --porcelain` of `path` (everything under it), started in `here`."""
    import subprocess

    # Literal: a folder named `data[1]` is that folder, not a glob.
    env = {**os.environ, "LANGUAGE": "C", "LC_ALL": "C", "GIT_LITERAL_PATHSPECS": "1"}
    try:
        return subprocess.Popen(
            ["git", "status", "--porcelain", "--", str(path.resolve())], cwd=here, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    except FileNotFoundError:
        raise GitSourceError("git is not installed (no `git` on PATH)") from None


def _resolve_local(
    path: Path,
    here: Path,
    wanted: str,
    ref: str | None,
    status: subprocess.Popen[str] | None,
    warn: Callable[[str], None],
) -> Source:
    from bodywork.core.plan import Source

    # One process: the working tree's root, then the commit (nothing when it is not one).
    found = _git_here(
        ["rev-parse", "--show-toplevel", "--verify", "--quiet", "--end-of-options",
         f"{wanted}^{{commit}}"],
        here,
    )  # fmt: skip
    if (refused := _git_failure(found, path)) is not None:
        raise refused
    lines = found.stdout.splitlines()
    if not lines or (found.returncode != 0 and len(lines) != 1):
        raise GitSourceError(NOT_A_REPO.format(path=path))
    top = Path(lines[0]).resolve()
    project_dir = path.resolve().relative_to(top).as_posix()
    project_dir = "" if project_dir == "." else project_dir
    commit = lines[1].strip() if len(lines) > 1 else ""
    if found.returncode != 0 or not _FULL_SHA.match(commit):
        what = f"'{ref}'" if ref else "HEAD"
        raise GitSourceError(
            f"{what} is not a commit in {top}" + ("" if ref else ": the repository has no commits")
        )
    if status is not None:
        out, err = status.communicate()
        if status.returncode != 0 and (refused := dubious_ownership(err, path)) is not None:
            raise refused
        changed = out.splitlines() if status.returncode == 0 else []
        if changed:
            warn(
                f"{len(changed)} uncommitted change(s) in {path} are NOT part of this run, "
                f"which runs the last commit {commit[:12]}: commit them to include them"
            )
    return Source(repo_url=top.as_uri(), commit=commit, ref=wanted, project_dir=project_dir)


def refuse_embedded_credentials(url: str) -> None:
    """A token in the URL would sit in every Job's args, in `ps` for a service's whole life
    and in every rendered manifest: refuse it and name the way that keeps it secret."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and (parts.username or parts.password):
        raise UsageError(
            f"{redact(url)} carries credentials in the URL, where every Job's arguments and "
            "`ps` would show them: remove them from the URL, then put the token in a Secret "
            "(`kubectl create secret generic repo-token --from-literal=token=...`) and pass "
            "--git-token-secret repo-token; locally, export BODYWORK_GIT_TOKEN instead"
        )


def resolve(
    location: str,
    ref: str | None,
    warn: Callable[[str], None],
    project_dir: str = "",
    env: Mapping[str, str] | None = None,
) -> Source:
    """Pin `location` (a path or git URL) at `ref` (default: HEAD) to a full commit SHA.

    `env` carries git credentials (gitfetch.git_env); default: this process's environment."""
    from bodywork.core.plan import Source

    if is_url(location):
        refuse_embedded_credentials(location)
        inside = confinement.project_dir_in_url_repo(project_dir)  # before any network call
        source = resolve_remote(location, ref, env)
        return Source(source.repo_url, source.commit, source.ref, inside)
    path = Path(location) / project_dir if project_dir else Path(location)
    if not path.exists():
        raise GitSourceError(f"{location} does not exist (expected a project path or git URL)")
    if project_dir:
        top = confinement.repo_root_of(Path(location))
        confinement.check_local_project_dir(Path(location), project_dir, top)
    return resolve_local(path, ref, warn)


def checkout(
    source: Source,
    dest: Path,
    env: Mapping[str, str] | None = None,
    commit_cache: Path | None = None,
    fetched: bool = False,
) -> Path:
    """Check out the pinned commit into `dest`; return the project root inside it.

    `commit_cache`: the stages' commit cache (a local run's); the commit is fetched into it
    once, here, and every stage of the run copies it from there instead of fetching again.
    `fetched`: `read_commit` fetched the commit into `dest` already; only check it out."""
    from bodywork_bootstrap import gitfetch

    try:
        if fetched:
            git = gitfetch.git_env(env, url=source.repo_url)
            gitfetch.checkout_fetched(source.repo_url, source.commit, dest, git)
        elif commit_cache is None:
            gitfetch.fetch_commit(source.repo_url, source.commit, dest, env)
        else:
            gitfetch.checkout_commit(source.repo_url, source.commit, dest, commit_cache, env)
    except gitfetch.FetchError as exc:
        raise _fetch_failure(source, dest, exc) from exc
    root = dest / source.project_dir
    if not root.is_dir():
        raise _no_project_dir(source)
    # Before any file is read: a committed symlink pointing out would bring in other code.
    confinement.refuse_links_leaving(root, dest)
    return root


def _fetch_failure(source: Source, dest: Path, exc: Exception) -> GitSourceError:
    if source.repo_url.startswith("file://"):  # git may refuse the local git directory
        probe = _git_here(["ls-remote", source.repo_url, "HEAD"], dest.parent)
        if (refused := _git_failure(probe, dest)) is not None:
            return refused
    return GitSourceError(str(exc))


def _no_project_dir(source: Source) -> GitSourceError:
    return GitSourceError(
        f"'{source.project_dir}' does not exist in the repo at {source.commit[:12]}"
    )


_LINK, _SUBMODULE, _TREE = "120000", "160000", "040000"
# What a checkout could show differently from the committed bytes: attributes (eol, filters,
# working-tree-encoding) and core.autocrlf; core.attributesFile may name attributes too.
_ATTRIBUTES = ".gitattributes"
_CHECKOUT_CONFIG = r"^core\.(autocrlf|attributesfile)$"
_BARE_NAMES = ("HEAD", "objects", "refs")
_SYSTEM_ATTRIBUTES = "/etc/gitattributes"


def read_commit(
    source: Source,
    dest: Path,
    env: Mapping[str, str] | None,
    fallback_name: str,
    max_files: int | None = None,
) -> ProjectFiles | None:
    """The project's snapshot at the pinned commit, read from git's objects without a
    checkout: in the repository itself when it is on this machine (a local path; nothing to
    fetch), else from the commit fetched into `dest` (an empty folder) as `checkout` does.
    One `ls-tree` lists every path and one `cat-file --batch` reads the configuration
    files. Equal to `config.read_project_files` of a checkout, errors included.

    None when only a checkout shows the project as it is (the caller checks it out then,
    in `dest`, fetched by then, with `checkout(..., fetched=True)`):
    a symlink in the project or on the way to it (what it resolves to is the file
    system's answer, confinement's rules applied to it), a .gitattributes anywhere, a
    core.autocrlf or core.attributesFile setting or a global attributes file (a checkout
    would rewrite the texts), a path git's output cannot spell, a project folder that
    looks like a bare repository (`load_project` names that with the checkout's path)."""
    from bodywork_bootstrap import gitfetch

    here = _local_repository(source.repo_url)
    if here is not None:  # a repository on this machine holds the commit: read it there
        files = _read_objects(source, here, _in_place_env(), fallback_name, max_files)
        if files is not None:
            return files
    try:
        git = gitfetch.fetch_objects(source.repo_url, source.commit, dest, env)
    except gitfetch.FetchError as exc:
        raise _fetch_failure(source, dest, exc) from exc
    return _read_objects(source, dest, git, fallback_name, max_files)


def is_on_this_machine(source: Source) -> bool:
    """Is the source's repository a folder here (read_commit reads it in place)?"""
    return _local_repository(source.repo_url) is not None


def _local_repository(url: str) -> Path | None:
    """The folder of a file:// repository that is there, else None."""
    if not url.startswith("file://"):
        return None
    path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    return path if path.is_dir() else None


def _in_place_env() -> dict[str, str]:
    """git's environment for reading the user's own repository: English messages, and
    neither replacement refs (`git replace`, which a fetch would not bring) nor a partial
    clone's lazy fetch (a missing object sends the read to the fetch instead)."""
    return {**os.environ, "LANGUAGE": "C", "LC_ALL": "C", "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_NO_LAZY_FETCH": "1"}  # fmt: skip


def _read_objects(
    source: Source,
    repo: Path,
    git: Mapping[str, str],
    fallback_name: str,
    max_files: int | None,
) -> ProjectFiles | None:
    """read_commit's work in `repo`, a repository holding the commit: None when only a
    checkout shows the project as it is, or an object is missing there."""
    import subprocess

    from bodywork.core import config
    from bodywork_bootstrap import gitfetch

    # Three local processes, started together: the settings, the blob reader, the listing.
    settings = subprocess.Popen(
        ["git", "config", "--get-regexp", _CHECKOUT_CONFIG], cwd=repo, env=git,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    reader = subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=repo, env=git,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        listed = gitfetch.run_git(["ls-tree", "-r", "-z", "--full-tree", source.commit], repo, git)
        configured = settings.communicate()[0].strip()
        files = None
        if listed.returncode == 0 and not configured and not _global_attributes(git):
            files = _listed_files(source, listed.stdout)  # None: a link or attributes
        if files is None:  # or not a commit after all: the checkout's error names it
            return None
        blobs = files[0]
        return config.tree_project_files(
            blobs, files[1], lambda paths: _cat_blobs(reader, {p: blobs[p] for p in paths}),
            fallback_name, max_files,
        )  # fmt: skip
    except _MissingObject:
        return None
    finally:
        for process in (settings, reader):
            if process.returncode is None:
                process.communicate(b"" if process is reader else None)


class _MissingObject(GitSourceError):
    """The repository does not hold one of the commit's blobs (a partial clone)."""


def _listed_files(source: Source, listing: str) -> tuple[dict[str, str], set[str]] | None:
    """From `ls-tree -r -z` of the commit: the project's files (relative to its root → the
    blob) and folders; None when only a checkout shows them as they are (see read_commit)."""
    prefix = f"{source.project_dir}/" if source.project_dir else ""
    above = {source.project_dir.rsplit("/", n)[0] for n in range(source.project_dir.count("/") + 1)}
    files: dict[str, str] = {}  # relative to the project root → blob
    dirs: set[str] = set()
    found_root = not prefix
    for record in listing.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, _, oid = meta.partition(" ")
        oid = oid.rpartition(" ")[2]
        name = path.rpartition("/")[2]
        if "\ufffd" in path or name == _ATTRIBUTES:
            return None
        if prefix and path in above:  # the project folder or one above it is not a folder
            if mode == _LINK:
                return None
            if path == source.project_dir and mode == _SUBMODULE:
                found_root = True
            continue
        if not path.startswith(prefix):
            continue
        found_root = True
        inside = path[len(prefix) :]
        if mode == _LINK:
            return None
        parts = inside.split("/")
        dirs.update("/".join(parts[:n]) for n in range(1, len(parts)))
        if mode == _SUBMODULE:
            dirs.add(inside)
        elif mode != _TREE:
            files[inside] = oid
    if not found_root:
        raise _no_project_dir(source)
    top = {p for p in (*files, *dirs) if "/" not in p}
    if all(n in top for n in _BARE_NAMES) and prefix:
        return None
    return files, dirs


def _global_attributes(env: Mapping[str, str]) -> bool:
    """Is there an attributes file git reads by default ($XDG_CONFIG_HOME/git, /etc)?"""
    home = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME", "~"), ".config")
    user = os.path.join(os.path.expanduser(home), "git", "attributes")
    return os.path.exists(user) or os.path.exists(_SYSTEM_ATTRIBUTES)


def _cat_blobs(reader: subprocess.Popen[bytes], blobs: Mapping[str, str]) -> dict[str, bytes]:
    """The bytes of each blob (path → object id), read by `reader` (`git cat-file --batch`)."""
    order = list(blobs.items())
    out, err = reader.communicate("".join(f"{oid}\n" for _, oid in order).encode())
    if reader.returncode != 0:
        raise GitSourceError(f"cannot read the commit's files: {err.decode(errors='replace')}")
    at, texts = 0, {}
    for path, _ in order:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if header[1:] == [b"missing"]:
            raise _MissingObject(f"'{path}' is not in the repository")
        if len(header) != 3 or header[1] != b"blob":
            raise GitSourceError(f"cannot read '{path}' from the commit: git said {out[at:end]!r}")
        size = int(header[2])
        texts[path] = out[end + 1 : end + 1 + size]
        at = end + 1 + size + 1
    return texts


def project_fallback_name(source: Source) -> str:
    """PROJECT_NAME when bodywork.ini does not set it: the project folder or repo name."""
    if source.project_dir:
        return Path(source.project_dir).name
    name = source.repo_url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return name.removesuffix(".git") or "project"
