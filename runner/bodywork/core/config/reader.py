"""Reading configuration texts: ini text → keys → values, and `parse_project`.

`_read_ini` parses one file with case-insensitive sections and keys and their line
numbers; `_parse_keys` turns its values into typed ones with the `schema`, reporting every
unknown, missing or bad key with a did-you-mean; `parse_project` assembles a
`ProjectConfig` from a `ProjectFiles` snapshot, running the cross-field `checks`, and
raises one `ConfigError` with every problem. `read_project_files` and `load_project` are
the small loaders that take that snapshot from a checkout.
"""

from __future__ import annotations

import configparser
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bodywork.core import dag, names
from bodywork.core.config import checks
from bodywork.core.config import schema as s
from bodywork.core.config.model import ProjectConfig, ProjectFiles, StageConfig, StageDir
from bodywork.core.config.schema import Key
from bodywork.core.errors import ConfigError, Problem

_NO_DEFAULT_SECTION = "\0none"  # stop configparser treating [DEFAULT] specially
_SKIP_DIRS = {"__pycache__", "node_modules", "venv", ".venv"}


# ---------------------------------------------------------------------------- ini text
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


# ---------------------------------------------------------------------------- keys → values
def _parse_keys(
    ini: _Ini, file: str, keys: tuple[Key[Any], ...], active: set[str], problems: list[Problem]
) -> dict[str, Any]:
    """Parse the keys of the sections in `active`, reporting every problem."""
    values: dict[str, Any] = {}
    by_section: dict[str, dict[str, Key[Any]]] = {}
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
                s.PROJECT_FILE,
                "not found at the project root: create it with [default] PROJECT_NAME "
                'and [workflow] DAG = "stage-1 >> stage-2"',
            )
        )
        return None
    ini = _read_ini(files.bodywork_ini, s.PROJECT_FILE, problems)
    if ini is None:
        return None
    problems += checks.unknown_sections(
        s.PROJECT_FILE, ini.sections, ini.section_lines, s.PROJECT_SECTIONS
    )
    values = _parse_keys(ini, s.PROJECT_FILE, s.PROJECT_KEYS, set(s.PROJECT_SECTIONS), problems)
    values["_dag_line"] = ini.key_lines.get(("workflow", "dag"))
    values["_on_failure_line"] = ini.key_lines.get(("workflow", "on_failure"))
    return values


def _parse_stage(name: str, stage_dir: StageDir, problems: list[Problem]) -> StageConfig | None:
    file = f"{name}/{s.STAGE_FILE}"
    if stage_dir.config_ini is None:
        problems.append(
            Problem(
                file,
                f"not found: stage '{name}' needs a {s.STAGE_FILE} with [default] STAGE_TYPE "
                "and EXECUTABLE_SCRIPT",
            )
        )
        return None
    before = len(problems)
    ini = _read_ini(stage_dir.config_ini, file, problems)
    if ini is None:
        return None
    problems += checks.unknown_sections(file, ini.sections, ini.section_lines, s.STAGE_SECTIONS)
    stage_type = ini.sections.get("default", {}).get("stage_type", "").lower()
    active = {"default"}
    if stage_type in (s.BATCH, s.SERVICE):
        active.add(stage_type)
        problems += checks.ignored_section(file, stage_type, ini.sections, ini.section_lines)
    values = _parse_keys(ini, file, s.STAGE_KEYS, active, problems)

    secrets = []
    for env_var, secret in ini.sections.get("secrets", {}).items():
        line = ini.key_lines.get(("secrets", env_var))
        env_var = env_var.upper()  # configparser lower-cases keys; env vars are upper
        problem = checks.secret(file, env_var, secret, line)
        if problem is None:
            secrets.append((env_var, secret))
        else:
            problems.append(problem)

    script_line = ini.key_lines.get(("default", "executable_script"))
    problems += checks.stage_files(name, stage_dir, values.get("executable_script"), script_line)
    if len(problems) > before and any(p.severity == "error" for p in problems[before:]):
        return None
    return StageConfig(name=name, secrets=tuple(secrets), **values)


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
    if (target := checks.on_failure_target(name, in_dag, files.dirs, line)) is not None:
        problems.append(target)
        return None
    parsed = _parse_stage(name, files.dirs[name], problems)
    if parsed is not None and (service := checks.on_failure_stage(parsed, line)) is not None:
        problems.append(service)
        return None
    return parsed


# ---------------------------------------------------------------------------- the project
def parse_project(files: ProjectFiles) -> ProjectConfig:
    """Validate a whole project; raise ConfigError listing every problem found."""
    problems: list[Problem] = []
    project = _parse_project_ini(files, problems)
    dag_line = project["_dag_line"] if project else None
    steps: tuple[tuple[str, ...], ...] = ()
    if project is not None and project.get("dag"):
        try:
            steps = dag.parse_dag(project["dag"])
        except dag.DagError as exc:
            for message in exc.problems:
                problems.append(Problem(s.PROJECT_FILE, message, key="DAG", line=dag_line))

    in_dag = [stage for step in steps for stage in step]
    stages: dict[str, StageConfig] = {}
    for stage in in_dag:
        if (missing := checks.stage_dir(stage, files.dirs, dag_line)) is not None:
            problems.append(missing)
            continue
        parsed = _parse_stage(stage, files.dirs[stage], problems)
        if parsed is not None:
            stages[stage] = parsed
    on_failure = _parse_on_failure(project, files, in_dag, problems)
    if on_failure is not None:
        stages[on_failure.name] = on_failure
    if steps:
        problems += checks.unused_dirs(files.dirs, in_dag, on_failure.name if on_failure else None)

    project_name = (project or {}).get("project_name") or files.fallback_name
    problems += checks.k8s_names(project_name, in_dag)
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
        log_level=project.get("log_level") or s.default_of(s.LOG_LEVEL),
        warnings=tuple(p for p in problems if p.severity == "warning"),
    )


# ---------------------------------------------------------------------------- loading
def read_project_files(root: Path, fallback_name: str = s.FALLBACK_PROJECT_NAME) -> ProjectFiles:
    """Snapshot a project checkout: bodywork.ini and each top-level directory's files."""
    ini = root / s.PROJECT_FILE
    dirs = {}
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith(".") or child.name in _SKIP_DIRS:
            continue
        config = child / s.STAGE_FILE
        dirs[child.name] = StageDir(
            config_ini=config.read_text(errors="replace") if config.is_file() else None,
            files=frozenset(p.name for p in child.iterdir() if p.is_file()),
        )
    text = ini.read_text(errors="replace") if ini.is_file() else None
    return ProjectFiles(bodywork_ini=text, dirs=dirs, fallback_name=fallback_name)


def load_project(root: Path, fallback_name: str = s.FALLBACK_PROJECT_NAME) -> ProjectConfig:
    return parse_project(read_project_files(root, fallback_name))
