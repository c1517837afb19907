"""Hostile configuration: what a cluster would refuse is refused by validation first, in one
message each, and no input makes parsing slow or crash.

Names too long for Kubernetes (cut with a hash, or refused), a BOM or UTF-16 text, 80,000
malformed ini lines and 10,000 stages (linear time), deadlines and quantities out of range,
limits under requests, secrets that would shadow the stage's own variables, cron schedules
and namespaces by the API server's rules, the failure reason an on-failure stage is given,
and requirements files in other encodings.
"""

from __future__ import annotations

import configparser
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bodywork.core import config, cron, names, plan
from bodywork.core.config import checks, inifiles, schema
from bodywork.core.errors import ConfigError, Problem
from bodywork_bootstrap import envnames, venv

FILES = frozenset({"train.py", "requirements.txt"})
BATCH_INI = "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = train.py\n"
GENEROUS_SECONDS = 20  # far above what the linear code takes, below what the old code took


def ini_project(bodywork_ini: str, config_ini: str = BATCH_INI) -> config.ProjectFiles:
    return config.ProjectFiles(
        bodywork_ini=bodywork_ini, dirs={"train": config.StageDir(config_ini, FILES)}
    )


def one_stage(config_ini: str) -> config.ProjectFiles:
    return ini_project("[workflow]\nDAG = train\n", config_ini)


def yaml_project(stage_lines: str, name: str = "hostile") -> config.ProjectFiles:
    text = (
        f'version: "1.1"\npipeline:\n  name: {name}\n  DAG: train\nstages:\n  train:\n'
        f"    executable_module_path: train.py\n{stage_lines}"
    )
    return config.ProjectFiles(bodywork_yaml=text, paths=frozenset({"train.py"}))


def errors_of(files: config.ProjectFiles) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        config.parse_project(files)
    return [p for p in info.value.problems if p.severity == "error"]


# ---------------------------------------------------------------------------- long names
def test_a_300_character_project_name_is_cut_with_a_hash_and_a_note():
    """PROJECT_NAME names every object, labels them all (63 at most) and, locally, a directory
    (255 at most): a 300-character one is cut to 63 with a hash of the whole, and a note says
    so; two such names that differ only at the end stay distinct."""
    first = config.parse_project(
        ini_project(f"[default]\nPROJECT_NAME = {'a' * 300}\n[workflow]\nDAG = train\n")
    )
    second = config.parse_project(
        ini_project(f"[default]\nPROJECT_NAME = {'a' * 299}b\n[workflow]\nDAG = train\n")
    )
    assert len(first.project_name) == names.MAX_NAME_LENGTH
    assert names.is_dns_label(first.project_name)
    assert first.project_name != second.project_name
    assert first.project_name.startswith("a" * 40)
    (note,) = [p for p in first.warnings if p.severity == "note"]
    assert note.key == "PROJECT_NAME" and note.line == 2
    assert "is 300 characters long as a Kubernetes name" in note.message
    assert f"the project is called '{first.project_name}'" in note.message
    the_plan = plan.build_plan(first, plan.Source("file:///r", "0" * 40), "20260101-000000-abcd")
    assert all(len(stage.object_name) <= names.MAX_NAME_LENGTH for stage in the_plan.stages)


def test_a_63_character_project_name_is_kept_as_it_is():
    parsed = config.parse_project(
        ini_project(f"[default]\nPROJECT_NAME = {'b' * 63}\n[workflow]\nDAG = train\n")
    )
    assert parsed.project_name == "b" * 63
    assert not parsed.warnings


def test_a_yaml_stage_name_too_long_for_a_label_is_refused():
    """A stage's name is a label value (63 at most) and, locally, part of its venv's name."""
    long_stage = "s" * 64
    text = (
        f'version: "1.1"\npipeline:\n  name: p\n  DAG: {long_stage}\nstages:\n  {long_stage}:\n'
        "    executable_module_path: train.py\n    batch: {}\n"
    )
    files = config.ProjectFiles(bodywork_yaml=text, paths=frozenset({"train.py"}))
    (problem,) = errors_of(files)
    assert problem.key == "pipeline.DAG"
    assert "is 64 characters long as a Kubernetes name: a label takes at most 63" in (
        problem.message
    )
    assert "rename its stage" in problem.message


# ---------------------------------------------------------------------------- encodings
def test_a_bom_at_the_start_of_ini_texts_is_not_a_missing_section_header():
    """A UTF-8 BOM (Windows editors write one) is dropped, whoever read the file."""
    bom = "\ufeff"
    parsed = config.parse_project(
        ini_project(bom + "[workflow]\nDAG = train\n", bom + BATCH_INI + "CPU_REQUEST = 2\n")
    )
    assert parsed.stages["train"].cpu_request == 2


def test_a_bom_at_the_start_of_a_yaml_text_is_dropped():
    files = yaml_project("    batch: {}\n")
    assert files.bodywork_yaml is not None
    bommed = config.ProjectFiles(bodywork_yaml="\ufeff" + files.bodywork_yaml, paths=files.paths)
    assert config.parse_project(bommed).project_name == "hostile"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-8"])
def test_project_files_in_utf16_or_utf8_with_a_bom_are_read(tmp_path: Path, encoding: str):
    """Read from disk: UTF-8 with or without its BOM, or UTF-16 with its BOM ("Unicode" in
    Notepad) — not UTF-16 decoded as UTF-8, which is nothing but NULs and U+FFFD."""
    bom = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff"}.get(encoding, "")
    (tmp_path / "train").mkdir()
    (tmp_path / "bodywork.ini").write_bytes(
        (bom + "[default]\nPROJECT_NAME = café\n[workflow]\nDAG = train\n").encode(encoding)
    )
    (tmp_path / "train" / "config.ini").write_bytes((bom + BATCH_INI).encode(encoding))
    (tmp_path / "train" / "train.py").write_text("")
    (tmp_path / "train" / "requirements.txt").write_text("")
    parsed = config.load_project(tmp_path)
    assert parsed.project_name == "caf"  # é has no Kubernetes spelling
    assert parsed.stages["train"].stage_type == "batch"


def test_decode_text_reads_utf16_by_its_bom_and_anything_else_as_utf8():
    assert config.decode_text("[a]\n".encode("utf-16")) == "[a]\n"
    assert config.decode_text("[a]\n".encode("utf-8-sig")) == "[a]\n"
    assert config.decode_text("# café\n".encode("cp1252")) == "# caf\ufffd\n"


# ---------------------------------------------------------------------------- linear parsing
def test_80000_malformed_ini_lines_are_each_reported_in_linear_time():
    """configparser gathers unparsable lines by growing one string (80,000 took 40 s): every
    one is still reported with its line, in well under a second."""
    count = 80_000
    text = "[default]\n" + "\n".join(f"garbage line {i}" for i in range(count)) + "\n"
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        config.parse_project(config.ProjectFiles(bodywork_ini=text))
    seconds = time.perf_counter() - started
    print(f"\n80,000 malformed ini lines: {seconds:.2f}s")
    problems = info.value.problems
    assert len(problems) == count
    assert problems[0] == Problem(
        "bodywork.ini", "cannot parse 'garbage line 0': expected KEY = value", line=2
    )
    assert problems[-1].line == count + 1
    assert [p.line for p in problems] == list(range(2, count + 2))
    assert seconds < GENEROUS_SECONDS


def test_malformed_lines_before_a_fatal_error_are_reported_with_it():
    """configparser drops the unparsable lines it gathered when it stops at a section given
    twice; they are reported with it (and, like configparser, nothing after it)."""
    text = "[default]\nno equals sign\n[workflow]\nDAG = train\n[workflow]\n= no key\n"
    assert errors_of(ini_project(text)) == [
        Problem("bodywork.ini", "cannot parse 'no equals sign': expected KEY = value", line=2),
        Problem("bodywork.ini", "section [workflow] appears twice: merge them", line=5),
    ]


def test_a_line_after_a_malformed_one_continues_the_value_as_configparser_reads_it():
    """A malformed line sets configparser's indentation, so the indented line after it
    continues the key above: only the malformed line is reported."""
    text = "[workflow]\n    DAG = train\ngarbage\n  more of the value\n"
    assert errors_of(ini_project(text)) == [
        Problem("bodywork.ini", "cannot parse 'garbage': expected KEY = value", line=3)
    ]


_LINES = st.sampled_from(
    [
        "[a]", "[b]", "[A]", "[c ; x]", "[open", "  [indented]", "k = v", "K: v", "k3=v ;c",
        "k4 = a;b #c", "  continued", "      deeper", "\tk5 = tab", "garbage", "= v", ": v",
        "  = v", "# comment", "; comment", "", "   ", "x ;c", "x #c = y", "x;y #z = w",
        "a;b", "\u3000x", "x\u3000#c = q", "x\x1c#c=q", "[x] ; c",
    ]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(_LINES, max_size=12), st.booleans())
def test_the_linear_scan_finds_exactly_what_configparser_rejects(lines, header):
    """The unparsable lines configparser reports, and the fatal error it stops at (a key
    before any section, a section or key given twice), with its line: the scan finds the
    same; where configparser reads the text, it finds nothing."""
    text = "\n".join((["[top]"] if header else []) + lines)
    parser = configparser.ConfigParser(
        interpolation=None,
        strict=True,
        default_section="\0none",
        inline_comment_prefixes=("#", ";"),
    )
    bad, fatal = inifiles._scan(text)
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError as exc:
        assert fatal == inifiles._Fatal(exc.lineno)
    except configparser.DuplicateSectionError as exc:
        assert fatal == inifiles._Fatal(exc.lineno or 0, section=exc.section)
    except configparser.DuplicateOptionError as exc:
        assert fatal == inifiles._Fatal(exc.lineno or 0, section=exc.section, option=exc.option)
    except configparser.ParsingError as exc:
        assert (bad, fatal) == (sorted({line for line, _ in exc.errors}), None)
    else:
        assert (bad, fatal) == ([], None)


def test_10000_stages_validate_in_linear_time():
    """A bodywork.yaml of 10,000 stages validates (each stage checked against the DAG once,
    not by scanning it)."""
    count = 10_000
    stages = [f"s{i}" for i in range(count)]
    text = f'version: "1.1"\npipeline:\n  name: big\n  DAG: "{" >> ".join(stages)}"\nstages:\n'
    text += "".join(
        f"  {s}:\n    executable_module_path: m/{s}.py\n    batch:\n      retries: 1\n"
        for s in stages
    )
    files = config.ProjectFiles(bodywork_yaml=text, paths=frozenset(f"m/{s}.py" for s in stages))
    started = time.perf_counter()
    parsed = config.parse_project(files)
    seconds = time.perf_counter() - started
    print(f"\n10,000-stage bodywork.yaml: {seconds:.2f}s")
    assert len(parsed.stages) == count and len(parsed.dag) == count
    assert parsed.dag[-1] == ("s9999",)
    assert parsed.stages["s9999"].retries == 1
    assert not parsed.warnings
    assert seconds < GENEROUS_SECONDS


def test_unused_directories_are_found_in_linear_time():
    """100,000 stage directories against a 100,000-stage DAG: a list scan per directory took
    minutes; one set lookup each takes milliseconds."""
    count = 100_000
    dirs = {f"s{i}": config.StageDir(BATCH_INI, FILES) for i in range(count + 1)}
    in_dag = [f"s{i}" for i in range(count)]
    started = time.perf_counter()
    (unused,) = checks.unused_dirs(dirs, in_dag, None)
    seconds = time.perf_counter() - started
    print(f"\n100,000 directories against the DAG: {seconds:.3f}s")
    assert unused.file == f"s{count}/config.ini"
    assert seconds < GENEROUS_SECONDS


# ---------------------------------------------------------------------------- ranges
@pytest.mark.parametrize(
    ("key", "section"),
    [
        ("MAX_COMPLETION_TIME_SECONDS", "[batch]\n"),
        ("MAX_INSTALL_TIME_SECONDS", ""),
    ],
)
def test_a_deadline_of_10_to_the_30_seconds_is_refused(key, section):
    """activeDeadlineSeconds is int64, and every clock that would wait on 10**30 s overflows:
    the bound is 30 days."""
    problems = errors_of(one_stage(BATCH_INI + section + f"{key} = 1e30\n"))
    assert [(p.key, p.message) for p in problems] == [
        (key, "must be <= 2592000 (30 days), got 1e30")
    ]
    thirty_days = config.parse_project(one_stage(BATCH_INI + section + f"{key} = 2592000\n"))
    assert getattr(thirty_days.stages["train"], key.lower()) == schema.MAX_DEADLINE_SECONDS


def test_a_service_startup_deadline_out_of_range_is_refused_in_yaml():
    files = yaml_project(
        "    service:\n      port: 5000\n      max_startup_time_seconds: 2592001\n"
    )
    (problem,) = errors_of(files)
    assert problem.key == "stages.train.service.max_startup_time_seconds"
    assert problem.message == "must be <= 2592000 (30 days), got 2592001"


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        (
            "CPU_REQUEST = 1e20",
            "CPU_REQUEST",
            "must be <= 9223372036854775 cores (Kubernetes counts millicores in 64 bits), got 1e20",
        ),
        (
            "CPU_LIMIT = 1e16",
            "CPU_LIMIT",
            "must be <= 9223372036854775 cores (Kubernetes counts millicores in 64 bits), got 1e16",
        ),
        (
            "MEMORY_LIMIT_MB = 100000000000000000000",
            "MEMORY_LIMIT_MB",
            "must be <= 8796093022207 MiB (Kubernetes counts bytes in 64 bits), "
            "got 100000000000000000000",
        ),
        (
            "MEMORY_REQUEST_MB = 8796093022208",
            "MEMORY_REQUEST_MB",
            "must be <= 8796093022207 MiB (Kubernetes counts bytes in 64 bits), got 8796093022208",
        ),
        ("GPUS = 1e30", "GPUS", "must be <= 9223372036854775807 (a 64-bit number), got 1e30"),
        (
            f"EXTENDED_RESOURCES = example.com/fpga={2**63}",
            "EXTENDED_RESOURCES",
            "example.com/fpga: count must be at most 9223372036854775807 (a 64-bit number), "
            f"got '{2**63}'",
        ),
        (
            f"TOLERATIONS = gpu:NoExecute:{2**63}",
            "TOLERATIONS",
            f"'gpu:NoExecute:{2**63}': tolerationSeconds must be at most 9223372036854775807 "
            f"(Kubernetes' is a 64-bit number), got '{2**63}'",
        ),
    ],
)
def test_quantities_kubernetes_cannot_represent_are_refused(line, key, message):
    problems = errors_of(one_stage(BATCH_INI + line + "\n"))
    assert [(p.key, p.message) for p in problems] == [(key, message)]


def test_a_huge_number_is_quoted_cut_so_the_message_stays_one_line():
    problems = errors_of(one_stage(BATCH_INI + f"[batch]\nRETRIES = {'9' * 5000}\n"))
    (problem,) = problems
    assert len(problem.message) < 200
    assert "… (5,000 characters)" in problem.message


@pytest.mark.parametrize(("port", "ok"), [(0, False), (1, True), (65535, True), (65536, False)])
def test_ports_are_1_to_65535(port, ok):
    text = (
        f"[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = train.py\n[service]\nPORT = {port}\n"
    )
    if ok:
        assert config.parse_project(one_stage(text)).stages["train"].port == port
    else:
        assert [p.key for p in errors_of(one_stage(text))] == ["PORT"]


def test_replicas_are_bounded():
    text = (
        "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = train.py\n"
        f"[service]\nPORT = 5000\nREPLICAS = {schema.MAX_REPLICAS + 1}\n"
    )
    assert [p.key for p in errors_of(one_stage(text))] == ["REPLICAS"]


# ---------------------------------------------------------------------------- limits
def test_limits_below_requests_are_refused_naming_both():
    """The API server refuses a container whose limit is under its request."""
    problems = errors_of(
        one_stage(
            BATCH_INI + "CPU_REQUEST = 2\nCPU_LIMIT = 1\nMEMORY_REQUEST_MB = 1024\n"
            "MEMORY_LIMIT_MB = 256\n"
        )
    )
    assert [(p.file, p.key, p.line, p.message) for p in problems] == [
        (
            "train/config.ini",
            "CPU_LIMIT",
            5,
            "1 is below CPU_REQUEST 2: Kubernetes refuses a limit under the request; raise "
            "CPU_LIMIT or lower CPU_REQUEST",
        ),
        (
            "train/config.ini",
            "MEMORY_LIMIT_MB",
            7,
            "256 is below MEMORY_REQUEST_MB 1024: Kubernetes refuses a limit under the request; "
            "raise MEMORY_LIMIT_MB or lower MEMORY_REQUEST_MB",
        ),
    ]


def test_a_limit_below_the_default_request_says_the_request_is_the_default():
    (problem,) = errors_of(one_stage(BATCH_INI + "CPU_LIMIT = 0.25\n"))
    assert problem.message.startswith("0.25 is below CPU_REQUEST 0.5 (its default): ")


def test_limits_below_requests_are_refused_in_yaml_too():
    (problem,) = errors_of(yaml_project("    memory_limit_mb: 100\n    batch: {}\n"))
    assert problem.key == "stages.train.memory_limit_mb"
    assert problem.message.startswith(
        "100 is below stages.train.memory_request_mb 512 (its default): "
    )


@pytest.mark.parametrize(
    "lines",
    [
        "CPU_REQUEST = 1\nCPU_LIMIT = 1\nMEMORY_REQUEST_MB = 64\nMEMORY_LIMIT_MB = 64\n",
        "CPU_REQUEST = 0\nCPU_LIMIT = 0.1\nMEMORY_REQUEST_MB = 0\nMEMORY_LIMIT_MB = 1\n",
        "CPU_LIMIT = 4\nMEMORY_LIMIT_MB = 4096\n",
    ],
)
def test_limits_at_or_above_requests_or_without_a_request_are_fine(lines):
    config.parse_project(one_stage(BATCH_INI + lines))


# ---------------------------------------------------------------------------- secrets
RESERVED = [*schema.RESERVED_ENV, "BODYWORK_PROJECT", "BODYWORK_ANYTHING"]


@pytest.mark.parametrize("env_var", RESERVED)
def test_a_secret_that_would_shadow_a_variable_the_stage_needs_is_refused(env_var):
    (problem,) = errors_of(one_stage(BATCH_INI + f"[secrets]\n{env_var} = creds\n"))
    assert problem.key == env_var
    assert problem.message.startswith(f"would shadow {env_var}, ")
    assert problem.message.endswith(": give the variable another name")


def test_the_reserved_names_include_every_variable_bodywork_sets():
    for name in (envnames.GIT_COMMIT, envnames.FAILURE_REASON, envnames.ARTIFACTS_DIR):
        assert checks.reserved_env(name) is not None
    assert checks.reserved_env(envnames.ORIGINAL_GIT_COMMIT) is not None
    assert checks.reserved_env(envnames.ORIGINAL_FAILURE_MESSAGE) is not None


def test_a_reserved_secret_is_refused_in_yaml_and_other_names_are_fine():
    files = yaml_project("    secrets:\n      PATH: creds\n      path: creds\n    batch: {}\n")
    (problem,) = errors_of(files)
    assert problem.key == "stages.train.secrets.PATH"
    assert "would shadow PATH, where the stage's process finds python" in problem.message
    ok = config.parse_project(one_stage(BATCH_INI + "[secrets]\nDB_PASSWORD = creds\n"))
    assert ok.stages["train"].secrets == (("DB_PASSWORD", "creds"),)


# ---------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("namespace", "rule"),
    [
        ("Prod", "it has upper-case letters: namespaces are lower-case ('prod')"),
        ("a" * 64, "it is 64 characters long: at most 63"),
        ("ml_prod", "it has '_': only lower-case letters, digits and '-'"),
        ("ml.prod", "it has '.': only lower-case letters, digits and '-'"),
        ("-ml", "it must start and end with a letter or digit"),
        ("ml-", "it must start and end with a letter or digit"),
        ("", "it is empty"),
        ("ml\n", "it has '\\n': only lower-case letters, digits and '-'"),
    ],
)
def test_a_namespace_name_is_checked_by_the_dns_label_rule(namespace, rule):
    assert names.namespace_problem(namespace) == rule


@pytest.mark.parametrize("namespace", ["default", "ml-prod", "a" * 63, "0", "a1-b2"])
def test_good_namespace_names_pass(namespace):
    assert names.namespace_problem(namespace) is None


# ---------------------------------------------------------------------------- cron
@pytest.mark.parametrize(
    "schedule",
    [
        "0 3 * * *",
        "*/15 * * * *",
        "0 9-17/2 * * MON-FRI",
        "0 0 1 jan,Jul *",
        "5/10 * * * *",
        "0 0 ? * sun",
        "0 0 1-31 1-12 0-6",
        " 0  3 * * * ",
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@every 1h30m",
        "@every 90s",
    ],
)
def test_schedules_kubernetes_accepts_pass(schedule):
    assert cron.schedule_problem(schedule) is None


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("", "it is empty"),
        ("* * * *", "it has 4 field(s): give five"),
        ("0 3 * * * *", "it has 6 field(s): give five"),
        ("61 * * * *", "in the minute field, '61' is outside 0-59"),
        ("0 24 * * *", "in the hour field, '24' is outside 0-23"),
        ("0 0 0 * *", "in the day of month field, '0' is outside 1-31"),
        ("0 0 * 13 *", "in the month field, '13' is outside 1-12"),
        ("0 0 * * 7", "in the day of week field, '7' is outside 0-6 (Sunday is 0 or SUN)"),
        ("0 0 * * FUN", "in the day of week field, 'FUN' is not a number or a name"),
        ("*/0 * * * *", "in the minute field, '*/0': the step after '/' must be 1 or more"),
        ("5-1 * * * *", "in the minute field, '5-1' starts after it ends"),
        ("1-2-3 * * * *", "in the minute field, '1-2-3' has more than one '-'"),
        ("1/2/3 * * * *", "in the minute field, '1/2/3' has more than one '/'"),
        ("-1 * * * *", "in the minute field, '-1' is negative"),
        ("1,,2 * * * *", "in the minute field, '' is not a number"),
        ("@daily ", "'@daily ' is not a macro"),
        ("@Daily", "'@Daily' is not a macro"),
        ("@every soon", "'soon' is not a duration"),
        ("TZ=UTC 0 3 * * *", "Kubernetes refuses TZ= or CRON_TZ= in a schedule"),
        ("CRON_TZ=UTC 0 3 * * *", "Kubernetes refuses TZ= or CRON_TZ= in a schedule"),
    ],
)
def test_schedules_kubernetes_refuses_are_named(schedule, problem):
    found = cron.schedule_problem(schedule)
    assert found is not None and found.startswith(problem), found


# ---------------------------------------------------------------------------- on failure
def _plan_with_on_failure() -> plan.Plan:
    project = config.parse_project(
        config.ProjectFiles(
            bodywork_ini="[workflow]\nDAG = train\nON_FAILURE = tidy\n",
            dirs={
                "train": config.StageDir(BATCH_INI, FILES),
                "tidy": config.StageDir(BATCH_INI, FILES),
            },
        )
    )
    return plan.build_plan(project, plan.Source("file:///r", "0" * 40), "20260101-000000-abcd")


def test_a_200_kib_failure_reason_reaches_the_on_failure_stage_capped():
    """An env value over 128 KiB makes execve fail ("argument list too long"): the reason the
    on-failure stage is given is cut to 4 KiB, with a marker saying so."""
    reason = "failed: exited with code 1: " + "x" * 200_000
    stage = plan.on_failure_stage(_plan_with_on_failure(), "train", reason)
    assert stage is not None
    env = stage.env()
    for name in (envnames.FAILURE_REASON, envnames.ORIGINAL_FAILURE_MESSAGE):
        value = env[name]
        assert len(value.encode()) <= plan.MAX_FAILURE_REASON_BYTES
        assert "bytes in all, cut to 4,096]" in value
    assert env[envnames.FAILURE_REASON].startswith("failed: exited with code 1: xxx")
    assert env[envnames.ORIGINAL_FAILURE_MESSAGE].startswith("stage 'train' failed: ")


def test_a_short_failure_reason_is_passed_whole_and_multibyte_text_is_cut_cleanly():
    the_plan = _plan_with_on_failure()
    stage = plan.on_failure_stage(the_plan, "train", "failed: boom")
    assert stage is not None
    assert stage.env()[envnames.FAILURE_REASON] == "failed: boom"
    stage = plan.on_failure_stage(the_plan, "train", "é" * 100_000)
    assert stage is not None
    value = stage.env()[envnames.FAILURE_REASON]
    assert len(value.encode()) <= plan.MAX_FAILURE_REASON_BYTES
    assert value.startswith("éé") and "\ufffd" not in value


# ---------------------------------------------------------------------------- requirements
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_requirements_in_utf8_or_utf16_with_a_bom_are_read(tmp_path: Path, encoding: str):
    bom = "\ufeff" if encoding in ("utf-16-le", "utf-16-be") else ""
    path = tmp_path / "requirements.txt"
    path.write_bytes((bom + "# café\nnumpy==2.0\n").encode(encoding))
    assert venv.read_requirements(path) == "# café\nnumpy==2.0\n"


def test_requirements_in_cp1252_are_an_install_error_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_bytes("numpy==2.0\n# café\n".encode("cp1252"))
    with pytest.raises(venv.InstallError) as info:
        venv.read_requirements(path, "train/requirements.txt")
    assert str(info.value) == (
        "train/requirements.txt is not UTF-8 text (byte 0xe9 on line 2; Windows-1252 or "
        "Latin-1 perhaps): save it as UTF-8"
    )


def test_a_utf16_bom_before_bytes_that_are_not_utf16_is_an_install_error(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"\xff\xfe\x00\xd8")  # a lone surrogate
    with pytest.raises(venv.InstallError, match="save it as UTF-8"):
        venv.read_requirements(path)
