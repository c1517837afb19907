"""What a format's reader hands `reader.parse_project`: the project before the shared checks.

`inifiles` (bodywork.ini + config.ini) and `yamlfile` (bodywork.yaml) each fill a `Draft`;
`reader` then runs the checks both formats share (Kubernetes names, the original's image,
services on one port) and builds the `ProjectConfig`. `Draft.where` turns a project key
(stage None) or a stage's key into the file, key label and line a problem should name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bodywork.core.config.model import StageConfig
from bodywork.core.config.schema import Key
from bodywork_bootstrap.recordclass import record

Where = Callable[[str | None, Key[Any]], tuple[str, str, int | None]]


@record
class Draft:
    file: str  # bodywork.ini or bodywork.yaml
    values: dict[str, Any]  # ProjectConfig field → value, from the project keys
    steps: tuple[tuple[str, ...], ...]
    stages: dict[str, StageConfig]  # the DAG's stages and the on-failure stage
    on_failure: str | None
    where: Where
    stage_noun: str  # what to rename when stage names collide: "directory" or "stage"


def severity(strict: bool) -> str:
    """An unknown key or section is a warning, or an error under strict validation."""
    return "error" if strict else "warning"
