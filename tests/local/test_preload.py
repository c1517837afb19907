"""cli.preload: a package imported on a thread, in a fresh interpreter each time (so the
module is not already loaded), and what a failing or repeated preload does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import json, sys, threading
    from bodywork.cli import preload
    mode, names = sys.argv[1], sys.argv[2:]
    if mode == "imported":
        import structlog
    before = {n: n in sys.modules for n in names}
    threads_before = threading.active_count()
    if mode == "failing":
        def load():
            import bodywork_no_such_module
        preload._in_background("bodywork_no_such_module", load)
        preload.yaml()
    else:
        preload.yaml()
        preload.structlog()
    started = threading.active_count() - threads_before
    preload.finish()
    print(json.dumps({"before": before, "after": {n: n in sys.modules for n in names},
                      "started": started, "left": threading.active_count() - threads_before}))
    """
)


def preloaded(mode: str, *names: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode, *names], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # a failing import is silent here
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_modules_not_yet_imported_are_imported_on_threads_that_finish_joins() -> None:
    found = preloaded("fresh", "yaml", "structlog")
    assert found["before"] == {"yaml": False, "structlog": False}
    assert found["after"] == {"yaml": True, "structlog": True}
    assert found["started"] in (0, 1, 2)  # fewer only when a thread already ended
    assert found["left"] == 0


def test_an_already_imported_module_starts_no_thread() -> None:
    found = preloaded("imported", "structlog", "yaml")
    assert found["before"] == {"structlog": True, "yaml": False}
    assert found["after"] == {"structlog": True, "yaml": True}
    assert found["started"] in (0, 1)  # only yaml's


def test_a_module_that_fails_to_import_is_left_to_the_command_to_report() -> None:
    found = preloaded("failing", "bodywork_no_such_module", "yaml")
    assert found["after"] == {"bodywork_no_such_module": False, "yaml": True}
    assert found["left"] == 0
