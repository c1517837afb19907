"""Private repositories: SSH against a real `sshd` (own host key, a real key pair, strict
host-key checking) and HTTPS with a token against a real `git http-backend`; through
gitsource, the bootstrapper subprocess and the `bodywork` CLI. No secret may ever show up
in a message or in output."""

from __future__ import annotations

import base64
import getpass
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bodywork.core.errors import GitSourceError
from bodywork.engine import gitsource
from bodywork_bootstrap import EXIT_FETCH_FAILED, gitfetch
from tests.conftest import (
    SshServer,
    assert_no_secret,
    commit_all,
    git,
    key_body,
    keygen,
    running_sshd,
    write_files,
)
from tests.local.projects import batch_stage, project_ini

pytestmark = pytest.mark.usefixtures("offline_env")

TOKEN = "ghp_s3cr3tT0kenValue0123456789abcdefXYZ"
STAGE_CODE = (
    "import os\n"
    "print('stage ran from', os.path.basename(os.getcwd()))\n"
    "print('token visible to stage:', os.environ.get('BODYWORK_GIT_TOKEN') is not None)\n"
    # every ancestor's first environment too, as /proc shows it to the same user
    "import pathlib\n"
    "pid, seen = os.getppid(), []\n"
    "while pid > 1:\n"
    "    try:\n"
    "        environ = pathlib.Path(f'/proc/{pid}/environ').read_bytes()\n"
    "    except OSError:\n"
    "        break\n"
    "    seen.append(b'BODYWORK_GIT_TOKEN=' in environ)\n"
    "    stat = pathlib.Path(f'/proc/{pid}/stat').read_text()\n"
    "    pid = int(stat.rsplit(')', 1)[1].split()[1])\n"
    "print('token in the parent env:', seen[0] if seen else None)\n"
)
PROJECT = {
    "bodywork.ini": project_ini("stage"),
    **batch_stage("stage", STAGE_CODE),
}


def no_warnings(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


# ------------------------------------------------------------------------------ sshd
@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    """A real sshd on 127.0.0.1 with its own host key, accepting one real client key."""
    with running_sshd(tmp_path) as server:
        yield server


def bare_copy(repo: Path, base: Path, name: str = "project.git") -> Path:
    bare = base / name
    git(base, "clone", "-q", "--bare", str(repo), str(bare))
    return bare


def explicit_env(key: Path, known_hosts: Path) -> dict[str, str]:
    """What `bodywork run --ssh-key K --known-hosts H` hands to git and to stages."""
    return {
        **os.environ,
        gitfetch.SSH_KEY_ENV: str(key),
        gitfetch.KNOWN_HOSTS_ENV: str(known_hosts),
    }


def run_bootstrapper(
    url: str, commit: str, tmp_path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    workdir = tmp_path / f"work-{time.monotonic_ns()}"
    command = [
        sys.executable, "-m", "bodywork_bootstrap",
        "--repo", url, "--commit", commit, "--stage", "stage", "--script", "main.py",
        "--workdir", str(workdir), "--venv-root", str(tmp_path / "venvs"),
        "--artifacts-dir", str(tmp_path / "artifacts"),
    ]  # fmt: skip
    return subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120
    )


def test_resolve_and_checkout_over_ssh_with_the_right_known_hosts(make_repo, sshd, tmp_path):
    """With the key and the server's real host key, a branch resolves and checks out."""
    repo = make_repo({"bodywork.ini": "x", "stage/main.py": "print('private')\n"})
    bare = bare_copy(repo, sshd.base)
    env = explicit_env(sshd.client_key, sshd.known_hosts("known_hosts"))
    source = gitsource.resolve(sshd.url(bare), "main", warn=no_warnings, env=env)
    assert source.commit == git(repo, "rev-parse", "HEAD")
    root = gitsource.checkout(source, tmp_path / "checkout", env)
    assert (root / "stage" / "main.py").read_text() == "print('private')\n"
    assert "Accepted publickey" in sshd.log.read_text()  # really over ssh, with our key


def test_a_different_host_key_fails_closed_with_a_clear_reason(make_repo, sshd, tmp_path):
    """known_hosts pinning another key for the host: no connection is authenticated, one
    clear line says why, and the bootstrapper exits 90; the key never shows."""
    repo = make_repo(PROJECT)
    bare = bare_copy(repo, sshd.base)
    _, impostor = keygen(tmp_path / "other_host", "other")
    known = sshd.known_hosts("wrong_known_hosts", impostor.rsplit(" ", 1)[0])
    env = explicit_env(sshd.client_key, known)
    with pytest.raises(GitSourceError) as caught:
        gitsource.resolve(sshd.url(bare), "main", warn=no_warnings, env=env)
    message = str(caught.value)
    assert "host key verification failed" in message
    assert "\n" not in message
    assert_no_secret(message, *key_body(sshd.client_private))

    folder = sshd.ssh_dir("wrong-dir", known.read_text())
    commit = git(repo, "rev-parse", "HEAD")
    done = run_bootstrapper(
        sshd.url(bare), commit, tmp_path, {**os.environ, gitfetch.SSH_DIR_ENV: str(folder)}
    )
    assert done.returncode == EXIT_FETCH_FAILED, done.stdout
    assert "host key verification failed" in done.stdout
    assert "stage ran" not in done.stdout
    assert_no_secret(done.stdout, *key_body(sshd.client_private))
    assert "Accepted publickey" not in sshd.log.read_text()


def test_a_host_missing_from_known_hosts_fails_closed(make_repo, sshd, tmp_path):
    """A known_hosts without the server (here: only another host) never trusts it on first
    use: it fails, naming the host."""
    bare = bare_copy(make_repo(PROJECT), sshd.base)
    known = tmp_path / "other_hosts_only"
    known.write_text(f"git.example.com {sshd.host_public}\n")
    with pytest.raises(GitSourceError) as caught:
        gitsource.resolve(
            sshd.url(bare), "main", warn=no_warnings, env=explicit_env(sshd.client_key, known)
        )
    message = str(caught.value)
    assert f"host key for {sshd.host} is not in known_hosts" in message
    assert "\n" not in message
    assert known.read_text() == f"git.example.com {sshd.host_public}\n"  # nothing was added
    assert "Accepted publickey" not in sshd.log.read_text()


def test_a_secret_without_known_hosts_fails_before_connecting(make_repo, sshd, tmp_path):
    """An SSH directory with a key but no known_hosts is refused outright (exit 90)."""
    repo = make_repo(PROJECT)
    bare = bare_copy(repo, sshd.base)
    folder = sshd.ssh_dir("no-known-hosts", known_hosts=None)
    done = run_bootstrapper(
        sshd.url(bare),
        git(repo, "rev-parse", "HEAD"),
        tmp_path,
        {**os.environ, gitfetch.SSH_DIR_ENV: str(folder)},
    )
    assert done.returncode == EXIT_FETCH_FAILED, done.stdout
    assert f"no known_hosts file at {folder / 'known_hosts'}" in done.stdout
    assert sshd.connections() == 0  # not even a TCP connection was made


def test_bootstrapper_fetches_over_ssh_from_a_secret_like_directory(make_repo, sshd, tmp_path):
    """BODYWORK_GIT_SSH_DIR with a group-readable key (as a Secret volume with fsGroup
    gives it), which ssh itself refuses: the bootstrapper uses a private 0600 copy, runs
    the stage, and leaves no copy behind; the key text is never printed."""
    repo = make_repo(PROJECT)
    bare = bare_copy(repo, sshd.base)
    folder = sshd.ssh_dir("mounted", f"{sshd.host} {sshd.host_public}\n", key_mode=0o640)
    refused = subprocess.run(
        ["ssh", "-i", str(folder / "ssh-privatekey"), "-o", "IdentitiesOnly=yes",
         "-o", f"UserKnownHostsFile={folder / 'known_hosts'}", "-o", "BatchMode=yes",
         "-p", str(sshd.port), f"{getpass.getuser()}@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "UNPROTECTED PRIVATE KEY FILE" in refused.stderr  # so the copy is what makes it work

    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, gitfetch.SSH_DIR_ENV: str(folder), "TMPDIR": str(temp)}
    done = run_bootstrapper(sshd.url(bare), git(repo, "rev-parse", "HEAD"), tmp_path, env)
    assert done.returncode == 0, done.stdout
    assert "stage ran from stage" in done.stdout
    assert "Accepted publickey" in sshd.log.read_text()
    assert not list(temp.glob("bodywork-ssh-key-*"))  # the private copy is gone
    assert (folder / "ssh-privatekey").stat().st_mode & 0o777 == 0o640  # mount untouched
    assert_no_secret(done.stdout, *key_body(sshd.client_private))


def test_bodywork_run_over_ssh_with_key_and_known_hosts_flags(make_repo, sshd, tmp_path):
    """`bodywork run ssh://... --ssh-key --known-hosts`: the controller side resolves and
    validates, and each stage subprocess fetches with the same credentials."""
    repo = make_repo(PROJECT)
    bare = bare_copy(repo, sshd.base)
    known = sshd.known_hosts("known_hosts")
    done = subprocess.run(
        ["bodywork", "run", sshd.url(bare), "--branch", "main",
         "--ssh-key", str(sshd.client_key), "--known-hosts", str(known)],
        capture_output=True, text=True, timeout=120, env=os.environ,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "stage ran from stage" in done.stdout
    assert sshd.log.read_text().count("Accepted publickey") >= 3  # ls-remote, config, stage
    assert_no_secret(output, *key_body(sshd.client_private))

    missing = subprocess.run(
        ["bodywork", "run", sshd.url(bare), "--ssh-key", str(sshd.client_key)],
        capture_output=True, text=True, timeout=60, env=os.environ,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "--ssh-key and --known-hosts go together" in missing.stderr


# ------------------------------------------------------------------------------ https
@dataclass
class HttpGitServer:
    url: str
    base: Path
    requests: list[dict[str, str]] = field(default_factory=list)


class _GitHandler(BaseHTTPRequestHandler):
    """`git http-backend` as CGI, behind a check of the Authorization header."""

    server: ThreadingHTTPServer
    expected = ""
    base = Path()
    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization", "")})
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.base),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
        }
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = done.stdout.partition(b"\n\n")
        headers = [ln.split(":", 1) for ln in head.decode().splitlines() if ":" in ln]
        status = next((v.strip() for k, v in headers if k.lower() == "status"), "200 OK")
        self.send_response(int(status.split()[0]))
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def http_git(tmp_path: Path) -> Iterator[HttpGitServer]:
    base = tmp_path / "http-repos"
    base.mkdir()
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    seen: list[dict[str, str]] = []
    handler = type(
        "Handler", (_GitHandler,), {"expected": f"Basic {basic}", "base": base, "seen": seen}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpGitServer(f"http://127.0.0.1:{server.server_address[1]}", base, seen)
    finally:
        server.shutdown()
        server.server_close()


def with_token(token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != gitfetch.TOKEN_ENV}
    if token is not None:
        env[gitfetch.TOKEN_ENV] = token
    return env


def test_https_with_the_right_token_resolves_and_checks_out(make_repo, http_git, tmp_path):
    """The token reaches the server as a Basic Authorization header, never in a URL."""
    repo = make_repo({"bodywork.ini": "x", "a.txt": "over https\n"})
    bare_copy(repo, http_git.base)
    url = f"{http_git.url}/project.git"
    env = with_token(TOKEN)
    source = gitsource.resolve(url, "main", warn=no_warnings, env=env)
    assert source.commit == git(repo, "rev-parse", "HEAD")
    root = gitsource.checkout(source, tmp_path / "checkout", env)
    assert (root / "a.txt").read_text() == "over https\n"
    assert http_git.requests and all(r["auth"].startswith("Basic ") for r in http_git.requests)
    assert_no_secret(" ".join(r["path"] for r in http_git.requests), TOKEN)
    assert_no_secret(source.repo_url, TOKEN)


def test_https_with_a_wrong_or_no_token_fails_clearly(make_repo, http_git):
    """A refused token (or none) is one clear line that never contains the token."""
    bare_copy(make_repo({"bodywork.ini": "x"}), http_git.base)
    url = f"{http_git.url}/project.git"
    wrong = "ghp_wrongTokenValue987654321"
    for env in (with_token(wrong), with_token(None)):
        with pytest.raises(GitSourceError) as caught:
            gitsource.resolve(url, "main", warn=no_warnings, env=env)
        message = str(caught.value)
        assert f"authentication to {url} failed" in message
        assert "\n" not in message
        assert_no_secret(message, wrong, TOKEN)
    assert all(r["auth"] != f"Basic {TOKEN}" for r in http_git.requests)


def test_bootstrapper_fetches_over_https_and_stage_code_never_sees_the_token(
    make_repo, http_git, tmp_path
):
    """BODYWORK_GIT_TOKEN lets the bootstrapper fetch; the stage's env no longer has it;
    a wrong token exits 90 with a clear reason; the token is never printed."""
    repo = make_repo(PROJECT)
    bare_copy(repo, http_git.base)
    url, commit = f"{http_git.url}/project.git", git(repo, "rev-parse", "HEAD")
    done = run_bootstrapper(url, commit, tmp_path, with_token(TOKEN))
    assert done.returncode == 0, done.stdout
    assert "stage ran from stage" in done.stdout
    assert "token visible to stage: False" in done.stdout
    # The bootstrapper re-executed itself without the token after fetching: its /proc
    # environ, which the stage's code can read, never held it.
    assert "token in the parent env: False" in done.stdout
    assert_no_secret(done.stdout, TOKEN)

    refused = run_bootstrapper(url, commit, tmp_path, with_token("not-the-token"))
    assert refused.returncode == EXIT_FETCH_FAILED, refused.stdout
    assert f"authentication to {url} failed" in refused.stdout
    assert_no_secret(refused.stdout, "not-the-token")


def test_cli_reads_the_token_from_the_named_variable_and_never_prints_it(make_repo, http_git):
    """`--git-token-env VAR` for validate and render; --git-token-secret renders a
    secretKeyRef, never the value; an unset variable is a usage error."""
    repo = make_repo(PROJECT)
    bare_copy(repo, http_git.base)
    url = f"{http_git.url}/project.git"
    env = {**with_token(None), "MY_GIT_TOKEN": TOKEN}

    def bodywork(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bodywork", *args], capture_output=True, text=True, timeout=60, env=env
        )

    valid = bodywork("validate", url, "--git-token-env", "MY_GIT_TOKEN")
    assert valid.returncode == 0, valid.stderr
    assert "bodywork.ini OK" in valid.stdout
    rendered = bodywork(
        "render", url, "--git-token-env", "MY_GIT_TOKEN",
        "--git-token-secret", "repo-token", "--git-ssh-secret", "repo-ssh",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert "secretKeyRef" in rendered.stdout and "repo-token" in rendered.stdout
    assert "--git-token-secret" in rendered.stdout  # the controller passes it on
    for done in (valid, rendered):
        assert_no_secret(
            done.stdout + done.stderr, TOKEN, base64.b64encode(TOKEN.encode()).decode()
        )

    unset = bodywork("validate", url, "--git-token-env", "NOT_SET_ANYWHERE")
    assert unset.returncode != 0
    assert "--git-token-env NOT_SET_ANYWHERE: that variable is not set" in unset.stderr


def test_new_commits_are_fetched_by_sha_over_ssh(make_repo, sshd, tmp_path):
    """A commit that is not the branch tip still checks out over SSH (pinned runs)."""
    repo = make_repo({"v.txt": "1\n"})
    first = git(repo, "rev-parse", "HEAD")
    write_files(repo, {"v.txt": "2\n"})
    commit_all(repo)
    bare = bare_copy(repo, sshd.base)
    env = explicit_env(sshd.client_key, sshd.known_hosts("known_hosts"))
    dest = tmp_path / "old"
    gitfetch.fetch_commit(sshd.url(bare), first, dest, env)
    assert (dest / "v.txt").read_text() == "1\n"
    shutil.rmtree(dest)
