"""Project configuration: the texts of `bodywork.ini` and each stage's `config.ini` → ProjectConfig.

`schema` declares every key (type, default, bounds, why), `model` the frozen dataclasses,
`reader` reads ini texts and parses a project reporting *every* problem at once with file,
key, line and a fix, and `checks` the cross-field and cross-file rules. Pure: it parses a
`ProjectFiles` snapshot of strings and file names; `read_project_files` takes that
snapshot from a checkout. Callers use this package's names: `config.parse_project(...)`.
"""

from __future__ import annotations

from bodywork.core.config.model import ProjectConfig, ProjectFiles, StageConfig, StageDir
from bodywork.core.config.reader import load_project, parse_project, read_project_files
from bodywork.core.config.schema import (
    BATCH,
    PROJECT_FILE,
    PROJECT_KEYS,
    REQUIREMENTS_FILE,
    SERVICE,
    STAGE_FILE,
    STAGE_KEYS,
    STAGE_SECTIONS,
    Key,
)

__all__ = [
    "BATCH",
    "PROJECT_FILE",
    "PROJECT_KEYS",
    "REQUIREMENTS_FILE",
    "SERVICE",
    "STAGE_FILE",
    "STAGE_KEYS",
    "STAGE_SECTIONS",
    "Key",
    "ProjectConfig",
    "ProjectFiles",
    "StageConfig",
    "StageDir",
    "load_project",
    "parse_project",
    "read_project_files",
]
