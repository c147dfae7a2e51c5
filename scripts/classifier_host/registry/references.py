"""What deploy.py and transform.py accept as --model: `champion`, a version number, or (cloud) a model package
ARN, resolved in the registry of the mode (MLflow's for local mode, SageMaker Model Registry in the cloud)."""

from __future__ import annotations

from dataclasses import dataclass

from .gate import RegistryError


@dataclass(frozen=True)
class Resolved:
    model_data: str  # the archive: a local path (MLflow) or s3:// (SageMaker)
    version: str
    package: str | None = None  # the model package version's ARN (cloud)

    def tags(self) -> dict[str, str]:
        """The tags of what serves it (an endpoint) naming the version."""
        return {"registry.version": self.version, **({"registry.package": self.package} if self.package else {})}


def local(reference: str, registry_name: str) -> Resolved:
    """A version of MLflow's registry (local mode serves local files only)."""
    from .mlflow_registry import MlflowRegistry

    version = MlflowRegistry(name=registry_name).resolve(reference)
    if version.source.startswith("s3://"):
        raise RegistryError(
            f"{registry_name} v{version.version} lives at {version.source}: download it and give --model-data, "
            "or use it in the cloud"
        )
    return Resolved(version.source, str(version.version))


def cloud(boto, evaluation_prefix: str, reference: str, registry_name: str) -> Resolved:
    """A model package version of SageMaker Model Registry's group `registry_name`."""
    from .sagemaker_registry import SageMakerRegistry

    registry = SageMakerRegistry(boto.client("sagemaker"), boto.client("s3"), registry_name, evaluation_prefix)
    arn = registry.resolve(reference)
    described = registry.describe(arn)
    version = str(described.get("ModelPackageVersion", arn.rsplit("/", 1)[-1]))
    return Resolved(described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"], version, arn)
