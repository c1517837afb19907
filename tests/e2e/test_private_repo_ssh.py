"""Private repositories over SSH on the real cluster: a real sshd on the lab host IP (own
host key, one ed25519 client key, a bare repo), a Kubernetes Secret with `ssh-privatekey`
and `known_hosts`, and stage pods (and the in-cluster controller) that fetch through it
with strict host-key checking. No key material may show up in any output."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import (
    SshServer,
    assert_no_secret,
    commit_all,
    git,
    key_body,
    keygen,
    write_files,
)
from tests.e2e.conftest import IMAGE, LAB_HOST_IP, kubectl
from tests.e2e.test_kubernetes import batch_config, project_files

SECRET = "git-ssh"
STAGE = "import os\nprint('private stage ran at', os.environ['BODYWORK_GIT_COMMIT'][:12])\n"


def publish_private(server: SshServer, tmp_path: Path, name: str) -> tuple[str, str]:
    """A one-stage project as a bare repo behind sshd; returns (ssh:// URL, commit)."""
    work = tmp_path / f"work-{name}"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    write_files(work, project_files("hello", {"hello": (batch_config(), STAGE)}))
    sha = commit_all(work, "private")
    bare = server.base / f"{name}.git"
    git(server.base, "clone", "-q", "--bare", str(work), str(bare))
    return server.url(bare), sha


def create_ssh_secret(namespace: str, server: SshServer, known_hosts: Path) -> None:
    kubectl(
        "create", "secret", "generic", SECRET, "-n", namespace,
        f"--from-file=ssh-privatekey={server.client_key}",
        f"--from-file=known_hosts={known_hosts}",
    )  # fmt: skip


def accepted_from_pods(server: SshServer) -> int:
    """Logins sshd accepted from somewhere other than this host (i.e. from pods)."""
    found = re.findall(r"Accepted publickey for \S+ from (\S+) port", server.log.read_text())
    return len([ip for ip in found if ip != LAB_HOST_IP])


def bodywork(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bodywork", *args], capture_output=True, text=True, timeout=timeout)


def local_credentials(server: SshServer) -> list[str]:
    """Laptop mode: this machine resolves and validates with the same key."""
    return ["--ssh-key", str(server.client_key), "--known-hosts", str(server.known_hosts("kh"))]


def cluster_channels(namespace: str) -> str:
    """Everything the cluster shows about the run (objects, events, records)."""
    return "\n".join(
        kubectl("get", kind, "-n", namespace, "-o", "yaml", check=False)
        for kind in ("jobs,pods", "events", "configmaps")
    )


def test_workflow_stage_pods_fetch_over_ssh_with_the_mounted_secret(
    namespace: str, lab_sshd: SshServer, tmp_path: Path
) -> None:
    """`bodywork workflow --git-ssh-secret` from this machine: the stage pod clones the
    private repo over SSH with the Secret's key and known_hosts, and its output streams back."""
    url, sha = publish_private(lab_sshd, tmp_path, "private")
    create_ssh_secret(namespace, lab_sshd, lab_sshd.known_hosts("secret_known_hosts"))
    done = bodywork(
        "workflow", "-n", namespace, "--image", IMAGE, "--git-ssh-secret", SECRET,
        *local_credentials(lab_sshd), url,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"private stage ran at {sha[:12]}" in done.stdout
    assert accepted_from_pods(lab_sshd) >= 1, lab_sshd.log.read_text()  # really the pod
    assert_no_secret(output + cluster_channels(namespace), *key_body(lab_sshd.client_private))


def test_a_wrong_host_key_in_the_secret_fails_the_stage_as_a_named_bootstrap_failure(
    namespace: str, lab_sshd: SshServer, tmp_path: Path
) -> None:
    """The Secret's known_hosts pins another key for the server: the pod refuses to connect
    (no login from a pod), the run fails with exit 5 naming host key verification."""
    url, _ = publish_private(lab_sshd, tmp_path, "pinned")
    _, impostor = keygen(tmp_path / "impostor", "impostor")
    wrong = lab_sshd.known_hosts("wrong_known_hosts", impostor.rsplit(" ", 1)[0])
    create_ssh_secret(namespace, lab_sshd, wrong)
    done = bodywork(
        "workflow", "-n", namespace, "--image", IMAGE, "--git-ssh-secret", SECRET,
        *local_credentials(lab_sshd), url,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 5, output
    assert "bootstrap failed: " in done.stderr
    assert "host key verification failed" in done.stderr
    assert "private stage ran" not in done.stdout
    assert accepted_from_pods(lab_sshd) == 0, lab_sshd.log.read_text()
    assert_no_secret(output + cluster_channels(namespace), *key_body(lab_sshd.client_private))


def test_in_cluster_controller_fetches_over_ssh_with_the_mounted_secret(
    namespace: str, lab_sshd: SshServer, tmp_path: Path
) -> None:
    """`bodywork deploy --watch --git-ssh-secret`: the controller pod (non-root, the Secret
    mounted 0400 with fsGroup) resolves and reads the project over SSH itself, then its
    stage pod fetches the same way."""
    url, sha = publish_private(lab_sshd, tmp_path, "controller")
    create_ssh_secret(namespace, lab_sshd, lab_sshd.known_hosts("secret_known_hosts"))
    done = bodywork(
        "deploy", "-n", namespace, "--image", IMAGE, "--watch", "--git-ssh-secret", SECRET,
        *local_credentials(lab_sshd), url,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"private stage ran at {sha[:12]}" in done.stdout
    assert accepted_from_pods(lab_sshd) >= 2, lab_sshd.log.read_text()  # controller + stage
    pod = kubectl(
        "get", "jobs", "-n", namespace, "-l", "bodywork.dev/role=controller",
        "-o", "jsonpath={.items[0].spec.template.spec.securityContext.fsGroup}",
    )  # fmt: skip
    assert pod == "10001"  # the non-root controller reads the 0400 key through its group
    assert_no_secret(output + cluster_channels(namespace), *key_body(lab_sshd.client_private))
