"""Builders for the small Bodywork projects the local tests commit to real git repos, and
psutil-free checks on real processes and ports."""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

WHEEL_REQUIREMENT = "bwtest-greeting==1.0"  # the one package in conftest's wheelhouse


def project_ini(dag: str, name: str = "demo") -> str:
    return f'[default]\nPROJECT_NAME = "{name}"\n\n[workflow]\nDAG = {dag}\n'


def batch_config(
    script: str = "main.py", retries: int | None = None, max_seconds: int | None = None
) -> str:
    text = f"[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = {script}\n"
    batch = []
    if retries is not None:
        batch.append(f"RETRIES = {retries}")
    if max_seconds is not None:
        batch.append(f"MAX_COMPLETION_TIME_SECONDS = {max_seconds}")
    if batch:
        text += "\n[batch]\n" + "\n".join(batch) + "\n"
    return text


def service_config(port: int, script: str = "main.py", startup_seconds: int = 20) -> str:
    return (
        f"[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = {script}\n\n"
        f"[service]\nPORT = {port}\nMAX_STARTUP_TIME_SECONDS = {startup_seconds}\n"
    )


def batch_stage(name: str, code: str, requirements: str = "", **config: int) -> dict[str, str]:
    """Files of a batch stage `name` running `code` (dedented)."""
    return {
        f"{name}/config.ini": batch_config(**config),
        f"{name}/requirements.txt": requirements,
        f"{name}/main.py": textwrap.dedent(code),
    }


def service_stage(name: str, port: int, code: str, startup_seconds: int = 20) -> dict[str, str]:
    return {
        f"{name}/config.ini": service_config(port, startup_seconds=startup_seconds),
        f"{name}/requirements.txt": "",
        f"{name}/main.py": textwrap.dedent(code),
    }


def http_service_code(port: int, pid_file: str | None = None) -> str:
    """A stdlib HTTP service answering 'ok from <stage>' on 127.0.0.1:port."""
    record = (
        f"pathlib.Path({pid_file!r}).write_text(str(os.getpid()))\n"
        if pid_file
        else "pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'], 'service.pid')"
        ".write_text(str(os.getpid()))\n"
    )
    return (
        "import http.server, os, pathlib\n"
        + record
        + textwrap.dedent(
            f"""
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    body = ("ok from " + os.environ["BODYWORK_STAGE"]).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            print("serving", flush=True)
            http.server.HTTPServer(("127.0.0.1", {port}), Handler).serve_forever()
            """
        )
    )


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs. A zombie counts as gone: it runs no code and holds no
    port; it only waits for a parent (here possibly a PID 1 that never reaps) to collect it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def port_free(port: int) -> bool:
    """Nothing accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False
    except OSError:
        return True


def run_bodywork(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`bodywork ARGS` as a real subprocess, with `env` over this process's environment."""
    return subprocess.run(
        ["bodywork", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
