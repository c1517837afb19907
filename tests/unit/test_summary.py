"""results.format_summary: the fixed-width table printed at the end of a run."""

from __future__ import annotations

from bodywork.core import results
from bodywork.core.results import RunOutcome, StageResult

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def succeeded_run() -> RunOutcome:
    return RunOutcome(
        run_id="20240102-030405-beef",
        commit=COMMIT,
        results=[
            StageResult(
                "train", "batch", results.SUCCEEDED, attempts=2, seconds=12.34, setup_seconds=10.0
            ),
            StageResult(
                "serve-model",
                "service",
                results.SUCCEEDED,
                attempts=1,
                seconds=3.05,
                url="http://localhost:5000/",
            ),
        ],
    )


def failed_run() -> RunOutcome:
    return RunOutcome(
        run_id="20240102-030405-dead",
        commit=COMMIT,
        results=[
            StageResult("prep", "batch", results.SUCCEEDED, attempts=1, seconds=1.0),
            StageResult(
                "train", "batch", results.FAILED, attempts=3, seconds=95.5, reason="exit code 1"
            ),
            StageResult("serve", "service", results.NOT_RUN),
        ],
    )


def test_summary_header_names_run_short_commit_and_verdict():
    """The first line gives the run id, the 12-char commit and 'succeeded'."""
    summary = results.format_summary(succeeded_run())
    assert summary.splitlines()[0] == "run 20240102-030405-beef at 0123456789ab succeeded"


def test_summary_has_a_row_per_stage_with_status_attempts_duration_and_url():
    """Each stage's row shows its type, result, attempts, duration to 0.1 s, install and
    run time apart (when the bootstrapper reported them), and URL."""
    lines = results.format_summary(succeeded_run()).splitlines()
    assert lines[1].split() == [
        "STAGE", "TYPE", "RESULT", "ATTEMPTS", "DURATION", "INSTALL", "RUN", "DETAIL"
    ]  # fmt: skip
    assert lines[2].split() == ["train", "batch", "succeeded", "2", "12.3s", "10.0s", "2.3s"]
    assert lines[3].split() == [
        "serve-model",
        "service",
        "succeeded",
        "1",
        "3.0s",
        "-",
        "-",
        "http://localhost:5000/",
    ]
    assert len(lines) == 4


def test_summary_columns_line_up():
    """Every column starts at the same offset in the header and each row."""
    lines = results.format_summary(succeeded_run()).splitlines()[1:]
    header = lines[0]
    for column, cell in [("TYPE", "batch"), ("RESULT", "succeeded"), ("DURATION", "12.3s")]:
        assert header.index(column) == lines[1].index(cell)
    assert header.index("DETAIL") == lines[2].index("http://")
    assert all(line == line.rstrip() for line in lines)


def test_failed_run_shows_reason_not_run_stages_and_failed_verdict():
    """A failure shows its reason, stages that never ran show '-', and the verdict is FAILED."""
    lines = results.format_summary(failed_run()).splitlines()
    assert lines[0] == "run 20240102-030405-dead at 0123456789ab FAILED"
    assert lines[3].split() == [
        "train", "batch", "failed", "3", "95.5s", "-", "-", "exit", "code", "1"
    ]  # fmt: skip
    assert lines[4].split() == ["serve", "service", "not", "run", "0", "-", "-", "-"]


def test_setup_seconds_are_read_from_the_latest_prepared_line():
    """The bootstrapper's 'prepared in' line, also behind a replica's pod prefix; the last
    attempt's wins; none → None."""
    lines = [
        "[bodywork] prepared in 4.50s (fetch 0.20s, install 4.30s); running a/b.py",
        "boom",
        "[x1y2z] [bodywork] prepared in 0.75s (fetch 0.10s, install 0.65s); running a/b.py",
    ]
    assert results.setup_seconds(lines) == 0.75
    assert results.setup_seconds(["[bodywork] fetching"]) is None
    result = StageResult("s", "batch", results.SUCCEEDED, seconds=2.0, setup_seconds=0.75)
    assert result.run_seconds == 1.25


def test_timed_out_stage_makes_the_run_fail():
    """A timed-out stage is the run's failed result and the verdict is FAILED."""
    result = StageResult("train", "batch", results.TIMED_OUT, attempts=1, seconds=3600.0)
    outcome = RunOutcome("r", COMMIT, [result])
    assert not outcome.succeeded
    assert outcome.failed_result is result
    assert "timed out" in results.format_summary(outcome)
    assert results.format_summary(outcome).splitlines()[0].endswith(" FAILED")


def test_run_with_no_results_is_not_a_success():
    """An empty run (nothing ran) is reported FAILED, not vacuously succeeded."""
    outcome = RunOutcome("r", COMMIT, [])
    assert not outcome.succeeded
    assert results.format_summary(outcome).splitlines()[0] == "run r at 0123456789ab FAILED"


def test_failed_result_is_the_first_failure():
    """failed_result points at the first failed or timed-out stage, skipping successes."""
    outcome = failed_run()
    assert outcome.failed_result is outcome.results[1]
    assert succeeded_run().failed_result is None
