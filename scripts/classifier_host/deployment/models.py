"""Which model, image and registry version a deployment serves: the one resolution shared by a new
endpoint, an in-place update and a shadow test, so they cannot disagree on what "the model" means."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import records
from ..settings import SettingsError

# The tags of an endpoint serving a registered model (registry/references.py Resolved.tags): removed when
# an update or a promotion makes it serve a model that is not registered.
REGISTRY_TAGS = ("registry.version", "registry.package")


@dataclass(frozen=True)
class ModelChoice:
    """What the command was told to serve (deploy.py's --model-data / --training-job / --model / --image)."""

    model_data: str | None = None  # s3://.../model.tar.gz; None: the model of training_job, or of the last job
    training_job: str | None = None
    model: str | None = None  # a registered model instead: champion, a version, or a model package ARN
    registry_name: str = "image-classifier"
    image: str | None = None  # None: the serving image the model needs on the instance (images/serving.py)

    def check(self) -> None:
        """SettingsError for options that contradict each other (before any AWS call)."""
        if self.model and (self.model_data or self.training_job or self.image):
            raise SettingsError(
                "--model names a registered model with its images: no --model-data, --training-job, --image"
            )


@dataclass(frozen=True)
class Served:
    """A resolved choice. A registered model carries its image in its model package: then `package` is
    (package ARN, its inference specification's name or None for the main one) and `image` is None."""

    model_data: str
    role: str  # serve or serve-cpu
    image: str | None = None
    package: tuple[str, str | None] | None = None
    tags: dict[str, str] | None = None  # registry.version and registry.package of a registered model

    @property
    def label(self) -> str:
        """The image as a person reads it in the command's output."""
        return self.image or f"{self.role} of {self.package[0]}"

    @property
    def version(self) -> str | None:
        return self.tags["registry.version"] if self.tags else None

    def record(self, registry_name: str) -> dict:
        """What an endpoint serving it records (records.record_serving): the model data, the image and, for a
        registered model, its registry, version and package."""
        serving = {"model_data": self.model_data, "image": self.label}
        if self.version:
            serving |= {"registry": registry_name, "version": self.version, "package": self.package[0]}
        return serving


def resolve(
    boto, cfg, choice: ModelChoice, instance_type: str, say: Callable[[str], object] = print, serverless: bool = False
) -> Served:
    """The model and image `choice` means on `instance_type` (records for the last job and the pushed
    images, the registry for --model, the model's metadata.json in S3 for the image). SettingsError when
    something named does not exist or cannot serve there."""
    choice.check()
    image = records.cloud_image(choice.image, "serve") if choice.image else None
    model_data, job = (None, None) if choice.model else records.cloud_model(choice.model_data, choice.training_job)
    from ..images import serving
    from ..sagemaker import training

    package = tags = None
    try:
        if choice.model:
            from ..registry import references

            resolved = references.cloud(boto, cfg.s3_uri("registry"), choice.model, choice.registry_name)
            package, model_data, tags = resolved.package, resolved.model_data, resolved.tags()
            say(f"registered model {choice.registry_name} v{resolved.version} ({choice.model}): {package}")
        model_data = model_data or training.model_of(boto, job)
        if image is not None:
            return Served(model_data, "serve-cpu" if "serve-cpu" in image else "serve", image=image)
        metadata = serving.s3_metadata(boto.client("s3"), model_data)
        role, why = serving.image_role(metadata, instance_type)
        if serverless and role != "serve-cpu":
            raise SettingsError(
                f"a serverless endpoint runs on CPU only and this model needs the {role} image ({why}): "
                "deploy a model with ONNX exports (the trainer's default), or use an instance"
            )
        say(f"serving image: {role} ({why})")
    except ValueError as err:  # RegistryError too: no champion, an unknown version, another group's package
        raise SettingsError(str(err)) from None
    if package:  # the package's main specification is the GPU image, "cpu" the slim one
        from ..registry.sagemaker_registry import CPU_SPECIFICATION

        return Served(
            model_data, role, package=(package, CPU_SPECIFICATION if role == "serve-cpu" else None), tags=tags
        )
    return Served(model_data, role, image=records.cloud_image(None, role))
