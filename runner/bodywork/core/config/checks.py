"""Checks that look across fields and files rather than at one value.

Names that collide or cannot become Kubernetes names (project, stages, secrets), the DAG's
stages against the project's directories, the on-failure stage, a stage's script and
requirements.txt against the files in its directory, a bodywork.yaml module path against
the project's files, directories the DAG leaves out, the original's image, services that
would share a port on one machine, GPUs asked for by two keys, limits below requests and
secrets that would shadow a variable the stage needs. Each returns what it
finds (`Problem`s with file, key, line and a fix); the readers call them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from bodywork.core import names
from bodywork.core.config import schema as s
from bodywork.core.config.model import StageConfig, StageDir
from bodywork.core.config.schema import (
    BATCH,
    CPU_LIMIT,
    CPU_REQUEST,
    ENV_VAR_NAME,
    GPU_RESOURCE,
    MAX_PROJECT_FILES,
    MEMORY_LIMIT_MB,
    MEMORY_REQUEST_MB,
    MODULE_SUFFIXES,
    ORIGINAL_IMAGE,
    PROJECT_FILE,
    REQUIREMENTS_FILE,
    RESERVED_ENV,
    RESERVED_ENV_PREFIX,
    SECRET_NAME,
    SECRET_NAME_MAX,
    SERVICE,
    STAGE_FILE,
    Key,
    shown,
)
from bodywork.core.errors import Problem

# A did-you-mean scans every name there is: asked for each of 10,000 stages missing among
# 10,000 others, it made validation quadratic (2,000 of each took 7 s). Past this many in
# one file, the problems are listed without a suggestion.
MAX_SUGGESTIONS = 20


def _close_matches(word: str, options: list[str], n: int, cutoff: float = 0.6) -> list[str]:
    """difflib's close matches; difflib is imported only when a mistake needs a hint."""
    import difflib

    return difflib.get_close_matches(word, options, n=n, cutoff=cutoff)


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option most like `word` (case-insensitively), if any is close."""
    by_lower = {option.lower(): option for option in options}
    close = _close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def unknown_sections(
    file: str,
    sections: Iterable[str],
    lines: Mapping[str, int],
    known: tuple[str, ...],
    severity: str = "warning",
) -> list[Problem]:
    """Each section the schema does not know, with a did-you-mean (a warning unless strict)."""
    problems = []
    for section in sections:
        if section not in known:
            close = closest(section, known)
            hint = f" (did you mean [{close}]?)" if close else ""
            problems.append(
                Problem(
                    file,
                    f"unknown section [{section}]{hint}",
                    line=lines.get(section),
                    severity=severity,
                )
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


def stage_dir(
    stage: str, dirs: Mapping[str, StageDir], line: int | None, suggest: bool = True
) -> Problem | None:
    """A DAG stage needs a directory; suggest (when `suggest`) the closest one that holds a
    config.ini."""
    if stage in dirs:
        return None
    hint = ""
    if suggest:
        candidates = [d for d, sd in dirs.items() if sd.config_ini is not None]
        close = _close_matches(stage, candidates or list(dirs), n=1)
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
        close = _close_matches(name, list(dirs), n=1)
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
    dirs: Mapping[str, StageDir], in_dag: Collection[str], on_failure: str | None
) -> list[Problem]:
    """Warn about each directory with a config.ini that neither the DAG nor ON_FAILURE uses."""
    in_dag = set(in_dag)  # one lookup per directory, not a scan of the DAG
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


def secret(
    file: str, env_var: str, secret_name: str, line: int | None, key: str | None = None
) -> Problem | None:
    """A secrets entry: ENV_VAR must be an env var name, the value a Secret's name."""
    key = key or env_var
    if not ENV_VAR_NAME.match(env_var):
        return Problem(file, "is not a valid environment variable name", key=key, line=line)
    if (shadowed := reserved_env(env_var)) is not None:
        return Problem(
            file,
            f"would shadow {env_var}, {shadowed}: give the variable another name",
            key=key,
            line=line,
        )
    if not SECRET_NAME.match(secret_name) or len(secret_name) > SECRET_NAME_MAX:
        return Problem(
            file,
            f"secret name '{secret_name}' is not a valid Kubernetes name "
            "(lower-case letters, digits, '-' and '.')",
            key=key,
            line=line,
        )
    return None


def reserved_env(env_var: str) -> str | None:
    """What a secret named `env_var` would shadow in the stage's environment, or None."""
    if env_var in RESERVED_ENV:
        return RESERVED_ENV[env_var]
    if env_var.startswith(RESERVED_ENV_PREFIX):
        return "one of the variables Bodywork sets for the stage"
    return None


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def limits_below_requests(
    stage: StageConfig, where: Callable[[Key[Any]], tuple[str, str, int | None]]
) -> list[Problem]:
    """A limit under its request: the API server refuses the pod ("must be less than or equal
    to the limit"). `where` names a key's file, label and line (None: not written)."""
    problems = []
    pairs: tuple[tuple[Key[Any], Key[Any], float | None, float], ...] = (
        (CPU_LIMIT, CPU_REQUEST, stage.cpu_limit, stage.cpu_request),
        (MEMORY_LIMIT_MB, MEMORY_REQUEST_MB, stage.memory_limit_mb, stage.memory_request_mb),
    )
    for limit_key, request_key, limit, request in pairs:
        if limit is None or not request or limit >= request:
            continue
        file, limit_label, line = where(limit_key)
        _, request_label, request_line = where(request_key)
        given = "" if request_line is not None else " (its default)"
        problems.append(
            Problem(
                file,
                f"{_number(limit)} is below {request_label} {_number(request)}{given}: "
                "Kubernetes refuses a "
                f"limit under the request; raise {limit_label} or lower {request_label}",
                key=limit_label,
                line=line,
            )
        )
    return problems


def stage_files(
    name: str, sd: StageDir, script: str | None, script_line: int | None
) -> list[Problem]:
    """EXECUTABLE_SCRIPT and requirements.txt must be files of the stage's directory."""
    problems = []
    if script is not None and script not in sd.files:
        python_files = sorted(f for f in sd.files if f.endswith(".py"))
        close = _close_matches(script, python_files, n=1)
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


def k8s_names(
    project_name: str,
    stages: list[str],
    file: str = PROJECT_FILE,
    name_key: str = "PROJECT_NAME",
    dag_key: str = "DAG",
    stage_noun: str = "directory",
) -> list[Problem]:
    """Names must map onto Kubernetes' alphabet, and distinct stages onto distinct names."""
    problems = []
    if not names.k8s_name(project_name):
        problems.append(
            Problem(
                file,
                f"'{project_name}' has no letters or digits to build Kubernetes names from",
                key=name_key,
            )
        )
    mapped: dict[str, str] = {}
    plural = "directories" if stage_noun == "directory" else f"{stage_noun}s"
    for stage in stages:
        k8s = names.k8s_name(stage)
        if len(k8s) > names.MAX_NAME_LENGTH:
            problems.append(
                Problem(
                    file,
                    f"stage '{shown(stage)}' is {len(k8s)} characters long as a Kubernetes "
                    f"name: a label takes at most {names.MAX_NAME_LENGTH}; rename its "
                    f"{stage_noun}",
                    key=dag_key,
                )
            )
        elif not k8s:
            problems.append(
                Problem(
                    file,
                    f"stage '{stage}' has no letters or digits to build Kubernetes names from: "
                    f"rename its {stage_noun}",
                    key=dag_key,
                )
            )
        elif k8s in mapped:
            problems.append(
                Problem(
                    file,
                    f"stages '{mapped[k8s]}' and '{stage}' both become '{k8s}' in Kubernetes: "
                    f"rename one of the {plural}",
                    key=dag_key,
                )
            )
        else:
            mapped[k8s] = stage
    return problems


def module_path(
    raw: str, paths: Collection[str], too_many_files: bool, suggest: bool = True
) -> tuple[str, str | None]:
    """A bodywork.yaml module path → (its normal form, what is wrong with it or None).

    It must be relative to the project root, written with '/', stay inside the project, name
    a .py or .ipynb module, and be one of the project's files (the closest of which is
    suggested, when `suggest`, for one that is not).
    """
    path = raw.strip()
    if "\\" in path:
        return path, f"'{path}': write the path with '/' between folders"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return path, f"'{path}' is absolute: give it relative to the project root"
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        return path, f"'{path}' leaves the project ('..'): give it relative to the project root"
    path = "/".join(parts)
    if not path.endswith(MODULE_SUFFIXES):
        return path, f"'{path}' is not a module: name a .py file (or a .ipynb notebook)"
    if path in paths:
        return path, None
    if too_many_files:
        return path, (
            f"'{path}' was not seen: the project has more than {MAX_PROJECT_FILES:,} files "
            "and Bodywork stops looking there; move data out of the repository"
        )
    if not suggest:
        return path, f"'{path}' does not exist in the project"
    modules = sorted(p for p in paths if p.endswith(MODULE_SUFFIXES))
    same_name = [p for p in modules if posixpath.basename(p) == posixpath.basename(path)]
    close = same_name or _close_matches(path, modules, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return path, f"'{path}' does not exist in the project{hint}"


def is_original_image(image: str) -> bool:
    """Does `image` name the original Bodywork's image, bodyworkml/bodywork-core (any tag)?"""
    return bool(ORIGINAL_IMAGE.match(image.strip()))


def original_image_note(file: str, key: str, image: str, line: int | None) -> Problem:
    return Problem(
        file,
        f"'{image}' is the original Bodywork's image: the stages run on this Bodywork's own "
        "image instead (leave the key out to say so)",
        key=key,
        line=line,
        severity="note",
    )


def port_conflicts(
    dag: Iterable[Iterable[str]], stages: Mapping[str, StageConfig]
) -> list[tuple[str, str, int]]:
    """Pairs of services (in DAG order) that listen on the same port.

    A service keeps running once its step is done, so on one machine every service of the
    DAG runs at the same time and any two on one port collide; in a cluster each pod has its
    own address and they do not.
    """
    first_on: dict[int, str] = {}
    conflicts = []
    for step in dag:
        for name in step:
            stage = stages.get(name)
            if stage is None or not stage.is_service or stage.port is None:
                continue
            if stage.port in first_on:
                conflicts.append((first_on[stage.port], name, stage.port))
            else:
                first_on[stage.port] = name
    return conflicts


def port_conflict_warning(
    file: str, key: str, line: int | None, first: str, second: str, port: int
) -> Problem:
    return Problem(
        file,
        f"locally, {first} and {second} both listen on {port}: `bodywork run` refuses this; "
        "give one another port (the cluster is fine)",
        key=key,
        line=line,
        severity="warning",
    )


def gpus_given_twice(
    stage: StageConfig, file: str, key: str, line: int | None, resources_key: str
) -> Problem | None:
    """GPUS and an EXTENDED_RESOURCES entry for nvidia.com/gpu are one setting: give it once."""
    if not stage.gpus or GPU_RESOURCE not in dict(stage.extended_resources):
        return None
    return Problem(
        file,
        f"{resources_key} sets {GPU_RESOURCE} too: give the NVIDIA GPUs in one of them",
        key=key,
        line=line,
    )


def link_leaving_repo(path: str, target: str, into_git: bool = False) -> Problem:
    """A symlink of the project whose target is outside the repository (absolute, or `..`
    beyond its root), or inside Git's own folder: the run would read what the pinned commit
    does not hold. `path`: the link, relative to the project root; `target`: as written."""
    where = (
        "into Git's own folder, which no commit holds"
        if into_git
        else "which leaves the repository"
    )
    return Problem(
        path,
        f"is a symlink to '{target}', {where}: Bodywork runs only what the pinned commit "
        "holds, so commit the files themselves in place of the link (or point it at a path "
        "inside the repository)",
    )


def artifacts_backend(
    values: Mapping[str, Any], where: Callable[[Key[Any]], tuple[str, str, int | None]]
) -> list[Problem]:
    """The S3 backend with a ReadWriteOnce claim (it would pin every pod for caches alone:
    an error), or without the Secret a cluster run takes its credentials from (a warning:
    a local run takes them from the environment, and a deploy may name it with a flag)."""
    if not values.get(s.ARTIFACTS_URL.name):
        return []
    found: list[Problem] = []
    claim = values.get(s.ARTIFACTS_PVC.name)
    mode = values.get(s.ARTIFACTS_PVC_ACCESS_MODE.name) or s.default_of(s.ARTIFACTS_PVC_ACCESS_MODE)
    if claim and mode != s.ACCESS_MODES[1]:
        file, key, line = where(s.ARTIFACTS_PVC)
        found.append(
            Problem(
                file,
                f"with ARTIFACTS_URL the claim '{claim}' would hold only the caches, and as a "
                f"{mode} claim it would pin every pod of the project to one node: set "
                "ARTIFACTS_PVC_ACCESS_MODE = ReadWriteMany if it is one, or remove ARTIFACTS_PVC",
                key=key,
                line=line,
            )
        )
    if not values.get(s.ARTIFACTS_S3_SECRET.name):
        file, key, line = where(s.ARTIFACTS_URL)
        found.append(
            Problem(
                file,
                "in a cluster ARTIFACTS_URL needs ARTIFACTS_S3_SECRET (or deploy with "
                "--artifacts-s3-secret): a Secret with AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY; a local run takes them from your environment",
                key=key,
                line=line,
                severity="warning",
            )
        )
    return found
