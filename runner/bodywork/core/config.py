"""Project configuration: the texts of `bodywork.ini` and each stage's `config.ini` → ProjectConfig.

Owns the schema (every key, its type, default and why), validation that reports *every*
problem at once with file, key, line and a fix, and the did-you-mean hints. Pure: it parses
a `ProjectFiles` snapshot of strings and file names; `project.read_project_files` is the
small I/O helper that takes that snapshot from a checkout.
"""

from __future__ import annotations

import configparser
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bodywork.core import dag, names
from bodywork.core.errors import ConfigError, Problem

PROJECT_FILE = "bodywork.ini"
STAGE_FILE = "config.ini"
REQUIREMENTS_FILE = "requirements.txt"
BATCH, SERVICE = "batch", "service"
_NO_DEFAULT_SECTION = "\0none"  # stop configparser treating [DEFAULT] specially
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


# ---------------------------------------------------------------------------- value types
def _text(raw: str) -> str:
    if not raw:
        raise ValueError("is empty")
    return raw


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number, got '{raw}'") from None
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and <= {maximum}" if maximum is not None else ""
            raise ValueError(f"must be >= {minimum}{upper}, got {value}")
        return value

    return parse


def _float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number (e.g. 0.5), got '{raw}'") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a number (e.g. 0.5), got '{raw}'")
    if not value > 0:
        raise ValueError(f"must be > 0, got {raw}")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"must be True or False, got '{raw}'")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got '{raw}'")
        return raw.lower()

    return parse


@dataclass(frozen=True)
class Key:
    """One configuration key: where it lives, how to parse it, its default and why."""

    section: str
    name: str
    parse: Callable[[str], Any]
    default: Any = None
    required: bool = False
    doc: str = ""


PROJECT_KEYS = (
    Key("default", "project_name", _text, doc="names every object; defaults to the repo name"),
    Key("default", "docker_image", _text, doc="image for stage pods; default: the controller's"),
    Key("default", "artifacts_pvc", _text, doc="existing claim for artifacts; default: created"),
    Key("workflow", "dag", _text, required=True, doc='steps of stages, e.g. "train >> serve"'),
    Key("workflow", "on_failure", _text, doc="batch stage run when any step fails"),
    Key("notify", "webhook_url_secret", _text, doc="Secret holding WEBHOOK_URL for summaries"),
    Key("logging", "log_level", _choice("debug", "info", "warning", "error"), "info"),
)

STAGE_KEYS = (
    Key("default", "stage_type", _choice(BATCH, SERVICE), required=True),
    Key("default", "executable_script", _text, required=True, doc="module in the stage dir"),
    Key("default", "cpu_request", _float, 0.5, doc="cores reserved for the stage's pod"),
    Key("default", "memory_request_mb", _int(1), 512, doc="MiB reserved; sklearn+pandas ~300"),
    Key("default", "cpu_limit", _float, doc="cores; unset = no limit"),
    Key("default", "memory_limit_mb", _int(1), doc="MiB; unset = no limit (OOMKilled above)"),
    Key("batch", "retries", _int(0, 10), 0, doc="extra attempts after a failure"),
    Key(
        "batch",
        "max_completion_time_seconds",
        _int(1),
        3600,
        doc="deadline for all attempts, install included: a stuck job fails, never hangs",
    ),
    Key("service", "replicas", _int(1, 100), 1),
    Key(
        "service",
        "max_startup_time_seconds",
        _int(1),
        120,
        doc="from start to PORT accepting connections, dependency install included",
    ),
    Key("service", "port", _int(1, 65535), required=True, doc="port the service listens on"),
    Key("service", "ingress", _bool, False, doc="expose at /<namespace>/<project>--<stage>"),
)
STAGE_SECTIONS = ("default", BATCH, SERVICE, "secrets")


# ---------------------------------------------------------------------------- parsed config
@dataclass(frozen=True, slots=True)
class StageConfig:
    name: str
    stage_type: str
    executable_script: str
    cpu_request: float = 0.5
    memory_request_mb: int = 512
    cpu_limit: float | None = None
    memory_limit_mb: int | None = None
    retries: int = 0
    max_completion_time_seconds: int = 3600
    replicas: int = 1
    max_startup_time_seconds: int = 120
    port: int | None = None
    ingress: bool = False
    secrets: tuple[tuple[str, str], ...] = ()  # (ENV_VAR, secret-name), key in secret = ENV_VAR

    @property
    def is_service(self) -> bool:
        return self.stage_type == SERVICE


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    project_name: str
    dag: tuple[tuple[str, ...], ...]
    stages: Mapping[str, StageConfig]
    docker_image: str | None = None
    artifacts_pvc: str | None = None
    on_failure: str | None = None  # a batch stage outside the DAG, run when a step fails
    webhook_url_secret: str | None = None
    log_level: str = "info"
    warnings: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class StageDir:
    """What config validation needs to know about one directory of the project."""

    config_ini: str | None  # the text of config.ini, None when the file is absent
    files: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProjectFiles:
    """A snapshot of a project's configuration texts and the files in its top-level dirs."""

    bodywork_ini: str | None
    dirs: Mapping[str, StageDir] = field(default_factory=dict)
    fallback_name: str = "project"  # project name when PROJECT_NAME is not set


# ---------------------------------------------------------------------------- parsing
@dataclass
class _Ini:
    """A parsed ini file with case-insensitive sections and keys and their line numbers."""

    sections: dict[str, dict[str, str]]
    key_lines: dict[tuple[str, str], int]
    section_lines: dict[str, int]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


def _read_ini(text: str, file: str, problems: list[Problem]) -> _Ini | None:
    parser = configparser.ConfigParser(
        interpolation=None,
        strict=True,
        default_section=_NO_DEFAULT_SECTION,
        inline_comment_prefixes=("#", ";"),
    )
    try:
        parser.read_string(text, source=file)
    except configparser.MissingSectionHeaderError as exc:
        problems.append(
            Problem(file, "needs a section header such as [default] first", line=exc.lineno)
        )
        return None
    except configparser.DuplicateSectionError as exc:
        problems.append(
            Problem(file, f"section [{exc.section}] appears twice: merge them", line=exc.lineno)
        )
        return None
    except configparser.DuplicateOptionError as exc:
        problems.append(
            Problem(
                file,
                f"key appears twice in [{exc.section}]: keep one",
                key=exc.option.upper(),
                line=exc.lineno,
            )
        )
        return None
    except configparser.ParsingError as exc:
        source_lines = text.split("\n")  # exc.errors holds repr()s; quote the line itself
        for lineno, _ in exc.errors:
            line = source_lines[lineno - 1].strip()
            problems.append(
                Problem(file, f"cannot parse {line!r}: expected KEY = value", line=lineno)
            )
        return None

    ini = _Ini({}, {}, {})
    current = None
    for number, line in enumerate(text.split("\n"), 1):  # configparser splits on \n only
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            current = stripped[1 : stripped.index("]")].strip().lower()
            if current in ini.section_lines:
                problems.append(
                    Problem(file, f"section [{current}] appears twice: merge them", line=number)
                )
            ini.section_lines.setdefault(current, number)
        elif current and re.match(r"^[^\s#;][^=:]*[=:]", line):
            key = re.split(r"[=:]", line, maxsplit=1)[0].strip().lower()
            ini.key_lines.setdefault((current, key), number)
    for section in parser.sections():
        merged = ini.sections.setdefault(section.strip().lower(), {})
        for key, value in parser.items(section):
            merged[key] = _unquote(value or "")
    return ini


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), options, n=1, cutoff=0.6)
    return f" (did you mean {close[0].upper()}?)" if close else ""


def _suggest_section(word: str, options: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word.lower(), list(options), n=1, cutoff=0.6)
    return f" (did you mean [{close[0]}]?)" if close else ""


def _parse_keys(
    ini: _Ini, file: str, keys: tuple[Key, ...], active: set[str], problems: list[Problem]
) -> dict[str, Any]:
    """Parse the keys of the sections in `active`, reporting every problem."""
    values: dict[str, Any] = {}
    by_section: dict[str, dict[str, Key]] = {}
    for key in keys:
        by_section.setdefault(key.section, {})[key.name] = key
    for section, known in by_section.items():
        given = ini.sections.get(section, {})
        for raw_key, raw_value in given.items():
            line = ini.key_lines.get((section, raw_key))
            if raw_key not in known:
                hint = _suggest(raw_key, list(known))
                problems.append(
                    Problem(
                        file,
                        f"unknown key in [{section}]{hint}",
                        key=raw_key.upper(),
                        line=line,
                    )
                )
                continue
            if section not in active:
                continue
            try:
                values[raw_key] = known[raw_key].parse(raw_value)
            except ValueError as exc:
                problems.append(Problem(file, str(exc), key=raw_key.upper(), line=line))
        if section not in active:
            continue
        for name, key in known.items():
            if name in given:
                continue
            if key.required:
                hint = f" ({key.doc})" if key.doc else ""
                problems.append(
                    Problem(
                        file,
                        f"missing: add {name.upper()} = ... under [{section}]{hint}",
                        key=name.upper(),
                        line=ini.section_lines.get(section),
                    )
                )
            else:
                values[name] = key.default
    return values


def _parse_project_ini(files: ProjectFiles, problems: list[Problem]) -> dict[str, Any] | None:
    if files.bodywork_ini is None:
        problems.append(
            Problem(
                PROJECT_FILE,
                "not found at the project root: create it with [default] PROJECT_NAME "
                'and [workflow] DAG = "stage-1 >> stage-2"',
            )
        )
        return None
    ini = _read_ini(files.bodywork_ini, PROJECT_FILE, problems)
    if ini is None:
        return None
    known_sections = ("default", "workflow", "logging", "notify")
    for section in ini.sections:
        if section not in known_sections:
            problems.append(
                Problem(
                    PROJECT_FILE,
                    f"unknown section [{section}]{_suggest_section(section, known_sections)}",
                    line=ini.section_lines.get(section),
                )
            )
    values = _parse_keys(ini, PROJECT_FILE, PROJECT_KEYS, set(known_sections), problems)
    values["_dag_line"] = ini.key_lines.get(("workflow", "dag"))
    values["_on_failure_line"] = ini.key_lines.get(("workflow", "on_failure"))
    return values


def _parse_stage(name: str, stage_dir: StageDir, problems: list[Problem]) -> StageConfig | None:
    file = f"{name}/{STAGE_FILE}"
    if stage_dir.config_ini is None:
        problems.append(
            Problem(
                file,
                f"not found: stage '{name}' needs a {STAGE_FILE} with [default] STAGE_TYPE "
                "and EXECUTABLE_SCRIPT",
            )
        )
        return None
    before = len(problems)
    ini = _read_ini(stage_dir.config_ini, file, problems)
    if ini is None:
        return None
    for section in ini.sections:
        if section not in STAGE_SECTIONS:
            problems.append(
                Problem(
                    file,
                    f"unknown section [{section}]{_suggest_section(section, STAGE_SECTIONS)}",
                    line=ini.section_lines.get(section),
                )
            )
    stage_type = ini.sections.get("default", {}).get("stage_type", "").lower()
    active = {"default"}
    if stage_type in (BATCH, SERVICE):
        active.add(stage_type)
        other = SERVICE if stage_type == BATCH else BATCH
        if other in ini.sections:
            problems.append(
                Problem(
                    file,
                    f"section [{other}] is ignored for a {stage_type} stage",
                    line=ini.section_lines.get(other),
                    severity="warning",
                )
            )
    values = _parse_keys(ini, file, STAGE_KEYS, active, problems)

    secrets = []
    for env_var, secret in ini.sections.get("secrets", {}).items():
        line = ini.key_lines.get(("secrets", env_var))
        env_var = (
            env_var.upper()
        )  # configparser lower-cases keys; env vars are conventionally upper
        if not _ENV_VAR.match(env_var):
            problems.append(
                Problem(file, "is not a valid environment variable name", key=env_var, line=line)
            )
        elif not _SECRET_NAME.match(secret) or len(secret) > 253:
            problems.append(
                Problem(
                    file,
                    f"secret name '{secret}' is not a valid Kubernetes name "
                    "(lower-case letters, digits, '-' and '.')",
                    key=env_var,
                    line=line,
                )
            )
        else:
            secrets.append((env_var, secret))

    script = values.get("executable_script")
    if script is not None and script not in stage_dir.files:
        python_files = sorted(f for f in stage_dir.files if f.endswith(".py"))
        close = difflib.get_close_matches(script, python_files, n=1)
        hint = (
            f" (did you mean {close[0]}?)"
            if close
            else f" (the directory holds: {', '.join(python_files) or 'no .py files'})"
        )
        problems.append(
            Problem(
                file,
                f"'{script}' does not exist in {name}/{hint}",
                key="EXECUTABLE_SCRIPT",
                line=ini.key_lines.get(("default", "executable_script")),
            )
        )
    if REQUIREMENTS_FILE not in stage_dir.files:
        problems.append(
            Problem(
                f"{name}/{REQUIREMENTS_FILE}",
                "not found: create it, empty if the stage needs no packages",
            )
        )
    if len(problems) > before and any(p.severity == "error" for p in problems[before:]):
        return None
    return StageConfig(name=name, secrets=tuple(secrets), **values)


def parse_project(files: ProjectFiles) -> ProjectConfig:
    """Validate a whole project; raise ConfigError listing every problem found."""
    problems: list[Problem] = []
    project = _parse_project_ini(files, problems)
    steps: tuple[tuple[str, ...], ...] = ()
    if project is not None and project.get("dag"):
        try:
            steps = dag.parse_dag(project["dag"])
        except dag.DagError as exc:
            for message in exc.problems:
                problems.append(
                    Problem(PROJECT_FILE, message, key="DAG", line=project["_dag_line"])
                )

    in_dag = [stage for step in steps for stage in step]
    stages: dict[str, StageConfig] = {}
    for stage in in_dag:
        if stage not in files.dirs:
            candidates = [d for d, sd in files.dirs.items() if sd.config_ini is not None]
            close = difflib.get_close_matches(stage, candidates or list(files.dirs), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(
                Problem(
                    PROJECT_FILE,
                    f"stage '{stage}' has no directory '{stage}/' in the project{hint}",
                    key="DAG",
                    line=project["_dag_line"] if project else None,
                )
            )
            continue
        parsed = _parse_stage(stage, files.dirs[stage], problems)
        if parsed is not None:
            stages[stage] = parsed
    on_failure = _parse_on_failure(project, files, in_dag, problems)
    if on_failure is not None:
        stages[on_failure.name] = on_failure
    for directory, stage_dir in sorted(files.dirs.items()):
        if directory == (on_failure.name if on_failure else None):
            continue
        if stage_dir.config_ini is not None and directory not in in_dag and steps:
            problems.append(
                Problem(
                    f"{directory}/{STAGE_FILE}",
                    "this stage is not in the DAG and will not run: add it to [workflow] DAG "
                    f"in {PROJECT_FILE} if it should",
                    severity="warning",
                )
            )

    project_name = (project or {}).get("project_name") or files.fallback_name
    problems += _check_names(project_name, in_dag)
    errors = [p for p in problems if p.severity == "error"]
    if errors or project is None:
        raise ConfigError(problems)
    return ProjectConfig(
        project_name=names.k8s_name(project_name),
        dag=steps,
        stages=stages,
        docker_image=project.get("docker_image"),
        artifacts_pvc=project.get("artifacts_pvc"),
        on_failure=on_failure.name if on_failure else None,
        webhook_url_secret=project.get("webhook_url_secret"),
        log_level=project.get("log_level") or "info",
        warnings=tuple(p for p in problems if p.severity == "warning"),
    )


def _parse_on_failure(
    project: dict[str, Any] | None,
    files: ProjectFiles,
    in_dag: list[str],
    problems: list[Problem],
) -> StageConfig | None:
    """[workflow] ON_FAILURE: a batch stage directory that is not also in the DAG."""
    name = (project or {}).get("on_failure")
    if not name:
        return None
    line = project["_on_failure_line"] if project else None

    def problem(message: str) -> None:
        problems.append(Problem(PROJECT_FILE, message, key="ON_FAILURE", line=line))

    if name in in_dag:
        problem(f"'{name}' is in the DAG too: the on-failure stage must run only on failure")
        return None
    if name not in files.dirs:
        close = difflib.get_close_matches(name, list(files.dirs), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problem(f"stage '{name}' has no directory '{name}/' in the project{hint}")
        return None
    parsed = _parse_stage(name, files.dirs[name], problems)
    if parsed is not None and parsed.is_service:
        problem(f"'{name}' is a service: the on-failure stage must be a batch stage")
        return None
    return parsed


def _check_names(project_name: str, stages: list[str]) -> list[Problem]:
    """Names must map onto Kubernetes' alphabet, and distinct stages onto distinct names."""
    problems = []
    if not names.k8s_name(project_name):
        problems.append(
            Problem(
                PROJECT_FILE,
                f"'{project_name}' has no letters or digits to build Kubernetes names from",
                key="PROJECT_NAME",
            )
        )
    mapped: dict[str, str] = {}
    for stage in stages:
        k8s = names.k8s_name(stage)
        if not k8s:
            problems.append(
                Problem(
                    PROJECT_FILE,
                    f"stage '{stage}' has no letters or digits to build Kubernetes names from: "
                    "rename its directory",
                    key="DAG",
                )
            )
        elif k8s in mapped:
            problems.append(
                Problem(
                    PROJECT_FILE,
                    f"stages '{mapped[k8s]}' and '{stage}' both become '{k8s}' in Kubernetes: "
                    "rename one of the directories",
                    key="DAG",
                )
            )
        else:
            mapped[k8s] = stage
    return problems


# ---------------------------------------------------------------------------- loading
_SKIP_DIRS = {"__pycache__", "node_modules", "venv", ".venv"}


def read_project_files(root: Path, fallback_name: str = "project") -> ProjectFiles:
    """Snapshot a project checkout: bodywork.ini and each top-level directory's files."""
    ini = root / PROJECT_FILE
    dirs = {}
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith(".") or child.name in _SKIP_DIRS:
            continue
        config = child / STAGE_FILE
        dirs[child.name] = StageDir(
            config_ini=config.read_text(errors="replace") if config.is_file() else None,
            files=frozenset(p.name for p in child.iterdir() if p.is_file()),
        )
    text = ini.read_text(errors="replace") if ini.is_file() else None
    return ProjectFiles(bodywork_ini=text, dirs=dirs, fallback_name=fallback_name)


def load_project(root: Path, fallback_name: str = "project") -> ProjectConfig:
    return parse_project(read_project_files(root, fallback_name))
