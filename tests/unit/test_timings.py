"""The bootstrapper's timeline line: parsed into a stage's result, kept in the run record
within its size cap, and used by the summary when the "prepared in" line was not kept."""

from __future__ import annotations

import json

from bodywork.core import records, results
from bodywork.core.results import SUCCEEDED, RunOutcome, StageResult
from bodywork_bootstrap.stage import Timeline
from tests import builders

START = "[bodywork] timing start=1700000000.250 checkout=+0.120 venv=+0.180 module=+0.200"
EXITED = f"{START} exited=+0.450 checkout_from=cache venv_from=reused"


def test_the_latest_attempts_timeline_is_read_and_merged() -> None:
    """Lines of an earlier attempt are dropped; the module-start and exit lines of the latest
    merge; a replica's pod prefix does not matter."""
    lines = [
        "[bodywork] timing start=1699999990.000 checkout=+5.000",
        "[pod-x] " + START,
        "stage output",
        "[pod-x] " + EXITED,
    ]
    timings = results.stage_timings(lines)
    assert timings == {
        "started_at": 1700000000.25,
        "checkout": 0.12,
        "venv": 0.18,
        "module": 0.2,
        "exited": 0.45,
        "checkout_from": "cache",
        "venv_from": "reused",
    }
    assert results.stage_timings(["[bodywork] prepared in 1.0s"]) is None
    assert results.stage_timings(["print('[bodywork] timing start=x')"]) is None
    summary = results.timing_summary(timings)
    assert summary == ("checkout 0.12s (cache), venv 0.06s (reused), module 0.02s, exited 0.25s")


def test_the_bootstrappers_line_is_what_the_parser_reads() -> None:
    """Timeline.line() (the bootstrapper) and stage_timings (the controller) agree, also
    across the re-exec's encode/decode."""
    timeline = Timeline(1700000000.5)
    timeline.mark("checkout", 1700000000.6)
    timeline.note("checkout_from", "handed over")
    copy = Timeline.decode(timeline.encode(), 0.0)
    copy.mark("module", 1700000001.0)
    parsed = results.stage_timings([f"[bodywork] {copy.line()}"])
    assert parsed == {
        "started_at": 1700000000.5,
        "checkout": 0.1,
        "module": 0.5,
        "checkout_from": "handed-over",
    }


def test_the_summary_falls_back_on_the_timeline_for_install_and_run() -> None:
    """A quick pod's 'prepared in' line may come only after the result was made: the
    INSTALL and RUN columns then come from the timeline."""
    result = StageResult("s", "batch", SUCCEEDED, attempts=1, seconds=2.0, log_tail=[EXITED])
    table = results.format_summary(RunOutcome("r", "c" * 40, [result]))
    row = table.splitlines()[-1].split()
    assert row[5:7] == ["0.2s", "1.8s"]


def test_the_record_keeps_each_stages_timeline_and_stays_under_the_cap() -> None:
    """300 stages, each with a timeline and a huge log: every stage's timings are in
    run.json and the whole record is under 512 KiB (the logs get what is left)."""
    names = [f"s{i:03d}" for i in range(300)]
    outcome = RunOutcome(
        "run-1",
        "c" * 40,
        [
            StageResult(
                n, "batch", SUCCEEDED, attempts=1, log_tail=[START, *["z" * 150] * 3000, EXITED]
            )
            for n in names
        ],
    )
    stages = (builders.stage_config(name=n, module_path=f"{n}/main.py") for n in names)
    the_plan = builders.make_plan(*stages, commit="c" * 40, run_id="run-1")
    body = records.build_record(the_plan, "ml", "manual", "2026-01-01T00:00:00Z", outcome)
    assert len(json.dumps(body).encode()) < 512 * 1024
    run = json.loads(body["data"][records.RUN_KEY])
    assert all(s["timings"]["exited"] == 0.45 for s in run["stages"])
    assert run["stages"][0]["timings"]["venv_from"] == "reused"
    assert all(body["data"][f"log.{n}"] for n in names)  # each still keeps a tail
