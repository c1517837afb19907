"""Stages in images without Bodywork, and Git credentials out of stage code's reach, on the lab.

`python:3.11-slim` (Debian's python3, no Bodywork, no uv) trains and serves at the pinned commit
through the fetch init container, the second stage's tree copied from the project's commit cache
the first one's fetch filled. With an SSH key and a token Secret configured, stage code and
a requirement's build script look for both everywhere they could reach: their own env, every
ancestor's env, the container's mounts and files; neither is found.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from tests.conftest import SshServer, commit_all, git, write_files
from tests.e2e.conftest import IMAGE, kubectl, run_workflow
from tests.e2e.test_kubernetes import cluster_ip, http_get
from tests.e2e.test_private_repo_ssh import SECRET, create_ssh_secret, local_credentials

PLAIN_IMAGE = "python:3.11-slim"  # k8s-lab tags its Debian python3 base image so
PORT = 8080


def plain_image_project() -> dict[str, str]:
    stage = "[default]\nSTAGE_TYPE = {kind}\nEXECUTABLE_SCRIPT = main.py\nCPU_REQUEST = 0.1\n"
    train = (
        "import os, pathlib, sys\n"
        "pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'], 'model').write_text(sys.executable)\n"
        "print('trained in', sys.version.split()[0], 'at', os.environ['BODYWORK_GIT_COMMIT'])\n"
    )
    serve = textwrap.dedent(
        f"""
        import http.server, os, pathlib
        trained_by = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "model").read_text()
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = f"{{trained_by}} {{os.environ['BODYWORK_GIT_COMMIT']}}".encode()
                self.send_response(200); self.end_headers(); self.wfile.write(body)
        http.server.HTTPServer(("0.0.0.0", {PORT}), H).serve_forever()
        """
    )
    return {
        "bodywork.ini": (
            f"[default]\nPROJECT_NAME = plain\nDOCKER_IMAGE = {PLAIN_IMAGE}\n"
            "[workflow]\nDAG = train >> serve\n"
        ),
        "train/config.ini": stage.format(kind="batch"),
        "train/requirements.txt": "",
        "train/main.py": train,
        "serve/config.ini": stage.format(kind="service")
        + f"[service]\nPORT = {PORT}\nMAX_STARTUP_TIME_SECONDS = 60\n",
        "serve/requirements.txt": "",
        "serve/main.py": serve,
    }


def test_a_stage_in_a_plain_python_image_trains_and_serves_at_the_pinned_commit(
    namespace: str, publish
) -> None:
    url, sha = publish("plain", plain_image_project())
    done = run_workflow(namespace, url, "--log-level", "debug")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"at {sha}" in done.stdout
    # the Kubernetes executor's stages log where their time went, as local ones do
    timing = [json.loads(ln) for ln in done.stderr.splitlines() if '"stage_timing"' in ln]
    train = next(t for t in timing if t["stage"] == "train")
    assert train["checkout_from"] == "handed-over" and "module" in train, timing
    pod = kubectl(
        "get", "deploy", "-n", namespace, "plain--serve",
        "-o", "jsonpath={.spec.template.spec.containers[0].image} "
        "{.spec.template.spec.initContainers[0].image}",
    )  # fmt: skip
    assert pod.split() == [PLAIN_IMAGE, IMAGE]
    # train's fetch filled the project's commit cache; serve's copied the tree from it
    fetched = kubectl("logs", "-n", namespace, "deploy/plain--serve", "-c", "fetch")
    assert f"code at {sha[:12]} copied from the commit cache (no fetch)" in fetched, fetched
    answer = http_get(f"http://{cluster_ip(namespace, 'plain--serve')}:{PORT}/").decode()
    trained_by, commit = answer.split()
    assert commit == sha
    assert trained_by.startswith("/bodywork/data/venvs/"), "the image's python, in a venv"


# Stage code and a requirement's build backend both run this: report every place the planted
# token or key text shows up. The markers are written reversed, so the project's own files
# (which the probe also reads) never hold them.
PROBE = """
import os, pathlib

def reachable(token_reversed, key_line_reversed):
    token, key_line = token_reversed[::-1], key_line_reversed[::-1]
    found = []
    def check(where, text):
        if token in text or key_line in text:
            found.append(where)
    check("own env", "\\n".join(f"{k}={v}" for k, v in os.environ.items()))
    pid = os.getpid()
    while pid > 1:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        try:
            environ = pathlib.Path(f"/proc/{pid}/environ").read_text(errors="replace")
        except OSError:
            continue
        check(f"env of ancestor {pid}", environ)
    mounts = pathlib.Path("/proc/self/mounts").read_text()
    if "git-ssh" in mounts:
        found.append("the SSH Secret is mounted")
    for top in ("/bodywork", "/tmp", "/etc", "/run", "/var/run", "/root", "/home"):
        for path in pathlib.Path(top).rglob("*"):
            try:
                if path.is_file() and path.stat().st_size < 1_000_000:
                    check(str(path), path.read_text(errors="replace"))
            except OSError:
                pass
    return found
"""

WHEEL_FILES = """
import base64, hashlib, zipfile

def write_wheel(directory):
    name = "probe-1.0-py3-none-any.whl"
    files = {
        "probe/__init__.py": b"",
        "probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: probe\\nVersion: 1.0\\n",
        "probe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\n"
            b"Tag: py3-none-any\\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(data)}")
    record.append("probe-1.0.dist-info/RECORD,,")
    files["probe-1.0.dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name
"""


def backend(token_reversed: str, key_line_reversed: str) -> str:
    """A build backend that records what it can reach into the artifacts dir, then builds."""
    return (
        PROBE
        + WHEEL_FILES
        + textwrap.dedent(
            f"""
            def get_requires_for_build_wheel(config_settings=None):
                return []

            def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
                found = reachable({token_reversed!r}, {key_line_reversed!r})
                out = pathlib.Path("/bodywork/data/artifacts")
                out.mkdir(parents=True, exist_ok=True)
                (out / "build-found.txt").write_text(repr(found))
                return write_wheel(wheel_directory)
            """
        )
    )


def test_git_credentials_are_out_of_stage_codes_reach(
    namespace: str, lab_sshd: SshServer, tmp_path: Path
) -> None:
    """A private repo fetched over SSH, with a token Secret configured as well: the stage's
    code and its requirement's build script find neither the token nor the key anywhere."""
    token = "planted-token-7f3a9c"
    canary = "canary-value-51e0"
    key_line = lab_sshd.client_private.strip().splitlines()[1]  # a line of the key's body
    work = tmp_path / "work-reach"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    stage_code = PROBE + textwrap.dedent(
        f"""
        found = reachable({token[::-1]!r}, {key_line[::-1]!r})
        print("stage found:", found)
        # The control: a value that IS in the stage's env (its own [secrets]) is found.
        print("control found:", reachable({canary[::-1]!r}, "-never-there-"[::-1]))
        built = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "build-found.txt")
        print("build found:", built.read_text())
        """
    )
    write_files(
        work,
        {
            "bodywork.ini": "[default]\nPROJECT_NAME = reach\n[workflow]\nDAG = probe\n",
            "probe/config.ini": "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\n"
            "CPU_REQUEST = 0.1\n[secrets]\nCANARY_VALUE = canary\n",
            "probe/requirements.txt": "./probepkg\n",
            "probe/main.py": stage_code,
            "probe/probepkg/pyproject.toml": (
                '[build-system]\nrequires = []\nbuild-backend = "probe_backend"\n'
                'backend-path = ["."]\n[project]\nname = "probe"\nversion = "1.0"\n'
            ),
            "probe/probepkg/probe_backend.py": backend(token[::-1], key_line[::-1]),
        },
    )
    commit_all(work, "reach")
    bare = lab_sshd.base / "reach.git"
    git(lab_sshd.base, "clone", "-q", "--bare", str(work), str(bare))
    create_ssh_secret(namespace, lab_sshd, lab_sshd.known_hosts("secret_known_hosts"))
    kubectl(
        "create", "secret", "generic", "git-token", "-n", namespace, f"--from-literal=token={token}"
    )
    kubectl(
        "create", "secret", "generic", "canary", "-n", namespace,
        f"--from-literal=CANARY_VALUE={canary}",
    )  # fmt: skip
    done = subprocess.run(
        ["bodywork", "workflow", "-n", namespace, "--image", IMAGE,
         "--git-ssh-secret", SECRET, "--git-token-secret", "git-token",
         *local_credentials(lab_sshd), lab_sshd.url(bare)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stage found: []" in done.stdout, done.stdout
    assert "control found: ['own env'" in done.stdout, done.stdout  # the probe does see env
    assert "build found: []" in done.stdout, done.stdout
    # The fetch itself used the credentials: they were configured, not merely absent.
    pod = kubectl("get", "pods", "-n", namespace, "-o", "yaml")
    assert "git-ssh" in pod and "BODYWORK_GIT_TOKEN" in pod
