"""A stage's placement and devices: GPUS, EXTENDED_RESOURCES, NODE_SELECTOR, TOLERATIONS and
IMAGE_PULL_SECRETS, read from either format into the same StageConfig, rendered by
`objects.placement` into pod-spec fields, and merged into real Job and Deployment bodies
that pass strict validation against the current Kubernetes schema. Bad values are problems
with file, key, line and a fix, in both formats."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bodywork.core import config, objects
from bodywork.core.config import kubevalues
from bodywork.core.config import schema as s
from bodywork.core.errors import ConfigError, Problem
from bodywork.core.objects import placement
from tests.builders import make_plan, run_settings, stage_config

KUBERNETES_VERSION = "1.37.0"  # as tests/unit/test_objects.py: current Kubernetes
SETTINGS = run_settings()
INI_FILE = "train/config.ini"
YAML_FILE = "bodywork.yaml"
INI_HEAD = "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = train.py\n"
INI_LINE = 4  # the first line after INI_HEAD
YAML_HEAD = (
    'version: "1.1"\npipeline: {DAG: train}\nstages:\n  train:\n'
    "    executable_module_path: train.py\n    batch: {}\n"
)
YAML_LINE = 7  # the first line after YAML_HEAD


def ini_files(*lines: str) -> config.ProjectFiles:
    text = INI_HEAD + "".join(f"{line}\n" for line in lines)
    return config.ProjectFiles(
        bodywork_ini="[workflow]\nDAG = train\n",
        dirs={"train": config.StageDir(text, frozenset({"train.py", "requirements.txt"}))},
    )


def yaml_files(text: str) -> config.ProjectFiles:
    """`text`: the train stage's own lines, indented as under `train:` (4 spaces added)."""
    stage = "".join(f"    {line}\n" for line in text.splitlines())
    return config.ProjectFiles(bodywork_yaml=YAML_HEAD + stage, paths=frozenset({"train.py"}))


def ini_stage(*lines: str) -> config.StageConfig:
    return config.parse_project(ini_files(*lines), strict=True).stages["train"]


def yaml_stage(text: str) -> config.StageConfig:
    return config.parse_project(yaml_files(text), strict=True).stages["train"]


def errors(files: config.ProjectFiles) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        config.parse_project(files)
    return [p for p in info.value.problems if p.severity == "error"]


def validate(body: dict[str, Any]) -> None:
    kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)


def with_placement(body: dict[str, Any], stage: config.StageConfig) -> dict[str, Any]:
    """Merge the stage's placement into a Job or Deployment body, as objects.stage does."""
    pod = body["spec"]["template"]["spec"]
    pod.update(placement.pod_placement(stage))
    extended = placement.extended_limits(stage)
    if extended:
        resources = pod["containers"][0]["resources"]
        resources.setdefault("requests", {}).update(extended)
        resources.setdefault("limits", {}).update(extended)
    return body


PLACEMENT_FIELDS = ("gpus", "extended_resources", "node_selector", "tolerations")
PLACEMENT_FIELDS += ("image_pull_secrets",)


def placement_of(stage: config.StageConfig) -> dict[str, Any]:
    return {name: getattr(stage, name) for name in PLACEMENT_FIELDS}


# ---------------------------------------------------------------------------- both formats
T = kubevalues.Toleration
POD_FIELD_CASES = [
    pytest.param(
        ["NODE_SELECTOR = disktype=ssd, kubernetes.io/arch=amd64"],
        "node_selector: {disktype: ssd, kubernetes.io/arch: amd64}",
        "node_selector",
        (("disktype", "ssd"), ("kubernetes.io/arch", "amd64")),
        {"nodeSelector": {"disktype": "ssd", "kubernetes.io/arch": "amd64"}},
        id="node_selector",
    ),
    pytest.param(
        ["NODE_SELECTOR = 'gpu=true, pool=, example.com/Zone_1=eu-west.a'"],
        "node_selector:\n  gpu: 'true'\n  pool:\n  example.com/Zone_1: eu-west.a",
        "node_selector",
        (("gpu", "true"), ("pool", ""), ("example.com/Zone_1", "eu-west.a")),
        {"nodeSelector": {"gpu": "true", "pool": "", "example.com/Zone_1": "eu-west.a"}},
        id="node_selector-empty-value-and-prefix",
    ),
    pytest.param(
        ["TOLERATIONS = gpu=true:NoSchedule, dedicated:NoExecute:300, *:PreferNoSchedule"],
        "tolerations:\n"
        '  - {key: gpu, operator: Equal, value: "true", effect: NoSchedule}\n'
        "  - key: dedicated\n"
        "    operator: Exists\n"
        "    effect: NoExecute\n"
        "    tolerationSeconds: 300\n"
        "  - {operator: Exists, effect: PreferNoSchedule}",
        "tolerations",
        (
            T("gpu", "Equal", "true", "NoSchedule"),
            T("dedicated", "Exists", "", "NoExecute", 300),
            T("", "Exists", "", "PreferNoSchedule"),
        ),
        {
            "tolerations": [
                {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
                {
                    "key": "dedicated",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {"operator": "Exists", "effect": "PreferNoSchedule"},
            ]
        },
        id="tolerations",
    ),
    pytest.param(
        ["TOLERATIONS = gpu, spot=yes, *"],
        # compact strings are list items in bodywork.yaml too; a bare key: Kubernetes' Equal
        "tolerations: [gpu, {key: spot, value: 'yes'}, '*']",
        "tolerations",
        (T("gpu", "Exists"), T("spot", "Equal", "yes"), T("", "Exists")),
        {
            "tolerations": [
                {"key": "gpu", "operator": "Exists"},
                {"key": "spot", "operator": "Equal", "value": "yes"},
                {"operator": "Exists"},
            ]
        },
        id="tolerations-every-effect",
    ),
    pytest.param(
        ["TOLERATIONS = GPU=x:noschedule"],
        "tolerations: [{KEY: GPU, Operator: equal, value: x, effect: NOSCHEDULE}]",
        "tolerations",
        (T("GPU", "Equal", "x", "NoSchedule"),),
        {
            "tolerations": [
                {"key": "GPU", "operator": "Equal", "value": "x", "effect": "NoSchedule"}
            ]
        },
        id="tolerations-any-case-keeps-the-taint-key",
    ),
    pytest.param(
        ["IMAGE_PULL_SECRETS = RegCred, other.registry, regcred"],
        "image_pull_secrets: [RegCred, other.registry, regcred]",
        "image_pull_secrets",
        ("regcred", "other.registry", "regcred"),
        {"imagePullSecrets": [{"name": "regcred"}, {"name": "other.registry"}]},
        id="image_pull_secrets-lower-cased-once-each",
    ),
]


@pytest.mark.parametrize(("ini", "yaml", "field", "model", "rendered"), POD_FIELD_CASES)
def test_each_pod_key_reads_the_same_from_both_formats_and_renders_exactly(
    ini: list[str], yaml: str, field: str, model: Any, rendered: dict[str, Any]
) -> None:
    from_ini, from_yaml = ini_stage(*ini), yaml_stage(yaml)
    assert getattr(from_ini, field) == model
    assert placement_of(from_yaml) == placement_of(from_ini)
    assert placement.pod_placement(from_ini) == rendered
    assert placement.extended_limits(from_ini) == {}
    validate(
        with_placement(objects.build_job(make_plan(from_ini).stages[0], "i", SETTINGS), from_ini)
    )


LIMIT_CASES = [
    pytest.param(["GPUS = 2"], "gpus: 2", {"nvidia.com/gpu": "2"}, id="gpus"),
    pytest.param(["GPUS = 0"], "gpus: 0", {}, id="gpus-0-is-none"),
    pytest.param(
        ["EXTENDED_RESOURCES = amd.com/gpu=1, example.com/fpga=2.0"],
        "extended_resources: {amd.com/gpu: 1, example.com/fpga: 2.0}",
        {"amd.com/gpu": "1", "example.com/fpga": "2"},
        id="extended_resources",
    ),
    pytest.param(
        ["EXTENDED_RESOURCES = nvidia.com/gpu=4"],
        "extended_resources: {nvidia.com/gpu: 4}",
        {"nvidia.com/gpu": "4"},
        id="extended_resources-nvidia",
    ),
    pytest.param(
        ["GPUS = 1", "EXTENDED_RESOURCES = gpu.intel.com/i915=1"],
        "gpus: 1\nextended_resources: {gpu.intel.com/i915: 1}",
        {"nvidia.com/gpu": "1", "gpu.intel.com/i915": "1"},
        id="gpus-and-other-devices",
    ),
]


@pytest.mark.parametrize(("ini", "yaml", "limits"), LIMIT_CASES)
def test_each_device_key_reads_the_same_from_both_formats_and_renders_limits(
    ini: list[str], yaml: str, limits: dict[str, str]
) -> None:
    from_ini, from_yaml = ini_stage(*ini), yaml_stage(yaml)
    assert placement_of(from_yaml) == placement_of(from_ini)
    assert placement.extended_limits(from_ini) == limits
    assert placement.pod_placement(from_ini) == {}
    validate(
        with_placement(objects.build_job(make_plan(from_ini).stages[0], "i", SETTINGS), from_ini)
    )


def test_unset_placement_adds_nothing() -> None:
    """A stage that sets none of the keys renders exactly as before."""
    for stage in (ini_stage(), yaml_stage(""), stage_config()):
        assert placement.pod_placement(stage) == {}
        assert placement.extended_limits(stage) == {}
        assert placement_of(stage) == {
            name: getattr(s, name.upper()).default for name in PLACEMENT_FIELDS
        }


def test_empty_values_and_nulls_mean_unset() -> None:
    assert placement_of(
        ini_stage("NODE_SELECTOR =", "TOLERATIONS = ,", "IMAGE_PULL_SECRETS =")
    ) == (placement_of(stage_config()))
    stage = yaml_stage(
        "node_selector:\ntolerations: []\nimage_pull_secrets:\nextended_resources: {}"
    )
    assert placement_of(stage) == placement_of(stage_config())


# ---------------------------------------------------------------------------- real bodies
EVERYTHING_INI = [
    "GPUS = 1",
    "EXTENDED_RESOURCES = example.com/fpga=2",
    "NODE_SELECTOR = accelerator=nvidia-a100, kubernetes.io/arch=amd64",
    "TOLERATIONS = nvidia.com/gpu:NoSchedule, dedicated=ml:NoExecute:60, *:PreferNoSchedule",
    "IMAGE_PULL_SECRETS = regcred",
]
EVERYTHING = ini_stage(*EVERYTHING_INI)


def test_a_job_with_every_placement_key_is_valid_for_current_kubernetes() -> None:
    job = with_placement(
        objects.build_job(make_plan(EVERYTHING).stages[0], "img", SETTINGS), EVERYTHING
    )
    validate(job)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"accelerator": "nvidia-a100", "kubernetes.io/arch": "amd64"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["tolerations"][1] == {
        "key": "dedicated",
        "operator": "Equal",
        "value": "ml",
        "effect": "NoExecute",
        "tolerationSeconds": 60,
    }
    resources = pod["containers"][0]["resources"]
    devices = {"nvidia.com/gpu": "1", "example.com/fpga": "2"}
    assert resources["limits"] == devices  # no cpu/memory limit was set
    assert resources["requests"] == {"cpu": "500m", "memory": "512Mi", **devices}


def test_a_deployment_with_every_placement_key_is_valid_for_current_kubernetes() -> None:
    service = config.StageConfig(
        **{
            **{f: getattr(EVERYTHING, f) for f in PLACEMENT_FIELDS},
            "name": "serve",
            "stage_type": "service",
            "module_path": "serve/serve.py",
            "port": 8000,
            "memory_limit_mb": 1024,
        }
    )
    body = objects.build_deployment(make_plan(service).stages[0], "img", SETTINGS)
    validate(with_placement(body, service))
    limits = body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"memory": "1024Mi", "nvidia.com/gpu": "1", "example.com/fpga": "2"}


def test_the_schema_check_sees_a_wrong_placement_shape() -> None:
    """The validation is real for these fields too: a toleration's seconds must be a number."""
    job = with_placement(
        objects.build_job(make_plan(EVERYTHING).stages[0], "img", SETTINGS), EVERYTHING
    )
    job["spec"]["template"]["spec"]["tolerations"][1]["tolerationSeconds"] = "60"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


def test_stage_config_with_placement_stays_frozen_and_hashable() -> None:
    assert hash(EVERYTHING) == hash(ini_stage(*EVERYTHING_INI))
    with pytest.raises(AttributeError):
        EVERYTHING.tolerations[0].key = "x"  # type: ignore[misc]


def test_the_yaml_and_ini_forms_of_every_key_give_equal_stages() -> None:
    from_yaml = yaml_stage(
        "gpus: 1\n"
        "extended_resources: {example.com/fpga: 2}\n"
        "node_selector: {accelerator: nvidia-a100, kubernetes.io/arch: amd64}\n"
        "tolerations:\n"
        "  - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}\n"
        "  - dedicated=ml:NoExecute:60\n"
        "  - {operator: Exists, effect: PreferNoSchedule}\n"
        "image_pull_secrets: [regcred]"
    )
    assert placement_of(from_yaml) == placement_of(EVERYTHING)


LABEL_NAME = st.from_regex(r"[a-z0-9]([-a-z0-9_.]{0,20}[a-z0-9])?", fullmatch=True)


@given(st.dictionaries(LABEL_NAME, LABEL_NAME, max_size=4))
def test_any_node_selector_reads_alike_from_both_formats(labels: dict[str, str]) -> None:
    ini = "NODE_SELECTOR = " + ", ".join(f"{k}={v}" for k, v in labels.items())
    yaml = "node_selector: {" + ", ".join(f"'{k}': '{v}'" for k, v in labels.items()) + "}"
    from_ini, from_yaml = ini_stage(ini), yaml_stage(yaml)
    assert from_ini.node_selector == from_yaml.node_selector == tuple(labels.items())
    assert placement.pod_placement(from_ini).get("nodeSelector", {}) == labels


# ---------------------------------------------------------------------------- bad values
INI_ERRORS = [
    ("GPUS = -1", "GPUS", "must be >= 0, got -1"),
    ("GPUS = half", "GPUS", "must be a whole number, got 'half'"),
    (
        "EXTENDED_RESOURCES = gpu=1",
        "EXTENDED_RESOURCES",
        "'gpu' needs its vendor's domain, e.g. nvidia.com/gpu",
    ),
    (
        "EXTENDED_RESOURCES = cpu=2",
        "EXTENDED_RESOURCES",
        "'cpu' is a native resource, not an extended one: set cores with CPU_REQUEST",
    ),
    ("EXTENDED_RESOURCES = memory=2", "EXTENDED_RESOURCES", "set MiB with MEMORY_REQUEST_MB"),
    ("EXTENDED_RESOURCES = ephemeral-storage=1", "EXTENDED_RESOURCES", "native resource"),
    (
        "EXTENDED_RESOURCES = hugepages-2Mi=1",
        "EXTENDED_RESOURCES",
        "'hugepages-2Mi' is a native resource",
    ),
    (
        "EXTENDED_RESOURCES = kubernetes.io/x=1",
        "EXTENDED_RESOURCES",
        "Kubernetes' own kubernetes.io domain",
    ),
    ("EXTENDED_RESOURCES = node.kubernetes.io/x=1", "EXTENDED_RESOURCES", "kubernetes.io domain"),
    (
        "EXTENDED_RESOURCES = requests.x.com/gpu=1",
        "EXTENDED_RESOURCES",
        "cannot start with 'requests.'",
    ),
    (
        "EXTENDED_RESOURCES = Nvidia.com/gpu=1",
        "EXTENDED_RESOURCES",
        "its prefix 'Nvidia.com' is not a DNS name",
    ),
    ("EXTENDED_RESOURCES = x.com/-gpu=1", "EXTENDED_RESOURCES", "its name '-gpu' must be 1–63"),
    (
        "EXTENDED_RESOURCES = x.com/gpu=0",
        "EXTENDED_RESOURCES",
        "x.com/gpu: count must be a whole number ≥ 1, got '0'",
    ),
    (
        "EXTENDED_RESOURCES = x.com/gpu=0.5",
        "EXTENDED_RESOURCES",
        "count must be a whole number ≥ 1, got '0.5'",
    ),
    ("EXTENDED_RESOURCES = x.com/gpu=", "EXTENDED_RESOURCES", "x.com/gpu: needs a count"),
    (
        "EXTENDED_RESOURCES = x.com/gpu",
        "EXTENDED_RESOURCES",
        "'x.com/gpu': write NAME=VALUE, e.g. nvidia.com/gpu=1",
    ),
    (
        "EXTENDED_RESOURCES = x.com/a=1, x.com/a=2",
        "EXTENDED_RESOURCES",
        "'x.com/a' is given twice: keep one",
    ),
    ("NODE_SELECTOR = disk type=ssd", "NODE_SELECTOR", "'disk type' is not a Kubernetes label key"),
    (
        "NODE_SELECTOR = disktype=s s d",
        "NODE_SELECTOR",
        "disktype: 's s d' is not a Kubernetes label value",
    ),
    ("NODE_SELECTOR = k=" + "v" * 64, "NODE_SELECTOR", "at most 63"),
    (
        "NODE_SELECTOR = disktype",
        "NODE_SELECTOR",
        "'disktype': write NAME=VALUE, e.g. disktype=ssd",
    ),
    ("NODE_SELECTOR = =ssd", "NODE_SELECTOR", "'=ssd': write NAME=VALUE"),
    (
        "TOLERATIONS = gpu:NoSchdule",
        "TOLERATIONS",
        "'gpu:NoSchdule': effect must be one of NoSchedule, PreferNoSchedule, NoExecute, "
        "got 'NoSchdule'",
    ),
    ("TOLERATIONS = gpu:", "TOLERATIONS", "'gpu:': after ':' give the effect"),
    (
        "TOLERATIONS = gpu:NoSchedule:30",
        "TOLERATIONS",
        "tolerationSeconds applies only to effect NoExecute",
    ),
    (
        "TOLERATIONS = gpu:NoExecute:-1",
        "TOLERATIONS",
        "tolerationSeconds must be a whole number ≥ 0, got '-1'",
    ),
    (
        "TOLERATIONS = a:b:c:d",
        "TOLERATIONS",
        "'a:b:c:d': write KEY=VALUE:EFFECT, KEY:EFFECT or *:EFFECT",
    ),
    ("TOLERATIONS = *=x", "TOLERATIONS", "'*' (every taint) takes no value"),
    ("TOLERATIONS = =x:NoSchedule", "TOLERATIONS", "has no taint key"),
    ("TOLERATIONS = g p u:NoSchedule", "TOLERATIONS", "'g p u' is not a Kubernetes label key"),
    (
        "IMAGE_PULL_SECRETS = reg_cred",
        "IMAGE_PULL_SECRETS",
        "'reg_cred' is not a Kubernetes Secret's name",
    ),
    (
        "IMAGE_PULL_SECRETS = -regcred",
        "IMAGE_PULL_SECRETS",
        "'-regcred' is not a Kubernetes Secret's name",
    ),
]


@pytest.mark.parametrize(("line_text", "key", "fragment"), INI_ERRORS)
def test_bad_ini_value_names_file_key_line_and_fix(line_text: str, key: str, fragment: str) -> None:
    found = errors(ini_files("CPU_REQUEST = 0.1", line_text))
    assert [(p.file, p.key, p.line) for p in found] == [(INI_FILE, key, INI_LINE + 1)]
    assert fragment in found[0].message, found[0].message


def test_every_bad_item_of_an_ini_value_is_its_own_problem() -> None:
    found = errors(ini_files("EXTENDED_RESOURCES = gpu=1, amd.com/gpu=1, x.com/y=0"))
    assert [(p.key, p.line) for p in found] == [("EXTENDED_RESOURCES", INI_LINE)] * 2
    assert "'gpu' needs its vendor's domain" in found[0].message
    assert "x.com/y: count must be" in found[1].message


YAML_ERRORS = [
    ("gpus: -1", "stages.train.gpus", YAML_LINE, "must be >= 0, got -1"),
    ("gpus: [1]", "stages.train.gpus", YAML_LINE, "must be a single value, not a list"),
    (
        "extended_resources: {gpu: 1}",
        "stages.train.extended_resources.gpu",
        YAML_LINE,
        "'gpu' needs its vendor's domain",
    ),
    (
        "extended_resources: {cpu: 1}",
        "stages.train.extended_resources.cpu",
        YAML_LINE,
        "set cores with CPU_REQUEST / CPU_LIMIT (cpu_request / cpu_limit",
    ),
    (
        "extended_resources:\n  amd.com/gpu: 0",
        "stages.train.extended_resources.amd.com/gpu",
        YAML_LINE + 1,
        "count must be a whole number ≥ 1, got '0'",
    ),
    (
        "extended_resources:\n  amd.com/gpu:",
        "stages.train.extended_resources.amd.com/gpu",
        YAML_LINE + 1,
        "needs a count, a whole number ≥ 1",
    ),
    (
        "extended_resources: {amd.com/gpu: {n: 1}}",
        "stages.train.extended_resources.amd.com/gpu",
        YAML_LINE,
        "must be a single value, not a mapping",
    ),
    (
        "extended_resources: [nvidia.com/gpu]",
        "stages.train.extended_resources",
        YAML_LINE,
        "must be a mapping of name: value lines, e.g. extended_resources: {nvidia.com/gpu: 1}",
    ),
    (
        "extended_resources:\n  a.com/x: 1\n  a.com/x: 2",
        "stages.train.extended_resources.a.com/x",
        YAML_LINE + 2,
        "appears twice (first on line 8): keep one",
    ),
    (
        "node_selector: {disk type: ssd}",
        "stages.train.node_selector.disk type",
        YAML_LINE,
        "is not a Kubernetes label key",
    ),
    (
        "node_selector:\n  disktype: s s d",
        "stages.train.node_selector.disktype",
        YAML_LINE + 1,
        "'s s d' is not a Kubernetes label value",
    ),
    (
        "node_selector: disktype=ssd",
        "stages.train.node_selector",
        YAML_LINE,
        "e.g. node_selector: {disktype: ssd}",
    ),
    (
        "tolerations: {key: gpu}",
        "stages.train.tolerations",
        YAML_LINE,
        "must be a list, e.g. tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]",
    ),
    (
        "tolerations:\n  - {key: gpu, effect: NoSchdule}",
        "stages.train.tolerations[0]",
        YAML_LINE + 1,
        "effect must be one of NoSchedule, PreferNoSchedule, NoExecute, got 'NoSchdule'",
    ),
    (
        "tolerations:\n  - {key: gpu, operator: Maybe}",
        "stages.train.tolerations[0]",
        YAML_LINE + 1,
        "operator must be one of Equal, Exists, got 'Maybe'",
    ),
    (
        "tolerations:\n  - {key: gpu, operator: Exists, value: x}",
        "stages.train.tolerations[0]",
        YAML_LINE + 1,
        "operator Exists matches any value: drop value 'x', or use operator Equal",
    ),
    (
        "tolerations:\n  - {effect: NoSchedule}",
        "stages.train.tolerations[0]",
        YAML_LINE + 1,
        "an empty key (every taint) needs operator Exists",
    ),
    (
        "tolerations:\n  - {key: gpu, operator: Exists, effect: NoSchedule, tolerationSeconds: 5}",
        "stages.train.tolerations[0]",
        YAML_LINE + 1,
        "tolerationSeconds applies only to effect NoExecute",
    ),
    (
        "tolerations:\n  - {key: gpu, operator: Exists, effect: NoExecute,"
        " tolerationSeconds: soon}",
        "stages.train.tolerations[0]",
        YAML_LINE + 1,
        "tolerationSeconds must be a whole number ≥ 0, got 'soon'",
    ),
    (
        "tolerations:\n  - key: gpu\n    operater: Exists",
        "stages.train.tolerations[0].operater",
        YAML_LINE + 2,
        "unknown field (did you mean operator? it has key, operator, value, effect, "
        "tolerationSeconds",
    ),
    (
        "tolerations:\n  - gpu: NoSchedule",
        "stages.train.tolerations[0].gpu",
        YAML_LINE + 1,
        "or write the whole item as one string, e.g. gpu=true:NoSchedule",
    ),
    (
        "tolerations:\n  - {key: [gpu]}",
        "stages.train.tolerations[0].key",
        YAML_LINE + 1,
        "must be a single value, not a list",
    ),
    (
        "tolerations:\n  - [gpu]",
        "stages.train.tolerations[0]",
        YAML_LINE + 1,
        "must be a mapping (key:, operator:, value:, effect:, tolerationSeconds:) or one string",
    ),
    ("tolerations:\n  -", "stages.train.tolerations[0]", YAML_LINE + 1, "must be a mapping"),
    (
        "tolerations: ['gpu:Never']",
        "stages.train.tolerations[0]",
        YAML_LINE,
        "'gpu:Never': effect must be one of",
    ),
    (
        "image_pull_secrets: regcred",
        "stages.train.image_pull_secrets",
        YAML_LINE,
        "must be a list, e.g. image_pull_secrets: [regcred]",
    ),
    (
        "image_pull_secrets:\n  - ok\n  - reg_cred",
        "stages.train.image_pull_secrets[1]",
        YAML_LINE + 2,
        "'reg_cred' is not a Kubernetes Secret's name",
    ),
    (
        "image_pull_secrets: [{name: regcred}]",
        "stages.train.image_pull_secrets[0]",
        YAML_LINE,
        "must be a single value, not a mapping",
    ),
]


@pytest.mark.parametrize(("text", "key", "line", "fragment"), YAML_ERRORS)
def test_bad_yaml_value_names_file_key_line_and_fix(
    text: str, key: str, line: int, fragment: str
) -> None:
    found = errors(yaml_files(text))
    assert [(p.file, p.key, p.line) for p in found] == [(YAML_FILE, key, line)]
    assert fragment in found[0].message, found[0].message


def test_gpus_given_twice_is_an_error_in_both_formats() -> None:
    ini = errors(ini_files("GPUS = 1", "EXTENDED_RESOURCES = nvidia.com/gpu=2"))
    assert ini == [
        Problem(
            INI_FILE,
            "EXTENDED_RESOURCES sets nvidia.com/gpu too: give the NVIDIA GPUs in one of them",
            key="GPUS",
            line=INI_LINE,
        )
    ]
    yaml = errors(yaml_files("extended_resources: {nvidia.com/gpu: 2}\ngpus: 1"))
    assert yaml == [
        Problem(
            YAML_FILE,
            "stages.train.extended_resources sets nvidia.com/gpu too: give the NVIDIA GPUs in "
            "one of them",
            key="stages.train.gpus",
            line=YAML_LINE + 1,
        )
    ]


def test_misspelt_or_misplaced_keys_get_a_hint_in_both_formats() -> None:
    ini = config.parse_project(ini_files("GPU = 1", "[batch]", "NODE_SELECTOR = a=b"))
    assert [(w.key, w.line, w.message) for w in ini.warnings] == [
        ("GPU", INI_LINE, "unknown key in [default] (did you mean GPUS?)"),
        (
            "NODE_SELECTOR",
            INI_LINE + 2,
            "unknown key in [batch] (NODE_SELECTOR belongs in [default])",
        ),
    ]
    yaml = config.parse_project(yaml_files("tolerationz: []\nnode_selectors: {a: b}"))
    assert [(w.key, w.line, w.message) for w in yaml.warnings] == [
        ("stages.train.tolerationz", YAML_LINE, "unknown key, ignored (did you mean tolerations?)"),
        (
            "stages.train.node_selectors",
            YAML_LINE + 1,
            "unknown key, ignored (did you mean node_selector?)",
        ),
    ]


def test_compact_tolerations_read_as_documented() -> None:
    """docs/configuration.md's table of the compact form."""
    read = kubevalues.toleration
    assert read("key=value:NoSchedule") == T("key", "Equal", "value", "NoSchedule")
    assert read("key:NoSchedule") == T("key", "Exists", "", "NoSchedule")
    assert read("key=value") == T("key", "Equal", "value")
    assert read("key=") == T("key", "Equal", "")  # a taint with an empty value
    assert read("key") == T("key", "Exists")
    assert read("*:NoExecute") == T("", "Exists", "", "NoExecute")
    assert read("*") == T("", "Exists")
    assert read("k=v:NoExecute:300") == T("k", "Equal", "v", "NoExecute", 300)
    assert read(" k = v : NoExecute ") == T("k", "Equal", "v", "NoExecute")


def test_the_schema_declares_each_placement_key_once_for_both_formats() -> None:
    for key in (s.GPUS, s.EXTENDED_RESOURCES, s.NODE_SELECTOR, s.TOLERATIONS, s.IMAGE_PULL_SECRETS):
        assert key in s.STAGE_KEYS and key in s.YAML_STAGE_KEYS
        assert key.section == "default" and key.yaml == (key.name,)
        assert (
            getattr(config.StageConfig, key.name) is not None
        )  # a field, defaulting to key.default
