"""The stage's virtualenv, built with uv and reused while nothing it depends on changes.

A venv is keyed by the hash of the stage's requirements text (its requirements file, or the
inline list written to a file), of what that text refers to (each `-r`/`-c` file it includes,
recursively, and the contents of each local path package, wheel or find-links folder: the git
tree id inside the checkout), the Python version and the stage name, so a second run of an
unchanged stage skips installation entirely (the "warm start") and changing any of these
builds a new venv. A file lock serialises two stages building the same venv.

A requirement set is resolved once (its first `uv pip install`, then `uv pip compile
--offline` writes down what it resolved to): the resolution is kept as a lock file keyed by
the requirements, what they refer to, the interpreter and the index settings, and
every later venv of that set is installed from it offline (`uv pip sync --offline`), from
the uv cache shared by all stages, with no round trip to the index; if the cache lost a file
the lock is installed online, and if that fails too the set is resolved again. Bytecode is
the bootstrapper's decision (`compile_bytecode`), never the user's PYTHONDONTWRITEBYTECODE.

uv runs in `install_cwd` (the requirements file's folder in the checkout), so a relative
requirement such as `./mylib` is the one in the pinned checkout, never the caller's. With a
`deadline`, waiting for the lock and every uv call stop then (uv and whatever it started are
killed) and InstallTimedOut is raised. A requirements file is read as UTF-8 (with or without
a BOM) or as UTF-16 with its BOM, as uv reads it; anything else is an InstallError naming the
file and the fix, not a traceback.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bodywork_bootstrap import envnames, redaction, supervise
from bodywork_bootstrap.recordclass import record

READY_MARKER = ".bodywork-ready"  # written last: a venv without it is incomplete
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


LOCK_POLL_SECONDS = 0.1


class InstallError(Exception):
    pass


class InstallTimedOut(InstallError):
    """The install did not finish by its deadline (uv was killed)."""


def uv_executable() -> str:
    """uv: the one handed over by the init container (BODYWORK_UV), else the installed one."""
    handed_over = os.environ.get(envnames.UV)
    if handed_over:
        if not os.access(handed_over, os.X_OK):
            raise InstallError(f"{envnames.UV}={handed_over} is not an executable uv")
        return handed_over
    try:
        from uv import find_uv_bin  # the `uv` wheel ships the binary and this locator

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise InstallError("uv is not installed: `pip install uv`") from None
        return found


def read_requirements(path: Path, label: str | None = None) -> str:
    """The text of a requirements file: UTF-8 (a BOM is dropped), or UTF-16 when it starts
    with UTF-16's BOM (what Windows editors save as "Unicode"); uv reads these too. Any other
    encoding (cp1252, Latin-1...) raises InstallError naming the file and the fix."""
    name = label or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InstallError(f"cannot read {name}: {exc.strerror or exc}") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InstallError(
                f"{name} starts with UTF-16's byte order mark but is not UTF-16 text: "
                "save it as UTF-8"
            ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InstallError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}; "
            "Windows-1252 or Latin-1 perhaps): save it as UTF-8"
        ) from None


def requirement_lines(text: str) -> list[tuple[int, str]]:
    """(line number, requirement) for every line that asks for a package."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def interpreter_identity() -> str:
    """What tells two Pythons apart, even at one path with one version in two images (ours
    and a user's DOCKER_IMAGE share a PVC): version, ABI, the real binary and its size."""
    real = os.path.realpath(sys.executable)
    try:
        size = os.stat(real).st_size
    except OSError:
        size = -1
    return "\0".join([sys.version, sys.implementation.cache_tag or "", real, str(size)])


def venv_key(requirements: str, stage: str, inputs: str = "") -> str:
    """The venv's name: the interpreter, the stage, the requirements text and `inputs` (what
    the text refers to: see requirement_inputs)."""
    material = f"{interpreter_identity()}\0{sys.executable}\0{stage}\0{requirements}"
    if inputs:  # empty for a self-contained list: the same name as before
        material += f"\0{inputs}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def lock_key(requirements: str, inputs: str, env: Mapping[str, str]) -> str:
    """The name of a requirement set's resolution: the requirements and what they refer to,
    the interpreter, and the settings that change what an index offers (not the stage: two
    stages with one set share one resolution)."""
    settings = "\0".join(f"{name}={env.get(name, '')}" for name in RESOLUTION_ENV)
    material = f"{interpreter_identity()}\0{sys.executable}\0{settings}\0{requirements}\0{inputs}"
    return hashlib.sha256(material.encode()).hexdigest()[:24]


# --------------------------------------------------------------- what requirements refer to
_OPTION = re.compile(
    r"^(?P<flag>-r|--requirement|-c|--constraint|-e|--editable|-f|--find-links)"
    r"(?:\s*=\s*|\s+|(?<=^-[rcef]))(?P<value>\S.*)$"
)
_FILE_OPTIONS = {"-r", "--requirement", "-c", "--constraint"}
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ARCHIVE = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2")
# Whether these options are in a requirements file: then uv's resolution writes them out.
_INDEX_OPTION = re.compile(r"^(-i|--index-url|--extra-index-url|-f|--find-links|--no-index)\b")
# Settings that change what a resolution finds (uv reads them from the environment).
RESOLUTION_ENV = (
    "UV_INDEX", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
    "UV_NO_INDEX", "UV_CONSTRAINT", "UV_OVERRIDE", "UV_PRERELEASE", "UV_RESOLUTION",
    "UV_EXCLUDE_NEWER", "UV_INDEX_STRATEGY", "UV_NO_BINARY", "UV_NO_BUILD",
)  # fmt: skip
_SKIPPED_DIRS = {".git", "__pycache__"}
_HASHED = re.compile(r"(^|\s)--(hash|require-hashes)\b")


def _expand(value: str) -> str:
    return _ENV_VAR.sub(lambda m: os.environ.get(m[1], m[0]), value.strip().strip("'\""))


def local_path(requirement: str) -> str | None:
    """The path a requirement line installs from (`./pkg`, `pkg/`, `../x.whl`, `./pkg[extra]`,
    `file:./pkg`, `name @ file:///abs/pkg`), or None for a package from an index or a VCS."""
    spec = requirement.split(";", 1)[0].strip()  # an environment marker is not the path
    if " @ " in spec:
        spec = spec.split(" @ ", 1)[1].strip()
    if spec.startswith("file:"):
        parsed = urlsplit(spec)
        if parsed.netloc not in ("", "localhost"):
            return None
        return unquote(parsed.path) if spec.startswith("file://") else spec.removeprefix("file:")
    if "://" in spec or spec.startswith(("git+", "hg+", "svn+", "bzr+")):
        return None
    spec = spec.split("#", 1)[0].split(" ", 1)[0].strip()  # `./pkg#egg=x`, options after it
    if spec.endswith("]") and "[" in spec:
        spec = spec[: spec.rindex("[")]  # `./pkg[extra]`
    if spec.startswith((".", "/", "~")) or "/" in spec or spec.endswith(_ARCHIVE):
        return spec
    return None


def requirement_inputs(
    requirements_file: Path, text: str, install_cwd: Path, checkout_root: Path | None = None
) -> str:
    """What the requirements text refers to, as key material: the text of each `-r`/`-c` file
    (recursively, each relative to the file naming it, as uv reads them) and a hash of each
    local path package, wheel or find-links folder (relative to `install_cwd`, where uv runs):
    the git tree id when it is inside the checkout `checkout_root`, else a hash of its files.
    Empty when the text refers to nothing, so a self-contained list keys as before."""
    found: list[str] = []
    paths: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def scan(source: Path, body: str, depth: int) -> None:
        for _, line in requirement_lines(body):
            option = _OPTION.match(line)
            if option is not None and option["flag"] in _FILE_OPTIONS:
                included = (source.parent / _expand(option["value"])).resolve()
                label = f"{option['flag']} {option['value']}"
                if str(included) in seen or depth > 20:
                    continue
                seen.add(str(included))
                try:
                    nested = read_requirements(included, label)
                except InstallError:
                    found.append(f"{label}: missing")
                    continue
                found.append(f"{label}:\n{nested}")
                scan(included, nested, depth + 1)
                continue
            value = option["value"] if option is not None else line
            if option is not None and option["flag"] in ("-f", "--find-links"):
                value = value if "://" not in value or value.startswith("file:") else ""
                value = value.removeprefix("file://").removeprefix("file:")
                path = value or None
            else:
                path = local_path(value)
            if path:
                paths.append((line, Path(os.path.expanduser(_expand(path)))))

    seen.add(str(requirements_file.resolve()))
    scan(requirements_file, text, 0)
    if paths:
        resolved = [(line, (install_cwd / path).resolve()) for line, path in paths]
        ids = _tree_ids(checkout_root, [p for _, p in resolved]) if checkout_root else {}
        for line, path in resolved:
            found.append(f"{line}: {ids.get(path) or _content_hash(path)}")
    return "\n".join(found)


def _tree_ids(root: Path, paths: list[Path]) -> dict[Path, str]:
    """Git's object id of each of `paths` that is tracked in the checkout at `root` (one
    `git ls-tree`); {} without git. The checkout is exactly its commit (verified before)."""
    root = root.resolve()
    inside = {p: p.relative_to(root).as_posix() for p in paths if p == root or root in p.parents}
    if not inside or not (root / ".git").exists():
        return {}
    ids: dict[Path, str] = {}
    if root in inside:  # the project itself (`-e .` at the top): its whole tree
        inside.pop(root)
        tree = _run_git(["rev-parse", "HEAD^{tree}"], root)
        if tree:
            ids[root] = f"tree {tree.strip()}"
    if inside:
        listing = _run_git(["ls-tree", "-z", "HEAD", "--", *inside.values()], root) or ""
        by_name = {}
        for record in listing.split("\0"):
            meta, _, name = record.partition("\t")
            if name:
                by_name[name] = meta
        for path, rel in inside.items():
            if rel in by_name:
                ids[path] = by_name[rel]
    return ids


def _run_git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True,
            timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _content_hash(path: Path) -> str:
    """A hash of a file, or of a folder's files (relative names, executable bit, contents;
    .git and __pycache__ left out); 'missing' if there is nothing at `path`."""
    digest = hashlib.sha256()
    try:
        if path.is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return f"file {digest.hexdigest()}"
        if not path.is_dir():
            return "missing"
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
            for name in sorted(files):
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, path)
                executable = os.access(full, os.X_OK)
                digest.update(f"{rel}\0{int(executable)}\0".encode())
                if os.path.islink(full):
                    digest.update(os.readlink(full).encode())
                    continue
                with open(full, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                digest.update(b"\0")
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return f"dir {digest.hexdigest()}"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _explain_failure(output: str, requirements: str, source: str, listed: bool = False) -> str:
    """Name the requirement uv could not install, with its line, and uv's own reason.

    `source`: the requirements file's name; `listed`: the requirements are the stage's inline
    list (written to a file), so a requirement is named by its place in that list."""
    uv_lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    lowered = _norm(output)
    culprits = []
    for number, line in requirement_lines(requirements):
        match = _REQUIREMENT_NAME.match(line)
        if match and re.search(rf"(?<![a-z0-9-]){re.escape(_norm(match[1]))}(?![a-z0-9])", lowered):
            where = f"{source} line {number}"
            if listed:
                where = f"requirement {number} of the stage's list"
            culprits.append(f"'{line}' ({where})")
    fallback = "the stage's requirements" if listed else source
    head = f"requirement {', '.join(culprits)}" if culprits else fallback
    detail = "\n".join(uv_lines[-12:]) or "uv exited without a message"
    # A requirement may be `git+https://user:token@host/...`: uv echoes it, and so do we.
    return redaction.redact(f"{head} could not be installed:\n{detail}")


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise InstallTimedOut("the time for installing ran out")
    return left


def _lock(lock: int, deadline: float | None) -> None:
    """Take the venv's lock, waiting for another stage building it no later than `deadline`."""
    if deadline is None:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            _remaining(deadline)
            time.sleep(LOCK_POLL_SECONDS)


def _uv(
    command: list[str], env: dict[str, str], cwd: Path | None, deadline: float | None
) -> subprocess.CompletedProcess[str]:
    """Run uv; past `deadline` kill it and the build backends it started."""
    timeout = _remaining(deadline)
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        supervise.kill_tree(process)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        raise InstallTimedOut("uv did not finish in time") from None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


REUSED, NONE, LOCKED, LOCKED_ONLINE, RESOLVED = (
    "reused", "empty", "offline from the lock", "online from the lock", "resolved",
)  # fmt: skip


@record(frozen=True)
class Venv:
    python: Path  # its interpreter
    how: str  # REUSED, or how it was built: NONE (no requirements), LOCKED, LOCKED_ONLINE...


def uv_environment(cache_dir: Path | None, venv_root: Path) -> dict[str, str]:
    """uv's environment: this one, with the shared cache, and without the user's say on
    bytecode (PYTHONDONTWRITEBYTECODE, UV_COMPILE_BYTECODE): the bootstrapper decides."""
    env = dict(os.environ)
    for name in ("PYTHONDONTWRITEBYTECODE", "UV_COMPILE_BYTECODE"):
        env.pop(name, None)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        env["UV_CACHE_DIR"] = str(cache_dir)
        if "UV_LINK_MODE" not in env and os.stat(cache_dir).st_dev != os.stat(venv_root).st_dev:
            env["UV_LINK_MODE"] = "copy"  # hard links cannot cross filesystems
    return env


def ensure_venv(
    requirements_file: Path,
    venv_root: Path,
    stage: str,
    cache_dir: Path | None,
    say: Callable[[str], None],
    *,
    install_cwd: Path | None = None,
    deadline: float | None = None,
    label: str | None = None,
    listed: bool = False,
    checkout_root: Path | None = None,
    lock_root: Path | None = None,
    compile_bytecode: bool = False,
) -> Venv:
    """A ready venv for this stage's requirements, reused while nothing it depends on changes.

    `install_cwd`: where uv runs, so relative requirements resolve there; `deadline` (a
    `time.monotonic()` value) bounds the whole build; `label`: how messages name the file
    (default: its name); `listed`: the file holds the stage's inline requirement list (only
    changes how a failing requirement is named); `checkout_root`: the checkout, whose git
    tree ids key the local packages inside it; `lock_root`: where each requirement set's
    resolution is kept (default: `venv_root`/../locks); `compile_bytecode`: compile every
    module at build time (for a stage that runs with PYTHONDONTWRITEBYTECODE)."""
    requirements = ""
    if requirements_file.is_file():
        requirements = read_requirements(requirements_file, label)
    cwd = install_cwd or requirements_file.parent
    inputs = requirement_inputs(requirements_file, requirements, cwd, checkout_root)
    venv = venv_root / f"{stage}-{venv_key(requirements, stage, inputs)}"
    python = venv / "bin" / "python"
    venv_root.mkdir(parents=True, exist_ok=True)
    with open(venv_root / f"{venv.name}.lock", "w") as lock:
        _lock(lock.fileno(), deadline)  # another stage may be building this same venv
        if (venv / READY_MARKER).is_file():
            say(f"reusing environment {venv.name} (requirements unchanged)")
            return Venv(python, REUSED)
        shutil.rmtree(venv, ignore_errors=True)
        env = uv_environment(cache_dir, venv_root)
        uv = uv_executable()
        started = time.monotonic()
        how = NONE
        try:
            made = _uv(
                [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], env, None, deadline
            )
            if made.returncode != 0:
                raise InstallError(f"cannot create a virtualenv: {made.stderr.strip()}")
            wanted = requirement_lines(requirements)
            if wanted:
                say(f"installing {len(wanted)} requirement(s) with uv")
                build = _Build(
                    uv, python, requirements_file.resolve(), requirements, inputs, cwd, env,
                    deadline, label or requirements_file.name, listed, compile_bytecode,
                )  # fmt: skip
                root = lock_root or venv_root.parent / "locks"
                how, summary = build.install(root)
                say(summary)
        except InstallError:
            shutil.rmtree(venv, ignore_errors=True)  # never leave a half-built venv behind
            raise
        (venv / READY_MARKER).write_text(f"{time.monotonic() - started:.2f}s {how}\n")
        return Venv(python, how)


@record
class _Build:
    """Installing one requirement set into a new venv: offline from its resolution (the
    lock) when there is one, else resolving once and keeping the lock for next time."""

    uv: str
    python: Path
    requirements_file: Path
    requirements: str
    inputs: str
    cwd: Path
    env: dict[str, str]
    deadline: float | None
    source: str
    listed: bool
    compile_bytecode: bool

    def _pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        compiled = ["--compile-bytecode"] if self.compile_bytecode else []
        command = [self.uv, "pip", *args[:1], "--python", str(self.python), *compiled, *args[1:]]
        return _uv(command, self.env, self.cwd, self.deadline)

    def _failed(self, done: subprocess.CompletedProcess[str]) -> InstallError:
        return InstallError(
            _explain_failure(done.stderr + done.stdout, self.requirements, self.source, self.listed)
        )

    def install(self, lock_root: Path) -> tuple[str, str]:
        """(how, uv's summary line). Requirements with hashes (--hash, --require-hashes) are
        installed from their own text, offline first: a lock would drop the hashes."""
        if _HASHED.search(self.requirements) or _HASHED.search(self.inputs):
            done = self._pip("install", "--offline", "-r", str(self.requirements_file))
            how = LOCKED
            if done.returncode != 0:
                done, how = self._pip("install", "-r", str(self.requirements_file)), RESOLVED
            if done.returncode != 0:
                raise self._failed(done)
            return how, _summary(done)
        lock = lock_root / f"{lock_key(self.requirements, self.inputs, self.env)}.txt"
        if lock.is_file():
            done = self._pip("sync", "--offline", str(lock))
            if done.returncode == 0:
                return LOCKED, _summary(done)
            done = self._pip("sync", str(lock))  # the cache lost a file: download it
            if done.returncode == 0:
                return LOCKED_ONLINE, _summary(done)
        return RESOLVED, self._resolve(lock)

    def _resolve(self, lock: Path) -> str:
        """Install from the requirements themselves (the one call that asks the index what
        exists), then write down what that resolved to as the lock, offline from what the
        install just cached (written whole, renamed into place). A lock that cannot be
        written is no failure: the next venv of the set resolves again."""
        done = self._pip("install", "-r", str(self.requirements_file))
        if done.returncode != 0:
            raise self._failed(done)
        lock.parent.mkdir(parents=True, exist_ok=True)
        tmp = lock.with_name(f".{lock.name}.{os.getpid()}.tmp")
        emit = []
        if any(_INDEX_OPTION.match(line) for _, line in requirement_lines(self.requirements)):
            emit = ["--emit-index-url", "--emit-find-links"]  # the file's own index options
        compile_ = [
            self.uv, "pip", "compile", "--quiet", "--offline", "--no-header",
            "--python", str(self.python), *emit, str(self.requirements_file), "-o", str(tmp),
        ]  # fmt: skip
        try:
            if _uv(compile_, self.env, self.cwd, self.deadline).returncode == 0:
                os.replace(tmp, lock)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return _summary(done)


def _summary(done: subprocess.CompletedProcess[str]) -> str:
    found = [ln for ln in done.stderr.splitlines() if ln.startswith("Installed")]
    return found[-1] if found else "requirements already satisfied"
