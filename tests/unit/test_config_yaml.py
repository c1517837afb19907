"""bodywork.yaml (schemas 1.0 and 1.1) → the same ProjectConfig as bodywork.ini, or one
ConfigError with every problem (file, dotted key, line and a message that says how to fix it).

Also what both formats share (the original's image, services on one port, strict mode), the
snapshot `read_project_files` takes, and docs/configuration.md's generated tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodywork.core import config
from bodywork.core.config import docs, schema
from bodywork.core.errors import ConfigError, Problem
from tests.conftest import REPO_ROOT

YAML = "bodywork.yaml"
PATHS = frozenset(
    {
        "pipeline/train_model.py",
        "pipeline/serve_model.py",
        "pipeline/__init__.py",
        "notebooks/explore.ipynb",
        "README.md",
    }
)

# Modelled on the original's public example projects (bodywork-ml/bodywork-pipeline-* repos):
# two stages in one folder, args, inline requirements, secrets in a group, a service.
PROJECT_1_1 = """\
version: "1.1"
pipeline:
  name: bodywork-ml-pipeline-project
  docker_image: bodyworkml/bodywork-core:3.0
  DAG: stage_1_train_model >> stage_2_scoring_service
  secrets_group: dev
stages:
  stage_1_train_model:
    executable_module_path: pipeline/train_model.py
    args: ["--n-estimators", 100, True]
    requirements:
      - boto3>=1.16.15
      - scikit-learn==0.24.1
    cpu_request: 0.5
    memory_request_mb: 100
    secrets:
      AWS_ACCESS_KEY_ID: aws-credentials
      AWS_SECRET_ACCESS_KEY: aws-credentials
    batch:
      max_completion_time_seconds: 30
      retries: 2
  stage_2_scoring_service:
    executable_module_path: pipeline/serve_model.py
    requirements:
      - flask==1.1.2
      - joblib==1.0.0
    cpu_request: 0.25
    memory_request_mb: 100
    service:
      max_startup_time_seconds: 30
      replicas: 2
      port: 5000
      ingress: true
logging:
  log_level: INFO
"""

# The 2.x (schema 1.0) form: `project:`, no namespace or secrets_group, usage_stats on top.
PROJECT_1_0 = """\
version: "1.0"
project:
  name: bodywork-serve-model-project
  docker_image: bodyworkml/bodywork-core:latest
  DAG: scoring-service
  run_on_failure: alert
usage_stats: false
stages:
  scoring-service:
    executable_module_path: scoring_service/serve_model.py
    requirements:
      - flask==1.1.2
    cpu_request: 0.25
    memory_request_mb: 100
    secrets:
      API_KEY: Api-Keys
    service:
      max_startup_time_seconds: 30
      replicas: 1
      port: 5000
      ingress: false
  alert:
    executable_module_path: scoring_service/alert.py
    cpu_request: 0.1
    memory_request_mb: 50
    batch:
      max_completion_time_seconds: 60
      retries: 0
logging:
  log_level: DEBUG
"""
PATHS_1_0 = frozenset({"scoring_service/serve_model.py", "scoring_service/alert.py"})

MINIMAL = """\
version: "1.1"
pipeline:
  DAG: train
stages:
  train:
    executable_module_path: pipeline/train_model.py
    batch:
"""


def files(
    text: str | None,
    paths: frozenset[str] = PATHS,
    fallback: str = "repo",
    ini: str | None = None,
    too_many: bool = False,
) -> config.ProjectFiles:
    return config.ProjectFiles(
        bodywork_ini=ini,
        bodywork_yaml=text,
        paths=paths,
        fallback_name=fallback,
        too_many_files=too_many,
    )


def parse(text: str, paths: frozenset[str] = PATHS, strict: bool = False) -> config.ProjectConfig:
    return config.parse_project(files(text, paths), strict=strict)


def problems_of(text: str | None, paths: frozenset[str] = PATHS, strict: bool = False):
    with pytest.raises(ConfigError) as info:
        config.parse_project(files(text, paths), strict=strict)
    return info.value.problems


def errors_of(text: str | None, paths: frozenset[str] = PATHS, strict: bool = False):
    return [p for p in problems_of(text, paths, strict) if p.severity == "error"]


def error(key: str | None, message: str, line: int | None = None) -> Problem:
    return Problem(YAML, message, key=key, line=line)


def warning(key: str | None, message: str, line: int | None = None) -> Problem:
    return Problem(YAML, message, key=key, line=line, severity="warning")


def with_minimal(extra_stage_lines: str = "", batch_lines: str = "", top: str = "") -> str:
    """MINIMAL with lines added to the train stage (indented 4) and its batch: (indented 6)."""
    stage_part = "".join(f"    {line}\n" for line in extra_stage_lines.splitlines())
    batch_part = "".join(f"      {line}\n" for line in batch_lines.splitlines())
    text = MINIMAL.replace("    batch:\n", stage_part + "    batch:\n" + batch_part)
    return text + top


# ---------------------------------------------------------------------------- good projects
def test_schema_1_1_project_reads_into_the_same_dataclasses():
    project = parse(PROJECT_1_1)
    assert project.config_file == YAML
    assert project.project_name == "bodywork-ml-pipeline-project"
    assert project.dag == (("stage_1_train_model",), ("stage_2_scoring_service",))
    assert project.log_level == "info"
    assert project.docker_image is None  # the original's image means Bodywork's own
    train = project.stages["stage_1_train_model"]
    assert train == config.StageConfig(
        name="stage_1_train_model",
        stage_type="batch",
        module_path="pipeline/train_model.py",
        args=("--n-estimators", "100", "True"),
        requirements=("boto3>=1.16.15", "scikit-learn==0.24.1"),
        cpu_request=0.5,
        memory_request_mb=100,
        retries=2,
        max_completion_time_seconds=30,
        secrets=(
            ("AWS_ACCESS_KEY_ID", "dev-aws-credentials"),
            ("AWS_SECRET_ACCESS_KEY", "dev-aws-credentials"),
        ),
    )
    serve = project.stages["stage_2_scoring_service"]
    assert serve.is_service
    assert (serve.port, serve.replicas, serve.ingress, serve.max_startup_time_seconds) == (
        5000,
        2,
        True,
        30,
    )
    assert serve.requirements == ("flask==1.1.2", "joblib==1.0.0")
    assert serve.secrets == ()
    # two stages in one folder: each runs in it, neither has a requirements.txt
    assert train.module_dir == serve.module_dir == "pipeline"
    assert train.requirements_file is None and serve.requirements_file is None
    assert [p.severity for p in project.warnings] == ["note"]


def test_schema_1_0_project_reads_project_section_and_top_level_usage_stats():
    project = parse(PROJECT_1_0, PATHS_1_0)
    assert project.project_name == "bodywork-serve-model-project"
    assert project.dag == (("scoring-service",),)
    assert project.on_failure == "alert"
    assert set(project.stages) == {"scoring-service", "alert"}
    assert project.log_level == "debug"
    assert project.stages["scoring-service"].secrets == (("API_KEY", "api-keys"),)
    assert project.stages["alert"].stage_type == "batch"
    assert [p.severity for p in project.warnings] == ["note"]


def test_schema_1_0_also_takes_usage_stats_in_the_project_section():
    text = PROJECT_1_0.replace("usage_stats: false\n", "").replace(
        "  run_on_failure: alert\n", "  run_on_failure: alert\n  usage_stats: true\n"
    )
    assert parse(text, PATHS_1_0).dag == (("scoring-service",),)


@pytest.mark.parametrize("written", ["1.1", "'1.1'", '"1.1"', "1.0"])
def test_version_may_be_an_unquoted_number(written):
    section = "project" if written == "1.0" else "pipeline"
    text = MINIMAL.replace('version: "1.1"', f"version: {written}").replace(
        "pipeline:", f"{section}:"
    )
    project = parse(text)
    assert project.dag == (("train",),)
    assert project.warnings == ()


def test_minimal_project_takes_every_schema_default():
    project = parse(MINIMAL)
    assert project.project_name == "repo"
    assert project.log_level == schema.LOG_LEVEL.default
    assert project.batch_stages_first is False
    assert project.namespace is None
    train = project.stages["train"]
    assert (train.args, train.requirements, train.secrets) == ((), (), ())
    for key in schema.YAML_STAGE_KEYS:
        if not key.required and key.shape == "value" and key.section != schema.SERVICE:
            assert getattr(train, key.name) == key.default, key.name


def test_extensions_are_read_from_the_same_keys():
    text = """\
version: "1.1"
pipeline:
  name: My_Project
  DAG: a, b >> c
  batch_stages_first: TRUE
  namespace: ml-prod
  artifacts_pvc: models
  webhook_url_secret: hooks
  docker_image: me/image:1
stages:
  a: {executable_module_path: pipeline/train_model.py, batch: {}}
  b: {executable_module_path: pipeline/train_model.py, batch: {}, cpu_limit: 2,
      memory_limit_mb: 1024, max_install_time_seconds: 600}
  c: {executable_module_path: pipeline/serve_model.py, service: {port: 8000}}
"""
    project = parse(text)
    assert project.project_name == "my-project"
    assert project.dag == (("a", "b"), ("c",))
    assert project.batch_stages_first is True
    assert (project.namespace, project.artifacts_pvc, project.webhook_url_secret) == (
        "ml-prod",
        "models",
        "hooks",
    )
    assert project.docker_image == "me/image:1"
    b = project.stages["b"]
    assert (b.cpu_limit, b.memory_limit_mb, b.max_install_time_seconds) == (2.0, 1024, 600)
    assert project.warnings == ()


def test_anchors_and_merge_keys_are_followed():
    text = """\
version: "1.1"
pipeline: {DAG: a >> b}
defaults: &small
  cpu_request: 0.1
  memory_request_mb: 64
stages:
  a:
    <<: *small
    executable_module_path: pipeline/train_model.py
    batch: {}
  b:
    <<: *small
    memory_request_mb: 128
    executable_module_path: pipeline/train_model.py
    batch: {}
"""
    project = config.parse_project(files(text))
    assert project.stages["a"].cpu_request == 0.1
    assert project.stages["b"].memory_request_mb == 128
    assert [p.key for p in project.warnings] == ["defaults"]  # an unknown top-level key


# ---------------------------------------------------------------------------- values accepted
@pytest.mark.parametrize(
    ("batch_lines", "field", "value"),
    [
        ("max_completion_time_seconds: 30.0", "max_completion_time_seconds", 30),
        ("max_completion_time_seconds: '60'", "max_completion_time_seconds", 60),
        ("retries: 11", "retries", 11),
        ("retries: 2147483647", "retries", 2147483647),
    ],
)
def test_values_the_original_accepted_are_accepted(batch_lines, field, value):
    assert getattr(parse(with_minimal(batch_lines=batch_lines)).stages["train"], field) == value


@pytest.mark.parametrize(
    ("stage_lines", "field", "value"),
    [
        ("cpu_request: 0", "cpu_request", 0.0),
        ("cpu_request: 1", "cpu_request", 1.0),
        ("memory_request_mb: 0", "memory_request_mb", 0),
        ("memory_request_mb: 256.0", "memory_request_mb", 256),
        ('memory_request_mb: "256"', "memory_request_mb", 256),
    ],
)
def test_stage_values_accepted(stage_lines, field, value):
    assert getattr(parse(with_minimal(stage_lines)).stages["train"], field) == value


@pytest.mark.parametrize("written", ["true", "True", "TRUE", "yes", "On", '"true"'])
def test_booleans_in_any_case(written):
    text = MINIMAL.replace(
        "    batch:\n", f"    service:\n      port: 5000\n      ingress: {written}\n"
    )
    assert parse(text).stages["train"].ingress is True


@pytest.mark.parametrize(("written", "level"), [("CRITICAL", "critical"), ("warn", "warning")])
def test_log_levels_the_original_accepted(written, level):
    assert parse(MINIMAL + f"logging:\n  log_level: {written}\n").log_level == level


def test_null_optional_values_take_their_defaults():
    text = with_minimal("args:\nrequirements:\nsecrets:\ncpu_request: ~")
    train = parse(text.replace("  DAG: train\n", "  DAG: train\n  name:\n")).stages["train"]
    assert (train.args, train.requirements, train.secrets, train.cpu_request) == ((), (), (), 0.5)


def test_secrets_without_a_group_name_the_secret_itself_lower_cased():
    text = with_minimal("secrets:\n  db_password: DB-Creds\n  TOKEN: 'api.keys'")
    assert parse(text).stages["train"].secrets == (
        ("db_password", "db-creds"),
        ("TOKEN", "api.keys"),
    )


def test_module_path_is_normalised_and_notebooks_are_modules():
    text = MINIMAL.replace("pipeline/train_model.py", "./notebooks//explore.ipynb")
    train = parse(text).stages["train"]
    assert train.module_path == "notebooks/explore.ipynb"
    assert train.module_dir == "notebooks"


def test_module_at_the_project_root_runs_in_the_root():
    text = MINIMAL.replace("pipeline/train_model.py", "main.py")
    train = parse(text, PATHS | {"main.py"}).stages["train"]
    assert (train.module_path, train.module_dir) == ("main.py", "")


# ---------------------------------------------------------------------------- errors
BAD_STAGE_VALUES = [
    (
        "",
        "retries: -1",
        "stages.train.batch.retries",
        8,
        "must be >= 0 and <= 2147483647 (Kubernetes' backoffLimit is a 32-bit number), got -1",
    ),
    ("", "retries: two", "stages.train.batch.retries", 8, "must be a whole number, got 'two'"),
    ("", "retries: 1.5", "stages.train.batch.retries", 8, "must be a whole number, got '1.5'"),
    ("", "retries: [1]", "stages.train.batch.retries", 8, "must be a single value, not a list"),
    (
        "",
        "max_completion_time_seconds: 0",
        "stages.train.batch.max_completion_time_seconds",
        8,
        "must be >= 1, got 0",
    ),
    ("cpu_request: -1", "", "stages.train.cpu_request", 7, "must be >= 0, got -1"),
    (
        "cpu_request: lots",
        "",
        "stages.train.cpu_request",
        7,
        "must be a number (e.g. 0.5), got 'lots'",
    ),
    ("cpu_limit: 0", "", "stages.train.cpu_limit", 7, "must be > 0, got 0"),
    (
        "memory_request_mb: {a: 1}",
        "",
        "stages.train.memory_request_mb",
        7,
        "must be a single value, not a mapping",
    ),
    (
        "max_install_time_seconds: 0",
        "",
        "stages.train.max_install_time_seconds",
        7,
        "must be >= 1, got 0",
    ),
    ("args: --fast", "", "stages.train.args", 7, "must be a list, e.g. args: [--fast]"),
    ("args: [a, {b: 1}]", "", "stages.train.args[1]", 7, "must be a single value, not a mapping"),
    (
        "requirements:\n  - flask\n  -",
        "",
        "stages.train.requirements[1]",
        9,
        "has no value: remove the '-' or give it one",
    ),
    ("requirements: ['']", "", "stages.train.requirements[0]", 7, "is empty"),
    (
        "secrets: [a, b]",
        "",
        "stages.train.secrets",
        7,
        "must be a mapping of ENV_VAR: secret-name lines",
    ),
    (
        "secrets:\n  1TOKEN: creds",
        "",
        "stages.train.secrets.1TOKEN",
        8,
        "is not a valid environment variable name",
    ),
    (
        "secrets:\n  TOKEN: my_creds",
        "",
        "stages.train.secrets.TOKEN",
        8,
        "secret name 'my_creds' is not a valid Kubernetes name (lower-case letters, digits, '-' "
        "and '.')",
    ),
    (
        "secrets:\n  TOKEN:",
        "",
        "stages.train.secrets.TOKEN",
        8,
        "has no value: give the name of the Kubernetes Secret holding key TOKEN",
    ),
    (
        "executable_module_path:",
        "",
        "stages.train.executable_module_path",
        7,
        "has no value: give it one, e.g. path/to/module.py",
    ),
]


@pytest.mark.parametrize(
    ("stage_lines", "batch_lines", "key", "line", "message"),
    BAD_STAGE_VALUES,
    ids=[case[2] + ": " + case[4][:30] for case in BAD_STAGE_VALUES],
)
def test_bad_stage_value_names_file_key_line_and_fix(stage_lines, batch_lines, key, line, message):
    text = with_minimal(stage_lines, batch_lines)
    if "executable_module_path:" in stage_lines:  # replace the stage's own path line
        text = text.replace("    executable_module_path: pipeline/train_model.py\n", "")
        line -= 1
    assert errors_of(text) == [error(key, message, line)]


SERVICE = """\
version: "1.1"
pipeline:
  DAG: serve
stages:
  serve:
    executable_module_path: pipeline/serve_model.py
    service:
      port: 5000
"""


@pytest.mark.parametrize(
    ("line_text", "key", "message"),
    [
        ("port: 70000", "stages.serve.service.port", "must be >= 1 and <= 65535, got 70000"),
        ("port: http", "stages.serve.service.port", "must be a whole number, got 'http'"),
        ("replicas: 0", "stages.serve.service.replicas", "must be >= 1 and <= 100, got 0"),
        ("ingress: maybe", "stages.serve.service.ingress", "must be True or False, got 'maybe'"),
        ("ingress: 2", "stages.serve.service.ingress", "must be True or False, got '2'"),
    ],
)
def test_bad_service_value(line_text, key, message):
    text = SERVICE.replace("      port: 5000\n", f"      {line_text}\n")
    if not line_text.startswith("port"):
        text += "      port: 5000\n"
    assert errors_of(text) == [error(key, message, 8)]


def test_missing_port_points_at_the_service_mapping():
    text = SERVICE.replace("      port: 5000\n", "      replicas: 2\n")
    assert errors_of(text) == [
        error(
            "stages.serve.service.port",
            "missing: add port: 5000 under stages.serve.service (port the service listens on)",
            7,
        )
    ]


def test_missing_module_path_points_at_the_stage():
    text = MINIMAL.replace("    executable_module_path: pipeline/train_model.py\n", "")
    assert errors_of(text) == [
        error(
            "stages.train.executable_module_path",
            "missing: add executable_module_path: path/to/module.py under stages.train "
            "(the stage's .py or .ipynb, relative to the project root (several stages may "
            "share a folder); it runs in its folder)",
            5,
        )
    ]


def test_a_stage_is_batch_or_service_not_both_nor_neither():
    text = """\
version: "1.1"
pipeline: {DAG: both >> neither}
stages:
  both:
    executable_module_path: pipeline/train_model.py
    batch: {}
    service: {port: 5000}
  neither:
    executable_module_path: pipeline/train_model.py
"""
    assert errors_of(text) == [
        error(
            "stages.both.service",
            "a stage has batch: (runs to completion) or service: (keeps serving), not both: "
            "keep one",
            7,
        ),
        error(
            "stages.neither",
            "needs batch: (a job that runs to completion) or service: (keeps serving on port:), "
            "indented under it",
            8,
        ),
    ]


@pytest.mark.parametrize(
    ("replace", "key", "line", "message"),
    [
        (
            "    batch: []\n",
            "stages.train.batch",
            7,
            "must be a mapping of key: value lines, indented under it",
        ),
        (
            "    batch: 3\n",
            "stages.train.batch",
            7,
            "must be a mapping of key: value lines, indented under it",
        ),
    ],
)
def test_batch_must_be_a_mapping(replace, key, line, message):
    assert errors_of(MINIMAL.replace("    batch:\n", replace)) == [error(key, message, line)]


def test_a_stage_that_is_not_a_mapping():
    text = MINIMAL + "  other: 3\n"
    assert problems_of(text) == [
        error(
            "stages.other",
            "must be a mapping of the stage's settings (executable_module_path:, and batch: or "
            "service:)",
            8,
        ),
        warning(
            "stages.other",
            "this stage is not in the DAG and will not run: add it to pipeline.DAG if it should",
            8,
        ),
    ]


def test_missing_sections_are_named_with_what_to_add():
    assert errors_of('version: "1.1"\nlogging: {log_level: info}\n') == [
        error(
            "pipeline.DAG",
            'missing: add pipeline: with name: and DAG: "stage-1 >> stage-2" under it',
        ),
        error(
            "stages",
            "missing: add stages: with an entry (executable_module_path:, and batch: or service:) "
            "for each stage of the DAG",
        ),
    ]


def test_missing_version_and_dag():
    text = "pipeline:\n  name: p\nstages: {}\n"
    assert errors_of(text) == [
        error(
            "version",
            'missing: add version: "1.1" at the top of the file (the bodywork.yaml schema)',
            1,
        ),
        error(
            "pipeline.DAG",
            'missing: add DAG: "stage-1 >> stage-2" under pipeline (steps of stages, e.g. '
            '"train >> serve")',
            1,
        ),
    ]


@pytest.mark.parametrize("written", ["'1.2'", "2", "true", "'one'"])
def test_unsupported_version(written):
    text = MINIMAL.replace('version: "1.1"', f"version: {written}")
    raw = written.strip("'")
    assert errors_of(text) == [
        error(
            "version",
            f'must be "1.1" (or "1.0", the schema with project: instead of pipeline:), got {raw!r}',
            1,
        )
    ]


def test_the_other_schemas_section_name_is_read_with_a_warning():
    text = MINIMAL.replace("pipeline:", "project:")
    project = parse(text)
    assert project.dag == (("train",),)
    assert project.warnings == (
        warning("project", 'with version "1.1" this section is called pipeline: (read as such)', 2),
    )


def test_project_and_pipeline_together_is_an_error():
    text = MINIMAL + "project:\n  name: x\n"
    assert errors_of(text) == [
        error(
            "project",
            "project: and pipeline: are one section (schema 1.0's and 1.1's name for it): keep one",
            8,
        )
    ]


def test_dag_stage_not_under_stages_suggests_the_closest():
    text = MINIMAL.replace("DAG: train", "DAG: trian >> serve")
    assert errors_of(text) == [
        error("pipeline.DAG", "stage 'trian' is not under stages: (did you mean 'train'?)", 3),
        error("pipeline.DAG", "stage 'serve' is not under stages:", 3),
    ]


def test_dag_syntax_problems_are_reported_at_the_dag_line():
    text = MINIMAL.replace("DAG: train", 'DAG: "train >> >> train"')
    assert errors_of(text) == [
        error("pipeline.DAG", "step 2 is empty: remove the extra '>>'", 3),
        error(
            "pipeline.DAG",
            "stage 'train' appears more than once: a stage runs in exactly one step",
            3,
        ),
    ]


@pytest.mark.parametrize(
    ("on_failure", "message"),
    [
        ("tarin", "stage 'tarin' is not under stages: (did you mean 'train'?)"),
        ("train", "'train' is in the DAG too: the on-failure stage must run only on failure"),
        ("serve", "'serve' is a service: the on-failure stage must be a batch stage"),
    ],
)
def test_run_on_failure_must_be_a_batch_stage_outside_the_dag(on_failure, message):
    text = MINIMAL.replace("  DAG: train\n", f"  DAG: train\n  run_on_failure: {on_failure}\n")
    text += (
        "  serve:\n    executable_module_path: pipeline/serve_model.py\n    service: {port: 1}\n"
    )
    assert errors_of(text) == [error("pipeline.run_on_failure", message, 4)]


def test_stages_that_become_one_kubernetes_name_are_rejected():
    text = """\
version: "1.1"
pipeline: {DAG: Train_A >> train-a}
stages:
  Train_A: {executable_module_path: pipeline/train_model.py, batch: {}}
  train-a: {executable_module_path: pipeline/train_model.py, batch: {}}
"""
    assert errors_of(text) == [
        Problem(
            YAML,
            "stages 'Train_A' and 'train-a' both become 'train-a' in Kubernetes: rename one of "
            "the stages",
            key="pipeline.DAG",
        )
    ]


def test_project_name_without_letters_is_rejected_against_pipeline_name():
    text = MINIMAL.replace("  DAG: train\n", "  DAG: train\n  name: '!!!'\n")
    assert errors_of(text) == [
        Problem(
            YAML,
            "'!!!' has no letters or digits to build Kubernetes names from",
            key="pipeline.name",
        )
    ]


@pytest.mark.parametrize(
    ("line_text", "key", "message"),
    [
        (
            "secrets_group: Dev_Team",
            "pipeline.secrets_group",
            "'dev_team' cannot start a Kubernetes Secret's name (lower-case letters, digits, '-' "
            "and '.')",
        ),
        (
            "namespace: ML_Prod",
            "pipeline.namespace",
            "'ML_Prod' is not a namespace name (lower-case letters, digits and '-', at most 63)",
        ),
        (
            "batch_stages_first: sometimes",
            "pipeline.batch_stages_first",
            "must be True or False, got 'sometimes'",
        ),
    ],
)
def test_bad_project_values(line_text, key, message):
    text = MINIMAL.replace("  DAG: train\n", f"  DAG: train\n  {line_text}\n")
    assert errors_of(text) == [error(key, message, 4)]


def test_bad_log_level():
    assert errors_of(MINIMAL + "logging:\n  log_level: loud\n") == [
        error(
            "logging.log_level",
            "must be one of debug, info, warning, error, critical, got 'loud'",
            9,
        )
    ]


def test_every_problem_is_reported_at_once():
    text = """\
version: "1.1"
pipeline:
  DAG: a >> b
stages:
  a:
    executable_module_path: pipeline/a.py
    cpu_request: -1
    batch: {retries: x}
  b:
    executable_module_path: pipeline/serve_model.py
    service: {replicas: 0}
"""
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert [(p.key, p.line) for p in info.value.problems] == [
        ("stages.a.cpu_request", 7),
        ("stages.a.batch.retries", 8),
        ("stages.a.executable_module_path", 6),
        ("stages.b.service.replicas", 11),
        ("stages.b.service.port", 11),
    ]
    assert str(info.value).startswith("the project has 5 problems:\n")
    assert "  bodywork.yaml: stages.a.batch.retries: must be a whole number, got 'x' (line 8)" in (
        str(info.value)
    )


# ---------------------------------------------------------------------------- module paths
@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/srv/pipeline/train_model.py",
            "'/srv/pipeline/train_model.py' is absolute: give it relative to the project root",
        ),
        (
            "C:/work/train.py",
            "'C:/work/train.py' is absolute: give it relative to the project root",
        ),
        (
            "../other/train_model.py",
            "'../other/train_model.py' leaves the project ('..'): give it "
            "relative to the project root",
        ),
        (
            "pipeline\\\\train_model.py",
            "'pipeline\\train_model.py': write the path with '/' between folders",
        ),
        (
            "pipeline/train_model",
            "'pipeline/train_model' is not a module: name a .py file (or a .ipynb notebook)",
        ),
        (
            "pipeline/README.md",
            "'pipeline/README.md' is not a module: name a .py file (or a .ipynb notebook)",
        ),
        (
            "pipeline/train.py",
            "'pipeline/train.py' does not exist in the project (did you mean "
            "pipeline/train_model.py?)",
        ),
        (
            "train_model.py",
            "'train_model.py' does not exist in the project (did you mean "
            "pipeline/train_model.py?)",
        ),
        ("zzz/qqq.py", "'zzz/qqq.py' does not exist in the project"),
    ],
)
def test_module_path_checks(path, message):
    text = MINIMAL.replace("pipeline/train_model.py", f'"{path}"')
    assert errors_of(text) == [error("stages.train.executable_module_path", message, 6)]


def test_module_path_beyond_the_file_cap_says_why_it_was_not_seen():
    text = MINIMAL.replace("pipeline/train_model.py", "deep/train.py")
    with pytest.raises(ConfigError) as info:
        config.parse_project(files(text, too_many=True))
    (problem,) = info.value.problems
    assert problem.key == "stages.train.executable_module_path"
    assert "more than 50,000 files" in problem.message


# ---------------------------------------------------------------------------- unknown keys
def test_unknown_keys_are_warnings_with_a_did_you_mean():
    text = with_minimal("cpu_reqest: 1", "retrys: 2", top="logging:\n  log_levl: debug\n")
    text = text.replace("  DAG: train\n", "  DAG: train\n  nmae: p\n")
    project = parse(text)
    assert project.warnings == (
        warning("pipeline.nmae", "unknown key, ignored (did you mean name?)", 4),
        warning("logging.log_levl", "unknown key, ignored (did you mean log_level?)", 12),
        warning("stages.train.cpu_reqest", "unknown key, ignored (did you mean cpu_request?)", 8),
        warning("stages.train.batch.retrys", "unknown key, ignored (did you mean retries?)", 10),
    )
    assert project.project_name == "repo" and project.stages["train"].retries == 0


def test_a_key_in_the_wrong_place_says_where_it_belongs():
    text = with_minimal("retries: 3\nport: 80", "cpu_request: 1")
    text = text.replace("  DAG: train\n", "  DAG: train\n  log_level: debug\n") + "name: p\n"
    assert [(p.key, p.message) for p in parse(text).warnings] == [
        ("name", "unknown key, ignored (name belongs under pipeline)"),
        ("pipeline.log_level", "unknown key, ignored (log_level belongs under logging)"),
        ("stages.train.retries", "unknown key, ignored (retries belongs under stages.train.batch)"),
        ("stages.train.port", "unknown key, ignored (port belongs under stages.train.service)"),
        (
            "stages.train.batch.cpu_request",
            "unknown key, ignored (cpu_request belongs under stages.train)",
        ),
    ]


def test_strict_makes_unknown_keys_errors():
    text = with_minimal("cpu_reqest: 1") + "extra: 1\n"
    assert errors_of(text, strict=True) == [
        error("extra", "unknown key", 9),
        error("stages.train.cpu_reqest", "unknown key (did you mean cpu_request?)", 7),
    ]


def test_strict_keeps_other_warnings_and_notes_as_they_are():
    unused = "  unused:\n    executable_module_path: pipeline/train_model.py\n    batch: {}\n"
    text = PROJECT_1_1.replace("logging:\n", unused + "logging:\n")
    project = parse(text, strict=True)
    assert [p.severity for p in project.warnings] == ["warning", "note"]


def test_load_project_passes_strict(tmp_path: Path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "train_model.py").write_text("")
    (tmp_path / YAML).write_text(with_minimal("cpu_reqest: 1"))
    assert [p.severity for p in config.load_project(tmp_path).warnings] == ["warning"]
    with pytest.raises(ConfigError):
        config.load_project(tmp_path, strict=True)


# ---------------------------------------------------------------------------- yaml syntax
def test_duplicate_keys_are_errors_at_their_second_line():
    text = with_minimal("cpu_request: 1\nCPU_REQUEST: 2", "retries: 1\nretries: 2")
    text += "stages:\n  x: {}\n"
    assert errors_of(text) == [
        error("stages", "appears twice (first on line 4): keep one", 12),
        error("stages.train.CPU_REQUEST", "appears twice (first on line 7): keep one", 8),
        error("stages.train.batch.retries", "appears twice (first on line 10): keep one", 11),
    ]


def test_duplicate_stage_names_are_errors():
    text = MINIMAL + "  train:\n    executable_module_path: pipeline/serve_model.py\n"
    assert errors_of(text) == [
        error("stages.train", "appears twice (first on line 5): keep one", 8)
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('version: "1.1"\npipeline: {DAG: [a\n', 3, "expected ',' or ']'"),
        ('version: "1.1"\npipeline:\n  DAG: a: b\n', 3, "mapping values are not allowed here"),
        ('version: "1.1"\n\tpipeline: {}\n', 2, "found character '\\t'"),
        ('version: "1.1"\nname: "open\n', 3, "found unexpected end of stream"),
        ("version: '1.1'\n---\nversion: '1.0'\n", 2, "expected a single document"),
        ('version: "1.1"\nx: \x07\n', 2, "special characters are not allowed"),
    ],
)
def test_yaml_syntax_errors_name_their_line(text, line, fragment):
    (problem,) = errors_of(text)
    assert (problem.file, problem.key, problem.line) == (YAML, None, line)
    assert problem.message.startswith("is not valid YAML: ")
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'is empty: start it with version: "1.1", a pipeline: with DAG:, and stages:'),
        (
            "# nothing yet\n",
            'is empty: start it with version: "1.1", a pipeline: with DAG:, and stages:',
        ),
        ("- a\n- b\n", "must be a mapping of version:, pipeline:, stages: ... (found a list)"),
        ("just text\n", "must be a mapping of version:, pipeline:, stages: ... (found plain text)"),
    ],
)
def test_a_file_that_is_not_a_mapping(text, message):
    assert errors_of(text) == [error(None, message, 1)]


# ---------------------------------------------------------------------------- which file
def test_both_files_is_one_error_naming_both():
    with pytest.raises(ConfigError) as info:
        config.parse_project(files(MINIMAL, ini="[workflow]\nDAG = train\n"))
    (problem,) = info.value.problems
    assert problem.file == YAML
    assert "bodywork.ini is at the project root too: keep one" in problem.message


def test_neither_file_is_one_error_naming_both():
    with pytest.raises(ConfigError) as info:
        config.parse_project(files(None))
    (problem,) = info.value.problems
    assert "nor is bodywork.ini" in problem.message
    assert 'version: "1.1"' in problem.message and "[workflow] DAG" in problem.message


# ---------------------------------------------------------------------------- the original's image
@pytest.mark.parametrize(
    "image",
    [
        "bodyworkml/bodywork-core",
        "bodyworkml/bodywork-core:latest",
        "bodyworkml/bodywork-core:3.0",
        "docker.io/bodyworkml/bodywork-core:2.0.1",
        "BodyworkML/Bodywork-Core:Latest",
    ],
)
def test_the_original_image_means_bodyworks_own_with_a_note(image):
    text = MINIMAL.replace("  DAG: train\n", f"  DAG: train\n  docker_image: {image}\n")
    project = parse(text, strict=True)
    assert project.docker_image is None
    assert project.warnings == (
        Problem(
            YAML,
            f"'{image}' is the original Bodywork's image: the stages run on this Bodywork's own "
            "image instead (leave the key out to say so)",
            key="pipeline.docker_image",
            line=4,
            severity="note",
        ),
    )


@pytest.mark.parametrize(
    "image",
    ["me/bodywork-core:1", "bodyworkml/bodywork-core-extra", "ghcr.io/bodyworkml/bodywork-core"],
)
def test_other_images_are_kept(image):
    text = MINIMAL.replace("  DAG: train\n", f"  DAG: train\n  docker_image: {image}\n")
    project = parse(text)
    assert (project.docker_image, project.warnings) == (image, ())


def test_the_original_image_in_bodywork_ini_is_a_note_too():
    ini = "[default]\nDOCKER_IMAGE = bodyworkml/bodywork-core:latest\n[workflow]\nDAG = train\n"
    stage = config.StageDir(
        "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = t.py\n",
        frozenset({"t.py", "requirements.txt"}),
    )
    project = config.parse_project(config.ProjectFiles(bodywork_ini=ini, dirs={"train": stage}))
    assert project.docker_image is None
    ((severity, key, line),) = [(p.severity, p.key, p.line) for p in project.warnings]
    assert (severity, key, line) == ("note", "DOCKER_IMAGE", 2)


# ---------------------------------------------------------------------------- services on one port
TWO_SERVICES = """\
version: "1.1"
pipeline: {DAG: "train >> api_a >> api_b, api_c"}
stages:
  train: {executable_module_path: pipeline/train_model.py, batch: {}}
  api_a: {executable_module_path: pipeline/serve_model.py, service: {port: 5000}}
  api_b:
    executable_module_path: pipeline/serve_model.py
    service:
      port: 5000
  api_c: {executable_module_path: pipeline/serve_model.py, service: {port: 8000}}
"""


def test_services_sharing_a_port_are_a_local_warning():
    project = parse(TWO_SERVICES)
    assert project.warnings == (
        warning(
            "stages.api_b.service.port",
            "locally, api_a and api_b both listen on 5000: `bodywork run` refuses this; give one "
            "another port (the cluster is fine)",
            9,
        ),
    )
    assert config.local_port_conflicts(project) == [("api_a", "api_b", 5000)]


def test_distinct_ports_do_not_conflict():
    project = parse(TWO_SERVICES.replace("      port: 5000", "      port: 5001"))
    assert project.warnings == ()
    assert config.local_port_conflicts(project) == []


def test_services_sharing_a_port_in_bodywork_ini():
    service = "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = s.py\n[service]\nPORT = 80\n"
    dirs = {
        name: config.StageDir(service, frozenset({"s.py", "requirements.txt"}))
        for name in ("a", "b")
    }
    project = config.parse_project(
        config.ProjectFiles(bodywork_ini="[workflow]\nDAG = a, b\n", dirs=dirs)
    )
    ((file, key, line, severity),) = [(p.file, p.key, p.line, p.severity) for p in project.warnings]
    assert (file, key, line, severity) == ("b/config.ini", "PORT", 5, "warning")
    assert config.local_port_conflicts(project) == [("a", "b", 80)]


# ---------------------------------------------------------------------------- snapshot
def test_read_project_files_snapshots_every_path_but_skipped_folders(tmp_path: Path):
    for path in [
        "pipeline/train_model.py",
        "pipeline/sub/helpers.py",
        "notebooks/explore.ipynb",
        ".git/config",
        "node_modules/x/index.js",
        "pipeline/__pycache__/x.pyc",
        ".venv/lib/site.py",
        ".github/workflows/ci.yaml",
    ]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    (tmp_path / YAML).write_text(MINIMAL)
    snapshot = config.read_project_files(tmp_path, "repo")
    assert snapshot.bodywork_yaml == MINIMAL
    assert snapshot.bodywork_ini is None
    assert snapshot.paths == {
        YAML,
        "pipeline/train_model.py",
        "pipeline/sub/helpers.py",
        "notebooks/explore.ipynb",
        ".github/workflows/ci.yaml",
    }
    assert snapshot.too_many_files is False
    assert config.parse_project(snapshot).stages["train"].module_path == "pipeline/train_model.py"


def test_read_project_files_stops_at_the_file_cap(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(schema, "MAX_PROJECT_FILES", 3)
    for index in range(5):
        (tmp_path / f"f{index}.py").write_text("")
    (tmp_path / YAML).write_text(MINIMAL)
    snapshot = config.read_project_files(tmp_path)
    assert len(snapshot.paths) == 3
    assert snapshot.too_many_files is True


def test_read_project_files_reads_both_files_so_parsing_can_refuse(tmp_path: Path):
    (tmp_path / YAML).write_text(MINIMAL)
    (tmp_path / "bodywork.ini").write_text("[workflow]\nDAG = train\n")
    with pytest.raises(ConfigError, match="keep one"):
        config.load_project(tmp_path)


def test_an_ini_project_does_not_walk_the_tree(tmp_path: Path):
    (tmp_path / "bodywork.ini").write_text("[workflow]\nDAG = train\n")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "t.py").write_text("")
    snapshot = config.read_project_files(tmp_path)
    assert snapshot.paths == frozenset() and snapshot.bodywork_yaml is None
    assert set(snapshot.dirs) == {"train"}


# ---------------------------------------------------------------------------- docs
CONFIGURATION_MD = REPO_ROOT / "docs" / "configuration.md"


def test_docs_tables_are_generated_from_the_schema():
    """docs/configuration.md holds exactly configuration_tables() between its markers."""
    text = CONFIGURATION_MD.read_text()
    start = text.index(docs.BEGIN_MARKER) + len(docs.BEGIN_MARKER) + 1
    end = text.index(docs.END_MARKER)
    assert text[start:end] == config.configuration_tables(), (
        "regenerate docs/configuration.md's tables from bodywork.core.config.configuration_tables()"
    )


def test_docs_tables_name_every_key_in_both_formats():
    tables = config.configuration_tables()
    for key in (*schema.PROJECT_KEYS, *schema.STAGE_KEYS):
        assert f"`{key.name.upper()}`" in tables, key.name
    for key in (*schema.YAML_PROJECT_KEYS, *schema.YAML_STAGE_KEYS):
        assert key.yaml is not None
        assert ".".join(key.yaml) in tables, key.name


def test_docs_yaml_example_is_a_valid_project():
    text = CONFIGURATION_MD.read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert example is not None
    project = parse(example[1])
    assert set(project.stages) == {"stage_1_train_model", "stage_2_scoring_service"}
    assert project.stages["stage_1_train_model"].secrets == (
        ("AWS_ACCESS_KEY_ID", "dev-aws-credentials"),
    )


# ---------------------------------------------------------------------------- property
_LINES = [
    'version: "1.1"',
    "version: 1.0",
    "pipeline:",
    "project:",
    "  DAG: a >> b",
    "  name: p",
    "  secrets_group: g",
    "stages:",
    "  a:",
    "  b: {executable_module_path: p/b.py, service: {port: 80}}",
    "    executable_module_path: p/a.py",
    "    batch:",
    "    service:",
    "      retries: 2",
    "      port: 5000",
    "    args: [1, x]",
    "    secrets: {TOKEN: t}",
    "    <<: *x",
    "  &x c: 1",
    "logging: {log_level: info}",
    "- item",
    "# comment",
    "",
]
_yaml_text = st.lists(st.one_of(st.sampled_from(_LINES), st.text(max_size=12)), max_size=12).map(
    "\n".join
)


@st.composite
def _corrupted(draw, text_strategy):
    text = draw(text_strategy)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(st.text(max_size=3)) + text[at + cut :]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_yaml_text, _corrupted(st.just(PROJECT_1_1)), _corrupted(st.just(MINIMAL))))
def test_any_yaml_gives_a_config_or_a_config_error(text):
    try:
        project = config.parse_project(files(text, PATHS | {"p/a.py", "p/b.py"}))
    except ConfigError as err:
        assert any(p.severity == "error" for p in err.problems)
        assert all(p.file == YAML for p in err.problems)
    else:
        assert project.config_file == YAML
        assert set(project.stages) >= {s for step in project.dag for s in step}
        assert all(p.severity in ("warning", "note") for p in project.warnings)
