"""A fault-injecting HTTP proxy in front of a real Kubernetes API server.

Clients speak plain HTTP to `FaultProxy.url`; the proxy forwards each request over TLS to
the API server named in KUBECONFIG, authenticating with the kubeconfig's credentials, and
streams the answer back chunk by chunk (watch and log streams stay live). Every request is
recorded. Rules added at runtime replace or damage matching answers:

    proxy.fail(method="POST", path_regex=r"/jobs$", status=503, times=2)
    proxy.lose_response(method="POST", path_regex=r"/jobs$")     # forwarded; 504 to client
    proxy.reset_connection(path_regex=r"/pods$", watch=True)    # close without answering
    proxy.gone_on_watch(path_regex=r"/pods$")                   # a 410 ERROR event, then EOF
    proxy.drop_watch_after(r"/pods$", events=2)                 # N event lines, then cut
    proxy.stall_watch(r"/pods$", after_events=0)                # N event lines, then silence
    proxy.forbid(method="POST", path_regex=r"/jobs$")           # 403 like RBAC answers

A rule applies to the first `times` matching requests (None: every one), in the order
rules were added. Stdlib only, apart from reading the kubeconfig with the client.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from kubernetes import client, config

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
REASONS = {
    410: "Expired",
    403: "Forbidden",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}
GONE_EVENT = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "code": 410,
        "reason": "Expired",
        "message": "too old resource version",
    },
}
UPSTREAM_TIMEOUT_SECONDS = 600  # longer than any client read timeout: the client decides


@dataclass(frozen=True)
class Request:
    """One request the proxy received, and what it did with it."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None  # None: the connection was reset without an answer
    fault: str | None  # the rule kind that answered or damaged it; None: forwarded intact

    @property
    def watch(self) -> bool:
        return self.query.get("watch", "").lower() in ("true", "1")

    @property
    def resource_version(self) -> str | None:
        return self.query.get("resourceVersion")


@dataclass
class Rule:
    kind: str  # fail | lose | reset | gone | drop | stall | forbid
    method: str | None
    path_regex: str
    watch: bool | None  # None: watch and non-watch requests alike
    times: int | None
    status: int = 0
    events: int = 0
    user: str = ""
    hits: int = 0
    dropped: list[bytes] = field(default_factory=list, repr=False)  # stall: lines not sent
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path_regex)

    def matches(self, method: str, path: str, watch: bool) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.watch is not None and self.watch != watch:
            return False
        return self._pattern.search(path) is not None


def _status_body(code: int, message: str, reason: str | None = None, **details: str) -> bytes:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "InternalError"),
        "code": code,
    }
    if details:
        body["details"] = details
    return json.dumps(body).encode()


def describe_request(method: str, path: str, query: dict[str, str]) -> dict[str, str]:
    """The RBAC attributes of a request: verb, resource, API group, namespace, name."""
    parts = [p for p in path.split("/") if p]
    group = ""
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        rest = parts
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
        if not rest:  # the namespace object itself is cluster-scoped
            namespace, rest = "", ["namespaces", namespace]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) >= 2 else ""
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    watching = query.get("watch", "").lower() in ("true", "1")
    verb = {
        "GET": "watch" if watching else ("get" if name else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method, method.lower())
    return {"verb": verb, "resource": resource, "group": group, "namespace": namespace}


class FaultProxy:
    """Start with `FaultProxy().start()`; `url` is for `Configuration(host=...)`."""

    def __init__(self, kubeconfig_context: str | None = None):
        cfg = client.Configuration()
        config.load_kube_config(context=kubeconfig_context, client_configuration=cfg)
        upstream = urlsplit(cfg.host)
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or (443 if upstream.scheme == "https" else 80)
        self.upstream_tls = upstream.scheme == "https"
        self.upstream_prefix = upstream.path.rstrip("/")
        self.auth_header = cfg.get_api_key_with_prefix("authorization") or None
        self.ssl_context = self._ssl_context(cfg) if self.upstream_tls else None
        self.rules: list[Rule] = []
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # ends stalled streams
        self._open: set[socket.socket] = set()  # client sockets, closed on stop()
        self._upstreams: set[http.client.HTTPConnection] = set()  # ditto, upstream
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="faultproxy", daemon=True
        )

    @staticmethod
    def _ssl_context(cfg: client.Configuration) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if not cfg.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        return context

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            sockets = list(self._open)
            upstreams = list(self._upstreams)
        for sock in sockets:  # end streams still being forwarded
            _abort(sock)
        for connection in upstreams:
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ rules
    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail(
        self,
        method: str | None = None,
        path_regex: str = ".*",
        status: int = 503,
        times: int | None = 1,
        watch: bool | None = None,
    ) -> Rule:
        """Answer with `status` and a Status body (429 comes with Retry-After: 0)."""
        return self._add(Rule("fail", method, path_regex, watch, times, status=status))

    def lose_response(
        self,
        method: str | None = None,
        path_regex: str = ".*",
        status: int = 504,
        times: int | None = 1,
    ) -> Rule:
        """Forward the request (so it takes effect), but answer `status` instead."""
        return self._add(Rule("lose", method, path_regex, None, times, status=status))

    def reset_connection(
        self,
        method: str | None = None,
        path_regex: str = ".*",
        times: int | None = 1,
        watch: bool | None = None,
    ) -> Rule:
        """Close the client's socket (TCP reset) without answering."""
        return self._add(Rule("reset", method, path_regex, watch, times))

    def gone_on_watch(self, path_regex: str = ".*", times: int | None = 1) -> Rule:
        """Answer a watch with a 200 stream whose only event is a 410 Expired ERROR."""
        return self._add(Rule("gone", "GET", path_regex, True, times))

    def drop_watch_after(self, path_regex: str = ".*", events: int = 1, times: int = 1) -> Rule:
        """Forward `events` event lines of a watch stream, then cut the connection."""
        return self._add(Rule("drop", "GET", path_regex, True, times, events=events))

    def stall_watch(self, path_regex: str = ".*", after_events: int = 0, times: int = 1) -> Rule:
        """Forward `after_events` event lines, then send nothing more and never close.

        The client's connection stays open until it disconnects or the proxy stops; the
        upstream watch keeps running and its later lines are kept in `rule.dropped`.
        """
        return self._add(Rule("stall", "GET", path_regex, True, times, events=after_events))

    def forbid(
        self,
        method: str | None = None,
        path_regex: str = ".*",
        times: int | None = None,
        user: str = "system:serviceaccount:default:bodywork-controller",
        watch: bool | None = None,
    ) -> Rule:
        """Answer 403 with the Status body RBAC gives, naming verb, resource and user."""
        return self._add(Rule("forbid", method, path_regex, watch, times, status=403, user=user))

    def clear_rules(self) -> None:
        with self._lock:
            self.rules.clear()

    def _take_rule(self, method: str, path: str, watch: bool) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, watch):
                    rule.hits += 1
                    return rule
        return None

    # ------------------------------------------------------------------ the log
    def _record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)

    def requests(
        self,
        method: str | None = None,
        path_regex: str | None = None,
        watch: bool | None = None,
    ) -> list[Request]:
        """The recorded requests matching all the given filters, oldest first."""
        with self._lock:
            log = list(self.log)
        return [
            r
            for r in log
            if (method is None or r.method == method.upper())
            and (path_regex is None or re.search(path_regex, r.path))
            and (watch is None or r.watch == watch)
        ]

    def wait_for(
        self, predicate: Callable[[list[Request]], bool], timeout: float = 30.0
    ) -> list[Request]:
        """Block until `predicate(log)` holds; return the log (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                log = list(self.log)
            if predicate(log):
                return log
            if time.monotonic() > deadline:
                lines = "\n".join(f"  {r}" for r in log[-20:])
                raise AssertionError(f"the proxy never saw it in {timeout}s; last:\n{lines}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ serving
    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        return Handler

    def _upstream(self) -> http.client.HTTPConnection:
        if self.upstream_tls:
            return http.client.HTTPSConnection(
                self.upstream_host,
                self.upstream_port,
                timeout=UPSTREAM_TIMEOUT_SECONDS,
                context=self.ssl_context,
            )
        return http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT_SECONDS
        )


def _abort(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), so the peer sees the connection drop."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses, like the API server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # the proxy keeps its own log

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._open.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._open.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -------------------------------------------------------------- one request
    def _serve(self) -> None:
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        method = self.command
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        watching = query.get("watch", "").lower() in ("true", "1")
        rule = self.owner._take_rule(method, path, watching)

        def record(status: int | None) -> None:
            fault = rule.kind if rule is not None else None
            self.owner._record(Request(method, path, query, status, fault))

        if rule is not None and rule.kind == "reset":
            record(None)
            self.close_connection = True
            _abort(self.connection)
            return
        if rule is not None and rule.kind == "fail":
            record(rule.status)
            message = f"injected by faultproxy: {rule.status} for {method} {path}"
            headers = {"Retry-After": "0"} if rule.status == 429 else {}
            self._answer(rule.status, _status_body(rule.status, message), headers)
            return
        if rule is not None and rule.kind == "forbid":
            record(403)
            self._answer(403, self._forbidden_body(rule, method, path, query))
            return
        if rule is not None and rule.kind == "gone":
            record(200)
            self._answer(200, json.dumps(GONE_EVENT).encode() + b"\n", chunked=True)
            self.close_connection = True
            return
        if rule is not None and rule.kind == "lose":
            self._forward_and_discard(method, body)
            record(rule.status)
            message = f"injected by faultproxy: the answer to {method} {path} was lost"
            self._answer(rule.status, _status_body(rule.status, message))
            return
        self._forward(method, body, record, rule)

    def _forbidden_body(self, rule: Rule, method: str, path: str, query: dict[str, str]) -> bytes:
        what = describe_request(method, path, query)
        resource, group = what["resource"], what["group"]
        kind = resource.split("/")[0]
        qualified = f"{kind}.{group}" if group else kind
        message = (
            f'{qualified} is forbidden: User "{rule.user}" cannot {what["verb"]} resource '
            f'"{resource}" in API group "{group}"'
        )
        if what["namespace"]:
            message += f' in the namespace "{what["namespace"]}"'
        return _status_body(403, message, "Forbidden", group=group, kind=kind)

    def _answer(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        chunked: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(body)
            self._chunk(b"")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _open_upstream(
        self, method: str, body: bytes | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send this request upstream with the kubeconfig's credentials; (conn, response)."""
        owner = self.owner
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if owner.auth_header:
            headers["Authorization"] = owner.auth_header
        if body is not None:
            headers["Content-Length"] = str(len(body))
        upstream = owner._upstream()
        with owner._lock:
            owner._upstreams.add(upstream)
        try:
            upstream.request(method, owner.upstream_prefix + self.path, body=body, headers=headers)
            return upstream, upstream.getresponse()
        except OSError:
            self._drop_upstream(upstream)
            raise

    def _forward_and_discard(self, method: str, body: bytes | None) -> None:
        try:
            upstream, response = self._open_upstream(method, body)
        except OSError:
            return  # lost on the way there: the client's answer is the same
        try:
            response.read()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            self._drop_upstream(upstream)

    def _forward(
        self,
        method: str,
        body: bytes | None,
        record: Callable[[int | None], None],
        rule: Rule | None,
    ) -> None:
        try:
            upstream, response = self._open_upstream(method, body)
        except OSError as exc:
            record(502)
            self._answer(502, _status_body(502, f"faultproxy: upstream failed: {exc}"))
            return
        try:
            record(response.status)
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            has_body = method != "HEAD" and response.status not in (204, 304)
            length = response.getheader("Content-Length")
            if not has_body:
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.wfile.flush()
            elif length is not None and rule is None:
                self.send_header("Content-Length", length)
                self.end_headers()
                self._copy(response, lambda data: self.wfile.write(data))
                self.wfile.flush()
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                if rule is not None and rule.kind == "drop":
                    self._copy_lines_then_cut(response, rule.events)
                    return
                if rule is not None and rule.kind == "stall":
                    self._copy_lines_then_stall(upstream, response, rule)
                    return
                self._copy(response, self._chunk)
                self._chunk(b"")
        except (OSError, http.client.HTTPException):
            # the client went away, or upstream broke mid-body (or stop()): cut the client
            # off too, so it sees a dropped connection rather than a short answer
            self.close_connection = True
            _abort(self.connection)
        finally:
            self._drop_upstream(upstream)

    def _drop_upstream(self, upstream: http.client.HTTPConnection) -> None:
        with self.owner._lock:
            self.owner._upstreams.discard(upstream)
        upstream.close()

    @staticmethod
    def _copy(response: http.client.HTTPResponse, write: Callable[[bytes], object]) -> None:
        while True:
            data = response.read1(65536)
            if not data:
                return
            write(data)

    def _copy_lines(self, response: http.client.HTTPResponse, events: int) -> bytes | None:
        """Forward whole lines (one watch event each) until `events`; return what was read
        beyond them, or None if upstream ended first (the client's stream is then ended)."""
        buffer = b""
        sent = 0
        while sent < events:
            data = response.read1(65536)
            if not data:  # upstream ended first: end cleanly
                if buffer:
                    self._chunk(buffer)
                self._chunk(b"")
                return None
            buffer += data
            while sent < events and b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._chunk(line + b"\n")
                sent += 1
        return buffer

    def _copy_lines_then_cut(self, response: http.client.HTTPResponse, events: int) -> None:
        """Forward whole lines (one watch event each) until `events`, then reset."""
        if self._copy_lines(response, events) is None:
            return
        self.close_connection = True
        _abort(self.connection)

    def _copy_lines_then_stall(
        self, upstream: http.client.HTTPConnection, response: http.client.HTTPResponse, rule: Rule
    ) -> None:
        """Forward `rule.events` lines, then go silent until the client leaves or the proxy
        stops, reading upstream on meanwhile and keeping its lines in `rule.dropped`."""
        leftover = self._copy_lines(response, rule.events)
        if leftover is None:
            return

        def drain(buffer: bytes) -> None:
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                while data := response.read1(65536):
                    buffer += data
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        rule.dropped.append(line)

        drainer = threading.Thread(target=drain, args=(leftover,), name="faultproxy-stall")
        drainer.daemon = True
        drainer.start()
        self.close_connection = True
        try:
            while not self.owner._stopping.is_set():
                readable, _, _ = select.select([self.connection], [], [], 0.2)
                if readable:  # EOF (the client gave up) or bytes it should not send: end
                    break
        except (OSError, ValueError):
            pass  # stop() closed the socket under us
        finally:
            if upstream.sock is not None:
                with contextlib.suppress(OSError):
                    upstream.sock.shutdown(socket.SHUT_RDWR)  # wakes the drainer
            drainer.join(timeout=5)
