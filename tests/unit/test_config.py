"""config.parse_project: a ProjectFiles snapshot → ProjectConfig, or one ConfigError with every
problem (file, key, line and a message that says how to fix it)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodywork.core import config
from bodywork.core.errors import ConfigError, Problem

FILES = frozenset({"train.py", "requirements.txt"})
BATCH_INI = "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = train.py\n"
SERVICE_INI = (
    "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = train.py\n[service]\nPORT = 5000\n"
)
ONE_STAGE_DAG = "[workflow]\nDAG = train\n"


def project(
    bodywork_ini: str | None, dirs: dict[str, config.StageDir] | None = None, fallback: str = "x"
) -> config.ProjectFiles:
    return config.ProjectFiles(bodywork_ini=bodywork_ini, dirs=dirs or {}, fallback_name=fallback)


def stage(config_ini: str | None, files: frozenset[str] | set[str] = FILES) -> config.StageDir:
    return config.StageDir(config_ini=config_ini, files=frozenset(files))


def one_stage(config_ini: str | None, files: frozenset[str] | set[str] = FILES):
    """A project whose DAG is the single stage `train` with this config.ini."""
    return project(ONE_STAGE_DAG, {"train": stage(config_ini, files)})


def problems_of(files: config.ProjectFiles) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        config.parse_project(files)
    return info.value.problems


def errors_of(files: config.ProjectFiles) -> list[Problem]:
    return [p for p in problems_of(files) if p.severity == "error"]


def error(file: str, message: str, key: str | None = None, line: int | None = None) -> Problem:
    return Problem(file, message, key=key, line=line)


def warning(file: str, message: str, key: str | None = None, line: int | None = None) -> Problem:
    return Problem(file, message, key=key, line=line, severity="warning")


STAGE_FILE = "train/config.ini"


# ---------------------------------------------------------------------------- good projects
def test_batch_stage_gets_documented_defaults():
    """Every optional key of a minimal batch stage takes its documented default."""
    parsed = config.parse_project(one_stage(BATCH_INI))
    train = parsed.stages["train"]
    assert train == config.StageConfig(
        name="train", stage_type="batch", module_path="train/train.py"
    )
    assert train.cpu_request == 0.5
    assert train.memory_request_mb == 512
    assert train.cpu_limit is None
    assert train.memory_limit_mb is None
    assert train.retries == 0
    assert train.max_completion_time_seconds == 3600
    assert train.secrets == ()
    assert not train.is_service
    assert parsed.dag == (("train",),)
    assert parsed.project_name == "x"
    assert parsed.docker_image is None
    assert parsed.artifacts_pvc is None
    assert parsed.log_level == "info"
    assert parsed.warnings == ()


def test_service_stage_gets_documented_defaults():
    """A minimal service stage has one replica, 120 s to start, no ingress and its PORT."""
    train = config.parse_project(one_stage(SERVICE_INI)).stages["train"]
    assert train.is_service
    assert train.port == 5000
    assert train.replicas == 1
    assert train.max_startup_time_seconds == 120
    assert train.ingress is False
    assert train.cpu_request == 0.5
    assert train.memory_request_mb == 512


def test_explicit_values_override_every_default():
    """Values given in bodywork.ini and config.ini replace the defaults, parsed to their types."""
    bodywork_ini = (
        "[default]\nPROJECT_NAME = Fraud_Model\nDOCKER_IMAGE = me/image:1\nARTIFACTS_PVC = models\n"
        "[workflow]\nDAG = train >> serve\n[logging]\nLOG_LEVEL = DEBUG\n"
    )
    train_ini = BATCH_INI + (
        "CPU_REQUEST = 1.5\nMEMORY_REQUEST_MB = 1024\nCPU_LIMIT = 2\nMEMORY_LIMIT_MB = 2048\n"
        "[batch]\nRETRIES = 2\nMAX_COMPLETION_TIME_SECONDS = 60\n"
    )
    serve_ini = (
        "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = serve.py\n"
        "[service]\nPORT = 8000\nREPLICAS = 3\nMAX_STARTUP_TIME_SECONDS = 30\nINGRESS = yes\n"
    )
    parsed = config.parse_project(
        project(
            bodywork_ini,
            {
                "train": stage(train_ini),
                "serve": stage(serve_ini, {"serve.py", "requirements.txt"}),
            },
        )
    )
    assert parsed.project_name == "fraud-model"
    assert parsed.docker_image == "me/image:1"
    assert parsed.artifacts_pvc == "models"
    assert parsed.log_level == "debug"
    assert parsed.dag == (("train",), ("serve",))
    train, serve = parsed.stages["train"], parsed.stages["serve"]
    assert (train.cpu_request, train.memory_request_mb) == (1.5, 1024)
    assert (train.cpu_limit, train.memory_limit_mb) == (2.0, 2048)
    assert (train.retries, train.max_completion_time_seconds) == (2, 60)
    assert (serve.port, serve.replicas, serve.max_startup_time_seconds) == (8000, 3, 30)
    assert serve.ingress is True


def test_project_name_falls_back_to_the_repo_name_made_kubernetes_safe():
    """Without PROJECT_NAME the fallback name is used, lower-cased with '-' for symbols."""
    parsed = config.parse_project(
        project(ONE_STAGE_DAG, {"train": stage(BATCH_INI)}, fallback="My_Repo")
    )
    assert parsed.project_name == "my-repo"


def test_quoted_values_are_unquoted():
    """Double- and single-quoted values mean the text inside the quotes."""
    parsed = config.parse_project(
        project(
            '[default]\nPROJECT_NAME = "quoted"\n[workflow]\nDAG = "train"\n',
            {
                "train": stage(
                    "[default]\nSTAGE_TYPE = \"batch\"\nEXECUTABLE_SCRIPT = 'train.py'\n"
                    "[batch]\nRETRIES = '3'\n"
                )
            },
        )
    )
    assert parsed.project_name == "quoted"
    assert parsed.dag == (("train",),)
    train = parsed.stages["train"]
    assert (train.stage_type, train.module_path, train.retries) == ("batch", "train/train.py", 3)


def test_keys_and_section_names_are_case_insensitive():
    """[DEFAULT], [Service], Stage_Type and Port work like their lower-case spellings."""
    parsed = config.parse_project(
        project(
            "[DEFAULT]\nProject_Name = p\n[WorkFlow]\nDag = train\n",
            {
                "train": stage(
                    "[DEFAULT]\nStage_Type = Service\nExecutable_Script = train.py\n"
                    "[Service]\nPort = 5000\nInGrEsS = TRUE\n"
                )
            },
        )
    )
    assert parsed.project_name == "p"
    train = parsed.stages["train"]
    assert (train.stage_type, train.port, train.ingress) == ("service", 5000, True)


def test_inline_comments_are_ignored():
    """`PORT = 5000  # flask` and `; comments` after a value are not part of the value."""
    parsed = config.parse_project(
        project(
            "[workflow]\nDAG = train  # the only stage\n",
            {
                "train": stage(
                    "[default]  # stage settings\nSTAGE_TYPE = service ; long-running\n"
                    "EXECUTABLE_SCRIPT = train.py\n[service]\nPORT = 5000  # flask\n"
                )
            },
        )
    )
    assert parsed.dag == (("train",),)
    assert parsed.stages["train"].port == 5000


def test_multi_line_dag_is_one_dag():
    """A DAG continued on indented lines parses as if written on one line."""
    parsed = config.parse_project(
        project(
            "[workflow]\nDAG = train\n    >> serve\n",
            {"train": stage(BATCH_INI), "serve": stage(BATCH_INI)},
        )
    )
    assert parsed.dag == (("train",), ("serve",))


def test_secrets_become_upper_case_env_vars_paired_with_secret_names():
    """Each [secrets] line maps an upper-cased ENV_VAR to the Kubernetes secret holding it."""
    parsed = config.parse_project(
        one_stage(BATCH_INI + '[secrets]\ndb_password = db-creds\nAPI_KEY = "api.keys"\n')
    )
    assert parsed.stages["train"].secrets == (("DB_PASSWORD", "db-creds"), ("API_KEY", "api.keys"))


def test_directories_without_config_ini_are_not_stages():
    """A directory with no config.ini and not in the DAG (e.g. docs/) is neither used nor warned."""
    parsed = config.parse_project(
        project(ONE_STAGE_DAG, {"train": stage(BATCH_INI), "docs": stage(None, {"x.md"})})
    )
    assert list(parsed.stages) == ["train"]
    assert parsed.warnings == ()


# ---------------------------------------------------------------------------- unknown names
def test_unknown_stage_section_suggests_the_closest_section():
    """[servce] in config.ini is a warning at its line with a did-you-mean for [service]."""
    ini = SERVICE_INI.replace("[service]", "[servce]")
    assert problems_of(one_stage(ini)) == [
        warning(STAGE_FILE, "unknown section [servce] (did you mean [service]?)", line=4),
        error(
            STAGE_FILE,
            "missing: add PORT = ... under [service] (port the service listens on)",
            key="PORT",
        ),
    ]


def test_unknown_project_section_suggests_the_closest_section():
    """[workflw] in bodywork.ini is reported with a hint, and DAG is then missing."""
    assert problems_of(project("[default]\nPROJECT_NAME = p\n[workflw]\nDAG = train\n")) == [
        warning("bodywork.ini", "unknown section [workflw] (did you mean [workflow]?)", line=3),
        error(
            "bodywork.ini",
            'missing: add DAG = ... under [workflow] (steps of stages, e.g. "train >> serve")',
            key="DAG",
        ),
    ]


def test_unknown_section_without_a_close_match_has_no_hint():
    """A section unlike any known one is a warning without a misleading suggestion."""
    parsed = config.parse_project(one_stage(BATCH_INI + "[zzz]\n"))
    assert parsed.warnings == (warning(STAGE_FILE, "unknown section [zzz]", line=4),)


def test_unknown_key_suggests_the_closest_key():
    """RETRYS under [batch] is a warning with its line and 'did you mean RETRIES?'."""
    parsed = config.parse_project(one_stage(BATCH_INI + "[batch]\nRETRYS = 2\n"))
    assert parsed.warnings == (
        warning(STAGE_FILE, "unknown key in [batch] (did you mean RETRIES?)", key="RETRYS", line=5),
    )
    assert parsed.stages["train"].retries == 0


def test_unknown_project_key_suggests_the_closest_key():
    """PROJECT_NAM in bodywork.ini points at PROJECT_NAME."""
    ini = "[default]\nPROJECT_NAM = p\n" + ONE_STAGE_DAG
    parsed = config.parse_project(project(ini, {"train": stage(BATCH_INI)}))
    assert parsed.warnings == (
        warning(
            "bodywork.ini",
            "unknown key in [default] (did you mean PROJECT_NAME?)",
            key="PROJECT_NAM",
            line=2,
        ),
    )


def test_key_in_the_wrong_section_says_where_it_belongs():
    """RETRIES under [default] is [batch]'s key: the warning names that section."""
    parsed = config.parse_project(one_stage(BATCH_INI + "RETRIES = 3\n"))
    assert parsed.warnings == (
        warning(STAGE_FILE, "unknown key in [default] (RETRIES belongs in [batch])", "RETRIES", 4),
    )
    assert parsed.stages["train"].retries == 0


def test_a_bodywork_yaml_only_key_in_bodywork_ini_says_so():
    """NAMESPACE is a bodywork.yaml key: in bodywork.ini it is unknown, and the hint says so."""
    ini = "[default]\nNAMESPACE = ml\n" + ONE_STAGE_DAG
    parsed = config.parse_project(project(ini, {"train": stage(BATCH_INI)}))
    assert parsed.warnings == (
        warning(
            "bodywork.ini",
            "unknown key in [default] (NAMESPACE is a bodywork.yaml key)",
            key="NAMESPACE",
            line=2,
        ),
    )


def test_unknown_key_in_the_inactive_section_is_still_reported():
    """A typo under [service] of a batch stage is reported, beside the ignored-section warning."""
    parsed = config.parse_project(one_stage(BATCH_INI + "[service]\nPROT = 1\n"))
    assert parsed.warnings == (
        warning(STAGE_FILE, "section [service] is ignored for a batch stage", line=4),
        warning(STAGE_FILE, "unknown key in [service] (did you mean PORT?)", key="PROT", line=5),
    )


def test_strict_makes_unknown_keys_and_sections_errors():
    """With strict=True the same unknown names stop the project; other warnings stay warnings."""
    files = project(
        "[default]\nPROJECT_NAM = p\n[workflw]\n" + ONE_STAGE_DAG,
        {"train": stage(BATCH_INI + "[batch]\nRETRYS = 2\n"), "extra": stage(BATCH_INI)},
    )
    with pytest.raises(ConfigError) as info:
        config.parse_project(files, strict=True)
    assert [(p.severity, p.key, p.line) for p in info.value.problems] == [
        ("error", None, 3),
        ("error", "PROJECT_NAM", 2),
        ("error", "RETRYS", 5),
        ("warning", None, None),
    ]
    assert "unknown section [workflw]" in str(info.value)
    lenient = config.parse_project(files)
    assert [p.severity for p in lenient.warnings] == ["warning"] * 4


# ---------------------------------------------------------------------------- bad values
BAD_VALUES = [
    (BATCH_INI + "[batch]\nRETRIES = two\n", "RETRIES", 5, "must be a whole number, got 'two'"),
    (BATCH_INI + "[batch]\nRETRIES = 1.5\n", "RETRIES", 5, "must be a whole number, got '1.5'"),
    (
        BATCH_INI + "[batch]\nRETRIES = 2147483648\n",
        "RETRIES",
        5,
        "must be >= 0 and <= 2147483647 (Kubernetes' backoffLimit is a 32-bit number), "
        "got 2147483648",
    ),
    (
        BATCH_INI + "[batch]\nRETRIES = -1\n",
        "RETRIES",
        5,
        "must be >= 0 and <= 2147483647 (Kubernetes' backoffLimit is a 32-bit number), got -1",
    ),
    (
        BATCH_INI + "[batch]\nMAX_COMPLETION_TIME_SECONDS = 0\n",
        "MAX_COMPLETION_TIME_SECONDS",
        5,
        "must be >= 1, got 0",
    ),
    (BATCH_INI + "MEMORY_REQUEST_MB = -1\n", "MEMORY_REQUEST_MB", 4, "must be >= 0, got -1"),
    (BATCH_INI + "MEMORY_LIMIT_MB = 0\n", "MEMORY_LIMIT_MB", 4, "must be >= 1, got 0"),
    (
        BATCH_INI + "MEMORY_LIMIT_MB = lots\n",
        "MEMORY_LIMIT_MB",
        4,
        "must be a whole number, got 'lots'",
    ),
    (
        BATCH_INI + "CPU_REQUEST = half\n",
        "CPU_REQUEST",
        4,
        "must be a number (e.g. 0.5), got 'half'",
    ),
    (BATCH_INI + "CPU_REQUEST = -0.5\n", "CPU_REQUEST", 4, "must be >= 0, got -0.5"),
    (BATCH_INI + "CPU_LIMIT = 0\n", "CPU_LIMIT", 4, "must be > 0, got 0"),
    (
        BATCH_INI + "[batch]\nMAX_COMPLETION_TIME_SECONDS = 30.5\n",
        "MAX_COMPLETION_TIME_SECONDS",
        5,
        "must be a whole number, got '30.5'",
    ),
    (
        BATCH_INI + "MAX_INSTALL_TIME_SECONDS = 0\n",
        "MAX_INSTALL_TIME_SECONDS",
        4,
        "must be >= 1, got 0",
    ),
    (BATCH_INI + "CPU_LIMIT = -1\n", "CPU_LIMIT", 4, "must be > 0, got -1"),
    (BATCH_INI + "CPU_LIMIT = nan\n", "CPU_LIMIT", 4, "must be a number (e.g. 0.5), got 'nan'"),
    (BATCH_INI + "CPU_REQUEST = inf\n", "CPU_REQUEST", 4, "must be a number (e.g. 0.5), got 'inf'"),
    (SERVICE_INI + "INGRESS = maybe\n", "INGRESS", 6, "must be True or False, got 'maybe'"),
    (
        SERVICE_INI.replace("5000", "70000"),
        "PORT",
        5,
        "must be >= 1 and <= 65535, got 70000",
    ),
    (SERVICE_INI.replace("5000", "http"), "PORT", 5, "must be a whole number, got 'http'"),
    (SERVICE_INI + "REPLICAS = 0\n", "REPLICAS", 6, "must be >= 1 and <= 100, got 0"),
    (
        "[default]\nSTAGE_TYPE = cron\nEXECUTABLE_SCRIPT = train.py\n",
        "STAGE_TYPE",
        2,
        "must be one of batch, service, got 'cron'",
    ),
    ("[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT =\n", "EXECUTABLE_SCRIPT", 3, "is empty"),
]


@pytest.mark.parametrize(
    ("ini", "key", "line", "message"), BAD_VALUES, ids=[case[3] for case in BAD_VALUES]
)
def test_bad_stage_value_is_reported_with_key_line_and_expected_form(ini, key, line, message):
    """Wrong types and out-of-range values name the key, its line and what is expected."""
    assert errors_of(one_stage(ini)) == [error(STAGE_FILE, message, key=key, line=line)]


def test_bad_log_level_lists_the_choices():
    """LOG_LEVEL must be one of the listed levels."""
    ini = ONE_STAGE_DAG + "[logging]\nLOG_LEVEL = loud\n"
    assert errors_of(project(ini, {"train": stage(BATCH_INI)})) == [
        error(
            "bodywork.ini",
            "must be one of debug, info, warning, error, critical, got 'loud'",
            key="LOG_LEVEL",
            line=4,
        )
    ]


def test_values_in_the_ignored_section_are_not_validated():
    """A bad [service] value in a batch stage is ignored (with a warning), not an error."""
    parsed = config.parse_project(one_stage(BATCH_INI + "[service]\nPORT = nope\n"))
    assert parsed.stages["train"].port is None
    assert parsed.warnings == (
        warning(STAGE_FILE, "section [service] is ignored for a batch stage", line=4),
    )


# ---------------------------------------------------------------------------- missing keys/files
def test_missing_stage_type_is_reported_at_the_default_section():
    """Without STAGE_TYPE the problem points at [default] and names the key to add."""
    ini = "[default]\nEXECUTABLE_SCRIPT = train.py\n"
    assert errors_of(one_stage(ini)) == [
        error(
            STAGE_FILE,
            "missing: add STAGE_TYPE = ... under [default] "
            "(batch (runs to completion) or service (keeps serving on PORT))",
            key="STAGE_TYPE",
            line=1,
        )
    ]


def test_missing_executable_script_explains_what_it_is():
    """Without EXECUTABLE_SCRIPT the message says it is the module in the stage dir."""
    ini = "[default]\nSTAGE_TYPE = batch\n"
    assert errors_of(one_stage(ini)) == [
        error(
            STAGE_FILE,
            "missing: add EXECUTABLE_SCRIPT = ... under [default] (module in the stage dir)",
            key="EXECUTABLE_SCRIPT",
            line=1,
        )
    ]


def test_missing_port_for_a_service_points_at_the_service_section():
    """A service stage with a [service] section but no PORT is told to add PORT there."""
    ini = SERVICE_INI.replace("PORT = 5000\n", "REPLICAS = 2\n")
    assert errors_of(one_stage(ini)) == [
        error(
            STAGE_FILE,
            "missing: add PORT = ... under [service] (port the service listens on)",
            key="PORT",
            line=4,
        )
    ]


def test_missing_port_without_a_service_section_has_no_line():
    """With no [service] section at all there is no line to point at, but PORT is still named."""
    ini = "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = train.py\n"
    assert errors_of(one_stage(ini)) == [
        error(
            STAGE_FILE,
            "missing: add PORT = ... under [service] (port the service listens on)",
            key="PORT",
        )
    ]


def test_missing_dag_is_reported_at_the_workflow_section():
    """A [workflow] section without DAG gets an example of the DAG syntax."""
    assert errors_of(project("[default]\nPROJECT_NAME = p\n[workflow]\n")) == [
        error(
            "bodywork.ini",
            'missing: add DAG = ... under [workflow] (steps of stages, e.g. "train >> serve")',
            key="DAG",
            line=3,
        )
    ]


def test_missing_script_suggests_the_closest_python_file():
    """A misspelt EXECUTABLE_SCRIPT gets 'did you mean train.py?'."""
    ini = BATCH_INI.replace("train.py", "trian.py")
    assert errors_of(one_stage(ini)) == [
        error(
            STAGE_FILE,
            "'trian.py' does not exist in train/ (did you mean train.py?)",
            key="EXECUTABLE_SCRIPT",
            line=3,
        )
    ]


def test_missing_script_without_a_close_match_lists_the_python_files():
    """With no close match the message lists the stage dir's .py files, sorted."""
    ini = BATCH_INI.replace("train.py", "run_everything.py")
    files = {"score.py", "fit.py", "notes.txt", "requirements.txt"}
    assert errors_of(one_stage(ini, files)) == [
        error(
            STAGE_FILE,
            "'run_everything.py' does not exist in train/ (the directory holds: fit.py, score.py)",
            key="EXECUTABLE_SCRIPT",
            line=3,
        )
    ]


def test_missing_script_in_a_dir_without_python_files_says_so():
    """A stage dir holding no .py files is described as such."""
    assert errors_of(one_stage(BATCH_INI, {"requirements.txt"})) == [
        error(
            STAGE_FILE,
            "'train.py' does not exist in train/ (the directory holds: no .py files)",
            key="EXECUTABLE_SCRIPT",
            line=3,
        )
    ]


def test_missing_requirements_file_is_reported_against_that_file():
    """A stage without requirements.txt is told to create one, even an empty one."""
    assert errors_of(one_stage(BATCH_INI, {"train.py"})) == [
        error(
            "train/requirements.txt", "not found: create it, empty if the stage needs no packages"
        )
    ]


def test_missing_config_ini_for_a_dag_stage_names_the_required_keys():
    """A DAG stage whose directory has no config.ini is told what the file needs."""
    assert errors_of(one_stage(None)) == [
        error(
            STAGE_FILE,
            "not found: stage 'train' needs a config.ini with [default] STAGE_TYPE "
            "and EXECUTABLE_SCRIPT",
        )
    ]


def test_missing_configuration_file_names_both_formats_and_how_to_start_each():
    """Neither bodywork.ini nor bodywork.yaml: one error naming both, with how to start each."""
    problems = problems_of(project(None, {"train": stage(BATCH_INI)}))
    assert len(problems) == 1
    assert problems[0].file == "bodywork.yaml"
    assert problems[0].message.startswith("not found at the project root, nor is bodywork.ini")
    for needed in [
        'version: "1.1"',
        "pipeline:",
        "stages:",
        "[default] PROJECT_NAME",
        "[workflow]",
    ]:
        assert needed in problems[0].message


# ---------------------------------------------------------------------------- DAG vs directories
def test_dag_stage_without_a_directory_suggests_the_closest_stage_directory():
    """'trian' in the DAG is reported at the DAG line with a did-you-mean for 'train'."""
    problems = problems_of(project("[workflow]\nDAG = trian\n", {"train": stage(BATCH_INI)}))
    assert problems == [
        error(
            "bodywork.ini",
            "stage 'trian' has no directory 'trian/' in the project (did you mean 'train'?)",
            key="DAG",
            line=2,
        ),
        warning(
            STAGE_FILE,
            "this stage is not in the DAG and will not run: add it to [workflow] DAG "
            "in bodywork.ini if it should",
        ),
    ]


def test_dag_stage_without_a_directory_and_no_close_match_has_no_hint():
    """A DAG stage unlike any directory gets no suggestion."""
    ini = "[workflow]\nDAG = train >> serve\n"
    assert errors_of(project(ini, {"train": stage(BATCH_INI)})) == [
        error(
            "bodywork.ini",
            "stage 'serve' has no directory 'serve/' in the project",
            key="DAG",
            line=2,
        )
    ]


def test_stage_directory_not_in_the_dag_is_only_a_warning():
    """A dir with config.ini that the DAG omits still lets the project parse, with a warning."""
    parsed = config.parse_project(
        project(ONE_STAGE_DAG, {"train": stage(BATCH_INI), "extra": stage(BATCH_INI)})
    )
    assert list(parsed.stages) == ["train"]
    assert parsed.warnings == (
        warning(
            "extra/config.ini",
            "this stage is not in the DAG and will not run: add it to [workflow] DAG "
            "in bodywork.ini if it should",
        ),
    )


def test_batch_section_in_a_service_stage_is_only_a_warning():
    """[batch] in a service stage is ignored with a warning that names its line."""
    parsed = config.parse_project(one_stage(SERVICE_INI + "[batch]\nRETRIES = 2\n"))
    assert parsed.stages["train"].retries == 0
    assert parsed.warnings == (
        warning(STAGE_FILE, "section [batch] is ignored for a service stage", line=6),
    )


# ---------------------------------------------------------------------------- DAG syntax
@pytest.mark.parametrize(
    ("dag_text", "messages"),
    [
        (
            "train >> train",
            ["stage 'train' appears more than once: a stage runs in exactly one step"],
        ),
        ("train >> >> serve", ["step 2 is empty: remove the extra '>>'"]),
        ("train >> serve,", ["step 2 has an empty stage name: remove the extra ','"]),
        (
            "train > serve",
            [
                "steps are separated by '>>' (found a lone '>')",
                "'train > serve' in step 1 is not a stage directory name "
                "(letters, digits, '-', '_' and '.' only)",
            ],
        ),
    ],
)
def test_dag_syntax_problems_are_reported_at_the_dag_line(dag_text, messages):
    """Each DAG syntax problem is a bodywork.ini DAG problem at the DAG's line."""
    dirs = {"train": stage(BATCH_INI), "serve": stage(BATCH_INI)}
    ini = f"[default]\nPROJECT_NAME = p\n[workflow]\nDAG = {dag_text}\n"
    assert errors_of(project(ini, dirs)) == [
        error("bodywork.ini", message, key="DAG", line=4) for message in messages
    ]


# ---------------------------------------------------------------------------- ini syntax
def test_duplicate_key_is_reported_with_its_second_line():
    """A key given twice in one section (any case) is reported where it repeats."""
    ini = BATCH_INI + "stage_type = service\n"
    assert errors_of(one_stage(ini)) == [
        error(STAGE_FILE, "key appears twice in [default]: keep one", key="STAGE_TYPE", line=4)
    ]


def test_duplicate_section_is_reported_with_its_second_line():
    """A section header given twice is reported where it repeats."""
    ini = BATCH_INI + "[batch]\nRETRIES = 1\n[batch]\nMAX_COMPLETION_TIME_SECONDS = 5\n"
    assert errors_of(one_stage(ini)) == [
        error(STAGE_FILE, "section [batch] appears twice: merge them", line=6)
    ]


def test_duplicate_section_differing_only_in_case_is_reported():
    """[default] and [DEFAULT] are the same section, so giving both is a duplicate."""
    ini = BATCH_INI + "[DEFAULT]\nCPU_REQUEST = 1\n"
    assert errors_of(one_stage(ini)) == [
        error(STAGE_FILE, "section [default] appears twice: merge them", line=4)
    ]


def test_key_before_any_section_header_is_reported():
    """A config.ini starting with a key asks for a section header at line 1."""
    assert errors_of(one_stage("STAGE_TYPE = batch\n")) == [
        error(STAGE_FILE, "needs a section header such as [default] first", line=1)
    ]


def test_line_without_equals_sign_is_quoted_as_written():
    """An unparseable line is quoted as the user wrote it (not a repr of a repr) with its line."""
    ini = "[default]\nSTAGE_TYPE batch\nEXECUTABLE_SCRIPT = train.py\n"
    assert errors_of(one_stage(ini)) == [
        error(STAGE_FILE, "cannot parse 'STAGE_TYPE batch': expected KEY = value", line=2)
    ]


def test_line_numbers_count_newlines_only():
    """A form feed inside a comment does not shift the line numbers of later keys."""
    ini = "[default]\n# ---\x0c---\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = train.py\nRETRYS = 1\n"
    assert config.parse_project(one_stage(ini)).warnings == (
        warning(
            STAGE_FILE,
            "unknown key in [default] (did you mean RETRIES, in [batch]?)",
            key="RETRYS",
            line=5,
        ),
    )


# ---------------------------------------------------------------------------- secrets
def test_invalid_secret_env_var_name_is_reported():
    """An env var name that starts with a digit or holds '-' cannot be set in a container."""
    ini = BATCH_INI + "[secrets]\n1TOKEN = creds\nMY-VAR = creds\n"
    assert errors_of(one_stage(ini)) == [
        error(STAGE_FILE, "is not a valid environment variable name", key="1TOKEN", line=5),
        error(STAGE_FILE, "is not a valid environment variable name", key="MY-VAR", line=6),
    ]


@pytest.mark.parametrize("secret", ["Bad_Secret", "-creds", "creds-", "a" * 254])
def test_invalid_secret_name_is_reported_with_the_allowed_alphabet(secret):
    """A secret name Kubernetes would reject (once lower-cased) is reported with what is allowed."""
    ini = BATCH_INI + f"[secrets]\nTOKEN = {secret}\n"
    assert errors_of(one_stage(ini)) == [
        error(
            STAGE_FILE,
            f"secret name '{secret.lower()}' is not a valid Kubernetes name "
            "(lower-case letters, digits, '-' and '.')",
            key="TOKEN",
            line=5,
        )
    ]


# ---------------------------------------------------------------------------- Kubernetes names
@pytest.mark.parametrize("name", ["!!!", "日本語", "___"])
def test_project_name_without_ascii_letters_or_digits_is_rejected(name):
    """A PROJECT_NAME that maps to no Kubernetes name is reported against PROJECT_NAME."""
    ini = f"[default]\nPROJECT_NAME = {name}\n" + ONE_STAGE_DAG
    assert errors_of(project(ini, {"train": stage(BATCH_INI)})) == [
        error(
            "bodywork.ini",
            f"'{name}' has no letters or digits to build Kubernetes names from",
            key="PROJECT_NAME",
        )
    ]


def test_unusable_fallback_name_is_rejected_too():
    """A repo name with nothing usable, when PROJECT_NAME is unset, is reported the same way."""
    problems = errors_of(project(ONE_STAGE_DAG, {"train": stage(BATCH_INI)}, fallback="€€"))
    assert problems == [
        error(
            "bodywork.ini",
            "'€€' has no letters or digits to build Kubernetes names from",
            key="PROJECT_NAME",
        )
    ]


@pytest.mark.parametrize("name", ["日本", "_train", "ñame"])
def test_stage_name_without_a_leading_ascii_alphanumeric_is_rejected(name):
    """A DAG stage made of symbols or non-ASCII letters is not a usable directory name."""
    assert errors_of(project(f"[workflow]\nDAG = {name}\n", {name: stage(BATCH_INI)})) == [
        error(
            "bodywork.ini",
            f"'{name}' in step 1 is not a stage directory name "
            "(letters, digits, '-', '_' and '.' only)",
            key="DAG",
            line=2,
        )
    ]


@pytest.mark.parametrize(
    ("first", "second", "k8s"), [("Train_A", "train-a", "train-a"), ("a.b", "a_b", "a-b")]
)
def test_stages_mapping_to_the_same_kubernetes_name_are_rejected(first, second, k8s):
    """Two stage dirs that become one Kubernetes name would overwrite each other's objects."""
    ini = f"[workflow]\nDAG = {first} >> {second}\n"
    dirs = {first: stage(BATCH_INI), second: stage(BATCH_INI)}
    assert errors_of(project(ini, dirs)) == [
        error(
            "bodywork.ini",
            f"stages '{first}' and '{second}' both become '{k8s}' in Kubernetes: "
            "rename one of the directories",
            key="DAG",
        )
    ]


# ---------------------------------------------------------------------------- all at once
def test_problems_in_several_files_are_reported_together():
    """One ConfigError lists every error from every file; warnings are kept but not counted."""
    files = project(
        "[default]\nPROJECT_NAME = p\nPROJECT_IMAGE = x\n[workflow]\nDAG = train >> serve\n",
        {
            "train": stage(BATCH_INI + "[batch]\nRETRIES = lots\n"),
            "serve": stage(
                "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = serve.py\n"
                "[batch]\nRETRIES = 1\n",
                {"serve.py"},
            ),
        },
    )
    with pytest.raises(ConfigError) as info:
        config.parse_project(files)
    err = info.value
    expected_errors = [
        error(STAGE_FILE, "must be a whole number, got 'lots'", key="RETRIES", line=5),
        error(
            "serve/config.ini",
            "missing: add PORT = ... under [service] (port the service listens on)",
            key="PORT",
        ),
        error(
            "serve/requirements.txt", "not found: create it, empty if the stage needs no packages"
        ),
    ]
    ignored = warning("serve/config.ini", "section [batch] is ignored for a service stage", line=4)
    unknown = warning(
        "bodywork.ini",
        "unknown key in [default] (did you mean PROJECT_NAME?)",
        key="PROJECT_IMAGE",
        line=3,
    )
    assert [p for p in err.problems if p.severity == "error"] == expected_errors
    assert ignored in err.problems
    assert unknown in err.problems
    assert len(err.problems) == 5
    text = str(err)
    assert text.startswith("the project has 3 problems:\n")
    assert text.splitlines()[1:] == [f"  {p}" for p in expected_errors]
    assert "ignored" not in text
    assert err.exit_code == 2


def test_single_problem_is_counted_in_the_singular():
    """The summary line says 'problem', not 'problems', for exactly one."""
    with pytest.raises(ConfigError) as info:
        config.parse_project(one_stage(BATCH_INI, {"train.py"}))
    assert str(info.value) == (
        "the project has 1 problem:\n"
        "  train/requirements.txt: not found: create it, empty if the stage needs no packages"
    )


def test_problem_text_names_file_key_and_line():
    """str(Problem) reads 'file: KEY: message (line N)'."""
    problem = error(STAGE_FILE, "must be a whole number, got 'x'", key="RETRIES", line=5)
    assert str(problem) == "train/config.ini: RETRIES: must be a whole number, got 'x' (line 5)"
    assert str(error("bodywork.ini", "not found")) == "bodywork.ini: not found"


# ---------------------------------------------------------------------------- property
_SECTIONS = ["[default]", "[DEFAULT]", "[workflow]", "[batch]", "[service]", "[secrets]", "[x"]
_LINES = [
    "PROJECT_NAME = p",
    "DAG = a >> b",
    'DAG = "a, b"',
    "LOG_LEVEL = info",
    "STAGE_TYPE = batch",
    "STAGE_TYPE = service",
    "EXECUTABLE_SCRIPT = a.py",
    "EXECUTABLE_SCRIPT =",
    "PORT = 5000",
    "PORT = 1e9",
    "RETRIES = 3",
    "CPU_REQUEST = 1e999",
    "INGRESS = yes",
    "TOKEN = my-secret",
    "  >> b",
    "# comment",
    "x",
    "= v",
    "",
]
_line = st.one_of(st.sampled_from(_SECTIONS + _LINES), st.text(max_size=20))
_ini_text = st.lists(_line, max_size=10).map("\n".join)


@st.composite
def _corrupted(draw, text_strategy):
    """Valid-looking text with a few random characters inserted or removed."""
    text = draw(text_strategy)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(st.text(max_size=3)) + text[at + cut :]
    return text


_STAGE_NAMES = ["a", "b", "A", "a.b", "a_b", "日"]
_structured_dag = st.lists(
    st.lists(st.sampled_from(_STAGE_NAMES), min_size=1, max_size=2), min_size=1, max_size=3
).map(lambda steps: " >> ".join(", ".join(step) for step in steps))
_dag_text = st.one_of(
    _structured_dag, st.text(alphabet="ab >,-_.\n\0日", max_size=15), st.text(max_size=15)
)
_project_ini = st.builds(
    "[default]\nPROJECT_NAME = {}\n[workflow]\nDAG = {}\n".format,
    st.sampled_from(["p", "My Project", "!!!"]),
    _dag_text,
)
_stage_ini = st.sampled_from(
    [
        "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = a.py\n[batch]\nRETRIES = 2\n",
        "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = b.py\n[service]\nPORT = 80\n"
        "[secrets]\nTOKEN = creds\n",
    ]
)


@st.composite
def _project_files(draw):
    bodywork_ini = draw(st.one_of(st.none(), _corrupted(_project_ini), _corrupted(_ini_text)))
    dirs = draw(
        st.dictionaries(
            st.sampled_from(_STAGE_NAMES),
            st.builds(
                config.StageDir,
                config_ini=st.one_of(st.none(), _corrupted(_stage_ini), _corrupted(_ini_text)),
                files=st.frozensets(st.sampled_from(["a.py", "b.py", "requirements.txt"])),
            ),
            max_size=3,
        )
    )
    return project(bodywork_ini, dirs, fallback=draw(st.sampled_from(["proj", "", "__"])))


@st.composite
def _near_valid_project_files(draw):
    """A valid project, then maybe a few characters of one of its files corrupted."""
    stages = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
    cut = draw(st.integers(1, len(stages)))
    dag_text = " >> ".join(filter(None, [", ".join(stages[:cut]), ", ".join(stages[cut:])]))
    texts = {"": f"[default]\nPROJECT_NAME = p\n[workflow]\nDAG = {dag_text}\n"}
    texts.update({name: draw(_stage_ini) for name in stages})
    victim = draw(st.sampled_from(sorted(texts)))
    texts[victim] = draw(_corrupted(st.just(texts[victim])))
    files = frozenset({"a.py", "b.py", "requirements.txt"})
    dirs = {name: config.StageDir(texts[name], files) for name in stages}
    return project(texts[""], dirs)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_project_files(), _near_valid_project_files()))
def test_any_input_gives_a_config_or_a_config_error(files):
    """Random and corrupted bodywork.ini, config.ini and DAG texts never raise anything else."""
    try:
        parsed = config.parse_project(files)
    except ConfigError as err:
        assert err.problems
        assert any(p.severity == "error" for p in err.problems)
        assert str(err).startswith("the project has ")
    else:
        assert isinstance(parsed, config.ProjectConfig)
        assert parsed.project_name
        assert set(parsed.stages) == {s for step in parsed.dag for s in step}
        assert all(p.severity in ("warning", "note") for p in parsed.warnings)
