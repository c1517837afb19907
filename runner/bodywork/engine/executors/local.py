"""Local executor: every stage is a stage-bootstrap subprocess on this machine.

The same bootstrapper as in a stage pod fetches the pinned commit, prepares the venv and
runs the module, so local mode differs from the cluster only in where processes live.
Each stage runs in its own process group so stopping it also stops whatever it spawned,
and `close()` guarantees no process outlives the run. Nor does one outlive this process if
it dies without closing (SIGKILL): each bootstrapper watches a pipe whose write end only this
process holds, and on its EOF ends its stage (`bodywork_bootstrap.supervise.watch_parent`).
Each bootstrapper also inherits `held_fds` (the project's run lock, `engine.locallock`), so
the lock lasts until the run's last stage process has gone. The artifacts folder is the
project's by identity (`engine.localproject`); a service is ready once its PORT answers and
the listener is one of the stage's own processes (`localports`), else it fails naming the
other. A bootstrapper that cannot be started (an OSError: E2BIG...) fails its stage.

Stage output is read in chunks, not lines: `\n`, `\r\n` and a lone `\r` (progress bars)
each end a line, and a line is held to MAX_LINE_BYTES, so output without newlines never
grows this process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from bodywork.core import bootstrapargs, deadlines, results
from bodywork.core.errors import BodyworkError, UsageError
from bodywork.core.plan import Plan, StageSpec
from bodywork.core.results import FAILED, STOPPED, SUCCEEDED, TIMED_OUT, StageResult
from bodywork.engine import localartifacts, localproject
from bodywork.engine.executors import localports
from bodywork.engine.executors.base import LogSink
from bodywork.logs.logger import get_logger
from bodywork_bootstrap import BOOTSTRAP_EXIT_CODES, TIME_LIMIT_EXIT_CODES, supervise
from bodywork_bootstrap.recordclass import field, record

log = get_logger("bodywork.engine.local")

LOG_TAIL_LINES = 40  # kept per stage for failure reports and the run summary
COMMITS_DIR = "commits"  # under home: the commit cache every stage's bootstrapper shares
STOP_GRACE_SECONDS = 10.0  # SIGTERM first, as Kubernetes does; SIGKILL after this
READY_POLL_SECONDS = 0.05  # a local connect() is cheap; readiness is seen within 50 ms
PORT_CHECK_TIMEOUT_SECONDS = 0.2
MAX_LINE_BYTES = 64 * 1024  # of one output line held in memory; the rest of it is dropped
CUT_MARKER = f" [bodywork: line cut at {MAX_LINE_BYTES // 1024} KiB, the rest dropped]"
_READ_BYTES = 64 * 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOOTSTRAPPER = "[bodywork]"  # what starts each of the bootstrapper's own lines
_PREPARED = "] prepared in "  # its line before the module starts (bodywork_bootstrap.stage)
_E2BIG_HINT = (
    ": one argument or environment value is over 128 KiB, or all of them over the system's "
    "limit (a stage secret's value, ARGS); pass big values in a file instead"
)


@record
class LocalHandle:
    stage: StageSpec
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None
    attempts: int = 0
    started: float = field(default_factory=time.monotonic)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    stop_requested: threading.Event = field(default_factory=threading.Event)
    url: str | None = None
    lifeline: int | None = None  # write end of the pipe the bootstrapper watches
    start_error: str | None = None  # the bootstrapper could not be started (an OSError)


class LineSplitter:
    """Bytes in, lines out. `\n`, `\r\n` and a lone `\r` each end a line; an empty line
    ended by a lone `\r` (a progress bar redrawing) is not one. A line longer than `limit`
    bytes is cut there (its head is a line, marked cut) and the rest of it dropped, so no
    more than `limit` bytes wait for a line end."""

    def __init__(self, limit: int = MAX_LINE_BYTES):
        self.limit = limit
        self.pending = b""
        self.dropping = False  # inside a line already cut: discard up to its end

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """The complete lines in `data` (after what came before), as (line, was cut)."""
        buffer = self.pending + data
        lines: list[tuple[bytes, bool]] = []
        start = 0
        for end in _LINE_END.finditer(buffer):
            if end.group() == b"\r" and end.end() == len(buffer):
                break  # perhaps the first half of \r\n: decide with the next bytes
            self._line(buffer[start : end.start()], end.group() == b"\r", lines)
            start = end.end()
        rest = buffer[start:]
        if not self.dropping and len(rest) > self.limit:
            lines.append((rest[: self.limit], True))
            self.dropping = True
        if self.dropping:  # keep only a trailing \r, which may be half a line end
            rest = b"\r" if rest.endswith(b"\r") else b""
        self.pending = rest
        return lines

    def close(self) -> list[tuple[bytes, bool]]:
        """What is left at the end of the output: its last line, if it had no line end."""
        rest, self.pending = self.pending, b""
        lines: list[tuple[bytes, bool]] = []
        if rest.endswith(b"\r"):
            self._line(rest[:-1], True, lines)
        elif rest and not self.dropping:
            self._line(rest, False, lines)
        self.dropping = False
        return lines

    def _line(self, line: bytes, carriage_return: bool, lines: list[tuple[bytes, bool]]) -> None:
        if self.dropping:  # the end of a line already cut
            self.dropping = False
        elif len(line) > self.limit:
            lines.append((line[: self.limit], True))
        elif line or not carriage_return:
            lines.append((line, False))


def port_in_use(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PORT_CHECK_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def _bootstrapper_said(tail: Sequence[str]) -> str | None:
    """The bootstrapper's last message: its last `[bodywork]` line, and when that ends
    with ':' the lines that continue it (uv's explanation of a failed install follows the
    line naming the requirement)."""
    lines = list(tail)
    starts = [i for i, ln in enumerate(lines) if ln.startswith(_BOOTSTRAPPER)]
    if not starts:
        return None
    said = [lines[starts[-1]].removeprefix(_BOOTSTRAPPER + " ")]
    if said[0].rstrip().endswith(":"):
        said += [ln.rstrip() for ln in lines[starts[-1] + 1 :] if ln.strip()]
    return "\n".join(said)


def _code_said_last(tail: Sequence[str]) -> str | None:
    """The last line the stage's own code printed in its latest attempt (after the
    bootstrapper's "prepared in" line; its own `[bodywork]` lines are not the code's)."""
    lines = list(tail)
    started = [i for i, ln in enumerate(lines) if _PREPARED in ln and ln.startswith(_BOOTSTRAPPER)]
    own = lines[started[-1] + 1 :] if started else lines
    return next(
        (ln.strip() for ln in reversed(own) if ln.strip() and not ln.startswith(_BOOTSTRAPPER)),
        None,
    )


def _exit_reason(code: int, tail: Sequence[str]) -> str:
    if code in BOOTSTRAP_EXIT_CODES:
        detail = _bootstrapper_said(tail) or BOOTSTRAP_EXIT_CODES[code]
        if code in TIME_LIMIT_EXIT_CODES:
            return f"{results.TIMED_OUT}: {detail}"
        return f"bootstrap failed: {detail}"
    if code < 0:  # the bootstrapper itself was killed
        code = 128 - code
    if code > 128:
        try:
            return f"killed by signal {signal.Signals(code - 128).name}"
        except ValueError:
            return f"exited with code {code}"
    last = _code_said_last(tail)
    if last is None:  # not the bootstrapper's "running main.py": that is no reason
        return f"exited with code {code} and printed nothing"
    return f"exited with code {code}: {last}"


class LocalExecutor:
    def __init__(
        self,
        sink: LogSink,
        home: Path,
        env: Mapping[str, str],
        python: str = sys.executable,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        stage_secrets: Mapping[str, Mapping[str, str]] | None = None,
        held_fds: Sequence[int] = (),
        artifacts_url: str | None = None,  # s3://…: wins over the project's ARTIFACTS_URL
        artifacts_s3_endpoint_url: str | None = None,
    ):
        self.sink = sink
        # The S3 artifacts backend (engine.localartifacts), connected in prepare().
        self.s3_choice = (artifacts_url, artifacts_s3_endpoint_url)
        self.bucket: localartifacts.BucketSync | None = None
        # Descriptors each bootstrapper inherits (the run lock: held until its last stage ends).
        self.held_fds = tuple(held_fds)
        self.artifacts: Path | None = None  # the project's, by identity (localproject)
        self.home = home
        self.env = dict(env)
        self.python = python
        self.stop_grace_seconds = stop_grace_seconds
        # Stage name → its [secrets] values (engine.localsecrets): each stage gets only its own.
        self.stage_secrets = {k: dict(v) for k, v in (stage_secrets or {}).items()}
        self.handles: list[LocalHandle] = []
        self.run_dir: Path | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ Executor protocol
    def prepare(self, plan: Plan) -> None:
        ports: dict[int, str] = {}
        for stage in plan.stages:
            port = stage.config.port
            if not stage.config.is_service or port is None:
                continue
            if port in ports:
                raise UsageError(
                    f"locally, services '{ports[port]}' and '{stage.name}' both listen on "
                    f"{port}: on one machine each needs its own PORT (the cluster is fine)"
                )
            ports[port] = stage.name
            if port_in_use(port):
                raise BodyworkError(
                    f"port {port} for service '{stage.name}' is already in use on this "
                    f"machine{localports.describe_owner(port)}: stop what listens there or "
                    f"change PORT in {stage.name}/config.ini"
                )
        self.run_dir = self.home / "runs" / plan.run_id
        identity = localproject.identity_of(plan)
        self.artifacts = localproject.artifacts_dir(self.home, identity, warn=self._warn)
        self.bucket = localartifacts.connect(plan, self.artifacts, self.env, *self.s3_choice)
        if self.bucket is not None:  # the bucket's credentials stay in this process
            self.env = localartifacts.without_credentials(self.env)

    def start(self, stage: StageSpec) -> LocalHandle:
        assert self.run_dir is not None, "prepare() first"
        handle = LocalHandle(stage=stage, workdir=self.run_dir / stage.name)
        with self._lock:
            self.handles.append(handle)
        if self.bucket is not None:  # the bucket's artifacts, before the stage starts
            handle.start_error = self.bucket.pull(lambda line: self.sink(stage.name, line))
            if handle.start_error is not None:
                return handle
        self._launch_or_note(handle)
        return handle

    def wait(self, handle: LocalHandle) -> StageResult:
        if handle.start_error is not None:
            return self._result(handle, FAILED, handle.start_error)
        if handle.stage.config.is_service:
            return self._wait_until_ready(handle)
        result = self._wait_for_batch(handle)
        if self.bucket is not None and result.status == SUCCEEDED:  # up, once it succeeded
            failed = self.bucket.push(lambda line: self.sink(handle.stage.name, line))
            if failed is not None:
                return self._result(handle, FAILED, failed)
        return result

    def stop(self, handle: LocalHandle) -> None:
        handle.stop_requested.set()
        self._terminate(handle)

    def check(self, handle: LocalHandle) -> str | None:
        process = handle.process
        if process is None or process.poll() is None:
            return None
        return _exit_reason(process.returncode, handle.tail)

    def rollback(self, handles: Sequence[LocalHandle]) -> None:
        # Locally there is no previous revision to return to: a failed step's services stop.
        for handle in handles:
            self.stop(handle)

    def close(self) -> None:
        for handle in list(self.handles):
            self.stop(handle)
        for handle in self.handles:
            if handle.reader is not None:
                handle.reader.join(timeout=5)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.bucket is not None:
            self.bucket.close()

    # ------------------------------------------------------------------ local-only helpers
    def artifacts_dir(self, project: str) -> Path:
        """The project's artifacts folder (keyed by its identity once prepared)."""
        if self.artifacts is not None:
            return self.artifacts
        return self.home / localproject.PROJECTS / project / localproject.ARTIFACTS

    def running_services(self) -> list[LocalHandle]:
        return [
            h
            for h in self.handles
            if h.stage.config.is_service and h.process is not None and h.process.poll() is None
        ]

    def wait_for_service_exit(self, poll_seconds: float = 0.2) -> LocalHandle | None:
        """Block while services run; return the first that exits on its own (None if none ran)."""
        while True:
            services = [h for h in self.handles if h.stage.config.is_service and h.url]
            if not services:
                return None
            for handle in services:
                if handle.process is not None and handle.process.poll() is not None:
                    return handle
            time.sleep(poll_seconds)

    # ------------------------------------------------------------------ internals
    def _command(self, handle: LocalHandle, lifeline_fd: int) -> list[str]:
        """The bootstrapper's command line, watching the pipe at `lifeline_fd` for our death
        (supervise.watch_parent)."""
        stage = handle.stage
        paths = bootstrapargs.StagePaths(
            workdir=str(handle.workdir / f"attempt-{handle.attempts}"),
            venv_root=str(self.home / "venvs"),
            artifacts_dir=str(self.artifacts_dir(stage.project)),
            cache_dir=None if "UV_CACHE_DIR" in self.env else str(self.home / "uv-cache"),
            commit_cache=str(self.home / COMMITS_DIR),  # one fetch per commit, not per stage
        )
        watch = ["--lifeline-fd", str(lifeline_fd)]
        return [
            self.python,
            "-m",
            "bodywork_bootstrap",
            *watch,
            *bootstrapargs.stage_args(stage, paths),
        ]

    def _launch(self, handle: LocalHandle) -> None:
        handle.attempts += 1
        env = {
            **self.env,
            **self.stage_secrets.get(handle.stage.name, {}),
            **handle.stage.env(),
            "PYTHONUNBUFFERED": "1",
        }
        handle.workdir.mkdir(parents=True, exist_ok=True)
        # The lifeline: the bootstrapper reads the pipe's read end; only this process holds
        # the write end (not inheritable), so it reads EOF once this process is gone.
        watched, lifeline = os.pipe()
        try:
            process = subprocess.Popen(
                self._command(handle, watched),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                pass_fds=(watched, *self.held_fds),
                start_new_session=True,  # own process group: Ctrl-C is ours to pass on, and
            )  # stopping the group also stops the stage's children
        except BaseException:
            os.close(lifeline)
            raise
        finally:
            os.close(watched)
        self._close_lifeline(handle)  # the previous attempt's
        handle.lifeline = lifeline
        handle.process = process
        handle.reader = threading.Thread(
            target=self._pump,
            args=(handle, process),
            daemon=True,
            name=f"log-{handle.stage.name}",
        )
        handle.reader.start()
        if handle.stop_requested.is_set():  # stop() raced with this launch
            self._terminate(handle)

    def _launch_or_note(self, handle: LocalHandle) -> None:
        """Launch; an OSError starting the bootstrapper (E2BIG: an argument list or an env
        value too long; EMFILE; ENOMEM) fails this stage, with a reason, not the whole run."""
        try:
            self._launch(handle)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "")
            handle.start_error = (
                f"cannot start its bootstrapper: {exc.strerror or exc}"
                + (f" ({name})" if name else "")
                + (_E2BIG_HINT if exc.errno == errno.E2BIG else "")
            )

    def _warn(self, message: str) -> None:
        log.warning("local_artifacts", detail=message)

    def _pump(self, handle: LocalHandle, process: subprocess.Popen[bytes]) -> None:
        """Read the stage's output to its end, line by line (see LineSplitter), into the
        tail and the sink. The pipe is always drained, whatever the sink does: a stage
        never blocks on its output because nobody reads it."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        splitter = LineSplitter()
        while True:
            try:
                data = os.read(fd, _READ_BYTES)
            except InterruptedError:
                continue
            except OSError:
                break
            lines = splitter.feed(data) if data else splitter.close()
            for raw, cut in lines:
                line = raw.decode(errors="replace") + (CUT_MARKER if cut else "")
                handle.tail.append(line)
                with contextlib.suppress(Exception):  # a sink that fails loses the line
                    self.sink(handle.stage.name, line)
            if not data:
                break
        process.stdout.close()

    def _finish_reading(self, handle: LocalHandle) -> None:
        if handle.reader is not None:
            handle.reader.join(timeout=5)

    def _result(self, handle: LocalHandle, status: str, reason: str = "") -> StageResult:
        result = StageResult(
            stage=handle.stage.name,
            stage_type=handle.stage.config.stage_type,
            status=status,
            attempts=handle.attempts,
            seconds=time.monotonic() - handle.started,
            setup_seconds=results.setup_seconds(handle.tail),
            reason=reason,
            url=handle.url,
            log_tail=list(handle.tail),
        )
        return result

    def _wait_for_batch(self, handle: LocalHandle) -> StageResult:
        config = handle.stage.config
        while True:
            assert handle.process is not None
            # The bootstrapper holds install and code to their own limits; this is the
            # backstop for a bootstrapper that cannot act, per attempt.
            backstop = deadlines.attempt_seconds(config) + deadlines.POD_START_GRACE_SECONDS
            # Blocks on the process's exit (a pidfd), not a sleep-and-check loop.
            code = supervise.wait_exit(handle.process, backstop)
            if code is None:
                self._terminate(handle)
                self._finish_reading(handle)
                return self._result(
                    handle,
                    TIMED_OUT,
                    f"no result after {backstop}s (MAX_INSTALL_TIME_SECONDS + "
                    "MAX_COMPLETION_TIME_SECONDS + grace): the bootstrapper did not respond",
                )
            self._terminate(handle)  # the stage's leftover children go with it
            self._finish_reading(handle)
            if handle.stop_requested.is_set():
                return self._result(handle, STOPPED, "stopped")
            if code == 0:
                return self._result(handle, SUCCEEDED)
            reason = _exit_reason(code, handle.tail)
            if handle.attempts > config.retries:
                status = TIMED_OUT if code in TIME_LIMIT_EXIT_CODES else FAILED
                return self._result(handle, status, reason)
            self.sink(
                handle.stage.name,
                f"[bodywork] attempt {handle.attempts} failed "
                f"({reason}); retrying ({handle.attempts}/{config.retries} retries used)",
            )
            self._launch_or_note(handle)
            if handle.start_error is not None:
                return self._result(handle, FAILED, handle.start_error)

    def _wait_until_ready(self, handle: LocalHandle) -> StageResult:
        config = handle.stage.config
        assert config.port is not None and handle.process is not None
        backstop = deadlines.service_backstop_seconds(config)
        deadline = handle.started + backstop
        while time.monotonic() < deadline:
            if handle.stop_requested.is_set():
                self._terminate(handle)
                return self._result(handle, STOPPED, "stopped")
            code = handle.process.poll()
            if code is not None:
                self._terminate(handle)
                self._finish_reading(handle)
                if code in TIME_LIMIT_EXIT_CODES:
                    return self._result(handle, TIMED_OUT, _exit_reason(code, handle.tail))
                return self._result(
                    handle,
                    FAILED,
                    f"{_exit_reason(code, handle.tail)} (before listening on port {config.port})",
                )
            if port_in_use(config.port):
                other = localports.foreign_listener(config.port, handle.process.pid)
                if other is not None:  # not the stage: it would be mistaken for it
                    self._terminate(handle)
                    self._finish_reading(handle)
                    return self._result(handle, FAILED, localports.taken(config.port, other))
                handle.url = f"http://localhost:{config.port}"
                return self._result(handle, SUCCEEDED)
            time.sleep(READY_POLL_SECONDS)
        self._terminate(handle)
        self._finish_reading(handle)
        return self._result(
            handle,
            TIMED_OUT,
            f"not listening on port {config.port} after {backstop}s (MAX_INSTALL_TIME_SECONDS "
            "+ MAX_STARTUP_TIME_SECONDS + grace): the bootstrapper did not respond",
        )

    def _terminate(self, handle: LocalHandle) -> None:
        process = handle.process
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=self.stop_grace_seconds)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        # The bootstrapper did not end in time: what it supervises goes with it, also the
        # daemons that left the process group (re-parented to it: it is their subreaper).
        tree = supervise.descendants(process.pid) if process.poll() is None else set()
        # Whatever the stage started in the background shares its process group and dies
        # with it, as it would with the pod; this also closes the output pipe they hold.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        supervise.signal_all(tree, signal.SIGKILL)
        process.wait()
        if handle.process is process:
            self._close_lifeline(handle)

    def _close_lifeline(self, handle: LocalHandle) -> None:
        with self._lock:
            lifeline, handle.lifeline = handle.lifeline, None
        if lifeline is not None:
            with contextlib.suppress(OSError):
                os.close(lifeline)
