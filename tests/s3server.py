"""A real S3-compatible server for the tests: moto's server mode, as a subprocess.

moto pins botocore, whose python-dateutil cap conflicts with the kubernetes client's, so it
does not live in the project's .venv: `.ci/run` installs it into its own venv and names its
`moto_server` in BODYWORK_TEST_MOTO_SERVER. Without that variable, that venv
(/var/tmp/bodywork-moto/venv), a moto importable here or `moto_server` on PATH is used (in
that order: moto 5.2.1, which some machines carry, mis-checks signatures of encoded keys);
with none of them the S3 tests skip, saying so.

The server checks signatures (INITIAL_NO_AUTH_ACTION_COUNT): the first few actions, which
create an IAM user with full rights and its access key, go unauthenticated; every request
after them must be signed with that key, so wrong credentials really are refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bodywork_bootstrap import s3
from tests.conftest import free_port

MOTO_ENV = "BODYWORK_TEST_MOTO_SERVER"
MOTO_VENV_SERVER = Path("/var/tmp/bodywork-moto/venv/bin/moto_server")
_SETUP_ACTIONS = 3  # CreateUser, CreateAccessKey, PutUserPolicy
_IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"
_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'


def moto_command() -> list[str] | None:
    chosen = os.environ.get(MOTO_ENV)
    if chosen:
        return [chosen]
    if MOTO_VENV_SERVER.exists():
        return [str(MOTO_VENV_SERVER)]
    if importlib.util.find_spec("moto") is not None:
        return [sys.executable, "-m", "moto.server"]
    found = shutil.which("moto_server")  # last: an old one may mis-sign encoded keys
    return [found] if found else None


@dataclass
class S3Server:
    endpoint: str
    credentials: s3.Credentials
    log: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def client(self, bucket: str, **options: object) -> s3.S3Client:
        return s3.S3Client(bucket, self.credentials, self.endpoint, **options)  # type: ignore[arg-type]

    def create_bucket(self, bucket: str) -> None:
        netloc = urllib.parse.urlsplit(self.endpoint).netloc
        headers = s3.sign(
            "PUT", netloc, f"/{bucket}", {}, {}, s3.EMPTY_SHA256, self.credentials,
            "us-east-1", dt.datetime.now(dt.timezone.utc),
        )  # fmt: skip
        status, body = _http(self.endpoint, "PUT", f"/{bucket}", b"", headers)
        assert status == 200, body


def _http(
    endpoint: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(endpoint).netloc, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _iam(endpoint: str, action: str, **params: str) -> ET.Element:
    """One unauthenticated IAM action (the server's first few are let through)."""
    body = urllib.parse.urlencode({"Action": action, "Version": "2010-05-08", **params}).encode()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        # moto routes by the credential scope's service: iam
        "Authorization": f"AWS4-HMAC-SHA256 Credential=setup/{stamp}/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    status, data = _http(endpoint, "POST", "/", body, headers)
    assert status == 200, data
    return ET.fromstring(data)


def _wait_until_answering(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"moto_server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            # A GET of /moto-api/ is not an "action": it does not use up the free ones.
            status, _ = _http(endpoint, "GET", "/moto-api/data.json", b"", {})
            if status < 500:
                return
        time.sleep(0.2)
    raise AssertionError(f"moto_server did not answer within 60 s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def running_moto(directory: Path) -> Iterator[S3Server]:
    command = moto_command()
    if command is None:
        pytest.skip(f"no moto server: set {MOTO_ENV} (.ci/run does) or install moto[server]")
    port = free_port()
    log = directory / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_ACTIONS)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(endpoint, process, log)
        _iam(endpoint, "CreateUser", UserName="bodywork-test")
        key = _iam(endpoint, "CreateAccessKey", UserName="bodywork-test")
        access = key.findtext(f".//{_IAM_NS}AccessKeyId") or ""
        secret = key.findtext(f".//{_IAM_NS}SecretAccessKey") or ""
        assert access and secret, ET.tostring(key)
        _iam(
            endpoint, "PutUserPolicy", UserName="bodywork-test", PolicyName="all",
            PolicyDocument=_POLICY,
        )  # fmt: skip
        yield S3Server(endpoint, s3.Credentials(access, secret), log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
