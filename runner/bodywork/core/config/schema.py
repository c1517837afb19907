"""The schema of `bodywork.ini` and each stage's `config.ini`: the one place settings are declared.

Every key is a `Key` here: its section, value parser (type and bounds), default and why.
The dataclasses in `model` take their field defaults from these keys, and README.md's
configuration table is checked against them (tests/unit/test_config_schema.py), so a
default is written once. Also the file names, stage types, known sections and the patterns
a `[secrets]` entry must match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PROJECT_FILE = "bodywork.ini"
STAGE_FILE = "config.ini"
REQUIREMENTS_FILE = "requirements.txt"
BATCH, SERVICE = "batch", "service"
FALLBACK_PROJECT_NAME = "project"  # when PROJECT_NAME is unset and no repo name is known
PROJECT_SECTIONS = ("default", "workflow", "logging", "notify")
STAGE_SECTIONS = ("default", BATCH, SERVICE, "secrets")
ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a [secrets] key
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # a [secrets] value
SECRET_NAME_MAX = 253  # Kubernetes' limit for a Secret's (DNS-1123 subdomain) name


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
class Key(Generic[T]):
    """One configuration key: where it lives, how to parse it, its default and why."""

    section: str
    name: str
    parse: Callable[[str], T]
    default: T | None = None  # None: unset (or, when required, no default at all)
    required: bool = False
    doc: str = ""


def default_of(key: Key[T]) -> T:
    """The default of a key that has one: what a dataclass field defaults to."""
    if key.default is None:
        raise ValueError(f"{key.name.upper()} has no default")
    return key.default


# ---------------------------------------------------------------------------- bodywork.ini
PROJECT_NAME = Key(
    "default", "project_name", _text, doc="names every object; defaults to the repo name"
)
DOCKER_IMAGE = Key(
    "default", "docker_image", _text, doc="image for stage pods; default: the controller's"
)
ARTIFACTS_PVC = Key(
    "default", "artifacts_pvc", _text, doc="existing claim for artifacts; default: created"
)
DAG = Key("workflow", "dag", _text, required=True, doc='steps of stages, e.g. "train >> serve"')
ON_FAILURE = Key("workflow", "on_failure", _text, doc="batch stage run when any step fails")
WEBHOOK_URL_SECRET = Key(
    "notify", "webhook_url_secret", _text, doc="Secret holding WEBHOOK_URL for summaries"
)
LOG_LEVEL = Key("logging", "log_level", _choice("debug", "info", "warning", "error"), "info")

PROJECT_KEYS: tuple[Key[Any], ...] = (
    PROJECT_NAME,
    DOCKER_IMAGE,
    ARTIFACTS_PVC,
    DAG,
    ON_FAILURE,
    WEBHOOK_URL_SECRET,
    LOG_LEVEL,
)

# ---------------------------------------------------------------------------- config.ini
STAGE_TYPE = Key("default", "stage_type", _choice(BATCH, SERVICE), required=True)
EXECUTABLE_SCRIPT = Key(
    "default", "executable_script", _text, required=True, doc="module in the stage dir"
)
CPU_REQUEST = Key("default", "cpu_request", _float, 0.5, doc="cores reserved for the stage's pod")
MEMORY_REQUEST_MB = Key(
    "default", "memory_request_mb", _int(1), 512, doc="MiB reserved; sklearn+pandas ~300"
)
CPU_LIMIT = Key("default", "cpu_limit", _float, doc="cores; unset = no limit")
MEMORY_LIMIT_MB = Key(
    "default", "memory_limit_mb", _int(1), doc="MiB; unset = no limit (OOMKilled above)"
)
RETRIES = Key("batch", "retries", _int(0, 10), 0, doc="extra attempts after a failure")
MAX_COMPLETION_TIME_SECONDS = Key(
    "batch",
    "max_completion_time_seconds",
    _int(1),
    3600,
    doc="deadline for all attempts, install included: a stuck job fails, never hangs",
)
REPLICAS = Key("service", "replicas", _int(1, 100), 1)
MAX_STARTUP_TIME_SECONDS = Key(
    "service",
    "max_startup_time_seconds",
    _int(1),
    120,
    doc="from start to PORT accepting connections, dependency install included",
)
PORT = Key("service", "port", _int(1, 65535), required=True, doc="port the service listens on")
INGRESS = Key("service", "ingress", _bool, False, doc="expose at /<namespace>/<project>--<stage>")

STAGE_KEYS: tuple[Key[Any], ...] = (
    STAGE_TYPE,
    EXECUTABLE_SCRIPT,
    CPU_REQUEST,
    MEMORY_REQUEST_MB,
    CPU_LIMIT,
    MEMORY_LIMIT_MB,
    RETRIES,
    MAX_COMPLETION_TIME_SECONDS,
    REPLICAS,
    MAX_STARTUP_TIME_SECONDS,
    PORT,
    INGRESS,
)
