"""The original Bodywork's command lines through the real `bodywork` console script, with no
cluster: the note of today's spelling on stderr once, then today's command's own result; a
form with no equivalent is one `error:` line and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bodywork import __version__

REPO = Path(__file__).resolve().parents[2]
BODYWORK = str(Path(sys.executable).parent / "bodywork")  # the venv's console script
ORIGINAL = "is the original Bodywork's form; today: bodywork "


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A machine with no cluster: KUBECONFIG names a missing file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
    env["BODYWORK_HOME"] = str(tmp_path / "bodywork-home")
    return env


def bodywork(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BODYWORK, *args], capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )


def test_an_original_validate_runs_todays_with_the_note_first(env: dict[str, str]) -> None:
    done = bodywork(env, "validate", "--file", "examples/train-and-deploy/bodywork.ini")
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert first == (
        "note: 'bodywork validate --file examples/train-and-deploy/bodywork.ini' "
        f"{ORIGINAL}validate examples/train-and-deploy"
    )
    assert done.stderr.count("note: 'bodywork") == 1
    assert "bodywork.ini OK: project 'train-and-deploy'" in done.stdout


def test_version_prints_the_version(env: dict[str, str]) -> None:
    done = bodywork(env, "version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"bodywork {__version__}"
    assert done.stderr == f"note: 'bodywork version' {ORIGINAL}--version\n"


def test_a_mapped_cluster_command_notes_then_fails_as_todays_does(env: dict[str, str]) -> None:
    done = bodywork(env, "deployment", "display", "--namespace=ml")
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"note: 'bodywork deployment display --namespace=ml' {ORIGINAL}status -n ml"
    assert done.returncode == 4  # today's `status`: no cluster configured
    assert lines[-1].startswith("error: ")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["setup-namespace", "ml"], "kubectl apply -k manifests/"),
        (["configure-cluster"], "kubectl apply -k manifests/"),
        (["debug", "5"], "kubectl debug"),
        (["deployment", "logs", "--ns", "ml", "--name", "x"], "bodywork logs -n ml RUN"),
        (["create", "deployment", "URL", "--ssh", "key"], "--git-ssh-secret repo-ssh"),
        (["deployment", "create", "--ns", "ml", "--bogus"], "unknown argument --bogus"),
    ],
)
def test_a_form_with_no_equivalent_is_one_error_line_and_exit_2(
    env: dict[str, str], args: list[str], named: str
) -> None:
    done = bodywork(env, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: 'bodywork {args[0]}")
    assert named in lines[0]
    assert "usage:" not in done.stderr and "Traceback" not in done.stderr


def test_a_current_form_prints_no_note(env: dict[str, str]) -> None:
    done = bodywork(env, "validate", "examples/train-and-deploy")
    assert done.returncode == 0, done.stderr
    assert "note: 'bodywork" not in done.stderr
