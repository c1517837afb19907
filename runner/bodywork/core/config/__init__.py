"""Project configuration: `bodywork.yaml`, or `bodywork.ini` + `config.ini`s → ProjectConfig.

`schema` declares every key once for both formats (type, default, bounds, why, its place
in each file), `kubevalues` checks the Kubernetes-shaped values of a stage's placement
(resource names, labels, tolerations, Secret names), `model` the frozen record classes,
`inifiles` and `yamlfile` read the two formats, `reader.parse_project` parses a project
reporting *every* problem at once with file, key, line and a fix, `checks` holds the
cross-field and cross-file rules and `docs` generates docs/configuration.md's tables from
the schema. Pure: it parses a `ProjectFiles`
snapshot of strings and file names; `read_project_files` takes that snapshot from a
checkout. Callers use this package's names: `config.parse_project(...)`.
"""

from __future__ import annotations

from bodywork.core.config.docs import configuration_tables
from bodywork.core.config.model import (
    ProjectConfig,
    ProjectFiles,
    StageConfig,
    StageDir,
    Toleration,
)
from bodywork.core.config.reader import (
    Listings,
    bare_repository_message,
    decode_text,
    is_bare_repository,
    load_project,
    local_port_conflicts,
    parse_project,
    read_project_files,
    tree_project_files,
)
from bodywork.core.config.schema import (
    BATCH,
    PROJECT_FILE,
    PROJECT_KEYS,
    REQUIREMENTS_FILE,
    SERVICE,
    STAGE_FILE,
    STAGE_KEYS,
    STAGE_SECTIONS,
    YAML_FILE,
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
    "YAML_FILE",
    "Key",
    "Listings",
    "ProjectConfig",
    "ProjectFiles",
    "StageConfig",
    "StageDir",
    "Toleration",
    "bare_repository_message",
    "configuration_tables",
    "decode_text",
    "is_bare_repository",
    "load_project",
    "local_port_conflicts",
    "parse_project",
    "read_project_files",
    "tree_project_files",
]
