"""The schema of both configuration formats: the one place settings are declared.

Every key is a `Key` here: its `bodywork.ini`/`config.ini` section and name, its place in
`bodywork.yaml` (`yaml`), its value parser (type and bounds, with the words the docs use for
them), default and why. The record classes in `model` take their field defaults from these
keys, README.md's stage table is checked against them (tests/unit/test_config_schema.py),
and docs/configuration.md is generated from them (`docs.configuration_tables`), so a default
is written once. Also the file names, stage types, known sections and the patterns a secret
entry must match.

Where a key lives in bodywork.yaml: project keys from the top of the file, `PIPELINE` standing
for the project section (`pipeline:` in schema 1.1, `project:` in 1.0); stage keys from
`stages.<name>`, e.g. `("batch", "retries")`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from bodywork.core.config import kubevalues as kv
from bodywork_bootstrap.recordclass import record

T = TypeVar("T")

PROJECT_FILE = "bodywork.ini"
YAML_FILE = "bodywork.yaml"  # the original's one name for it (no bodywork.yml)
STAGE_FILE = "config.ini"
REQUIREMENTS_FILE = "requirements.txt"
BATCH, SERVICE = "batch", "service"
FALLBACK_PROJECT_NAME = "project"  # when PROJECT_NAME is unset and no repo name is known
PROJECT_SECTIONS = ("default", "workflow", "logging", "notify")
STAGE_SECTIONS = ("default", BATCH, SERVICE, "secrets")
ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a secrets key
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # a secrets value
SECRET_NAME_MAX = 253  # Kubernetes' limit for a Secret's (DNS-1123 subdomain) name
INT32_MAX = 2**31 - 1  # Kubernetes' int32 fields, e.g. a Job's backoffLimit
INT64_MAX = kv.INT64_MAX  # Kubernetes' int64 fields and quantities
# The longest any one bound may be. activeDeadlineSeconds is int64, but a timer of 10**30 s
# overflows every clock that waits on it (and is a typo, not a plan).
MAX_DEADLINE_SECONDS = 30 * 24 * 60 * 60
_DEADLINE_WHY = " (30 days)"
MAX_CPU_CORES = INT64_MAX // 1000  # the scheduler counts millicores in 64 bits
_CPU_WHY = " cores (Kubernetes counts millicores in 64 bits)"
MAX_MEMORY_MB = INT64_MAX // 2**20  # a quantity holds at most 2**63 - 1 bytes
_MEMORY_WHY = " MiB (Kubernetes counts bytes in 64 bits)"
MAX_REPLICAS = 100
# What Bodywork sets in a stage's environment, or what the stage's process needs: a secret
# under one of these names would shadow it (and a stage cannot find Python, or its commit).
RESERVED_ENV_PREFIX = "BODYWORK_"
RESERVED_ENV: dict[str, str] = {
    "PATH": "where the stage's process finds python",
    "LD_PRELOAD": "what every program of the stage loads first",
    "LD_LIBRARY_PATH": "where every program of the stage finds its libraries",
    "PYTHONPATH": "where the stage's module finds the project",
    "PYTHONHOME": "where Python finds its standard library",
    "PYTHONUNBUFFERED": "what streams the stage's output live",
    "HOME": "the stage's home directory",
    "VIRTUAL_ENV": "the stage's virtualenv",
    "GIT_COMMIT_HASH": "the commit Bodywork tells the stage it runs",
    "EXCEPTION_MESSAGE": "the failure Bodywork tells the on-failure stage about",
}
GPU_RESOURCE = "nvidia.com/gpu"  # what GPUS counts: NVIDIA's device plugin's resource

# bodywork.yaml
YAML_VERSIONS = ("1.0", "1.1")
PIPELINE = "pipeline"  # the project section's name in schema 1.1 ...
PROJECT_SECTION_BY_VERSION = {"1.0": "project", "1.1": PIPELINE}  # ... and in 1.0
YAML_TOP_LEVEL = ("version", "project", PIPELINE, "stages", "logging")
MODULE_SUFFIXES = (".py", ".ipynb")
MAX_PROJECT_FILES = 50_000  # the snapshot of a checkout's paths stops here
# The original's own image: naming it means "Bodywork's image", which is ours here.
ORIGINAL_IMAGE = re.compile(
    r"^(docker\.io/|index\.docker\.io/)?bodyworkml/bodywork-core(:[\w.-]+)?(@sha256:[0-9a-f]+)?$",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------- value types
@record(frozen=True)
class Parser(Generic[T]):
    """A value parser: text → value, or ValueError saying what is expected; `accepts` is that
    expectation in the words of docs/configuration.md."""

    fn: Callable[[str], T]
    accepts: str

    def __call__(self, raw: str) -> T:
        return self.fn(raw)


shown = kv.shown


def _text_fn(raw: str) -> str:
    if not raw:
        raise ValueError("is empty")
    return raw


_text = Parser(_text_fn, "text")


def _whole(raw: str) -> int:
    """A whole number, also written as an integral float ("30.0", 3e3)."""
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"must be a whole number, got '{shown(raw)}'") from None
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(f"must be a whole number, got '{shown(raw)}'")
    return int(number)


def _int(
    minimum: int,
    maximum: int | None = None,
    why_maximum: str = "",
    ceiling: int | None = None,
    why_ceiling: str = "",
) -> Parser[int]:
    """A whole number in [minimum, maximum]; `ceiling`: a sanity bound far above any real
    value, named only in the message of a value above it."""

    def parse(raw: str) -> int:
        value = _whole(raw)
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and <= {maximum}{why_maximum}" if maximum is not None else ""
            raise ValueError(f"must be >= {minimum}{upper}, got {shown(str(value))}")
        if ceiling is not None and value > ceiling:
            raise ValueError(f"must be <= {ceiling}{why_ceiling}, got {shown(raw)}")
        return value

    accepts = f"whole number {minimum}–{maximum}" if maximum else f"whole number ≥ {minimum}"
    if ceiling is not None:
        accepts += f", at most {ceiling:,}{why_ceiling}"
    return Parser(parse, accepts)


def _float(
    minimum: float, inclusive: bool, ceiling: int | None = None, why_ceiling: str = ""
) -> Parser[float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number (e.g. 0.5), got '{shown(raw)}'") from None
        if not math.isfinite(value):
            raise ValueError(f"must be a number (e.g. 0.5), got '{shown(raw)}'")
        low = f"{'>=' if inclusive else '>'} {minimum:g}"
        if value < minimum or (value == minimum and not inclusive):
            raise ValueError(f"must be {low}, got {shown(raw)}")
        if ceiling is not None and value > ceiling:
            raise ValueError(f"must be <= {ceiling}{why_ceiling}, got {shown(raw)}")
        return value

    upper = f", at most {ceiling:,}{why_ceiling}" if ceiling is not None else ""
    return Parser(parse, f"number {'≥' if inclusive else '>'} {minimum:g}{upper}")


def _bool_fn(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"must be True or False, got '{shown(raw)}'")


_bool = Parser(_bool_fn, "true or false (any case; yes/no, on/off)")


def _choice(*options: str, aliases: Mapping[str, str] | None = None) -> Parser[str]:
    other_names = dict(aliases or {})

    def parse(raw: str) -> str:
        lowered = raw.lower()
        if lowered in other_names:
            return other_names[lowered]
        if lowered not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got '{shown(raw)}'")
        return lowered

    return Parser(parse, f"one of {', '.join(options)} (any case)")


def _version_fn(raw: str) -> str:
    if raw not in YAML_VERSIONS:
        raise ValueError(
            f'must be "1.1" (or "1.0", the schema with project: instead of pipeline:), got {raw!r}'
        )
    return raw


_version = Parser(_version_fn, '"1.1" or "1.0"')
_any = Parser(str, "text")  # an `args` item: any scalar, passed as text


# The S3 backend's bucket URL: `s3://bucket[/prefix]`, the bucket named by S3's own rules.
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # control characters, spaces, backslashes


def _s3_url_fn(raw: str) -> str:
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() != "s3":
        raise ValueError(f"must be s3://bucket or s3://bucket/prefix, got '{shown(raw)}'")
    bucket, _, prefix = rest.partition("/")
    if not _S3_BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(
            f"'{shown(bucket)}' is not an S3 bucket name (3-63 lower-case letters, digits, "
            "'.' and '-', starting and ending with a letter or digit)"
        )
    prefix = prefix.strip("/")
    if _URL_UNSAFE.search(prefix) or any(part in (".", "..") for part in prefix.split("/")):
        raise ValueError(
            f"the prefix '{shown(prefix)}' may not hold spaces, control characters, "
            "backslashes or '.'/'..' parts"
        )
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


_s3_url = Parser(_s3_url_fn, "s3://bucket or s3://bucket/prefix")


def _endpoint_url_fn(raw: str) -> str:
    scheme, sep, rest = raw.partition("://")
    host = rest.partition("/")[0]
    if not sep or scheme.lower() not in ("http", "https") or not host:
        raise ValueError(f"must be an http:// or https:// URL, got '{shown(raw)}'")
    if "@" in host:  # credentials belong in the Secret, never in configuration
        raise ValueError("may not hold credentials (user:password@): put them in the Secret")
    if _URL_UNSAFE.search(raw):
        raise ValueError(f"may not hold spaces or control characters, got '{shown(raw)}'")
    return raw.rstrip("/")


_endpoint_url = Parser(_endpoint_url_fn, "http:// or https:// URL, without credentials")
_secret = Parser(kv.secret_name, "a Secret's name")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany")


def _access_mode_fn(raw: str) -> str:
    by_name = {mode.lower(): mode for mode in ACCESS_MODES}
    by_name |= {"rwo": ACCESS_MODES[0], "rwx": ACCESS_MODES[1]}
    mode = by_name.get(raw.strip().lower())
    if mode is None:
        raise ValueError(f"must be ReadWriteOnce or ReadWriteMany (RWO, RWX), got '{shown(raw)}'")
    return mode


_access_mode = Parser(_access_mode_fn, "ReadWriteOnce or ReadWriteMany (any case; RWO, RWX)")


class ItemErrors(ValueError):
    """What is wrong with each bad item of a list value: one problem each."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


@record(frozen=True)
class Key(Generic[T]):
    """One configuration key: where it lives in each format, how to parse it, default and why.

    `section`/`name`: the ini section and key (also the record field); for a key only
    bodywork.yaml has (`ini=False`) the section is the stage part it belongs to. `yaml`: its
    path in bodywork.yaml (see the module doc), None when only the ini files have it. `shape`:
    - "value": one value, `parse`d;
    - "list": items, each `parse`d (a yaml list; in config.ini separated by commas);
    - "pairs": name/value items, `pair` = (name parser, value parser) (a yaml mapping; in
      config.ini `name=value` separated by commas);
    - "records": items, each a yaml mapping of `fields` read by `record` (by lower-cased
      field name), or the compact text `parse` reads, also config.ini's (commas between);
    - "mapping": ENV_VAR: secret-name (the stage's secrets).
    `example`: a config.ini value, for messages and the docs.
    """

    section: str
    name: str
    parse: Callable[[str], T]
    default: T | None = None  # None: unset (or, when required, no default at all)
    required: bool = False
    doc: str = ""
    yaml: tuple[str, ...] | None = None
    ini: bool = True
    shape: str = "value"
    pair: tuple[Callable[[str], str], Callable[[str], Any]] | None = None
    record: Callable[[Mapping[str, str | None]], Any] | None = None
    fields: tuple[str, ...] = ()  # a record's fields in bodywork.yaml
    example: str = ""

    @property
    def accepts(self) -> str:
        accepts = getattr(self.parse, "accepts", "text")
        return f"list of {accepts}" if self.shape == "list" else str(accepts)

    def parse_text(self, raw: str) -> Any:
        """The value as config.ini writes it: one line, a list's items separated by commas.

        Raises ItemErrors naming every bad item."""
        if self.shape not in ("list", "pairs", "records"):
            return self.parse(raw)
        found: list[Any] = []
        errors: list[str] = []
        names: set[str] = set()
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            try:
                if self.pair is None:
                    found.append(self.parse(item))
                    continue
                name_text, equals, value_text = item.partition("=")
                if not equals or not name_text.strip():
                    raise ValueError(f"'{item}': write NAME=VALUE, e.g. {self.example}")
                name = self.pair[0](name_text)
                if name in names:
                    raise ValueError(f"'{name}' is given twice: keep one")
                names.add(name)
                try:
                    found.append((name, self.pair[1](value_text)))
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
            except ValueError as exc:
                errors.append(str(exc))
        if errors:
            raise ItemErrors(errors)
        return tuple(found)


def default_of(key: Key[T]) -> T:
    """The default of a key that has one: what a record field defaults to."""
    if key.default is None:
        raise ValueError(f"{key.name.upper()} has no default")
    return key.default


# ---------------------------------------------------------------------------- the project
PROJECT_NAME = Key(
    "default",
    "project_name",
    _text,
    doc="names every object (made Kubernetes-safe); defaults to the repo name",
    yaml=(PIPELINE, "name"),
)
DOCKER_IMAGE = Key(
    "default",
    "docker_image",
    _text,
    doc="image for stage pods; default: the controller's (the original's "
    "bodyworkml/bodywork-core means that too)",
    yaml=(PIPELINE, "docker_image"),
)
ARTIFACTS_PVC = Key(
    "default",
    "artifacts_pvc",
    _text,
    doc="existing claim for artifacts; default: created",
    yaml=(PIPELINE, "artifacts_pvc"),
)
ARTIFACTS_PVC_ACCESS_MODE = Key(
    "default",
    "artifacts_pvc_access_mode",
    _access_mode,
    ACCESS_MODES[0],
    doc="the claim's access mode: ReadWriteOnce keeps the project's pods on the claim's node; "
    "ReadWriteMany lets them spread",
    yaml=(PIPELINE, "artifacts_pvc_access_mode"),
)
ARTIFACTS_URL = Key(
    "default",
    "artifacts_url",
    _s3_url,
    doc="S3 bucket for artifacts (synced down before a stage, up after a batch stage "
    "succeeds, under <prefix>/<project>/); default: the claim",
    yaml=(PIPELINE, "artifacts_url"),
)
ARTIFACTS_S3_ENDPOINT_URL = Key(
    "default",
    "artifacts_s3_endpoint_url",
    _endpoint_url,
    doc="S3 API endpoint (MinIO, Ceph, GCS); default: AWS",
    yaml=(PIPELINE, "artifacts_s3_endpoint_url"),
)
ARTIFACTS_S3_SECRET = Key(
    "default",
    "artifacts_s3_secret",
    _secret,
    doc="Secret holding AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN, "
    "AWS_REGION) for the bucket",
    yaml=(PIPELINE, "artifacts_s3_secret"),
)
DAG = Key(
    "workflow",
    "dag",
    _text,
    required=True,
    doc='steps of stages, e.g. "train >> serve"',
    yaml=(PIPELINE, "DAG"),
)
ON_FAILURE = Key(
    "workflow",
    "on_failure",
    _text,
    doc="batch stage run when any step fails",
    yaml=(PIPELINE, "run_on_failure"),
)
BATCH_STAGES_FIRST = Key(
    "workflow",
    "batch_stages_first",
    _bool,
    False,
    doc="run a step's batch stages to completion before starting its services",
    yaml=(PIPELINE, "batch_stages_first"),
)
WEBHOOK_URL_SECRET = Key(
    "notify",
    "webhook_url_secret",
    _text,
    doc="Secret holding WEBHOOK_URL for summaries",
    yaml=(PIPELINE, "webhook_url_secret"),
)
LOG_LEVEL = Key(
    "logging",
    "log_level",
    _choice(
        "debug",
        "info",
        "warning",
        "error",
        "critical",
        aliases={"warn": "warning", "fatal": "critical"},  # Python's other names for them
    ),
    "info",
    doc="the controller's log level",
    yaml=("logging", "log_level"),
)
NAMESPACE = Key(
    "default",
    "namespace",
    _text,
    doc="namespace to deploy to; default: the command line's",
    yaml=(PIPELINE, "namespace"),
    ini=False,
)
SECRETS_GROUP = Key(
    "default",
    "secrets_group",
    _text,
    doc="the stages' secrets are the Secrets named <group>-<name>",
    yaml=(PIPELINE, "secrets_group"),
    ini=False,
)
USAGE_STATS = Key(
    "default",
    "usage_stats",
    _bool,
    doc="the original's usage ping: accepted and ignored (1.0 also takes it at the top level)",
    yaml=(PIPELINE, "usage_stats"),
    ini=False,
)
VERSION = Key(
    "default",
    "version",
    _version,
    required=True,
    doc="the bodywork.yaml schema",
    yaml=("version",),
    ini=False,
)

PROJECT_KEYS: tuple[Key[Any], ...] = (  # bodywork.ini
    PROJECT_NAME,
    DOCKER_IMAGE,
    ARTIFACTS_PVC,
    ARTIFACTS_PVC_ACCESS_MODE,
    ARTIFACTS_URL,
    ARTIFACTS_S3_ENDPOINT_URL,
    ARTIFACTS_S3_SECRET,
    DAG,
    ON_FAILURE,
    WEBHOOK_URL_SECRET,
    LOG_LEVEL,
    BATCH_STAGES_FIRST,
)
YAML_PROJECT_KEYS: tuple[Key[Any], ...] = (  # bodywork.yaml, outside `stages:`
    VERSION,
    PROJECT_NAME,
    DOCKER_IMAGE,
    DAG,
    BATCH_STAGES_FIRST,
    ON_FAILURE,
    NAMESPACE,
    SECRETS_GROUP,
    ARTIFACTS_PVC,
    ARTIFACTS_PVC_ACCESS_MODE,
    ARTIFACTS_URL,
    ARTIFACTS_S3_ENDPOINT_URL,
    ARTIFACTS_S3_SECRET,
    WEBHOOK_URL_SECRET,
    USAGE_STATS,
    LOG_LEVEL,
)

# ---------------------------------------------------------------------------- a stage
STAGE_TYPE = Key(
    "default",
    "stage_type",
    _choice(BATCH, SERVICE),
    required=True,
    doc="batch (runs to completion) or service (keeps serving on PORT)",
)
EXECUTABLE_SCRIPT = Key(
    "default", "executable_script", _text, required=True, doc="module in the stage dir"
)
EXECUTABLE_MODULE_PATH = Key(
    "default",
    "executable_module_path",
    _text,
    required=True,
    doc="the stage's .py or .ipynb, relative to the project root (several stages may share "
    "a folder); it runs in its folder",
    yaml=("executable_module_path",),
    ini=False,
)
ARGS = Key(
    "default",
    "args",
    _any,
    doc="arguments for the module's command line",
    yaml=("args",),
    ini=False,
    shape="list",
)
REQUIREMENTS = Key(
    "default",
    "requirements",
    _text,
    doc="pip requirement specifiers installed before the module runs",
    yaml=("requirements",),
    ini=False,
    shape="list",
)
SECRETS = Key(
    "secrets",
    "secrets",
    _text,
    doc="env var ENV_VAR from key ENV_VAR of Kubernetes Secret secret-name",
    yaml=("secrets",),
    ini=False,
    shape="mapping",
)
CPU_REQUEST = Key(
    "default",
    "cpu_request",
    _float(0, inclusive=True, ceiling=MAX_CPU_CORES, why_ceiling=_CPU_WHY),
    0.5,
    doc="cores reserved for the stage's pod; 0: no reservation",
    yaml=("cpu_request",),
)
MEMORY_REQUEST_MB = Key(
    "default",
    "memory_request_mb",
    _int(0, ceiling=MAX_MEMORY_MB, why_ceiling=_MEMORY_WHY),
    512,
    doc="MiB reserved; sklearn+pandas ~300",
    yaml=("memory_request_mb",),
)
CPU_LIMIT = Key(
    "default",
    "cpu_limit",
    _float(0, inclusive=False, ceiling=MAX_CPU_CORES, why_ceiling=_CPU_WHY),
    doc="cores; unset = no limit; at least CPU_REQUEST",
    yaml=("cpu_limit",),
)
MEMORY_LIMIT_MB = Key(
    "default",
    "memory_limit_mb",
    _int(1, ceiling=MAX_MEMORY_MB, why_ceiling=_MEMORY_WHY),
    doc="MiB; unset = no limit (OOMKilled above); at least MEMORY_REQUEST_MB",
    yaml=("memory_limit_mb",),
)
MAX_INSTALL_TIME_SECONDS = Key(
    "default",
    "max_install_time_seconds",
    _int(1, ceiling=MAX_DEADLINE_SECONDS, why_ceiling=_DEADLINE_WHY),
    1800,
    doc="bound on fetching the code and installing requirements, per attempt, apart from "
    "the stage's own time",
    yaml=("max_install_time_seconds",),
)
GPUS = Key(
    "default",
    "gpus",
    _int(0, ceiling=INT64_MAX, why_ceiling=" (a 64-bit number)"),
    0,
    doc=f"NVIDIA GPUs for the stage's container ({GPU_RESOURCE}; other devices: "
    "EXTENDED_RESOURCES); 0: none",
    yaml=("gpus",),
)
EXTENDED_RESOURCES: Key[Any] = Key(
    "default",
    "extended_resources",
    Parser(_text_fn, "resource name (with its vendor's domain) = whole number ≥ 1, ..."),
    (),
    doc="devices a node's device plugins advertise (GPUs, FPGAs...) as the container's limits; "
    "a pod waits for a node that has them",
    yaml=("extended_resources",),
    shape="pairs",
    pair=(kv.resource_name, kv.resource_count),
    example="nvidia.com/gpu=1, example.com/fpga=2",
)
NODE_SELECTOR: Key[Any] = Key(
    "default",
    "node_selector",
    Parser(_text_fn, "label key = label value, ..."),
    (),
    doc="the stage's pods run only on nodes with every one of these labels",
    yaml=("node_selector",),
    shape="pairs",
    pair=(kv.label_key, kv.label_value),
    example="disktype=ssd, kubernetes.io/arch=amd64",
)
TOLERATIONS: Key[Any] = Key(
    "default",
    "tolerations",
    Parser(kv.toleration, "KEY=VALUE:EFFECT, KEY:EFFECT or *:EFFECT, ..."),
    (),
    doc="taints the stage's pods tolerate, so they may run on nodes kept for such pods",
    yaml=("tolerations",),
    shape="records",
    record=kv.toleration_from_fields,
    fields=kv.TOLERATION_FIELDS,
    example="gpu=true:NoSchedule, dedicated:NoExecute",
)
IMAGE_PULL_SECRETS: Key[Any] = Key(
    "default",
    "image_pull_secrets",
    Parser(kv.secret_name, "Secret name"),
    (),
    doc="docker-registry Secrets, in the namespace, the stage's pods pull their image with "
    "(a private registry); lower-cased",
    yaml=("image_pull_secrets",),
    shape="list",
    example="regcred, other-registry",
)
RETRIES = Key(
    BATCH,
    "retries",
    _int(0, INT32_MAX, " (Kubernetes' backoffLimit is a 32-bit number)"),
    0,
    doc="extra attempts after a failure",
    yaml=(BATCH, "retries"),
)
MAX_COMPLETION_TIME_SECONDS = Key(
    BATCH,
    "max_completion_time_seconds",
    _int(1, ceiling=MAX_DEADLINE_SECONDS, why_ceiling=_DEADLINE_WHY),
    3600,
    doc="time limit on the stage's own code (fetch and install not included)",
    yaml=(BATCH, "max_completion_time_seconds"),
)
REPLICAS = Key(
    SERVICE, "replicas", _int(1, MAX_REPLICAS), 1, doc="pods", yaml=(SERVICE, "replicas")
)
MAX_STARTUP_TIME_SECONDS = Key(
    SERVICE,
    "max_startup_time_seconds",
    _int(1, ceiling=MAX_DEADLINE_SECONDS, why_ceiling=_DEADLINE_WHY),
    120,
    doc="from the module's start to PORT accepting connections (install not included)",
    yaml=(SERVICE, "max_startup_time_seconds"),
)
PORT = Key(
    SERVICE,
    "port",
    _int(1, 65535),
    required=True,
    doc="port the service listens on",
    yaml=(SERVICE, "port"),
)
INGRESS = Key(
    SERVICE,
    "ingress",
    _bool,
    False,
    doc="expose at /<namespace>/<project>--<stage>",
    yaml=(SERVICE, "ingress"),
)

STAGE_KEYS: tuple[Key[Any], ...] = (  # each stage's config.ini
    STAGE_TYPE,
    EXECUTABLE_SCRIPT,
    CPU_REQUEST,
    MEMORY_REQUEST_MB,
    CPU_LIMIT,
    MEMORY_LIMIT_MB,
    RETRIES,
    MAX_COMPLETION_TIME_SECONDS,
    MAX_INSTALL_TIME_SECONDS,
    GPUS,
    EXTENDED_RESOURCES,
    NODE_SELECTOR,
    TOLERATIONS,
    IMAGE_PULL_SECRETS,
    REPLICAS,
    MAX_STARTUP_TIME_SECONDS,
    PORT,
    INGRESS,
)
YAML_STAGE_KEYS: tuple[Key[Any], ...] = (  # bodywork.yaml, under stages.<name>
    EXECUTABLE_MODULE_PATH,
    ARGS,
    REQUIREMENTS,
    SECRETS,
    CPU_REQUEST,
    MEMORY_REQUEST_MB,
    CPU_LIMIT,
    MEMORY_LIMIT_MB,
    MAX_INSTALL_TIME_SECONDS,
    GPUS,
    EXTENDED_RESOURCES,
    NODE_SELECTOR,
    TOLERATIONS,
    IMAGE_PULL_SECRETS,
    RETRIES,
    MAX_COMPLETION_TIME_SECONDS,
    REPLICAS,
    MAX_STARTUP_TIME_SECONDS,
    PORT,
    INGRESS,
)


def yaml_path(key: Key[Any], version: str) -> tuple[str, ...]:
    """A project key's path in a bodywork.yaml of this schema version."""
    if key.yaml is None:
        raise ValueError(f"{key.name.upper()} is not a bodywork.yaml key")
    if key.yaml[0] == PIPELINE:
        return (PROJECT_SECTION_BY_VERSION.get(version, PIPELINE), *key.yaml[1:])
    return key.yaml
