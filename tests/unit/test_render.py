"""`render`: every object a run would apply, in order, valid, and printable as YAML."""

from __future__ import annotations

import kubernetes_validate
import yaml

from bodywork.core import names, objects, plan, render
from tests.builders import COMMIT, RUN_ID, make_plan, run_settings, stage_config

KUBERNETES_VERSION = "1.37.0"
SETTINGS = run_settings()


TRAIN = stage_config(retries=1, secrets=(("DB_PASSWORD", "db-creds"),))
SERVE = stage_config(
    name="serve",
    stage_type="service",
    module_path="serve/serve.py",
    port=8000,
    ingress=True,
    secrets=(("API_KEY", "model-secrets"),),
)


def controller_for(the_plan: plan.Plan, run_id: str | None = RUN_ID) -> objects.ControllerRun:
    return objects.ControllerRun(
        repo=the_plan.source.repo_url,
        branch=the_plan.source.commit,
        run_id=run_id,
        webhook_secret=the_plan.webhook_url_secret,
    )


def validate(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_render_puts_the_controller_job_first_then_every_stage_object() -> None:
    """Controller Job, then PVC, stage Job, Deployment, Service, Ingress, in that order."""
    the_plan = make_plan(TRAIN, SERVE)
    docs = render.render(the_plan, SETTINGS, controller_for(the_plan))
    assert [d["kind"] for d in docs] == [
        "Job",
        "PersistentVolumeClaim",
        "Job",
        "Deployment",
        "Service",
        "Ingress",
    ]
    controller = docs[0]
    assert controller["metadata"]["name"] == names.object_name("bodywork-workflow", RUN_ID)
    assert controller["spec"]["template"]["spec"]["serviceAccountName"] == (
        objects.CONTROLLER_SERVICE_ACCOUNT
    )
    args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "workflow"
    assert args[args.index("--branch") + 1] == COMMIT
    assert args[args.index("--run-id") + 1] == RUN_ID
    assert docs[2]["metadata"]["name"] == objects.job_name(the_plan.stages[0])
    assert all(d["metadata"]["namespace"] == "ml" for d in docs)


def test_render_without_a_controller_is_only_the_stage_objects() -> None:
    """No controller → exactly what the executor would submit."""
    the_plan = make_plan(TRAIN)
    docs = render.render(the_plan, SETTINGS)
    assert docs == objects.build_stage_objects(the_plan, SETTINGS)


def test_every_rendered_object_is_valid_for_current_kubernetes() -> None:
    """Each batch/v1, apps/v1, v1 and networking doc passes strict schema validation."""
    the_plan = make_plan(TRAIN, SERVE, webhook_url_secret="hooks")
    docs = render.render(the_plan, SETTINGS, controller_for(the_plan))
    docs += render.render(the_plan, SETTINGS, controller_for(the_plan, None), "0 3 * * *")[:1]
    assert docs[-1]["kind"] == "CronJob"
    for doc in docs:
        validate(doc)


def test_a_schedule_renders_a_cronjob_instead_of_the_controller_job() -> None:
    """--schedule → one CronJob (no controller Job) running the controller as trigger cron."""
    the_plan = make_plan(TRAIN)
    docs = render.render(the_plan, SETTINGS, controller_for(the_plan, None), "0 3 * * *")
    assert [d["kind"] for d in docs] == ["CronJob", "PersistentVolumeClaim", "Job"]
    cron = docs[0]
    assert cron["apiVersion"] == "batch/v1"
    assert cron["metadata"]["name"] == "demo--retrain"
    assert cron["spec"]["schedule"] == "0 3 * * *"
    env = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "BODYWORK_TRIGGER", "value": "cron"} in env


def test_an_old_cluster_gets_a_batch_v1beta1_cronjob_when_asked() -> None:
    """cronjob_api_version='batch/v1beta1' (Kubernetes < 1.21) changes only the apiVersion."""
    the_plan = make_plan(TRAIN)
    run = controller_for(the_plan, None)
    old = render.render(the_plan, SETTINGS, run, "0 3 * * *", "batch/v1beta1")
    new = render.render(the_plan, SETTINGS, run, "0 3 * * *")
    assert old[0]["apiVersion"] == "batch/v1beta1"
    assert {**old[0], "apiVersion": "batch/v1"} == new[0]
    assert old[1:] == new[1:]


def test_to_yaml_parses_back_to_exactly_the_docs() -> None:
    """What `render` prints is what a reviewer and kubectl read: no loss in the YAML."""
    the_plan = make_plan(TRAIN, SERVE, webhook_url_secret="hooks")
    docs = render.render(the_plan, SETTINGS, controller_for(the_plan))
    text = render.to_yaml(docs)
    assert list(yaml.safe_load_all(text)) == docs
    assert text.count("\n---\n") == len(docs) - 1


def test_secrets_render_as_secret_key_refs_and_never_as_values() -> None:
    """[secrets] and the webhook secret appear only as secretKeyRef, never with a value."""
    the_plan = make_plan(TRAIN, SERVE, webhook_url_secret="hooks")
    docs = render.render(the_plan, SETTINGS, controller_for(the_plan))
    refs = {}
    for doc in docs:
        template = (doc.get("spec") or {}).get("template")
        if template is None:
            continue
        for container in template["spec"]["containers"]:
            for env in container["env"]:
                if env["name"] in ("DB_PASSWORD", "API_KEY", "BODYWORK_WEBHOOK_URL"):
                    assert "value" not in env, env
                    refs[env["name"]] = env["valueFrom"]["secretKeyRef"]["name"]
    assert refs == {
        "DB_PASSWORD": "db-creds",
        "API_KEY": "model-secrets",
        "BODYWORK_WEBHOOK_URL": "hooks",
    }
    text = render.to_yaml(docs)
    assert "kind: Secret" not in text


def test_a_named_artifacts_claim_is_mounted_not_rendered() -> None:
    """ARTIFACTS_PVC in bodywork.ini → no PVC doc; stage pods mount the named claim."""
    the_plan = make_plan(TRAIN, repo="git://h/r.git", ref=None, artifacts_pvc="shared-rwx")
    docs = render.render(the_plan, SETTINGS, controller_for(the_plan))
    assert [d["kind"] for d in docs] == ["Job", "Job"]
    volumes = docs[1]["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == "shared-rwx"
