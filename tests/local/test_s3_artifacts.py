"""The S3 artifacts backend against a real S3-compatible server (moto's server mode, which
checks signatures): the client, pull and push, the status-dir protocol between the
bootstrapper and `artifacts push`, their failures, and local mode end to end."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bodywork_bootstrap import (
    EXIT_ARTIFACTS_CONFIG,
    EXIT_ARTIFACTS_NO_RESULT,
    EXIT_ARTIFACTS_S3,
    artifacts,
    s3,
    status,
)
from tests.conftest import free_port, git
from tests.local.projects import batch_stage, project_ini
from tests.s3server import S3Server, running_moto

_buckets = itertools.count()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def bucket(moto: S3Server) -> str:
    name = f"bodywork-test-{next(_buckets)}-{os.getpid()}"
    moto.create_bucket(name)
    return name


def keys(moto: S3Server, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o.key for o in moto.client(bucket).list(prefix))


def cli(moto: S3Server, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
    """`python3 -m bodywork_bootstrap.artifacts ARGS` with the server's credentials."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "bodywork_bootstrap.artifacts", *args],
        env={**base, **moto.env, "BODYWORK_S3_ENDPOINT_URL": moto.endpoint, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


# ---------------------------------------------------------------------- the client
def test_list_follows_every_page(moto, bucket, tmp_path):
    client = moto.client(bucket)
    source = write(tmp_path / "f", "x")
    for n in range(7):
        client.put(f"p/k{n}", source)
    found = [o.key for o in client.list("p/", page_keys=2)]  # four pages
    assert found == [f"p/k{n}" for n in range(7)]


def test_keys_with_unicode_spaces_plus_and_percent_round_trip(moto, bucket, tmp_path):
    target = artifacts.Target(bucket, "team a/ü", "demo")
    names = ["modèle final.pkl", "a+b%20c.txt", "dir with space/ü+.bin", "100%.csv"]
    source = tmp_path / "out"
    for i, name in enumerate(names):
        write(source / name, f"content {i}")
    pushed = artifacts.push(moto.client(bucket), target, source)
    assert sorted(pushed.transferred) == sorted(names)
    assert keys(moto, bucket) == sorted(f"team a/ü/demo/{n}" for n in names)
    back = tmp_path / "back"
    pulled = artifacts.pull(moto.client(bucket), target, back)
    assert sorted(pulled.transferred) == sorted(names)
    for i, name in enumerate(names):
        assert (back / name).read_text() == f"content {i}"


def test_a_large_file_goes_up_in_parts_and_comes_back_whole(moto, bucket, tmp_path):
    data = os.urandom(12 * s3.MiB + 123)
    source = write(tmp_path / "big.bin", data)
    client = moto.client(bucket, multipart_threshold=5 * s3.MiB, part_size=5 * s3.MiB)
    etag = client.put("big.bin", source)
    assert etag.endswith("-3")  # three parts: 5 + 5 + 2 MiB
    md5 = client.get("big.bin", tmp_path / "copy.bin")
    assert md5 == hashlib.md5(data).hexdigest()
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert not list(tmp_path.glob(f"*{s3.PARTIAL_SUFFIX}"))


def test_a_multipart_object_is_skipped_on_a_second_pull(moto, bucket, tmp_path):
    """Its ETag is no MD5: the manifest's record of it tells it is the same."""
    target = artifacts.Target(bucket, "", "demo")
    client = moto.client(bucket, multipart_threshold=5 * s3.MiB, part_size=5 * s3.MiB)
    client.put("demo/big.bin", write(tmp_path / "big.bin", os.urandom(6 * s3.MiB)))
    local = tmp_path / "d"
    assert artifacts.pull(client, target, local).transferred == ["big.bin"]
    again = artifacts.pull(client, target, local)
    assert (again.transferred, again.unchanged) == ([], ["big.bin"])


# ---------------------------------------------------------------------- pull and push
def test_identical_files_are_not_downloaded_again(moto, bucket, tmp_path):
    target = artifacts.Target(bucket, "p", "demo")
    client = moto.client(bucket)
    for name in ("a.txt", "sub/b.txt"):
        client.put(f"p/demo/{name}", write(tmp_path / "src" / name, name))
    local = tmp_path / "d"
    first = artifacts.pull(client, target, local)
    assert sorted(first.transferred) == ["a.txt", "sub/b.txt"]
    inode = (local / "a.txt").stat().st_ino
    second = artifacts.pull(client, target, local)
    assert second.transferred == [] and sorted(second.unchanged) == ["a.txt", "sub/b.txt"]
    assert (local / "a.txt").stat().st_ino == inode  # not rewritten
    manifest = json.loads(artifacts.default_manifest(local).read_text())
    assert manifest["files"]["a.txt"]["md5"] == hashlib.md5(b"a.txt").hexdigest()


def test_a_changed_bucket_copy_replaces_the_local_one(moto, bucket, tmp_path):
    target = artifacts.Target(bucket, "", "demo")
    client = moto.client(bucket)
    client.put("demo/m.txt", write(tmp_path / "v1", "one"))
    local = tmp_path / "d"
    artifacts.pull(client, target, local)
    client.put("demo/m.txt", write(tmp_path / "v2", "two"))
    assert artifacts.pull(client, target, local).transferred == ["m.txt"]
    assert (local / "m.txt").read_text() == "two"


def test_a_file_changed_here_since_the_last_sync_is_kept(moto, bucket, tmp_path):
    """A running stage's output (or a failed stage's, not pushed) is never overwritten by
    the bucket's older copy."""
    target = artifacts.Target(bucket, "", "demo")
    client = moto.client(bucket)
    client.put("demo/m.txt", write(tmp_path / "v1", "bucket"))
    local = tmp_path / "d"
    artifacts.pull(client, target, local)
    write(local / "m.txt", "written here")
    again = artifacts.pull(client, target, local)
    assert again.kept == ["m.txt"] and (local / "m.txt").read_text() == "written here"
    assert artifacts.push(client, target, local).transferred == ["m.txt"]


def test_only_new_and_changed_files_are_pushed(moto, bucket, tmp_path):
    target = artifacts.Target(bucket, "pre", "demo")
    client = moto.client(bucket)
    local = tmp_path / "d"
    for name in ("a.txt", "b.txt", "c/d.txt"):
        write(local / name, name)
    assert len(artifacts.push(client, target, local).transferred) == 3
    write(local / "b.txt", "changed")
    write(local / "new.txt", "new")
    os.utime(local / "a.txt")  # touched, same bytes: not uploaded
    second = artifacts.push(client, target, local)
    assert sorted(second.transferred) == ["b.txt", "new.txt"]
    assert sorted(second.unchanged) == ["a.txt", "c/d.txt"]
    (local / "a.txt").unlink()  # deletions are not propagated
    artifacts.push(client, target, local)
    assert "pre/demo/a.txt" in keys(moto, bucket)
    back = tmp_path / "back"
    artifacts.pull(client, target, back)
    assert (back / "b.txt").read_text() == "changed"


def test_symlinks_fifos_and_sockets_are_never_uploaded(moto, bucket, tmp_path):
    target = artifacts.Target(bucket, "", "demo")
    local = tmp_path / "d"
    write(local / "model.pkl", "model")
    (local / "passwd").symlink_to("/etc/passwd")
    (local / "etc").symlink_to("/etc", target_is_directory=True)
    os.mkfifo(local / "pipe")
    lines: list[str] = []
    summary = artifacts.push(moto.client(bucket), target, local, say=lines.append)
    assert keys(moto, bucket) == ["demo/model.pkl"]
    assert sorted(summary.refused) == ["etc", "passwd", "pipe"]
    said = "\n".join(lines)
    assert "skipped passwd: a symlink (never followed)" in said
    assert "skipped etc: a symlink (never followed)" in said
    assert all(line.startswith("artifacts: ") for line in lines)


def test_unsafe_keys_are_refused_and_nothing_is_written_outside(moto, bucket, tmp_path):
    target = artifacts.Target(bucket, "p", "demo")
    client = moto.client(bucket)
    source = write(tmp_path / "payload", "evil")
    bad = ["../evil.txt", "a/../../../evil2.txt", "/abs.txt", "win\\evil.txt", "./dot.txt"]
    for rel in [*bad, "dir/", "good/ok.txt"]:
        client.put(f"p/demo/{rel}", source)
    root = tmp_path / "deep" / "d"
    lines: list[str] = []
    summary = artifacts.pull(client, target, root, say=lines.append)
    assert summary.transferred == ["good/ok.txt"]
    assert sorted(summary.refused) == sorted(bad)
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not list(tmp_path.rglob("evil*"))
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "good",
        "good/ok.txt",
    ]
    assert any("refused the key 'p/demo/../evil.txt'" in line for line in lines)


def test_pull_never_writes_through_a_symlinked_folder(moto, bucket, tmp_path):
    target = artifacts.Target(bucket, "", "demo")
    client = moto.client(bucket)
    client.put("demo/models/m.pkl", write(tmp_path / "m", "m"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    local = tmp_path / "d"
    local.mkdir()
    (local / "models").symlink_to(elsewhere, target_is_directory=True)
    summary = artifacts.pull(client, target, local)
    assert summary.refused == ["models/m.pkl"] and not list(elsewhere.iterdir())


# ---------------------------------------------------------------------- the status dir
def push_args(bucket: str, local: Path, status_dir: Path, *extra: str) -> list[str]:
    return [
        "push", "--url", f"s3://{bucket}/pre", "--project", "demo", "--dir", str(local),
        "--manifest", str(status_dir / "pulled.json"), "--status-dir", str(status_dir),
        "--termination-log", str(status_dir / "termination-log"), *extra,
    ]  # fmt: skip


def test_push_uploads_once_the_stage_wrote_exit_0(moto, bucket, tmp_path):
    local, status_dir = tmp_path / "d", tmp_path / "status"
    write(local / "model.pkl", "model")
    reporter = status.Reporter(status_dir, interval=0.2)
    reporter.start()
    push = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bodywork_bootstrap.artifacts",
            *push_args(bucket, local, status_dir),
        ],
        env={**os.environ, **moto.env, "BODYWORK_S3_ENDPOINT_URL": moto.endpoint},
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # push is waiting; the stage has not finished
    assert push.poll() is None and keys(moto, bucket) == []
    reporter.finish(0)
    _, err = push.communicate(timeout=60)
    assert push.returncode == 0, err
    assert keys(moto, bucket) == ["pre/demo/model.pkl"]
    assert "artifacts: pushed 1 file (5 B) to s3://" in err


def test_push_uploads_nothing_after_a_failed_stage(moto, bucket, tmp_path):
    local, status_dir = tmp_path / "d", tmp_path / "status"
    write(local / "half-written.pkl", "partial")
    status_dir.mkdir()
    status.write_exit(status_dir, 3)
    done = cli(moto, *push_args(bucket, local, status_dir))
    assert done.returncode == 0, done.stderr
    assert "the stage exited with code 3: nothing uploaded" in done.stderr
    assert keys(moto, bucket) == []


def test_a_stale_heartbeat_without_exit_is_a_failure(moto, bucket, tmp_path):
    local, status_dir = tmp_path / "d", tmp_path / "status"
    write(local / "model.pkl", "model")
    status_dir.mkdir()
    (status_dir / status.HEARTBEAT).touch()
    old = time.time() - 120
    os.utime(status_dir / status.HEARTBEAT, (old, old))  # the stage was SIGKILLed long ago
    done = cli(moto, *push_args(bucket, local, status_dir, "--stale-seconds", "5"))
    assert done.returncode == EXIT_ARTIFACTS_NO_RESULT, done.stderr
    assert "the stage container ended without a result" in done.stderr
    said = (status_dir / "termination-log").read_text()
    assert said.startswith("artifacts push failed: the stage container ended without a result")
    assert keys(moto, bucket) == []


def test_no_heartbeat_at_all_is_a_failure_after_the_start_bound(moto, bucket, tmp_path):
    local, status_dir = tmp_path / "d", tmp_path / "status"
    status_dir.mkdir()
    done = cli(moto, *push_args(bucket, local, status_dir, "--start-seconds", "1"))
    assert done.returncode == EXIT_ARTIFACTS_NO_RESULT
    assert "it never reported in" in done.stderr


def stage_repo(tmp_path: Path, code: str) -> tuple[str, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "stage" / "main.py", code)
    write(repo / "stage" / "requirements.txt", "")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "c")
    return repo.as_uri(), git(repo, "rev-parse", "HEAD")


def bootstrapper(tmp_path: Path, url: str, commit: str, status_dir: Path, *extra: str):
    return [
        sys.executable, "-m", "bodywork_bootstrap", "--repo", url, "--commit", commit,
        "--stage", "stage", "--script", "main.py", "--project", "demo",
        "--workdir", str(tmp_path / "work"), "--venv-root", str(tmp_path / "venvs"),
        "--artifacts-dir", str(tmp_path / "artifacts"), "--status-dir", str(status_dir),
        *extra,
    ]  # fmt: skip


@pytest.mark.usefixtures("offline_env")
@pytest.mark.parametrize(
    ("code", "exit_code"),
    [("print('ok')\n", 0), ("import sys\nsys.exit(3)\n", 3), ("raise SystemExit('x')\n", 1)],
)
def test_the_bootstrapper_reports_its_exit_code_in_the_status_dir(tmp_path, code, exit_code):
    url, commit = stage_repo(tmp_path, code)
    status_dir = tmp_path / "status"
    done = subprocess.run(
        bootstrapper(tmp_path, url, commit, status_dir), capture_output=True, timeout=120
    )
    assert done.returncode == exit_code, done.stderr
    assert status.read_exit(status_dir) == exit_code
    assert status.heartbeat_age(status_dir) is not None


@pytest.mark.usefixtures("offline_env")
def test_the_bootstrapper_reports_a_bad_commit_and_sigterm(tmp_path):
    url, commit = stage_repo(tmp_path, "import time\ntime.sleep(60)\n")
    status_dir = tmp_path / "status"
    done = subprocess.run(
        bootstrapper(tmp_path, url, "f" * 40, status_dir), capture_output=True, timeout=120
    )
    assert done.returncode == 90 and status.read_exit(status_dir) == 90  # fetch failed
    status_dir = tmp_path / "status2"
    stage = subprocess.Popen(
        bootstrapper(tmp_path, url, commit, status_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert stage.stderr is not None
    for line in stage.stderr:  # the module runs: SIGTERM now reaches it, forwarded
        if "running" in line:
            break
    time.sleep(0.5)
    stage.terminate()
    assert stage.wait(timeout=30) != 0
    assert status.read_exit(status_dir) == 128 + 15


# ---------------------------------------------------------------------- failures
def test_wrong_credentials_are_one_clear_line_without_the_secret(moto, bucket, tmp_path):
    secret = "wrong-secret-key-never-shown"
    log = tmp_path / "termination-log"
    done = cli(
        moto,
        "pull", "--url", f"s3://{bucket}/p", "--project", "demo", "--dir", str(tmp_path / "d"),
        "--termination-log", str(log),
        env={"AWS_SECRET_ACCESS_KEY": secret},
    )  # fmt: skip
    assert done.returncode == EXIT_ARTIFACTS_S3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"artifacts: pull failed: cannot list s3://{bucket}/p/demo/: ")
    assert "SignatureDoesNotMatch" in lines[0] and "check AWS_SECRET_ACCESS_KEY" in lines[0]
    assert "Traceback" not in done.stderr
    for text in (done.stderr, done.stdout, log.read_text()):
        assert secret not in text and "Signature=" not in text
    assert log.read_text().startswith("artifacts pull failed: cannot list")


def test_missing_credentials_name_what_to_set(moto, bucket, tmp_path):
    done = cli(
        moto,
        "pull", "--url", f"s3://{bucket}", "--project", "demo", "--dir", str(tmp_path / "d"),
        env={"AWS_ACCESS_KEY_ID": ""},
    )  # fmt: skip
    assert done.returncode == EXIT_ARTIFACTS_CONFIG
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in done.stderr


def test_a_server_that_is_down_is_a_clear_line_after_bounded_retries(moto, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = cli(
        moto,
        "pull", "--url", "s3://some-bucket/p", "--project", "demo", "--dir", str(tmp_path / "d"),
        "--endpoint-url", down,
    )  # fmt: skip
    assert done.returncode == EXIT_ARTIFACTS_S3
    line = done.stderr.strip()
    assert "\n" not in line and f"cannot reach {down} (ConnectionRefusedError" in line
    assert f"(after {s3.RETRIES + 1} attempts)" in line
    assert time.monotonic() - started < 60  # bounded, whatever the machine's speed


def test_bad_arguments_exit_with_the_config_code(moto, tmp_path):
    done = cli(moto, "pull", "--url", "https://x/y", "--project", "demo", "--dir", "d")
    assert done.returncode == EXIT_ARTIFACTS_CONFIG and "must be s3://" in done.stderr
    done = cli(moto, "push", "--project", "demo")
    assert done.returncode == EXIT_ARTIFACTS_CONFIG


# ---------------------------------------------------------------------- local mode
def bodywork_run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bodywork", "run", str(repo), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.usefixtures("offline_env")
def test_local_run_syncs_with_the_bucket_and_stages_never_see_the_secret(
    moto, bucket, make_repo, tmp_path
):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    train = """
        import os, pathlib
        out = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"])
        (out / "model.txt").write_text("weights-v1")
        print("trained")
    """
    score = f"""
        import os, pathlib
        model = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"]) / "model.txt"
        print("score read", model.read_text())
        dumps = pathlib.Path({str(dumps)!r})
        (dumps / f"environ-{{os.getpid()}}").write_text(repr(dict(os.environ)))
        parent = pathlib.Path(f"/proc/{{os.getppid()}}/environ").read_bytes()
        (dumps / f"parent-{{os.getpid()}}").write_bytes(parent)
    """
    ini = project_ini("train >> score").replace(
        "\n\n[workflow]",
        f"\nARTIFACTS_URL = s3://{bucket}/team\n"
        f"ARTIFACTS_S3_ENDPOINT_URL = {moto.endpoint}\n\n[workflow]",
    )
    repo = make_repo(
        {"bodywork.ini": ini, **batch_stage("train", train), **batch_stage("score", score)}
    )
    env = {**os.environ, **moto.env}
    first = bodywork_run(repo, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert keys(moto, bucket) == ["team/demo/model.txt"]
    output = first.stdout + first.stderr
    assert "score read weights-v1" in output
    assert "artifacts: pushed 1 file (10 B) to s3://" in output
    second = bodywork_run(repo, env)
    assert second.returncode == 0, second.stdout + second.stderr
    again = second.stdout + second.stderr
    assert "artifacts: pulled 0 files (0 B)" in again and "1 unchanged" in again
    secret = moto.credentials.secret_key
    assert secret not in output + again
    seen = [p.read_bytes() for p in dumps.iterdir()]
    assert len(seen) == 4  # the environ and the parent's, in each of two runs
    for text in seen:
        assert secret.encode() not in text and b"AWS_SECRET_ACCESS_KEY" not in text
        assert b"AWS_ACCESS_KEY_ID" not in text


@pytest.mark.usefixtures("offline_env")
def test_local_run_checks_the_bucket_before_any_stage_starts(moto, bucket, make_repo, tmp_path):
    marker = tmp_path / "ran"
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train"),
            **batch_stage("train", f"open({str(marker)!r}, 'w').write('x')\n"),
        }
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    url = ["--artifacts-url", f"s3://{bucket}/p", "--artifacts-s3-endpoint-url", moto.endpoint]
    done = bodywork_run(repo, base, *url)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"no S3 credentials for s3://{bucket}/p/demo/" in done.stderr
    assert "AWS_ACCESS_KEY_ID" in done.stderr
    wrong = {**base, **moto.env, "AWS_SECRET_ACCESS_KEY": "not-the-secret-xyz"}
    done = bodywork_run(repo, wrong, *url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SignatureDoesNotMatch" in done.stderr and "not-the-secret-xyz" not in done.stderr
    assert not marker.exists()  # no stage started
    done = bodywork_run(repo, {**base, **moto.env}, "--artifacts-url", "https://nope")
    assert done.returncode == 2 and "--artifacts-url: must be s3://" in done.stderr
