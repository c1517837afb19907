"""Sync a project's artifacts with an S3 bucket: the S3 backend's `pull` and `push`.

    python3 -m bodywork_bootstrap.artifacts pull --url s3://BUCKET[/PREFIX] --project P
        --dir D [--endpoint-url E] [--manifest F] [--termination-log PATH]
    python3 -m bodywork_bootstrap.artifacts push --url s3://BUCKET[/PREFIX] --project P
        --dir D [--endpoint-url E] [--manifest F] [--termination-log PATH]
        [--status-dir S [--stale-seconds N] [--start-seconds M]]

The project's objects are `<PREFIX>/<P>/<relative path>` (`<P>/...` without a prefix).
--url defaults to $BODYWORK_ARTIFACTS_URL, --endpoint-url to $BODYWORK_S3_ENDPOINT_URL
(unset: AWS). Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional
AWS_SESSION_TOKEN; region AWS_REGION (default us-east-1). See s3.py.

pull
    Downloads every object under `<PREFIX>/<P>/` into D, skipping files already identical
    (size and MD5; D may persist between runs, as it does locally). Keys ending in `/`
    (folder markers) are skipped; keys with `..`, `.` or empty parts, a leading `/`, a
    backslash or a NUL are refused (a warning names them; nothing is written for them),
    and so is a path through a symlink in D. A file changed in D since the last sync while
    the bucket's copy did not change is kept (it is pushed after the next successful batch
    stage); otherwise the bucket's copy wins. Writes the manifest F (default
    D/../.bodywork-artifacts-pulled.json): JSON `{"version": 1, "url": ..., "files":
    {relpath: {"size", "md5", "etag", "mtime_ns"}}}`, what the bucket held.
push
    Uploads the files under D that are new or changed against the manifest (MD5), then
    records them in it. Symlinks are never followed (each is skipped with a warning naming
    it), nor are sockets, FIFOs and devices; a name that is not UTF-8 or holds a backslash is
    skipped too. Deletions are not propagated: a file removed from D stays in the bucket.
    With --status-dir S, push first waits for the stage container of its pod (the
    bootstrapper's `--status-dir S`, bodywork_bootstrap.status):
      - S/exit holds 0: upload, exit 0;
      - S/exit holds another code: upload nothing, exit 0 (the pod fails on the stage
        container's own code);
      - no S/exit and S/heartbeat older than N s (--stale-seconds, default 30), or no
        heartbeat at all M s after push started (--start-seconds, default 300): exit 98,
        "the stage container ended without a result".

Every line printed (stderr) starts with `artifacts: `. A failure is one line, also
written to --termination-log (`artifacts pull failed: ...`), where Kubernetes shows it.
Exit codes (bodywork_bootstrap.ARTIFACTS_EXIT_CODES): 0 done; 95 bad arguments, URL or
project, or no credentials; 96 the bucket refused or could not be reached (after
retries); 97 reading or writing D or the manifest failed; 98 push --status-dir: the stage
container ended without a result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from bodywork_bootstrap import (
    EXIT_ARTIFACTS_CONFIG,
    EXIT_ARTIFACTS_LOCAL,
    EXIT_ARTIFACTS_NO_RESULT,
    EXIT_ARTIFACTS_S3,
    envnames,
    s3,
    status,
)
from bodywork_bootstrap.recordclass import field, record
from bodywork_bootstrap.stage import seconds_argument

PREFIX = "artifacts: "
MANIFEST_NAME = ".bodywork-artifacts-pulled.json"  # beside D, by default
MANIFEST_VERSION = 1
STALE_SECONDS = 30.0
START_SECONDS = 300.0
POLL_SECONDS = 0.5
Say = Callable[[str], None]


class ArtifactsError(Exception):
    """A failure of pull or push: one line, and the exit code of its kind."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@record(frozen=True)
class Target:
    """Where a project's artifacts live: s3://bucket/prefix/project/."""

    bucket: str
    prefix: str  # without leading or trailing '/'; may be empty
    project: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.project}/" if self.prefix else f"{self.project}/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.base}"


def parse_target(url: str, project: str) -> Target:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "s3":
        raise ArtifactsError(EXIT_ARTIFACTS_CONFIG, f"--url must be s3://bucket[/prefix]: {url}")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket or any(c in bucket for c in "/\\ ") or bucket in (".", ".."):
        raise ArtifactsError(EXIT_ARTIFACTS_CONFIG, f"no bucket name in --url {url}")
    if prefix and _unsafe(prefix):
        raise ArtifactsError(EXIT_ARTIFACTS_CONFIG, f"the prefix in {url}: {_unsafe(prefix)}")
    if not project or any(c in project for c in "/\\\x00") or project in (".", ".."):
        raise ArtifactsError(
            EXIT_ARTIFACTS_CONFIG, f"--project must be one path segment, got {project!r}"
        )
    return Target(bucket, prefix, project)


def make_client(
    target: Target,
    endpoint_url: str | None,
    environ: Mapping[str, str],
    **options: Any,
) -> s3.S3Client:
    """A client for the target's bucket with the credentials in `environ`."""
    credentials = s3.credentials_from(environ)
    if credentials is None:
        raise ArtifactsError(
            EXIT_ARTIFACTS_CONFIG,
            f"no S3 credentials for {target.url}: set {envnames.AWS_ACCESS_KEY_ID} and "
            f"{envnames.AWS_SECRET_ACCESS_KEY} (and {envnames.AWS_SESSION_TOKEN} for "
            "temporary ones)",
        )
    try:
        return s3.S3Client(
            target.bucket, credentials, endpoint_url, s3.region_from(environ), **options
        )
    except s3.S3Error as exc:
        raise ArtifactsError(EXIT_ARTIFACTS_CONFIG, str(exc)) from None


def check_access(client: s3.S3Client, target: Target) -> None:
    """List one key under the target: the credentials, the bucket and the endpoint work."""
    try:
        next(iter(client.list(target.base, page_keys=1)), None)
    except s3.S3Error as exc:
        raise ArtifactsError(EXIT_ARTIFACTS_S3, str(exc)) from None


# ---------------------------------------------------------------------- paths and manifest
def _unsafe(relpath: str) -> str | None:
    """Why a relative path (from a key, or of a local file) may not be used; None if fine."""
    if "\x00" in relpath:
        return "it holds a NUL character"
    if "\\" in relpath:
        return "it holds a backslash"
    if relpath.startswith("/"):
        return "it is absolute"
    if any(part in ("", ".", "..") for part in relpath.split("/")):
        return "it has an empty, '.' or '..' part"
    return None


def _shown(text: str) -> str:
    """A key or name for a message line: control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def default_manifest(directory: Path) -> Path:
    return directory.absolute().parent / MANIFEST_NAME


@record(frozen=True)
class Entry:
    size: int
    md5: str
    etag: str = ""
    mtime_ns: int = 0  # of the local file the md5 was taken of; 0: unknown


def load_manifest(path: Path, say: Say) -> dict[str, Entry]:
    try:
        data = json.loads(path.read_text())
        files = data["files"] if data.get("version") == MANIFEST_VERSION else {}
        return {
            rel: Entry(
                int(e["size"]), str(e["md5"]), str(e.get("etag", "")), int(e.get("mtime_ns", 0))
            )
            for rel, e in files.items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        say(f"{PREFIX}the manifest {path} is unreadable: every file is compared afresh")
        return {}


def write_manifest(path: Path, target: Target, files: Mapping[str, Entry]) -> None:
    body = {
        "version": MANIFEST_VERSION,
        "url": target.url,
        "files": {
            rel: {"size": e.size, "md5": e.md5, "etag": e.etag, "mtime_ns": e.mtime_ns}
            for rel, e in sorted(files.items())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def _md5(path: Path) -> str:
    return s3.file_digests(path)[0]


def _known_md5(st: os.stat_result, entry: Entry | None) -> str | None:
    """The MD5 the manifest recorded for this very file (same size and mtime), if any."""
    if entry and entry.mtime_ns and entry.size == st.st_size and entry.mtime_ns == st.st_mtime_ns:
        return entry.md5
    return None


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _parent_problem(root: Path, relpath: str) -> str | None:
    """Why D/relpath's folders cannot be used (a symlink or a file on the way), else None;
    the folders are made."""
    path = root
    for part in relpath.split("/")[:-1]:
        path = path / part
        st = _lstat(path)
        if st is None:
            path.mkdir()
        elif stat.S_ISLNK(st.st_mode):
            return f"'{_shown(str(path.relative_to(root)))}' is a symlink (never followed)"
        elif not stat.S_ISDIR(st.st_mode):
            return f"'{_shown(str(path.relative_to(root)))}' is a file, not a folder"
    return None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


@record
class Summary:
    """What a pull or push did, for its one line and for tests."""

    transferred: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # pull: changed here, not in the bucket
    refused: list[str] = field(default_factory=list)  # unsafe keys, symlinks, specials
    bytes: int = 0
    seconds: float = 0.0

    def line(self, verb: str, where: str) -> str:
        files = len(self.transferred)
        said = f"{PREFIX}{verb} {files} file{'s' if files != 1 else ''} ({_size(self.bytes)}) "
        said += f"{where} in {self.seconds:.1f} s"
        extra = [f"{len(self.unchanged)} unchanged"] if self.unchanged else []
        if self.kept:
            extra.append(f"{len(self.kept)} changed here kept")
        if self.refused:
            extra.append(f"{len(self.refused)} skipped")
        return said + (f" ({', '.join(extra)})" if extra else "")


# ---------------------------------------------------------------------- pull
def pull(
    client: s3.S3Client,
    target: Target,
    directory: Path,
    manifest: Path | None = None,
    say: Say = lambda line: None,
) -> Summary:
    """Download what is under the target into `directory` (see the module's docstring)."""
    started = time.monotonic()
    manifest = manifest or default_manifest(directory)
    summary = Summary()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        root = directory.resolve()
        previous = load_manifest(manifest, say)
    except OSError as exc:
        raise _local_error(f"cannot use {directory}", exc) from None
    try:
        objects = list(client.list(target.base))
    except s3.S3Error as exc:
        raise ArtifactsError(EXIT_ARTIFACTS_S3, str(exc)) from None
    held: dict[str, Entry] = {}
    for obj in objects:
        relpath = obj.key[len(target.base) :]
        if not relpath or relpath.endswith("/"):
            continue  # the prefix itself, or a folder marker
        problem = _unsafe(relpath)
        if problem is None:
            try:
                problem = _parent_problem(root, relpath)
            except OSError as exc:
                raise _local_error(f"cannot make the folders of {relpath}", exc) from None
        if problem is not None:
            summary.refused.append(relpath)
            say(f"{PREFIX}refused the key '{_shown(obj.key)}': {problem}")
            continue
        entry = _pull_one(client, root, relpath, obj, previous.get(relpath), summary, say)
        if entry is not None:
            held[relpath] = entry
    try:
        write_manifest(manifest, target, held)
    except OSError as exc:
        raise _local_error(f"cannot write the manifest {manifest}", exc) from None
    summary.seconds = time.monotonic() - started
    say(summary.line("pulled", f"from {target.url}"))
    return summary


def _pull_one(
    client: s3.S3Client,
    root: Path,
    relpath: str,
    obj: s3.S3Object,
    before: Entry | None,
    summary: Summary,
    say: Say,
) -> Entry | None:
    local = root / relpath
    remote_md5 = s3.plain_md5(obj.etag)
    if remote_md5 is None and before is not None and before.etag == obj.etag:
        remote_md5 = before.md5  # a multipart object: its MD5 as last synced
    try:
        st = _lstat(local)
        if st is not None and stat.S_ISDIR(st.st_mode):
            summary.refused.append(relpath)
            say(f"{PREFIX}refused the key '{_shown(obj.key)}': a folder of that name is here")
            return None
        if st is not None and stat.S_ISREG(st.st_mode):
            local_md5 = _known_md5(st, before) or _md5(local)
            if st.st_size == obj.size and local_md5 == remote_md5:
                summary.unchanged.append(relpath)
                return Entry(obj.size, local_md5, obj.etag, st.st_mtime_ns)
            if before is not None and before.etag == obj.etag and local_md5 != before.md5:
                summary.kept.append(relpath)  # changed here since the last sync, not there
                say(f"{PREFIX}kept {_shown(relpath)}: changed here since the last sync")
                return before
            say(f"{PREFIX}replacing {_shown(relpath)} with the bucket's copy")
        md5 = client.get(obj.key, local)
        st = local.lstat()
    except s3.S3Error as exc:
        raise ArtifactsError(EXIT_ARTIFACTS_S3, str(exc)) from None
    except OSError as exc:
        raise _local_error(f"cannot write {relpath}", exc) from None
    summary.transferred.append(relpath)
    summary.bytes += st.st_size
    return Entry(st.st_size, md5, obj.etag, st.st_mtime_ns)


# ---------------------------------------------------------------------- push
def local_files(root: Path, say: Say, summary: Summary) -> Iterator[tuple[str, Path]]:
    """(relpath, path) of every regular file under `root`, never through a symlink;
    symlinks, sockets, FIFOs and devices are skipped, each named in a warning."""
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            path = Path(entry.path)
            relpath = path.relative_to(root).as_posix()
            if entry.name.endswith(s3.PARTIAL_SUFFIX):
                continue  # a download cut short
            if entry.is_symlink():
                summary.refused.append(relpath)
                say(f"{PREFIX}skipped {_shown(relpath)}: a symlink (never followed)")
            elif entry.is_dir(follow_symlinks=False):
                stack.append(path)
            elif not entry.is_file(follow_symlinks=False):
                summary.refused.append(relpath)
                say(f"{PREFIX}skipped {_shown(relpath)}: not a regular file")
            else:
                try:
                    relpath.encode("utf-8")
                    problem = _unsafe(relpath)
                except UnicodeEncodeError:
                    problem = "its name is not UTF-8"
                if problem:
                    summary.refused.append(relpath)
                    say(f"{PREFIX}skipped {_shown(relpath)}: {problem}")
                else:
                    yield relpath, path


def push(
    client: s3.S3Client,
    target: Target,
    directory: Path,
    manifest: Path | None = None,
    say: Say = lambda line: None,
) -> Summary:
    """Upload what is new or changed in `directory` (see the module's docstring)."""
    started = time.monotonic()
    manifest = manifest or default_manifest(directory)
    summary = Summary()
    previous = load_manifest(manifest, say)
    held = dict(previous)  # deletions are not propagated: the bucket keeps them
    if directory.is_dir():
        root = directory.resolve()
        try:
            for relpath, path in local_files(root, say, summary):
                entry = _push_one(client, target, relpath, path, previous.get(relpath), summary)
                held[relpath] = entry
        except OSError as exc:
            raise _local_error(f"cannot read {directory}", exc) from None
    try:
        write_manifest(manifest, target, held)
    except OSError as exc:  # the upload is done; only the next push compares more
        say(f"{PREFIX}cannot update the manifest {manifest}: {exc.strerror or exc}")
    summary.seconds = time.monotonic() - started
    say(summary.line("pushed", f"to {target.url}"))
    return summary


def _push_one(
    client: s3.S3Client,
    target: Target,
    relpath: str,
    path: Path,
    before: Entry | None,
    summary: Summary,
) -> Entry:
    st = path.lstat()
    md5 = _known_md5(st, before) or _md5(path)
    if before is not None and before.size == st.st_size and before.md5 == md5:
        summary.unchanged.append(relpath)
        return Entry(st.st_size, md5, before.etag, st.st_mtime_ns)
    try:
        etag = client.put(target.base + relpath, path)
    except s3.S3Error as exc:
        raise ArtifactsError(EXIT_ARTIFACTS_S3, str(exc)) from None
    summary.transferred.append(relpath)
    summary.bytes += st.st_size
    return Entry(st.st_size, md5, etag, st.st_mtime_ns)


# ---------------------------------------------------------------------- the status dir
def wait_for_stage(
    directory: Path,
    stale_seconds: float = STALE_SECONDS,
    start_seconds: float = START_SECONDS,
    poll_seconds: float = POLL_SECONDS,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """The stage container's exit code, once it wrote DIR/exit; ArtifactsError(98) if its
    heartbeat went stale (or never began) first."""
    began = clock()
    while True:
        try:
            code = status.read_exit(directory)
        except (OSError, ValueError) as exc:
            raise ArtifactsError(
                EXIT_ARTIFACTS_NO_RESULT,
                f"the stage container ended without a result: {directory / status.EXIT} "
                f"is unreadable ({exc})",
            ) from None
        if code is not None:
            return code
        now = clock()
        age = status.heartbeat_age(directory, now)
        if age is None and now - began > start_seconds:
            raise ArtifactsError(
                EXIT_ARTIFACTS_NO_RESULT,
                "the stage container ended without a result: it never reported in "
                f"{directory} ({start_seconds:g} s without a heartbeat)",
            )
        if age is not None and age > stale_seconds:
            code = status.read_exit(directory)  # written just before the heartbeat stopped?
            if code is not None:
                return code
            raise ArtifactsError(
                EXIT_ARTIFACTS_NO_RESULT,
                "the stage container ended without a result: no exit code, and its "
                f"heartbeat stopped {age:.0f} s ago (killed, OOMKilled?)",
            )
        sleep(poll_seconds)


# ---------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ARTIFACTS_CONFIG, f"{PREFIX}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python3 -m bodywork_bootstrap.artifacts",
        description="Sync a project's artifacts with an S3 bucket (the S3 backend).",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text in (
        ("pull", "download the project's objects into --dir"),
        ("push", "upload what is new or changed in --dir"),
    ):
        sub = commands.add_parser(name, help=help_text, allow_abbrev=False)
        sub.add_argument(
            "--url",
            default=os.environ.get(envnames.ARTIFACTS_URL),
            help=f"s3://bucket[/prefix] (default ${envnames.ARTIFACTS_URL})",
        )
        sub.add_argument("--project", required=True, help="objects: <prefix>/<project>/...")
        sub.add_argument("--dir", required=True, help="the artifacts directory")
        sub.add_argument(
            "--endpoint-url",
            default=os.environ.get(envnames.S3_ENDPOINT_URL) or None,
            help=f"S3 API endpoint, path-style (default ${envnames.S3_ENDPOINT_URL}, else AWS)",
        )
        sub.add_argument(
            "--manifest", default=None, help=f"what was synced (default DIR/../{MANIFEST_NAME})"
        )
        sub.add_argument("--termination-log", default=None, help="file for the failure reason")
        if name == "push":
            sub.add_argument(
                "--status-dir",
                default=None,
                metavar="S",
                help="first wait for the stage (S/exit, S/heartbeat); upload only on exit 0",
            )
            sub.add_argument("--stale-seconds", type=seconds_argument, default=STALE_SECONDS)
            sub.add_argument("--start-seconds", type=seconds_argument, default=START_SECONDS)
    return parser


def _local_error(what: str, exc: OSError) -> ArtifactsError:
    return ArtifactsError(EXIT_ARTIFACTS_LOCAL, f"{what}: {exc.strerror or exc}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, environ: Mapping[str, str], say: Say = _say) -> int:
    if not args.url:
        raise ArtifactsError(
            EXIT_ARTIFACTS_CONFIG, f"no bucket: give --url or set {envnames.ARTIFACTS_URL}"
        )
    target = parse_target(args.url, args.project)
    client = make_client(target, args.endpoint_url, environ)
    directory = Path(args.dir)
    manifest = Path(args.manifest) if args.manifest else None
    try:
        if args.command == "pull":
            pull(client, target, directory, manifest, say)
            return 0
        if args.status_dir:
            say(f"{PREFIX}waiting for the stage to finish ({args.status_dir})")
            code = wait_for_stage(Path(args.status_dir), args.stale_seconds, args.start_seconds)
            if code != 0:
                say(f"{PREFIX}the stage exited with code {code}: nothing uploaded")
                return 0
        push(client, target, directory, manifest, say)
        return 0
    finally:
        client.close()


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args, os.environ if environ is None else environ)
    except ArtifactsError as exc:
        message = f"{args.command} failed: {exc}"
        _say(f"{PREFIX}{message}")
        if args.termination_log:
            with contextlib.suppress(OSError):
                Path(args.termination_log).write_text(f"artifacts {message}"[:4000])
        return exc.code
    except KeyboardInterrupt:
        _say(f"{PREFIX}{args.command} interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
