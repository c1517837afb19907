"""Checks that look across fields and files rather than at one value.

Names that collide or cannot become Kubernetes names (project, stages, `[secrets]`), the
DAG's stages against the project's directories, the on-failure stage, a stage's script and
requirements.txt against the files in its directory, and directories the DAG leaves out.
Each returns the `Problem`s it finds, with file, key, line and a fix; `reader` calls them.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping

from bodywork.core import names
from bodywork.core.config.model import StageConfig, StageDir
from bodywork.core.config.schema import (
    BATCH,
    ENV_VAR_NAME,
    PROJECT_FILE,
    REQUIREMENTS_FILE,
    SECRET_NAME,
    SECRET_NAME_MAX,
    SERVICE,
    STAGE_FILE,
)
from bodywork.core.errors import Problem


def unknown_sections(
    file: str, sections: Iterable[str], lines: Mapping[str, int], known: tuple[str, ...]
) -> list[Problem]:
    """Each section the schema does not know, with a did-you-mean."""
    problems = []
    for section in sections:
        if section not in known:
            close = difflib.get_close_matches(section.lower(), list(known), n=1, cutoff=0.6)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            problems.append(
                Problem(file, f"unknown section [{section}]{hint}", line=lines.get(section))
            )
    return problems


def ignored_section(
    file: str, stage_type: str, sections: Collection[str], lines: Mapping[str, int]
) -> list[Problem]:
    """A [batch] section in a service stage (or the reverse) is ignored: say so."""
    other = SERVICE if stage_type == BATCH else BATCH
    if other not in sections:
        return []
    return [
        Problem(
            file,
            f"section [{other}] is ignored for a {stage_type} stage",
            line=lines.get(other),
            severity="warning",
        )
    ]


def stage_dir(stage: str, dirs: Mapping[str, StageDir], line: int | None) -> Problem | None:
    """A DAG stage needs a directory; suggest the closest one that holds a config.ini."""
    if stage in dirs:
        return None
    candidates = [d for d, sd in dirs.items() if sd.config_ini is not None]
    close = difflib.get_close_matches(stage, candidates or list(dirs), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return Problem(
        PROJECT_FILE,
        f"stage '{stage}' has no directory '{stage}/' in the project{hint}",
        key="DAG",
        line=line,
    )


def on_failure_target(
    name: str, in_dag: list[str], dirs: Mapping[str, StageDir], line: int | None
) -> Problem | None:
    """[workflow] ON_FAILURE names a directory that is not also a stage of the DAG."""
    if name in in_dag:
        message = f"'{name}' is in the DAG too: the on-failure stage must run only on failure"
    elif name not in dirs:
        close = difflib.get_close_matches(name, list(dirs), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        message = f"stage '{name}' has no directory '{name}/' in the project{hint}"
    else:
        return None
    return Problem(PROJECT_FILE, message, key="ON_FAILURE", line=line)


def on_failure_stage(stage: StageConfig, line: int | None) -> Problem | None:
    """The on-failure stage, once parsed, must be a batch stage."""
    if not stage.is_service:
        return None
    return Problem(
        PROJECT_FILE,
        f"'{stage.name}' is a service: the on-failure stage must be a batch stage",
        key="ON_FAILURE",
        line=line,
    )


def unused_dirs(
    dirs: Mapping[str, StageDir], in_dag: list[str], on_failure: str | None
) -> list[Problem]:
    """Warn about each directory with a config.ini that neither the DAG nor ON_FAILURE uses."""
    return [
        Problem(
            f"{directory}/{STAGE_FILE}",
            "this stage is not in the DAG and will not run: add it to [workflow] DAG "
            f"in {PROJECT_FILE} if it should",
            severity="warning",
        )
        for directory, sd in sorted(dirs.items())
        if directory != on_failure and sd.config_ini is not None and directory not in in_dag
    ]


def secret(file: str, env_var: str, secret_name: str, line: int | None) -> Problem | None:
    """A [secrets] entry: ENV_VAR must be an env var name, the value a Secret's name."""
    if not ENV_VAR_NAME.match(env_var):
        return Problem(file, "is not a valid environment variable name", key=env_var, line=line)
    if not SECRET_NAME.match(secret_name) or len(secret_name) > SECRET_NAME_MAX:
        return Problem(
            file,
            f"secret name '{secret_name}' is not a valid Kubernetes name "
            "(lower-case letters, digits, '-' and '.')",
            key=env_var,
            line=line,
        )
    return None


def stage_files(
    name: str, sd: StageDir, script: str | None, script_line: int | None
) -> list[Problem]:
    """EXECUTABLE_SCRIPT and requirements.txt must be files of the stage's directory."""
    problems = []
    if script is not None and script not in sd.files:
        python_files = sorted(f for f in sd.files if f.endswith(".py"))
        close = difflib.get_close_matches(script, python_files, n=1)
        hint = (
            f" (did you mean {close[0]}?)"
            if close
            else f" (the directory holds: {', '.join(python_files) or 'no .py files'})"
        )
        problems.append(
            Problem(
                f"{name}/{STAGE_FILE}",
                f"'{script}' does not exist in {name}/{hint}",
                key="EXECUTABLE_SCRIPT",
                line=script_line,
            )
        )
    if REQUIREMENTS_FILE not in sd.files:
        problems.append(
            Problem(
                f"{name}/{REQUIREMENTS_FILE}",
                "not found: create it, empty if the stage needs no packages",
            )
        )
    return problems


def k8s_names(project_name: str, stages: list[str]) -> list[Problem]:
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
