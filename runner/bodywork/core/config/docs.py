"""docs/configuration.md's key tables, generated from `schema` so they cannot drift from it.

`configuration_tables()` returns the Markdown that sits between the markers in
docs/configuration.md (tests/unit/test_config_yaml.py checks it is exactly that): one table
for the project's keys and one for a stage's, each key in both formats.
"""

from __future__ import annotations

from typing import Any

from bodywork.core.config import schema as s
from bodywork.core.config.schema import Key

BEGIN_MARKER = "<!-- BEGIN configuration_tables() (generated from schema.py: edit it, not this) -->"
END_MARKER = "<!-- END configuration_tables() -->"
_NONE = "—"

# The stage's kind and its secrets are written differently in the two formats; a key with an
# `example` shows it in its config.ini cell, and its bodywork.yaml shape here.
_INI_CELLS: dict[str, str] = {s.SECRETS.name: "`[secrets]` `ENV_VAR = secret-name`"}
_YAML_CELLS: dict[str, str] = {
    s.STAGE_TYPE.name: "a `batch:` or a `service:` mapping",
    s.SECRETS.name: "`secrets:` `{ENV_VAR: secret-name}`",
    s.EXTENDED_RESOURCES.name: "`extended_resources:` `{nvidia.com/gpu: 1}`",
    s.NODE_SELECTOR.name: "`node_selector:` `{disktype: ssd}`",
    s.TOLERATIONS.name: "`tolerations:` `[{key: gpu, operator: Exists, effect: NoSchedule}]` "
    "(or items in the compact form: `[gpu:NoSchedule]`)",
    s.IMAGE_PULL_SECRETS.name: "`image_pull_secrets:` `[regcred]`",
}
_DEFAULT_CELLS: dict[str, str] = {
    s.PROJECT_NAME.name: "the repo's name",
    s.DOCKER_IMAGE.name: "Bodywork's image",
    s.ARTIFACTS_PVC.name: "created",
    s.NAMESPACE.name: "the command line's",
    s.ARGS.name: "empty",
    s.REQUIREMENTS.name: "empty",
    s.SECRETS.name: "empty",
}
_TYPE_CELLS: dict[str, str] = {
    s.STAGE_TYPE.name: "batch or service",
    s.SECRETS.name: "mapping of env var names to Secret names",
    s.EXTENDED_RESOURCES.name: "resource names, with their vendor's domain, to whole numbers ≥ 1",
    s.NODE_SELECTOR.name: "label keys to label values (Kubernetes' label syntax)",
    s.TOLERATIONS.name: "list of tolerations: key, operator (Equal or Exists), value, effect "
    "(NoSchedule, PreferNoSchedule, NoExecute; none: every effect), tolerationSeconds "
    "(NoExecute only)",
    s.IMAGE_PULL_SECRETS.name: "list of Secret names",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _prose(text: str) -> str:
    """A meaning cell: plain text, so its <placeholders> must not read as HTML."""
    return _cell(text).replace("<", "\\<")


def _ini_cell(key: Key[Any]) -> str:
    if key.name in _INI_CELLS:
        return _INI_CELLS[key.name]
    if not key.ini:
        return _NONE
    if key.example:
        return f"`[{key.section}]` `{key.name.upper()}`, e.g. `{key.example}`"
    return f"`[{key.section}]` `{key.name.upper()}`"


def _yaml_cell(key: Key[Any]) -> str:
    if key.name in _YAML_CELLS:
        return _YAML_CELLS[key.name]
    if key.yaml is None:
        return _NONE
    return f"`{'.'.join(key.yaml)}`"


def _default_cell(key: Key[Any]) -> str:
    if key.name in _DEFAULT_CELLS:
        return _DEFAULT_CELLS[key.name]
    if key.required:
        return "required"
    if key.default is None or key.default == ():
        return "none"
    if isinstance(key.default, bool):
        return f"`{str(key.default).lower()}`"
    return f"`{key.default}`"


def _row(key: Key[Any], ini: str, yaml: str) -> str:
    type_cell = _TYPE_CELLS.get(key.name, key.accepts)
    cells = [_cell(ini), _cell(yaml), _cell(type_cell), _cell(_default_cell(key))]
    return "| " + " | ".join([*cells, _prose(key.doc or _NONE)]) + " |"


def project_rows() -> list[Key[Any]]:
    return list(s.YAML_PROJECT_KEYS)


def stage_rows() -> list[Key[Any]]:
    return [s.STAGE_TYPE, s.EXECUTABLE_SCRIPT, *s.YAML_STAGE_KEYS]


def configuration_tables() -> str:
    """The two key tables of docs/configuration.md, as Markdown."""
    lines = [
        "### The project",
        "",
        f"`{s.PROJECT_FILE}`, or the top of `{s.YAML_FILE}` (schema 1.0 says `project.` where "
        "1.1 says `pipeline.`):",
        "",
        f"| `{s.PROJECT_FILE}` | `{s.YAML_FILE}` | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    lines += [_row(key, _ini_cell(key), _yaml_cell(key)) for key in project_rows()]
    lines += [
        "",
        "### A stage",
        "",
        f"The stage directory's `{s.STAGE_FILE}`, or the stage's entry under `stages.<name>` "
        f"in `{s.YAML_FILE}`:",
        "",
        f"| `{s.STAGE_FILE}` | `{s.YAML_FILE}` (under `stages.<name>`) | type | default "
        "| meaning |",
        "|---|---|---|---|---|",
    ]
    lines += [_row(key, _ini_cell(key), _yaml_cell(key)) for key in stage_rows()]
    return "\n".join(lines) + "\n"
