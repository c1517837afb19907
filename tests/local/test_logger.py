"""bodywork.logs.logger: events below the announced level cost no structlog import; the
first one written runs the set-up first, once, even when threads race to it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
import structlog

from bodywork.logs import logger


@pytest.fixture(autouse=True)
def _nothing_announced() -> Iterator[None]:
    logger.forget_configuration()
    yield
    logger.forget_configuration()


def test_with_nothing_announced_every_event_reaches_structlog_with_bound_fields() -> None:
    log = logger.get_logger("bodywork.test")
    with structlog.testing.capture_logs() as logs:
        log.debug("first", a=1)
        with logger.bound(step=2):
            log.info("second", b="x")
            with logger.bound(stage="train"):
                log.error("third")
        log.warning("fourth")
    assert logs == [
        {"event": "first", "a": 1, "log_level": "debug"},
        {"event": "second", "step": 2, "b": "x", "log_level": "info"},
        {"event": "third", "step": 2, "stage": "train", "log_level": "error"},
        {"event": "fourth", "log_level": "warning"},
    ]


def test_an_event_below_the_announced_level_is_dropped_and_the_setup_waits() -> None:
    ran: list[str] = []
    logger.configure_on_first_use("warning", lambda: ran.append("setup"))
    log = logger.get_logger("bodywork.test")
    with structlog.testing.capture_logs() as logs:
        log.info("dropped")
        log.debug("dropped too")
        assert ran == []
        log.warning("kept", n=1)
        log.error("kept too")
    assert ran == ["setup"]  # once, before the first event written
    assert [e["event"] for e in logs] == ["kept", "kept too"]


def test_a_field_of_the_event_wins_over_a_bound_one() -> None:
    with structlog.testing.capture_logs() as logs, logger.bound(step=1):
        logger.get_logger("t").info("e", step=9)
    assert logs[0]["step"] == 9


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(KeyError):
        logger.configure_on_first_use("verbose", lambda: None)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dropped_events_never_import_structlog() -> None:
    done = run_python(
        """
        import sys
        from bodywork.logs import logger
        logger.configure_on_first_use("warning", lambda: print("setup"))
        logger.get_logger("t").info("dropped")
        print("structlog" in sys.modules, "asyncio" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_threads_racing_to_the_first_event_all_write_after_the_setup() -> None:
    """The set-up is slow here; an event written before it ended would go to structlog's
    default output, stdout. Every event must reach stderr, set up, and stdout stay empty."""
    done = run_python(
        """
        import sys, threading, time
        import structlog
        from bodywork.logs import logger

        def setup():
            time.sleep(0.3)
            structlog.configure(
                processors=[structlog.processors.JSONRenderer()],
                logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            )

        logger.configure_on_first_use("info", setup)
        log = logger.get_logger("t")
        start = threading.Barrier(8)
        def write(n):
            start.wait()
            log.info("event", n=n)
        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 8 and all('"event": "event"' in line for line in lines), lines


def test_the_levels_are_the_standard_librarys() -> None:
    """structlog's filtering logger takes logging's numbers; ours must be the same ones."""
    import logging

    assert {name: logging.getLevelName(name.upper()) for name in logger.LEVELS} == logger.LEVELS
