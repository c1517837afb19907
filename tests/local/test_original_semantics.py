"""The original Bodywork's semantics that real projects depend on, through real local runs.

Installation is not counted against a stage's own time limits; a step's batch stages can be
asked to finish before its services start; `[secrets]` come from the environment or a
secrets file and are never silently missing; two local services on one port are refused
with the usage exit code; the original's env names reach stage code.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap

import pytest

from tests.local.projects import batch_stage, project_ini, service_stage

pytestmark = pytest.mark.usefixtures("offline_env")

SLOW_BUILD_SECONDS = 3

# A package whose build backend sleeps before writing its wheel by hand: an install that takes
# longer than the stage's own limit, offline, with no build dependencies to fetch.
SLOW_BACKEND = f"""
import base64, hashlib, os, time, zipfile

NAME, VERSION = "slowpkg", "1.0"
DIST = f"{{NAME}}-{{VERSION}}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    time.sleep({SLOW_BUILD_SECONDS})
    files = {{
        f"{{NAME}}/__init__.py": b"VALUE = 42\\n",
        f"{{DIST}}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n"
        ).encode(),
        f"{{DIST}}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\\nGenerator: slow\\n"
            b"Root-Is-Purelib: true\\nTag: py3-none-any\\n"
        ),
    }}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(data)}}")
    record.append(f"{{DIST}}.dist-info/RECORD,,")
    files[f"{{DIST}}.dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = f"{{DIST}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name
"""
SLOW_PYPROJECT = """
[build-system]
requires = []
build-backend = "slow_backend"
backend-path = ["."]

[project]
name = "slowpkg"
version = "1.0"
"""


def slow_package(stage: str) -> dict[str, str]:
    """`<stage>/slowpkg/`, a path requirement of that stage that takes seconds to build."""
    return {
        f"{stage}/slowpkg/pyproject.toml": SLOW_PYPROJECT,
        f"{stage}/slowpkg/slow_backend.py": SLOW_BACKEND,
    }


def bodywork(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bodywork", *args], capture_output=True, text=True, timeout=timeout, env=os.environ
    )


def test_install_longer_than_the_batch_limit_is_not_counted_against_it(make_repo, engine):
    """A 1 s MAX_COMPLETION_TIME_SECONDS holds for the code, not a 3 s install before it."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train"),
            **batch_stage(
                "train", "import slowpkg\nprint('value', slowpkg.VALUE)\n", max_seconds=1
            ),
            "train/requirements.txt": "./slowpkg\n",
            **slow_package("train"),
        }
    )
    run = engine(repo)
    result = run.result("train")
    assert result.status == "succeeded", (result.reason, run.sink.of("train"))
    assert "value 42" in run.sink.of("train")
    assert result.setup_seconds is not None and result.setup_seconds >= SLOW_BUILD_SECONDS
    assert result.run_seconds is not None and result.run_seconds < result.setup_seconds


def test_install_longer_than_the_startup_limit_is_not_counted_against_it(make_repo, engine):
    """A service with MAX_STARTUP_TIME_SECONDS = 1 becomes ready after a 3 s install."""
    from tests.conftest import free_port
    from tests.local.projects import http_service_code

    port = free_port()
    repo = make_repo(
        {
            "bodywork.ini": project_ini("serve"),
            **service_stage(
                "serve", port, "import slowpkg\n" + http_service_code(port), startup_seconds=1
            ),
            "serve/requirements.txt": "./slowpkg\n",
            **slow_package("serve"),
        }
    )
    run = engine(repo)
    result = run.result("serve")
    assert result.status == "succeeded", (result.reason, run.sink.of("serve"))
    assert result.setup_seconds is not None and result.setup_seconds >= SLOW_BUILD_SECONDS


def test_code_running_past_its_limit_times_out_naming_the_limit(make_repo, engine):
    """The limit still holds for the code itself: a 30 s sleep under a 1 s limit is ended."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train"),
            **batch_stage("train", "import time\ntime.sleep(30)\n", max_seconds=1),
        }
    )
    run = engine(repo)
    result = run.result("train")
    assert result.status == "timed out"
    assert "MAX_COMPLETION_TIME_SECONDS" in result.reason
    assert "installation is not counted" in result.reason
    assert run.seconds < 25


def _step_with_batch_and_service(port: int, batch_first: bool) -> dict[str, str]:
    """One step `prepare,serve`: the service refuses to start unless prepare has finished."""
    from tests.local.projects import http_service_code

    ini = project_ini("prepare,serve")
    if batch_first:
        ini += "BATCH_STAGES_FIRST = true\n"
    serve_code = textwrap.dedent(
        """
        import os, pathlib, sys
        marker = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "prepared")
        if not marker.exists():
            print("prepare has not finished", flush=True)
            sys.exit(3)
        """
    ) + http_service_code(port)
    return {
        "bodywork.ini": ini,
        **batch_stage(
            "prepare",
            """
            import os, pathlib, time
            time.sleep(3)
            pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "prepared").write_text("yes")
            """,
        ),
        **service_stage("serve", port, serve_code, startup_seconds=30),
    }


def test_batch_stages_first_finishes_a_steps_batch_stages_before_its_services(make_repo, engine):
    """With BATCH_STAGES_FIRST the service starts after `prepare` has written its marker."""
    from tests.conftest import free_port

    run = engine(make_repo(_step_with_batch_and_service(free_port(), batch_first=True)))
    assert run.status("prepare") == "succeeded"
    assert run.status("serve") == "succeeded", run.result("serve").reason


def test_by_default_a_steps_stages_start_together(make_repo, engine):
    """Without the option the same step starts both at once, so the service finds no marker."""
    from tests.conftest import free_port

    run = engine(make_repo(_step_with_batch_and_service(free_port(), batch_first=False)))
    assert run.status("serve") == "failed"
    assert "exited with code 3" in run.result("serve").reason


def test_missing_local_secret_is_an_error_naming_the_variable_and_where_to_put_it(make_repo):
    """`[secrets]` locally: no value anywhere → exit 2 before any stage runs."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train"),
            **batch_stage("train", "print('ran')\n"),
            "train/config.ini": "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\n"
            "[secrets]\nBW_TEST_PASSWORD = db-creds\n",
        }
    )
    os.environ.pop("BW_TEST_PASSWORD", None)
    done = bodywork("run", str(repo))
    assert done.returncode == 2, done.stderr
    assert "BW_TEST_PASSWORD" in done.stderr
    assert "db-creds" in done.stderr and "--secrets-file" in done.stderr
    assert "ran" not in done.stdout


def test_local_secret_from_a_secrets_file_reaches_only_its_stage_and_is_never_printed(
    make_repo, tmp_path
):
    """The file's [db-creds] BW_TEST_PASSWORD is in `train`'s env, not `other`'s, and no
    output channel carries the value (the stage prints only its digest)."""
    value = "s3cr3t-" + hashlib.sha256(os.urandom(8)).hexdigest()[:12]
    show = (
        "import hashlib, os\n"
        "v = os.environ.get('BW_TEST_PASSWORD')\n"
        "print('digest', hashlib.sha256(v.encode()).hexdigest() if v else None)\n"
    )
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train >> other"),
            **batch_stage("train", show),
            "train/config.ini": "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\n"
            "[secrets]\nBW_TEST_PASSWORD = db-creds\n",
            **batch_stage("other", show),
        }
    )
    secrets_file = tmp_path / "secrets.ini"
    secrets_file.write_text(f"[db-creds]\nBW_TEST_PASSWORD = {value}\n")
    done = bodywork("run", str(repo), "--secrets-file", str(secrets_file))
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(value.encode()).hexdigest()
    assert f"train | digest {digest}" in done.stdout or f"digest {digest}" in done.stdout
    other = [ln for ln in done.stdout.splitlines() if "other" in ln and "digest" in ln]
    assert other and all("digest None" in ln for ln in other)
    assert value not in done.stdout + done.stderr


def test_two_local_services_on_one_port_warn_at_validate_and_are_refused_by_run(make_repo):
    """Locally both would bind the port: validate warns, run exits 2 naming both stages."""
    from tests.conftest import free_port
    from tests.local.projects import http_service_code

    port = free_port()
    repo = make_repo(
        {
            "bodywork.ini": project_ini("a,b"),
            **service_stage("a", port, http_service_code(port)),
            **service_stage("b", port, http_service_code(port)),
        }
    )
    checked = bodywork("validate", str(repo))
    assert checked.returncode == 0, checked.stderr
    assert f"both listen on {port}" in checked.stderr
    done = bodywork("run", str(repo))
    assert done.returncode == 2, done.stderr
    assert f"both listen on {port}" in done.stderr and "'a'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_originals_env_names_reach_stage_code(make_repo, engine):
    """GIT_COMMIT_HASH (the original's name) is the pinned commit, like BODYWORK_GIT_COMMIT."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train"),
            **batch_stage(
                "train",
                "import os\nprint('hash', os.environ['GIT_COMMIT_HASH'])\n"
                "print('same', os.environ['GIT_COMMIT_HASH'] == "
                "os.environ['BODYWORK_GIT_COMMIT'])\n",
            ),
        }
    )
    run = engine(repo)
    lines = run.sink.of("train")
    assert "same True" in lines, lines
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert f"hash {commit}" in lines
