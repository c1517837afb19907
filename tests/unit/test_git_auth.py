"""Private-repo credentials: the git environment gitfetch builds, and how pods get the
Secrets (SSH: a read-only 0400 volume; token: a secretKeyRef), never their values."""

from __future__ import annotations

import base64
import os
import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bodywork.core import objects, plan, render
from bodywork_bootstrap import gitfetch
from tests import builders

KUBERNETES_VERSION = "1.37.0"
TOKEN = "tok_Very5ecretValue"
SSH, TOKEN_SECRET = "repo-ssh", "repo-token"
PRIVATE = objects.RunSettings(
    namespace="ml", image="bodywork:test", git_ssh_secret=SSH, git_token_secret=TOKEN_SECRET
)
PLAIN = objects.RunSettings(namespace="ml", image="bodywork:test")


def make_plan() -> plan.Plan:
    batch = builders.stage_config(module_path="train/t.py")
    serve = builders.stage_config(
        name="serve", stage_type="service", module_path="serve/s.py", port=8000
    )
    return builders.make_plan(batch, serve, repo="ssh://git@git.example.com/org/repo.git")


def controller_run(**extra: str) -> objects.ControllerRun:
    return objects.ControllerRun(repo="ssh://git@git.example.com/org/repo.git", **extra)


def pod_specs(doc: dict) -> list[dict]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return [spec["template"]["spec"]] if "template" in spec else []


def ssh_dir(tmp_path: Path, key_mode: int = 0o600) -> Path:
    folder = tmp_path / "git ssh"  # a space, to prove the paths are quoted for the shell
    folder.mkdir()
    (folder / gitfetch.SSH_KEY_FILE).write_text("-----BEGIN KEY-----\nbody\n-----END KEY-----\n")
    (folder / gitfetch.SSH_KEY_FILE).chmod(key_mode)
    (folder / gitfetch.KNOWN_HOSTS_FILE).write_text("host ssh-ed25519 AAAA\n")
    return folder


# ---------------------------------------------------------------------------- gitfetch.git_env
def test_ssh_dir_gives_the_strict_ssh_command(tmp_path: Path) -> None:
    """key + known_hosts → exactly the pinned-host, key-only, batch ssh command."""
    folder = ssh_dir(tmp_path)
    env = gitfetch.git_env({}, ssh_dir=folder)
    key, known = folder / "ssh-privatekey", folder / "known_hosts"
    assert shlex.split(env["GIT_SSH_COMMAND"]) == [
        "ssh", "-i", str(key), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
    ]  # fmt: skip
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    from_env = gitfetch.git_env({gitfetch.SSH_DIR_ENV: str(folder)})
    assert from_env["GIT_SSH_COMMAND"] == env["GIT_SSH_COMMAND"]
    assert gitfetch.SSH_DIR_ENV not in os.environ  # nothing was written to this process


def test_without_credentials_the_environment_is_as_before() -> None:
    """No SSH settings: the batch-mode default, and a user's own GIT_SSH_COMMAND is kept."""
    assert gitfetch.git_env({})["GIT_SSH_COMMAND"] == "ssh -o BatchMode=yes"
    assert gitfetch.git_env({"GIT_SSH_COMMAND": "mine"})["GIT_SSH_COMMAND"] == "mine"
    assert "GIT_CONFIG_COUNT" not in gitfetch.git_env({}, url="https://h/r.git")


def test_a_missing_known_hosts_fails_closed(tmp_path: Path) -> None:
    folder = ssh_dir(tmp_path)
    (folder / "known_hosts").unlink()
    with pytest.raises(gitfetch.FetchError, match="no known_hosts file at"):
        gitfetch.git_env({}, ssh_dir=folder)


def test_an_open_key_is_used_through_a_private_copy(tmp_path: Path) -> None:
    """A group-readable key (a Secret volume with fsGroup) → a 0600 copy, removed later;
    a private key of our own is used where it is."""
    folder = ssh_dir(tmp_path, key_mode=0o440)
    command = shlex.split(gitfetch.git_env({}, ssh_dir=folder)["GIT_SSH_COMMAND"])
    copy = Path(command[command.index("-i") + 1])
    assert copy != folder / "ssh-privatekey"
    assert copy.stat().st_mode & 0o777 == 0o600
    assert copy.read_text() == (folder / "ssh-privatekey").read_text()
    gitfetch.forget_private_keys()
    assert not copy.exists()
    (tmp_path / "own").mkdir()
    own = ssh_dir(tmp_path / "own", key_mode=0o600)
    command = shlex.split(gitfetch.git_env({}, ssh_dir=own)["GIT_SSH_COMMAND"])
    assert command[command.index("-i") + 1] == str(own / "ssh-privatekey")


def test_token_becomes_a_scoped_basic_auth_header_never_part_of_a_url() -> None:
    env = gitfetch.git_env(
        {gitfetch.TOKEN_ENV: TOKEN, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b"},
        url="https://user@git.example.com:8443/org/repo.git",
    )
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert env["GIT_CONFIG_KEY_0"] == "a.b"  # an existing entry is kept
    assert env["GIT_CONFIG_KEY_1"] == "http.https://git.example.com:8443/.extraHeader"
    expected = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert env["GIT_CONFIG_VALUE_1"] == f"Authorization: Basic {expected}"
    ssh = gitfetch.git_env({gitfetch.TOKEN_ENV: TOKEN}, url="ssh://git@host/repo.git")
    assert "GIT_CONFIG_COUNT" not in ssh  # never offered to an SSH server


# ---------------------------------------------------------------------------- pods
def test_names_match_the_bootstrapper() -> None:
    assert objects.GIT_SSH_DIR_ENV == gitfetch.SSH_DIR_ENV
    assert objects.GIT_TOKEN_ENV == gitfetch.TOKEN_ENV


def test_only_the_fetch_init_container_sees_the_ssh_secret_and_the_token() -> None:
    """With Git credentials a stage fetches in an init container: the key is mounted (read
    only, 0400) and the token referenced there, and the container that runs user code has
    neither, nor any way to them."""
    bodies = objects.build_stage_objects(make_plan(), PRIVATE)
    pods = [pod for body in bodies for pod in pod_specs(body)]
    assert len(pods) == 2  # the Job and the Deployment
    for body in bodies:
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
    for pod in pods:
        volume = next(v for v in pod["volumes"] if v["name"] == "git-ssh")
        assert volume == {"name": "git-ssh", "secret": {"secretName": SSH, "defaultMode": 256}}
        (fetch,) = pod["initContainers"]
        assert fetch["name"] == "fetch" and "--fetch-only" in fetch["args"]
        mount = next(m for m in fetch["volumeMounts"] if m["name"] == "git-ssh")
        assert mount == {"name": "git-ssh", "mountPath": "/bodywork/git-ssh", "readOnly": True}
        env = {e["name"]: e for e in fetch["env"]}
        assert env["BODYWORK_GIT_SSH_DIR"] == {
            "name": "BODYWORK_GIT_SSH_DIR",
            "value": "/bodywork/git-ssh",
        }
        assert env["BODYWORK_GIT_TOKEN"] == {
            "name": "BODYWORK_GIT_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token"}},
        }
        assert not any("ssh-privatekey" in str(e) for e in fetch["env"])  # never env
        # nor what stage code writes: the commit cache on the data volume is not mounted
        assert "data" not in {m["name"] for m in fetch["volumeMounts"]}
        (stage,) = pod["containers"]
        assert "--checkout-ready" in stage["args"]
        assert "git-ssh" not in str(stage["volumeMounts"])
        names = {e["name"] for e in stage["env"]}
        assert not names & {"BODYWORK_GIT_TOKEN", "BODYWORK_GIT_SSH_DIR", "BODYWORK_GIT_SSH_KEY"}
        assert TOKEN_SECRET not in str(stage) and SSH not in str(stage)


def test_without_secrets_pods_have_no_git_credentials() -> None:
    text = render.to_yaml(objects.build_stage_objects(make_plan(), PLAIN))
    assert "git-ssh" not in text
    assert "BODYWORK_GIT_TOKEN" not in text and "BODYWORK_GIT_SSH_DIR" not in text


def test_controller_mounts_the_secret_and_passes_both_names_on() -> None:
    run = controller_run(git_ssh_secret=SSH, git_token_secret=TOKEN_SECRET)
    job = objects.build_controller_job(run, "ml", "bodywork:test")
    cron = objects.build_cronjob("retrain", "0 3 * * *", run, "ml", "bodywork:test")
    for doc in (job, cron):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        (pod,) = pod_specs(doc)
        container = pod["containers"][0]
        args = container["args"]
        assert args[args.index("--git-ssh-secret") + 1] == SSH
        assert args[args.index("--git-token-secret") + 1] == TOKEN_SECRET
        assert args[-1] == run.repo
        assert {"name": "git-ssh", "secret": {"secretName": SSH, "defaultMode": 0o400}} in pod[
            "volumes"
        ]
        assert {"name": "git-ssh", "mountPath": "/bodywork/git-ssh", "readOnly": True} in (
            container["volumeMounts"]
        )
        assert pod["securityContext"]["fsGroup"] == objects.STAGE_UID  # else 10001 can't read
        token = next(e for e in container["env"] if e["name"] == "BODYWORK_GIT_TOKEN")
        assert "value" not in token and token["valueFrom"]["secretKeyRef"]["key"] == "token"
    plain = objects.build_controller_job(controller_run(), "ml", "bodywork:test")
    (pod,) = pod_specs(plain)
    assert "fsGroup" not in pod["securityContext"] and len(pod["volumes"]) == 1


def test_rendered_yaml_holds_secret_names_never_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with a token in the environment, render prints only Secret names."""
    monkeypatch.setenv("BODYWORK_GIT_TOKEN", TOKEN)
    run = controller_run(git_ssh_secret=SSH, git_token_secret=TOKEN_SECRET)
    docs = render.render(make_plan(), PRIVATE, run)
    text = render.to_yaml(docs)
    assert TOKEN not in text
    assert base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode() not in text
    assert "BEGIN" not in text and "extraHeader" not in text
    for doc in yaml.safe_load_all(text):
        for pod in pod_specs(doc):
            for entry in pod["containers"][0]["env"]:
                if entry["name"] == "BODYWORK_GIT_TOKEN":
                    assert set(entry) == {"name", "valueFrom"}
