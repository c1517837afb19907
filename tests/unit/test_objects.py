"""Object bodies: what the Kubernetes executor submits, checked against the real schema."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bodywork.core import deadlines, names, objects, plan
from tests.builders import make_plan, run_settings, stage_config

KUBERNETES_VERSION = "1.37.0"  # validate against current Kubernetes, not just the lab's 1.20
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


SETTINGS = run_settings()
SERVICE = stage_config(
    name="serve",
    stage_type="service",
    port=8000,
    replicas=2,
    ingress=True,
    max_startup_time_seconds=90,
    secrets=(("API_KEY", "model-secrets"),),
)
BATCH = stage_config(retries=2, max_completion_time_seconds=600, memory_limit_mb=1024)


def validate(body: dict) -> None:
    kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)


def test_every_submitted_object_is_valid_for_current_kubernetes() -> None:
    """Job, Deployment, Service, Ingress and PVC bodies pass strict OpenAPI validation."""
    bodies = objects.build_stage_objects(make_plan(BATCH, SERVICE), SETTINGS)
    assert [b["kind"] for b in bodies] == [
        "PersistentVolumeClaim",
        "Job",
        "Deployment",
        "Service",
        "Ingress",
    ]
    for body in bodies:
        validate(body)


def test_validation_catches_a_misspelt_field() -> None:
    """The schema check is real: an unknown field fails it."""
    job = objects.build_job(make_plan(BATCH).stages[0], "img", SETTINGS)
    job["spec"]["backofLimit"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


def test_job_retries_deadline_ttl_and_pinned_commit() -> None:
    """backoffLimit = RETRIES; the Job's deadline is a backstop over every attempt's install
    and code bounds, while the bootstrapper holds the code to MAX_COMPLETION_TIME_SECONDS."""
    the_plan = make_plan(BATCH)
    job = objects.build_job(the_plan.stages[0], "img", SETTINGS)
    spec = job["spec"]
    assert spec["backoffLimit"] == 2
    install = BATCH.max_install_time_seconds
    assert spec["activeDeadlineSeconds"] == 3 * (install + 600) + deadlines.POD_START_GRACE_SECONDS
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-run-seconds") + 1] == "600"
    assert args[args.index("--max-install-seconds") + 1] == str(install)
    assert spec["ttlSecondsAfterFinished"] == objects.JOB_TTL_SECONDS
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == objects.STAGE_SERVICE_ACCOUNT
    container = pod["containers"][0]
    assert container["args"][container["args"].index("--commit") + 1] == "a" * 40
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"memory": "1024Mi"},
    }
    labels = job["metadata"]["labels"]
    assert labels[objects.COMMIT_LABEL] == "a" * 40
    assert labels[objects.RUN_LABEL] == "20261125-120000-abcd"
    assert labels["app.kubernetes.io/managed-by"] == "bodywork"


def test_pods_are_locked_down() -> None:
    """Non-root, no privilege escalation, no capabilities, read-only root, seccomp."""
    job = objects.build_job(make_plan(BATCH).stages[0], "img", SETTINGS)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_secrets_become_secret_key_refs_never_values() -> None:
    """[secrets] API_KEY=model-secrets → secretKeyRef(name=model-secrets, key=API_KEY)."""
    deployment = objects.build_deployment(make_plan(SERVICE).stages[0], "img", SETTINGS)
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    secret_env = [e for e in env if e["name"] == "API_KEY"]
    assert secret_env == [
        {
            "name": "API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "model-secrets", "key": "API_KEY"}},
        }
    ]


def test_service_probes_selector_and_rolling_update() -> None:
    """Startup probe covers install + MAX_STARTUP_TIME_SECONDS (the bootstrapper holds the
    code to the latter); old pods stay until new ones are ready."""
    stage = make_plan(SERVICE).stages[0]
    deployment = objects.build_deployment(stage, "img", SETTINGS)
    spec = deployment["spec"]
    container = spec["template"]["spec"]["containers"][0]
    startup = container["startupProbe"]
    assert startup["tcpSocket"] == {"port": 8000}
    window = startup["periodSeconds"] * startup["failureThreshold"]
    assert window >= SERVICE.max_install_time_seconds + 90
    args = container["args"]
    assert args[args.index("--port") + 1] == "8000"
    assert args[args.index("--max-startup-seconds") + 1] == "90"
    assert "--max-run-seconds" not in args
    assert container["readinessProbe"]["tcpSocket"] == {"port": 8000}
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["selector"]["matchLabels"] == {
        objects.PROJECT_LABEL: "demo",
        objects.STAGE_LABEL: "serve",
    }
    service = objects.build_service(stage, SETTINGS)
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == service["spec"]["ports"][0]["targetPort"] == 8000


def test_two_projects_with_a_same_named_stage_never_share_pods() -> None:
    """Selectors are qualified by project."""
    a = make_plan(SERVICE).stages[0]
    b = plan.StageSpec("other", a.run_id, a.source, a.config)
    assert objects.selector(a) != objects.selector(b)
    assert a.object_name != b.object_name


def test_long_names_stay_valid_and_distinct() -> None:
    """Names stay DNS-1123 labels of at most 63 characters and never collide."""
    long_stage = stage_config(name="stage-" + "x" * 80)
    other = stage_config(name="stage-" + "x" * 79 + "y")
    jobs = [objects.job_name(make_plan(s).stages[0]) for s in (long_stage, other)]
    assert all(names.is_dns_label(j) for j in jobs)
    assert jobs[0] != jobs[1]


def test_docker_image_from_bodywork_ini_wins_over_controller_image() -> None:
    """DOCKER_IMAGE names the stage image; otherwise the controller's own image is used."""
    assert objects.stage_image("custom:1", SETTINGS) == "custom:1"
    assert objects.stage_image(None, SETTINGS) == "bodywork:test"


def test_named_artifacts_claim_is_used_not_created() -> None:
    """ARTIFACTS_PVC set → no PVC object, pods mount that claim."""
    settings = run_settings(image="i", artifacts_pvc="shared-rwx")
    bodies = objects.build_stage_objects(make_plan(BATCH), settings)
    assert "PersistentVolumeClaim" not in [b["kind"] for b in bodies]
    volumes = bodies[0]["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == "shared-rwx"


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_validate_against_the_kubernetes_schema(path: Path) -> None:
    """Every shipped manifest is valid for current Kubernetes."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc["kind"] == "Kustomization":
            listed = {p.name for p in MANIFESTS.glob("*.yaml")}
            assert set(doc["resources"]) <= listed
            continue
        validate(doc)


def test_controller_role_has_no_secret_access_and_no_wildcards() -> None:
    """The controller never reads secrets and every rule is explicit."""
    role = yaml.safe_load((MANIFESTS / "role.yaml").read_text())
    assert role["kind"] == "Role"
    for rule in role["rules"]:
        assert "secrets" not in rule["resources"]
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]


def _without_namespace(body: dict) -> dict:
    body = yaml.safe_load(yaml.safe_dump(body))
    body["metadata"].pop("namespace", None)
    for subject in body.get("subjects", []):
        subject.pop("namespace", None)
    return body


def test_shipped_job_and_cronjob_manifests_equal_what_deploy_builds() -> None:
    """manifests/workflow-job.yaml and cronjob.yaml are exactly objects.py's output."""
    run = objects.ControllerRun("https://github.com/your-org/your-ml-project.git", "main")
    job = objects.build_controller_job(run, "bodywork", "bodywork:0.1.0")
    cron = objects.build_cronjob("bodywork-retrain", "0 3 * * *", run, "bodywork", "bodywork:0.1.0")
    assert yaml.safe_load((MANIFESTS / "workflow-job.yaml").read_text()) == _without_namespace(job)
    assert yaml.safe_load((MANIFESTS / "cronjob.yaml").read_text()) == _without_namespace(cron)


def test_shipped_rbac_manifests_equal_what_bootstrap_installs() -> None:
    """role.yaml, rolebinding.yaml and serviceaccounts.yaml match build_install_objects."""
    built = {
        (b["kind"], b["metadata"]["name"]): _without_namespace(b)
        for b in objects.build_install_objects("bodywork")
    }
    shipped = {}
    for file in ("namespace.yaml", "serviceaccounts.yaml", "role.yaml", "rolebinding.yaml"):
        for doc in yaml.safe_load_all((MANIFESTS / file).read_text()):
            shipped[(doc["kind"], doc["metadata"]["name"])] = _without_namespace(doc)
    assert shipped == built


def test_cronjob_never_overlaps_and_marks_its_runs_as_cron() -> None:
    """Forbid concurrency, bounded history, and BODYWORK_TRIGGER=cron for the records."""
    run = objects.ControllerRun("git://h/r.git", "main")
    cron = objects.build_cronjob(
        "nightly", "0 3 * * *", run, "ml", "img", api_version="batch/v1beta1"
    )
    assert cron["apiVersion"] == "batch/v1beta1"
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == spec["failedJobsHistoryLimit"] == 3
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    env = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "BODYWORK_TRIGGER", "value": "cron"} in env


def test_webhook_url_reaches_the_controller_only_through_a_secret_key_ref() -> None:
    """The controller never reads Secrets: the kubelet injects WEBHOOK_URL."""
    run = objects.ControllerRun("git://h/r.git", webhook_secret="hooks")
    job = objects.build_controller_job(run, "ml", "img")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    hook = next(e for e in env if e["name"] == "BODYWORK_WEBHOOK_URL")
    assert hook["valueFrom"]["secretKeyRef"] == {
        "name": "hooks",
        "key": "WEBHOOK_URL",
        "optional": True,
    }


def test_module_args_and_inline_requirements_reach_the_bootstrapper() -> None:
    """bodywork.yaml's module path, `requirements` and `args` (after `--`, so an arg that
    looks like a flag stays the module's) are the container's args, as rendered."""
    stage = stage_config(
        module_path="pipeline/train.py",
        requirements=("numpy==2.1.0", "./mylib"),
        args=("--epochs", "3"),
    )
    container = objects.build_job(make_plan(stage).stages[0], "img", SETTINGS)["spec"]["template"][
        "spec"
    ]["containers"][0]
    args = container["args"]
    assert args[args.index("--module") + 1] == "pipeline/train.py"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--requirement"] == [
        "numpy==2.1.0",
        "./mylib",
    ]
    assert "--requirements-file" not in args
    assert args[args.index("--") :] == ["--", "--epochs", "3"]


def test_ini_stage_installs_the_requirements_file_beside_its_module() -> None:
    container = objects.build_job(make_plan(stage_config()).stages[0], "img", SETTINGS)["spec"][
        "template"
    ]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--requirements-file") + 1] == "train/requirements.txt"
    assert "--" not in args


def test_zero_requests_ask_for_no_reservation() -> None:
    """CPU_REQUEST = 0 / MEMORY_REQUEST_MB = 0 omit the request, as the original did."""
    stage = stage_config(cpu_request=0.0, memory_request_mb=0)
    job = objects.build_job(make_plan(stage).stages[0], "img", SETTINGS)
    validate(job)
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {}


def test_a_stage_in_another_image_gets_a_fetch_init_container_from_ours() -> None:
    """DOCKER_IMAGE without Bodywork: our image fetches the pinned commit and hands over the
    bootstrapper and uv; the user's image runs them with its own python3."""
    the_plan = make_plan(SERVICE, docker_image="nvcr.io/nvidia/pytorch:24.01-py3")
    bodies = objects.build_stage_objects(the_plan, SETTINGS)
    deployment = next(b for b in bodies if b["kind"] == "Deployment")
    validate(deployment)
    pod = deployment["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    (stage,) = pod["containers"]
    assert fetch["image"] == SETTINGS.image
    assert fetch["args"][0] == "stage" and "--fetch-only" in fetch["args"]
    assert fetch["args"][fetch["args"].index("--handoff") + 1] == "/bodywork/tools"
    assert stage["image"] == "nvcr.io/nvidia/pytorch:24.01-py3"
    assert stage["command"] == ["python3", "-m", "bodywork_bootstrap"]
    assert "--checkout-ready" in stage["args"] and "--fetch-only" not in stage["args"]
    assert fetch["args"][fetch["args"].index("--commit") + 1] == "a" * 40
    assert stage["args"][stage["args"].index("--commit") + 1] == "a" * 40
    env = {e["name"]: e.get("value") for e in stage["env"]}
    assert env["PYTHONPATH"] == "/bodywork/tools"
    assert env["BODYWORK_UV"] == "/bodywork/tools/bin/uv"
    tools = next(m for m in stage["volumeMounts"] if m["name"] == "tools")
    assert tools == {"name": "tools", "mountPath": "/bodywork/tools", "readOnly": True}
    assert {"name": "tools", "emptyDir": {}} in pod["volumes"]
    assert stage["ports"][0]["containerPort"] == 8000  # probes and ports on the stage's own
    assert stage["startupProbe"]["tcpSocket"] == {"port": 8000}


def test_our_own_image_without_credentials_keeps_the_single_container_path() -> None:
    """The faster path: one container of Bodywork's image fetches, installs and runs."""
    for image in (None, SETTINGS.image):
        job = objects.build_job(
            make_plan(BATCH, docker_image=image).stages[0], SETTINGS.image, SETTINGS
        )
        pod = job["spec"]["template"]["spec"]
        assert "initContainers" not in pod
        assert pod["containers"][0]["args"][0] == "stage"
        assert "--checkout-ready" not in pod["containers"][0]["args"]


def test_a_gpu_stage_in_another_image_gets_its_devices_and_placement_but_fetch_does_not() -> None:
    """GPUS, a node selector, a toleration and a pull secret reach the Job's pod; the GPU is
    the stage container's limit (= request), never the fetch init container's."""
    from bodywork.core.config import Toleration

    stage = stage_config(
        gpus=1,
        node_selector=(("accelerator", "a100"),),
        tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
        image_pull_secrets=("regcred",),
    )
    job = objects.build_job(make_plan(stage).stages[0], "nvcr.io/nvidia/pytorch:24.01", SETTINGS)
    validate(job)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"accelerator": "a100"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in str(pod["initContainers"][0]["resources"])
