"""A small S3 client for the artifacts backend: standard library only, AWS Signature V4.

Three operations, all a sync needs: list the objects under a prefix (ListObjectsV2, every
page), download one object to a file (streamed to a temporary file beside it, checked,
then renamed into place) and upload a file (one PUT with Content-MD5 up to
MULTIPART_THRESHOLD, a multipart upload above it, so objects up to S3's 5 TiB work).

- Endpoint: an `endpoint_url` (MinIO, Ceph, GCS's S3 API, moto) is addressed path-style
  (`<endpoint>/<bucket>/<key>`); without one, AWS at `https://s3.<region>.amazonaws.com`,
  virtual-hosted (`https://<bucket>.s3.<region>.amazonaws.com/<key>`), or path-style for a
  bucket name with dots (which the wildcard certificate does not cover).
- Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for temporary ones,
  AWS_SESSION_TOKEN; region AWS_REGION (else AWS_DEFAULT_REGION, else us-east-1).
- Every socket operation has a timeout. Connection failures, 500/502/503/504 and the
  throttling codes (SlowDown, ...) are retried RETRIES times with exponential backoff.
- An error is one line: what was asked, of which bucket and key, S3's code and message.
  The signature, the secret key and the session token are never part of it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import http.client
import io
import os
import random
import socket
import ssl
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from bodywork_bootstrap.recordclass import field, record

DEFAULT_REGION = "us-east-1"
SERVICE = "s3"
ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TIMEOUT_SECONDS = 30.0  # of each connect, send and receive, not of a whole transfer
RETRIES = 4  # after the first attempt: 5 in all
BACKOFF_SECONDS = 0.25  # doubled after each attempt (0.25, 0.5, 1, 2), with jitter
MAX_BACKOFF_SECONDS = 8.0
MiB = 1024 * 1024
MULTIPART_THRESHOLD = 64 * MiB  # above it, a multipart upload (one PUT is capped at 5 GiB)
PART_SIZE = 64 * MiB  # grown when a file would need more than MAX_PARTS parts
MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024 * MiB * 1024  # 5 TiB: S3's largest object
LIST_PAGE_KEYS = 1000  # what S3 returns at most per page anyway
CHUNK_BYTES = 1 * MiB  # read and written at a time: memory stays flat whatever the size
ERROR_BODY_BYTES = 64 * 1024  # of an error response read to name it
PARTIAL_SUFFIX = ".bodywork-partial"  # a download in progress (never uploaded, cleaned up)
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_XMLNS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeTooSkewed",  # a clock corrected between attempts; named if it persists
    }
)


class S3Error(Exception):
    """One line naming the request, the object and what S3 (or the network) said."""

    def __init__(self, message: str, code: str = "", status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


@record(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def scrub(self, text: str) -> str:
        """`text` with the secret key and the session token, wherever they appear, hidden."""
        for secret in (self.secret_key, self.session_token):
            if secret:
                text = text.replace(secret, "***")
        return text


def credentials_from(environ: Mapping[str, str]) -> Credentials | None:
    """The AWS_* credentials in `environ`, or None if the key id or the secret is missing."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN") or None)


def region_from(environ: Mapping[str, str]) -> str:
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


# ---------------------------------------------------------------------- Signature V4
def uri_encode(text: str, keep_slash: bool = False) -> str:
    """SigV4's URI encoding: every byte of the UTF-8 text but A-Z a-z 0-9 - _ . ~ as %XX
    (upper-case hex), `/` kept in a path (`keep_slash`). A space is %20, `+` is %2B."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in _UNRESERVED or (keep_slash and byte == 0x2F):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def canonical_query(query: Mapping[str, str]) -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    folded = {k.strip().lower(): " ".join(str(v).split()) for k, v in headers.items()}
    names = sorted(folded)
    return "".join(f"{n}:{folded[n]}\n" for n in names), ";".join(names)


def canonical_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], payload: str
) -> tuple[str, str]:
    """(the canonical request, the signed header names). `path` is already URI-encoded:
    what goes on the wire, as S3 encodes it once (not twice, as other services do)."""
    lines, signed = _canonical_headers(headers)
    text = "\n".join([method, path, canonical_query(query), lines, signed, payload])
    return text, signed


def signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_hash: str,
    credentials: Credentials,
    region: str,
    now: dt.datetime,
) -> dict[str, str]:
    """`headers` plus Host, X-Amz-Date, X-Amz-Content-Sha256 (the session token's too) and
    the Authorization that signs them all, for a request at time `now` (UTC)."""
    amz_date = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed_headers = {
        **headers,
        "Host": host,
        "X-Amz-Date": amz_date,
        "X-Amz-Content-Sha256": payload_hash,
    }
    if credentials.session_token:
        signed_headers["X-Amz-Security-Token"] = credentials.session_token
    request, names = canonical_request(method, path, query, signed_headers, payload_hash)
    scope = f"{date}/{region}/{SERVICE}/aws4_request"
    digest = hashlib.sha256(request.encode()).hexdigest()
    to_sign = "\n".join([ALGORITHM, amz_date, scope, digest])
    key = signing_key(credentials.secret_key, date, region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed_headers["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    return signed_headers


# ---------------------------------------------------------------------- objects and files
@record(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str  # without quotes: the MD5 for a single PUT, `<md5 of md5s>-<parts>` otherwise


def plain_md5(etag: str) -> str | None:
    """The MD5 an ETag is, when it is one (a single PUT without SSE-KMS): else None."""
    etag = etag.strip('"').lower()
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag):
        return etag
    return None


def file_digests(path: Path, offset: int = 0, length: int | None = None) -> tuple[str, str]:
    """(MD5 hex, SHA-256 hex) of `length` bytes of `path` from `offset` (None: to the end)."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(offset)
        left = length
        while left is None or left > 0:
            chunk = handle.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left))
            if not chunk:
                break
            md5.update(chunk)
            sha.update(chunk)
            if left is not None:
                left -= len(chunk)
    return md5.hexdigest(), sha.hexdigest()


class _Slice(io.RawIOBase):
    """`length` bytes of an open file from `offset`, as a file http.client can send."""

    def __init__(self, handle: BinaryIO, offset: int, length: int):
        self.handle, self.left = handle, length
        handle.seek(offset)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.handle.read(size)
        self.left -= len(data)
        return data


def part_size_for(size: int, wanted: int = PART_SIZE) -> int:
    """The part size for a multipart upload of `size` bytes: `wanted`, grown (to whole MiB)
    so the parts never number more than MAX_PARTS."""
    needed = -(-size // MAX_PARTS)
    return max(wanted, MIN_PART_SIZE, -(-needed // MiB) * MiB)


# ---------------------------------------------------------------------- the client
@record
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""


class S3Client:
    """One bucket's objects. Not thread-safe: one client per thread."""

    def __init__(
        self,
        bucket: str,
        credentials: Credentials,
        endpoint_url: str | None = None,
        region: str = DEFAULT_REGION,
        timeout: float = TIMEOUT_SECONDS,
        retries: int = RETRIES,
        backoff: float = BACKOFF_SECONDS,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.bucket = bucket
        self.credentials = credentials
        self.region = region
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.multipart_threshold, self.part_size = multipart_threshold, part_size
        self.sleep = sleep
        if endpoint_url:
            parsed = urllib.parse.urlsplit(endpoint_url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise S3Error(f"the S3 endpoint must be an http:// or https:// URL: {endpoint_url}")
            if parsed.username or parsed.password:
                raise S3Error("the S3 endpoint may not hold credentials: set AWS_* instead")
            self.scheme, self.netloc = parsed.scheme, parsed.netloc
            self.base_path = f"{parsed.path.rstrip('/')}/{uri_encode(bucket)}"
        else:
            self.scheme = "https"
            if "." in bucket:  # *.s3.<region>.amazonaws.com does not cover a dotted name
                self.netloc = f"s3.{region}.amazonaws.com"
                self.base_path = f"/{uri_encode(bucket)}"
            else:
                self.netloc = f"{bucket}.s3.{region}.amazonaws.com"
                self.base_path = ""
        self.endpoint = f"{self.scheme}://{self.netloc}"
        self._connection: http.client.HTTPConnection | None = None

    # -------------------------------------------------------------- public operations
    def list(self, prefix: str, page_keys: int = LIST_PAGE_KEYS) -> Iterator[S3Object]:
        """Every object whose key starts with `prefix`, page after page."""
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": str(page_keys)}
            query["encoding-type"] = "url"  # keys S3 cannot put in XML 1.0 survive
            if token:
                query["continuation-token"] = token
            where = f"s3://{self.bucket}/{prefix}"
            response = self._request("GET", "", query, what=f"cannot list {where}")
            root = _xml(response.body, f"cannot list {where}")
            encoded = (root.findtext(f"{_XMLNS}EncodingType") or "").lower() == "url"
            for item in root.iter(f"{_XMLNS}Contents"):
                key = item.findtext(f"{_XMLNS}Key") or ""
                if encoded:
                    key = urllib.parse.unquote_plus(key)
                size = int(item.findtext(f"{_XMLNS}Size") or 0)
                etag = (item.findtext(f"{_XMLNS}ETag") or "").strip('"')
                yield S3Object(key, size, etag)
            truncated = (root.findtext(f"{_XMLNS}IsTruncated") or "").lower() == "true"
            token = root.findtext(f"{_XMLNS}NextContinuationToken")
            if not truncated:
                return
            if not token:
                raise S3Error(f"cannot list {where}: a truncated page without a continuation")

    def get(self, key: str, destination: Path) -> str:
        """Download `key` to `destination` (replaced atomically once complete and checked:
        the length S3 announced and, for a single-PUT object, the MD5 its ETag is). Returns
        the file's MD5."""
        what = f"cannot download s3://{self.bucket}/{key}"
        for attempt in self._attempts():
            handle, partial = tempfile.mkstemp(
                dir=destination.parent, prefix=f".{destination.name[:100]}.", suffix=PARTIAL_SUFFIX
            )
            try:
                with os.fdopen(handle, "wb") as out:
                    md5 = self._get_into(key, out, what, attempt)
                os.chmod(partial, _FILE_MODE)  # as any new file, not mkstemp's 0600
                os.replace(partial, destination)
                return md5
            except _Retry as retry:
                self._pause(attempt, retry.reason, what)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)
        raise AssertionError("unreachable")  # pragma: no cover: _attempts raises at the end

    def put(self, key: str, source: Path) -> str:
        """Upload `source` as `key`: one PUT up to the multipart threshold, parts above it.
        Returns the ETag S3 gave the object (without quotes)."""
        size = source.stat().st_size
        if size > MAX_OBJECT_SIZE:
            raise S3Error(f"cannot upload {source.name}: {size} bytes is over S3's 5 TiB limit")
        if size > self.multipart_threshold:
            return self._put_multipart(key, source, size)
        md5, sha = file_digests(source)
        headers = {"Content-MD5": _b64(md5), "Content-Length": str(size)}
        what = f"cannot upload {source.name} to s3://{self.bucket}/{key}"
        with source.open("rb") as handle:
            response = self._request(
                "PUT", key, {}, headers, what=what, payload_hash=sha,
                body=functools.partial(_Slice, handle, 0, size),
            )  # fmt: skip
        return response.headers.get("etag", md5).strip('"')

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
            self._connection = None

    # -------------------------------------------------------------- multipart
    def _put_multipart(self, key: str, source: Path, size: int) -> str:
        what = f"cannot upload {source.name} to s3://{self.bucket}/{key}"
        created = self._request("POST", key, {"uploads": ""}, what=what)
        upload_id = _xml(created.body, what).findtext(f"{_XMLNS}UploadId")
        if not upload_id:
            raise S3Error(f"{what}: S3 started a multipart upload without an UploadId")
        part_size = part_size_for(size, self.part_size)
        etags: list[str] = []
        try:
            with source.open("rb") as handle:
                for number, offset in enumerate(range(0, size, part_size), start=1):
                    length = min(part_size, size - offset)
                    md5, sha = file_digests(source, offset, length)
                    query = {"partNumber": str(number), "uploadId": upload_id}
                    headers = {"Content-MD5": _b64(md5), "Content-Length": str(length)}
                    response = self._request(
                        "PUT", key, query, headers, what=f"{what} (part {number})",
                        payload_hash=sha, body=functools.partial(_Slice, handle, offset, length),
                    )  # fmt: skip
                    etags.append(response.headers.get("etag", f'"{md5}"'))
            parts = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{_escape(e)}</ETag></Part>"
                for n, e in enumerate(etags, start=1)
            )
            body = (
                f'<CompleteMultipartUpload xmlns="{_XMLNS[1:-1]}">{parts}</CompleteMultipartUpload>'
            )
            data = body.encode()
            done = self._request(
                "POST", key, {"uploadId": upload_id}, {"Content-Length": str(len(data))},
                what=what, payload_hash=hashlib.sha256(data).hexdigest(),
                body=lambda: io.BytesIO(data),
            )  # fmt: skip
            root = _xml(done.body, what)
            if root.tag == "Error":  # S3 may answer 200 and fail in the body
                raise S3Error(f"{what}: {_error_text(root)}", root.findtext("Code") or "")
            return (root.findtext(f"{_XMLNS}ETag") or "").strip('"')
        except BaseException:
            with contextlib.suppress(S3Error, OSError):
                self._request("DELETE", key, {"uploadId": upload_id}, what=what, retries=0)
            raise

    # -------------------------------------------------------------- transport
    def _url_path(self, key: str) -> str:
        return f"{self.base_path}/{uri_encode(key, keep_slash=True)}"

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self.scheme == "https":
                self._connection = http.client.HTTPSConnection(
                    self.netloc, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                self._connection = http.client.HTTPConnection(self.netloc, timeout=self.timeout)
            self._connection.blocksize = CHUNK_BYTES
        return self._connection

    def _attempts(self, retries: int | None = None) -> Iterator[int]:
        yield from range((self.retries if retries is None else retries) + 1)

    def _pause(self, attempt: int, reason: str, what: str, retries: int | None = None) -> None:
        if attempt >= (self.retries if retries is None else retries):
            raise S3Error(f"{what}: {reason} (after {attempt + 1} attempts)")
        self.close()
        delay = min(MAX_BACKOFF_SECONDS, self.backoff * 2**attempt)
        self.sleep(delay * (0.5 + random.random() / 2))

    def _send(
        self,
        method: str,
        key: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        payload_hash: str,
        body: io.RawIOBase | io.BytesIO | None,
    ) -> http.client.HTTPResponse:
        path = self._url_path(key) if key else (self.base_path or "") + "/"
        unsigned = {k: v for k, v in headers.items() if k.lower() == "content-length"}
        signed = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        all_headers = sign(
            method, self.netloc, path, query, signed, payload_hash, self.credentials,
            self.region, dt.datetime.now(dt.timezone.utc),
        )  # fmt: skip
        all_headers.update(unsigned)
        if body is None and method in ("PUT", "POST"):
            all_headers["Content-Length"] = "0"
        target = path + (f"?{canonical_query(query)}" if query else "")
        connection = self._connect()
        connection.request(method, target, body=body, headers=all_headers)
        return connection.getresponse()

    def _request(
        self,
        method: str,
        key: str,
        query: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        what: str = "",
        payload_hash: str = EMPTY_SHA256,
        body: Callable[[], io.RawIOBase | io.BytesIO] | None = None,
        retries: int | None = None,
    ) -> _Response:
        """Send, retrying transient failures; the whole (small) response, or S3Error."""
        for attempt in self._attempts(retries):
            try:
                raw = self._send(
                    method, key, query, headers or {}, payload_hash, body() if body else None
                )
                data = raw.read()
            except (OSError, http.client.HTTPException) as exc:
                self._pause(attempt, self._network_reason(exc), what, retries)
                continue
            response = _Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
            if 200 <= raw.status < 300:
                return response
            error = self._error(response, what)
            if raw.status in TRANSIENT_STATUS or error.code in TRANSIENT_CODES:
                self._pause(attempt, str(error).removeprefix(f"{what}: "), what, retries)
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_into(self, key: str, out: BinaryIO, what: str, attempt: int) -> str:
        """One attempt at GET `key` into `out`: its MD5, or _Retry on a transient failure."""
        try:
            raw = self._send("GET", key, {}, {}, EMPTY_SHA256, None)
            if raw.status != 200:
                response = _Response(
                    raw.status, {k.lower(): v for k, v in raw.getheaders()},
                    raw.read(ERROR_BODY_BYTES),
                )  # fmt: skip
                self.close()  # the rest of a large error body is not read
                error = self._error(response, what)
                if raw.status in TRANSIENT_STATUS or error.code in TRANSIENT_CODES:
                    raise _Retry(str(error).removeprefix(f"{what}: "))
                raise error
            announced = raw.getheader("Content-Length")
            etag = (raw.getheader("ETag") or "").strip('"')
            md5, received = hashlib.md5(usedforsecurity=False), 0
            while chunk := raw.read(CHUNK_BYTES):
                out.write(chunk)
                md5.update(chunk)
                received += len(chunk)
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry(self._network_reason(exc)) from None
        if announced is not None and received != int(announced):
            raise _Retry(f"the download was cut short ({received} of {announced} bytes)")
        digest = md5.hexdigest()
        expected_md5 = plain_md5(etag)
        if expected_md5 is not None and expected_md5 != digest:
            raise _Retry("the downloaded bytes do not match the object's ETag (MD5)")
        return digest

    def _network_reason(self, exc: BaseException) -> str:
        self.close()
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return f"no answer from {self.endpoint} within {self.timeout:g} s"
        if isinstance(exc, ssl.SSLError):
            return f"TLS with {self.endpoint} failed: {exc.reason or exc}"
        name = type(exc).__name__
        detail = getattr(exc, "strerror", None) or str(exc) or name
        return self.credentials.scrub(f"cannot reach {self.endpoint} ({name}: {detail})")

    def _error(self, response: _Response, what: str) -> S3Error:
        """S3's error (XML: Code, Message) as one line; never the request's signature."""
        code, text = "", ""
        with contextlib.suppress(ET.ParseError):
            if response.body.strip():
                root = ET.fromstring(response.body[:ERROR_BODY_BYTES])
                code = root.findtext("Code") or ""
                text = _error_text(root)
        if not code:
            code = {403: "AccessDenied", 404: "NotFound"}.get(response.status, "")
            text = f"{code}: HTTP {response.status}" if code else f"HTTP {response.status}"
        hint = _HINTS.get(code, "")
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed") or response.status == 301:
            region = response.headers.get("x-amz-bucket-region")
            if region:
                hint = f" (the bucket is in {region}: set AWS_REGION={region})"
        line = self.credentials.scrub(" ".join(f"{what}: {text}{hint}".split()))
        return S3Error(line, code, response.status)


_HINTS = {
    "InvalidAccessKeyId": " (check AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": " (check AWS_SECRET_ACCESS_KEY)",
    "AccessDenied": " (check the credentials' permissions on the bucket)",
    "NoSuchBucket": " (check the bucket in ARTIFACTS_URL and the endpoint)",
    "RequestTimeTooSkewed": " (this machine's clock is off: S3 allows 15 minutes)",
    "ExpiredToken": " (the session token has expired: renew AWS_SESSION_TOKEN)",
}


class _Retry(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _error_text(root: ET.Element) -> str:
    code = root.findtext("Code") or ""
    message = (root.findtext("Message") or "").strip()
    return f"{code}: {message}" if message else code


def _xml(body: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise S3Error(f"{what}: the endpoint's answer is not S3's XML") from None


def _b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
