"""register.py's steps, local and cloud: fetch the model, evaluate it, evaluate the champion on the same folder
when its recorded evaluation used another one, apply the gate, register with provenance. Every check that can
refuse (the registry's name, the artifact, the folder's classes) runs before anything is written."""

from __future__ import annotations

from pathlib import Path

from ..tracking import runs
from . import candidate, sagemaker_registry
from .gate import RegistryError, Rule
from .mlflow_registry import MlflowRegistry, Registered, champion_standing

# The training run's tags a registered version repeats (provenance without opening the run).
PROVENANCE_TAGS = (
    runs.COMMIT_TAG,
    runs.JOB_TAG,
    "data.location",
    "data.fingerprint",
    "image.train",
    "image.train.id",
    "image.train.inputs_digest",
)


def register_local(registry: MlflowRegistry, model_data: str, folder: Path, rule: Rule, scratch: Path) -> Registered:
    s3 = s3_client_if_needed(model_data)
    uri, archive = candidate.local_archive(model_data, scratch, s3)
    evaluated = candidate.evaluate(uri, archive, folder, scratch / "candidate")
    reevaluate = champion_evaluator(folder, scratch, lambda source: s3 or s3_client_if_needed(source))
    champion_top1, champion_version = champion_standing(registry, evaluated, reevaluate)
    verdict = rule.decide(evaluated.top1, evaluated.runtime, champion_top1, champion_version)
    return registry.register(evaluated, verdict, provenance(registry, uri, local_images()))


def champion_evaluator(folder: Path, scratch: Path, s3_for):
    """evaluate(champion's model URI) on the candidate's folder, for a champion evaluated on another one."""

    def reevaluate(source: str) -> candidate.Evaluated:
        where = scratch / "champion"
        where.mkdir(exist_ok=True)
        champion_uri, champion_archive = candidate.local_archive(source, where, s3_for(source))
        return candidate.evaluate(champion_uri, champion_archive, folder, where)

    return reevaluate


def provenance(registry: MlflowRegistry, model_uri: str, images: dict[str, str]) -> dict[str, str]:
    """The training run's provenance tags (when it was tracked in this store), the serving images, the commit."""
    tags = {runs.COMMIT_TAG: runs.git_commit(), **images}
    run_id = runs.find_training_run(registry.client, model_uri)
    if run_id:
        recorded = registry.client.get_run(run_id).data.tags
        tags.update({name: recorded[name] for name in PROVENANCE_TAGS if name in recorded})
        tags["training.run_id"] = run_id
    return tags


def local_images() -> dict[str, str]:
    from ..images.names import local_image

    found = {}
    for role in ("serve", "serve-cpu"):
        found.update(runs.local_image_tags(local_image(role), role))
    return found


def s3_client_if_needed(uri: str):
    if not uri.startswith("s3://"):
        return None
    from .. import settings
    from ..sagemaker import session

    return session.boto_session(settings.load().region).client("s3")


# ---- SageMaker Model Registry (--cloud) ----


def cloud_registry(group: str):
    from .. import settings
    from ..sagemaker import session

    cfg = settings.load("S3_BUCKET")
    boto = session.boto_session(cfg.region)
    return sagemaker_registry.SageMakerRegistry(
        boto.client("sagemaker"), boto.client("s3"), group, cfg.s3_uri("registry")
    )


def register_cloud(
    registry, model_data: str | None, training_job: str | None, folder: Path, rule: Rule, scratch: Path
) -> Registered:
    from .. import records

    if training_job:
        from ..sagemaker import training

        try:
            model_data = training.model_of(_boto(), training_job)
        except ValueError as err:
            raise RegistryError(str(err)) from None
    if not model_data.startswith("s3://"):
        raise RegistryError(f"--model-data {model_data}: SageMaker's registry needs an s3:// model.tar.gz")
    images = {role: records.pushed_image(role) for role in ("serve", "serve-cpu")}
    registry.ensure_group()
    uri, archive = candidate.local_archive(model_data, scratch, registry.s3)
    evaluated = candidate.evaluate(uri, archive, folder, scratch / "candidate")
    reevaluate = champion_evaluator(folder, scratch, lambda _: registry.s3)
    champion_top1, champion_version = sagemaker_registry.champion_standing(registry, evaluated, reevaluate)
    verdict = rule.decide(evaluated.top1, evaluated.runtime, champion_top1, champion_version)
    extra = {runs.COMMIT_TAG: runs.git_commit()}
    extra.update({f"image.{role}.inputs_digest": value for role, value in _inputs_digests().items()})
    extra.update(tracked_provenance(uri))
    return registry.register(evaluated, verdict, images, extra)


def tracked_provenance(model_uri: str) -> dict[str, str]:
    """The MLflow training run of model_uri and its provenance tags, when the tracking store has it (the cloud
    registry links it; an unreachable store only loses the link)."""
    from ..tracking import store

    try:
        client = store.client(store.tracking_uri())
        run_id = runs.find_training_run(client, model_uri)
        if run_id is None:
            return {}
        recorded = client.get_run(run_id).data.tags
    except Exception as err:  # the registry does not depend on the tracking store
        print(f"warning: the MLflow training run of {model_uri} was not looked up ({err})")
        return {}
    return {"mlflow.run_id": run_id, **{name: recorded[name] for name in PROVENANCE_TAGS if name in recorded}}


def _boto():
    from .. import settings
    from ..sagemaker import session

    return session.boto_session(settings.load().region)


def _inputs_digests() -> dict[str, str]:
    import json

    from .. import settings
    from ..images import provenance

    if not settings.IMAGES_FILE.is_file():
        return {}
    pushed = json.loads(settings.IMAGES_FILE.read_text())
    return {role: entry.get("labels", {}).get(provenance.INPUTS_LABEL, "") for role, entry in pushed.items()}
