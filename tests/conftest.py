"""Fixtures shared by every test layer: real git repositories, a real git daemon, a
wheelhouse of real wheels so installs need no network, and an isolated BODYWORK_HOME."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import socket
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# The cluster layers (tests/kubeapi, tests/e2e) create namespaces and pods, so they run only
# against a cluster named explicitly: BODYWORK_TEST_KUBECONFIG=<kubeconfig file>. Without it,
# a developer's own ~/.kube/config or KUBECONFIG is never read by any test or by any
# `bodywork` the tests start: KUBECONFIG is pointed at a file that does not exist, and the
# in-cluster variables are dropped, before any test module is imported.
CLUSTER_OPT_IN = "BODYWORK_TEST_KUBECONFIG"
NO_CLUSTER_KUBECONFIG = "/nonexistent/bodywork-tests/no-cluster-opted-in"


def opted_in_kubeconfig() -> str | None:
    return os.environ.get(CLUSTER_OPT_IN) or None


def _isolate_from_clusters() -> None:
    chosen = opted_in_kubeconfig()
    os.environ["KUBECONFIG"] = chosen or NO_CLUSTER_KUBECONFIG
    if not chosen:
        for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            os.environ.pop(name, None)


_isolate_from_clusters()
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def write_files(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit_all(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    """An in-process `main()` (the CLI tests, the fuzz layer) configures structlog, e.g. at
    level error; later tests capturing logs would then see nothing. Each test gets back the
    configuration it started with."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Create a committed git repo (branch `main`) holding `files`."""
    counter = iter(range(1000))

    def make(files: dict[str, str], name: str | None = None) -> Path:
        repo = tmp_path / (name or f"repo{next(counter)}")
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        write_files(repo, files)
        commit_all(repo, "initial")
        return repo

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real `git daemon` on localhost serving bare repos under the returned base path."""
    base = tmp_path / "served"
    base.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            "--enable=receive-pack",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield base, f"git://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def serve_bare(repo: Path, base: Path, name: str = "project.git") -> Path:
    """Clone `repo` as a bare repo under the daemon's base path."""
    bare = base / name
    git(base, "clone", "-q", "--bare", str(repo), str(bare))
    return bare


def build_wheel(directory: Path, name: str, version: str, module_source: str) -> Path:
    """Write a real, minimal pure-Python wheel for `name` whose module holds `module_source`."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": module_source,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: bodywork-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record_lines = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record_lines.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record_lines.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record_lines) + "\n"
    wheel = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """A directory of real wheels: `bwtest-greeting` 1.0 (greet() -> 'hello')."""
    directory = tmp_path / "wheelhouse"
    directory.mkdir()
    build_wheel(directory, "bwtest-greeting", "1.0", "def greet():\n    return 'hello'\n")
    return directory


@pytest.fixture
def offline_env(wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make uv install only from the wheelhouse (no network) and isolate BODYWORK_HOME."""
    home = tmp_path / "bodywork-home"
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_FIND_LINKS", str(wheelhouse))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("BODYWORK_HOME", str(home))
    return home


# ------------------------------------------------------------------------------ sshd
# A real OpenSSH server for private-repo tests (tests/local/test_private_repos.py on
# 127.0.0.1; tests/e2e/test_private_repo_ssh.py on the lab host IP, so pods reach it).
SSHD = "/usr/sbin/sshd"
SSH_KEY_FILE = "ssh-privatekey"  # = bodywork_bootstrap.gitfetch.SSH_KEY_FILE
KNOWN_HOSTS_FILE = "known_hosts"  # = bodywork_bootstrap.gitfetch.KNOWN_HOSTS_FILE


def keygen(path: Path, comment: str) -> tuple[str, str]:
    """A real ed25519 key pair at `path`; returns (private text, public line)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


def key_body(private_text: str) -> list[str]:
    """The base64 lines of a private key: none of them may appear anywhere."""
    return [ln for ln in private_text.splitlines() if ln and not ln.startswith("-----")]


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, "a secret leaked into output"


@dataclass
class SshServer:
    port: int
    host_public: str  # "ssh-ed25519 AAAA..." of the server's host key
    client_key: Path
    client_private: str
    base: Path  # bare repos live here
    log: Path
    dir: Path
    probe_ports: set[int] = field(default_factory=set)  # the fixture's readiness checks
    listen: str = "127.0.0.1"
    user: str = "root"

    def connections(self) -> int:
        """TCP connections sshd logged, apart from the fixture's own readiness checks."""
        pattern = rf"Connection from \S+ port (\d+) on {re.escape(self.listen)} "
        found = re.findall(pattern, self.log.read_text())
        return len([p for p in found if int(p) not in self.probe_ports])

    @property
    def host(self) -> str:
        return f"[{self.listen}]:{self.port}"

    def url(self, bare: Path) -> str:
        return f"ssh://{self.user}@{self.listen}:{self.port}{bare}"

    def known_hosts(self, name: str, public: str | None = None) -> Path:
        path = self.dir / name
        path.write_text(f"{self.host} {public or self.host_public}\n")
        return path

    def ssh_dir(self, name: str, known_hosts: str | None, key_mode: int = 0o600) -> Path:
        """A directory laid out like the mounted Secret: ssh-privatekey (+ known_hosts)."""
        folder = self.dir / name
        folder.mkdir()
        key = folder / SSH_KEY_FILE
        key.write_text(self.client_private)
        key.chmod(key_mode)
        if known_hosts is not None:
            (folder / KNOWN_HOSTS_FILE).write_text(known_hosts)
        return folder


@contextlib.contextmanager
def running_sshd(tmp_path: Path, listen: str = "127.0.0.1") -> Iterator[SshServer]:
    """A real sshd on `listen` with its own host key, accepting one real client key."""
    import getpass

    if not Path(SSHD).exists():
        # .ci/run installs it, so CI always runs these; on a bare machine they say why not.
        pytest.skip(f"{SSHD} is missing: apt-get install -y openssh-server (.ci/run does)")
    folder = tmp_path / "sshd"
    folder.mkdir()
    _, host_public = keygen(folder / "host_ed25519", "host")
    client_private, client_public = keygen(folder / "client_ed25519", "client")
    (folder / "authorized_keys").write_text(client_public + "\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {listen}\nHostKey {folder / 'host_ed25519'}\n"
        f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
    )
    log = folder / "sshd.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=log_file, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 10
    probes: set[int] = set()
    while True:
        try:
            with socket.create_connection((listen, port), timeout=1) as conn:
                probes.add(conn.getsockname()[1])
                if conn.recv(64).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"sshd did not start: {log.read_text()}")
        time.sleep(0.05)
    base = tmp_path / "ssh-repos"
    base.mkdir()
    try:
        yield SshServer(
            port,
            host_public.rsplit(" ", 1)[0],
            folder / "client_ed25519",
            client_private,
            base,
            log,
            folder,
            probes,
            listen,
            getpass.getuser(),
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
