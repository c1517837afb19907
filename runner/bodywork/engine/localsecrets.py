"""Where a local run's `[secrets]` / `secrets:` values come from: the environment or a file.

In the cluster a stage's ENV_VAR comes from key ENV_VAR of Kubernetes Secret `name`. On this
machine there is no Secret, so each value comes from the user's environment variable of the
same name or from a secrets file passed to `bodywork run --secrets-file`, laid out like the
Secrets themselves (one section per Secret, one key per value):

    [db-creds]
    DB_PASSWORD = ...

The file wins over the environment, so one file describes a run completely. A value that is
found nowhere is an error naming the variable, the Secret and both places to put it: a stage
never silently starts without its secret. Values are returned, never logged.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

from bodywork.core.errors import UsageError
from bodywork.core.plan import Plan


def read_secrets_file(path: Path) -> dict[str, dict[str, str]]:
    """Secret name → {KEY: value}, from an ini file with one section per Secret."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    try:
        text = path.read_text(encoding="utf-8")
        parser.read_string(text, source=str(path))
    except OSError as exc:
        raise UsageError(f"--secrets-file {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--secrets-file {path}: not UTF-8 text") from None
    except configparser.Error as exc:
        # configparser's message quotes the offending line, which may hold a secret value.
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise UsageError(
            f"--secrets-file {path}: not an ini file{where}: put each Secret's keys under "
            "[secret-name], one KEY = value per line"
        ) from None
    return {section.lower(): dict(parser.items(section)) for section in parser.sections()}


def resolve(
    the_plan: Plan, environ: Mapping[str, str], secrets_file: Path | None = None
) -> dict[str, dict[str, str]]:
    """Stage name → the env its secrets add; every missing value is named at once."""
    from_file = read_secrets_file(secrets_file) if secrets_file is not None else {}
    stages = [*the_plan.stages, *([the_plan.on_failure] if the_plan.on_failure else [])]
    found: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    for stage in stages:
        values: dict[str, str] = {}
        for env_var, secret in stage.config.secrets:
            if env_var in from_file.get(secret, {}):
                values[env_var] = from_file[secret][env_var]
            elif env_var in environ:
                values[env_var] = environ[env_var]
            else:
                missing.append(
                    f"  stage '{stage.name}' needs {env_var} (key {env_var} of Secret "
                    f"'{secret}'): export {env_var}=... or add '{env_var} = ...' under "
                    f"[{secret}] in a file passed with --secrets-file"
                )
        found[stage.name] = values
    if missing:
        noun = "value" if len(missing) == 1 else "values"
        raise UsageError("\n".join([f"{len(missing)} secret {noun} not found:", *missing]))
    return found
