"""register.py's cloud registry (--cloud): SageMaker Model Registry, through plain boto3 clients.

One model package group owned by this project (its description starts with OWNER_MARK: a group of that name
without it is someone else's and is left alone); one versioned model package per registered archive, its
inference specification the GPU serving image with the CPU one as the additional specification "cpu" (both
pinned by digest), the model data the archive's s3:// URI (not copied), the evaluation.json uploaded next to
the group's other evaluations and named as the package's model-quality statistics, the evaluation and
provenance in its customer metadata. The champion is the newest Approved version: deploy.py and transform.py
deploy it with CreateModel(Containers=[container_from_package(arn, cpu)])."""

from __future__ import annotations

import unicodedata
import uuid
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError, StubResponseError

from .candidate import Evaluated
from .gate import RegistryError, Verdict
from .mlflow_registry import CHAMPION, FOLDER, FOLDER_FINGERPRINT, OWNER, OWNER_TAG, RUNTIME, TOP1, Registered, now, who

GROUP = "image-classifier"
OWNER_MARK = "sagemaker-image-classifier:"
GROUP_DESCRIPTION = f"{OWNER_MARK} image classifiers registered by register.py"
CPU_SPECIFICATION = "cpu"
CONTENT_TYPES = ["image/jpeg", "image/png", "application/x-image", "application/json"]
RESPONSE_TYPES = ["application/json"]
GPU_INSTANCES = ["ml.g5.xlarge", "ml.g4dn.xlarge"]
CPU_INSTANCES = ["ml.m5.xlarge", "ml.c5.xlarge", "ml.c5.2xlarge"]
EVALUATION_OBJECT = "evaluation.json"
# The service model's limits (botocore checks minimum lengths only, the service the rest).
MAX_METADATA_KEYS, MAX_KEY, MAX_VALUE, MAX_DESCRIPTION = 50, 128, 256, 1024
# Characters CustomerMetadataProperties accepts besides letters, separators and numbers (its pattern).
METADATA_PUNCTUATION = set("_.:/=+-@")
# Kept first when there are more than 50 properties: what ties a version to its code, images, evaluation, run
# and data. A string is an exact key; a tuple (prefix, suffix) matches e.g. image.serve-cpu.inputs_digest.
IMPORTANT = (
    "git.commit",
    ("image.", ".inputs_digest"),
    TOP1,
    FOLDER_FINGERPRINT,
    RUNTIME,
    "mlflow.run_id",
    "data.fingerprint",
)


class SageMakerRegistry:
    def __init__(self, sagemaker_client, s3_client, group: str, evaluation_s3_prefix: str):
        if not evaluation_s3_prefix.startswith("s3://"):
            raise RegistryError(f"the evaluation prefix must be s3://BUCKET/PREFIX, got {evaluation_s3_prefix!r}")
        self.sagemaker, self.s3, self.group = sagemaker_client, s3_client, group
        self.evaluation_prefix = evaluation_s3_prefix.rstrip("/")

    # ---- the group ----

    def ensure_group(self) -> None:
        """Create the group on first use; refuse one of that name that this project did not create."""
        group = self._group()
        if group is None:
            self._call(
                "CreateModelPackageGroup",
                ModelPackageGroupName=self.group,
                ModelPackageGroupDescription=GROUP_DESCRIPTION,
                Tags=[{"Key": OWNER_TAG, "Value": OWNER}],
            )
        elif not group.get("ModelPackageGroupDescription", "").startswith(OWNER_MARK):
            raise RegistryError(
                f"model package group {self.group!r} is in use by something else (its description does not start "
                f"with {OWNER_MARK!r}): choose another name with --registry-name"
            )

    def _group(self) -> dict | None:
        """DescribeModelPackageGroup's answer, None when there is no such group."""
        try:
            return self.sagemaker.describe_model_package_group(ModelPackageGroupName=self.group)
        except ClientError as err:
            if error_code(err) == "ValidationException":  # what SageMaker answers for a group that does not exist
                return None
            raise self._failed("DescribeModelPackageGroup", err) from None
        except BotoCoreError as err:
            raise_if_bug(err)
            raise self._failed("DescribeModelPackageGroup", err) from None

    # ---- reading ----

    def describe(self, arn: str) -> dict:
        return self._call("DescribeModelPackage", ModelPackageName=arn)

    def champion(self) -> dict | None:
        """The newest Approved version (arn, version, top1, fingerprint, model_data), or None before the first."""
        found = self._call(
            "ListModelPackages",
            ModelPackageGroupName=self.group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )["ModelPackageSummaryList"]
        if not found:
            return None
        package = self.describe(found[0]["ModelPackageArn"])
        metadata = package.get("CustomerMetadataProperties", {})
        # A version approved in the console from another tool may lack our metadata: its top-1 is then unknown.
        return {
            "arn": package["ModelPackageArn"],
            "version": str(package["ModelPackageVersion"]),
            "top1": float(metadata[TOP1]) if TOP1 in metadata else None,
            "fingerprint": metadata.get(FOLDER_FINGERPRINT),
            "model_data": package["InferenceSpecification"]["Containers"][0].get("ModelDataUrl"),
        }

    def resolve(self, reference: str) -> str:
        """`champion`, a version number of the group, or a model package ARN -> that version's ARN."""
        return self._locate(reference)[0]

    def _locate(self, reference: str) -> tuple[str, str, str]:
        """(ARN, version, group name) of a reference."""
        if reference == CHAMPION:
            found = self.champion()
            if found is None:
                raise RegistryError(
                    f"model package group {self.group!r} has no champion (no Approved version) yet: register a "
                    "model first (register.py --cloud) or approve a version"
                )
            return found["arn"], found["version"], self.group
        if reference.isdigit():
            return self._version(int(reference)), reference, self.group
        if reference.startswith("arn:aws") and ":model-package/" in reference:
            package = self._existing(reference)
            return reference, str(package.get("ModelPackageVersion", "")), package.get("ModelPackageGroupName", "")
        raise RegistryError(
            f"--model {reference!r}: give 'champion', a version number of {self.group!r} or a model package ARN"
        )

    def _existing(self, arn: str) -> dict:
        try:
            return self.sagemaker.describe_model_package(ModelPackageName=arn)
        except ClientError as err:
            if error_code(err) == "ValidationException":  # SageMaker's answer for an unknown model package
                raise RegistryError(f"model package {arn} does not exist (or is not visible to this account)") from None
            raise self._failed("DescribeModelPackage", err) from None
        except BotoCoreError as err:
            raise_if_bug(err)
            raise self._failed("DescribeModelPackage", err) from None

    def _version(self, version: int) -> str:
        pages = self.sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=self.group)
        try:
            for page in pages:
                for summary in page["ModelPackageSummaryList"]:
                    if summary.get("ModelPackageVersion") == version:
                        return summary["ModelPackageArn"]
        except (ClientError, BotoCoreError) as err:
            raise_if_bug(err)
            raise self._failed("ListModelPackages", err) from None
        raise RegistryError(f"model package group {self.group!r} has no version {version}")

    # ---- writing ----

    def register(
        self, candidate: Evaluated, verdict: Verdict, images: dict[str, str], extra: dict[str, str]
    ) -> Registered:
        """The evaluation uploaded first, then one version with everything in the same call (no version without
        its evaluation); when that call fails the upload is deleted again."""
        serve, serve_cpu = (split_image(images, role) for role in ("serve", "serve-cpu"))
        token = new_id()
        evaluation_uri = self._upload_evaluation(candidate.files[0], token)
        try:
            created = self.sagemaker.create_model_package(
                **self._package_request(candidate, verdict, serve, serve_cpu, evaluation_uri, extra),
                ClientToken=token,  # a retried call (botocore retries) does not make a second version
            )
        except (ClientError, BotoCoreError) as err:
            raise_if_bug(err)
            cleanup = self._delete_evaluation(evaluation_uri)
            raise RegistryError(
                f"registering {candidate.model_uri} failed, nothing registered: SageMaker CreateModelPackage on "
                f"model package group {self.group!r} answered {describe_error(err)}{cleanup}"
            ) from None
        return Registered(self._version_of(created["ModelPackageArn"]), verdict.champion, verdict.reason)

    def _package_request(self, candidate, verdict, serve, serve_cpu, evaluation, extra) -> dict:
        return {
            "ModelPackageGroupName": self.group,
            "ModelPackageDescription": description(candidate, verdict),
            "InferenceSpecification": specification(serve, candidate.model_uri, GPU_INSTANCES),
            "AdditionalInferenceSpecifications": [
                {"Name": CPU_SPECIFICATION, **specification(serve_cpu, candidate.model_uri, CPU_INSTANCES)}
            ],
            "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation}}},
            "CustomerMetadataProperties": metadata_properties(candidate_properties(candidate, verdict) | extra),
            # CreateModelPackage has no ApprovalDescription (only UpdateModelPackage does): the gate's reason goes
            # in the description and the metadata, so the version holds it from its first moment.
            "ModelApprovalStatus": "Approved" if verdict.champion else "PendingManualApproval",
        }

    def _upload_evaluation(self, path: Path, token: str) -> str:
        from ..data.s3 import parse_s3_uri

        # Each registration its own folder: a failed one is deleted without touching another's.
        uri = f"{self.evaluation_prefix}/{self.group}/{token}/{EVALUATION_OBJECT}"
        bucket, key = parse_s3_uri(uri)
        try:
            self.s3.put_object(Bucket=bucket, Key=key, Body=Path(path).read_bytes(), ContentType="application/json")
        except OSError as err:
            raise RegistryError(f"cannot read the evaluation {path}: {err}; nothing registered") from None
        except (ClientError, BotoCoreError) as err:
            raise_if_bug(err)
            raise RegistryError(
                f"uploading the evaluation to {uri} failed, nothing registered: {describe_error(err)}"
            ) from None
        return uri

    def _delete_evaluation(self, uri: str) -> str:
        """'' once deleted, else a sentence for the error message (the object is then left behind)."""
        from ..data.s3 import parse_s3_uri

        bucket, key = parse_s3_uri(uri)
        try:
            self.s3.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as err:
            return f" (and deleting its uploaded evaluation {uri} failed too: {describe_error(err)})"
        return ""

    def approve(self, reference: str, reason: str) -> Registered:
        """A person's approval. The champion is the newest Approved version, so approving an older one while a
        newer one is Approved does not make it the champion: the answer says so."""
        arn, version = self._decide(reference, "Approved", "approved", reason)
        champion = self.champion()
        text = decided_text("approved", reason)
        if champion is None or champion["arn"] != arn:
            newer = champion["version"] if champion else "?"
            return Registered(version, False, f"{text}; version {newer} (newer, Approved) stays the champion")
        return Registered(version, True, text)

    def reject(self, reference: str, reason: str) -> Registered:
        """Rejecting the champion makes the next newest Approved version the champion (a rollback)."""
        _, version = self._decide(reference, "Rejected", "rejected", reason)
        return Registered(version, False, decided_text("rejected", reason))

    def _decide(self, reference: str, status: str, action: str, reason: str) -> tuple[str, str]:
        arn, version, group = self._locate(reference)
        if group != self.group:
            raise RegistryError(f"{arn} belongs to model package group {group!r}, not {self.group!r}: not {action}")
        self._call(
            "UpdateModelPackage",
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=decided_text(action, reason)[:MAX_DESCRIPTION],
        )
        return arn, version or self._version_of(arn)

    # ---- plumbing ----

    def _version_of(self, arn: str) -> str:
        """A group's package ARNs end with /VERSION; ask the service for any other kind."""
        last = arn.rsplit("/", 1)[-1]
        return last if last.isdigit() else str(self.describe(arn)["ModelPackageVersion"])

    def _call(self, operation: str, **params) -> dict:
        from botocore import xform_name

        try:
            return getattr(self.sagemaker, xform_name(operation))(**params)
        except (ClientError, BotoCoreError) as err:
            raise_if_bug(err)
            raise self._failed(operation, err) from None

    def _failed(self, operation: str, err: Exception) -> RegistryError:
        return RegistryError(
            f"SageMaker {operation} on model package group {self.group!r} failed: {describe_error(err)}"
        )


def container_from_package(arn: str, cpu: bool) -> dict:
    """CreateModel's container for a registered version: its GPU specification, or the CPU one."""
    return {"ModelPackageName": arn} | ({"InferenceSpecificationName": CPU_SPECIFICATION} if cpu else {})


def champion_standing(registry: SageMakerRegistry, candidate: Evaluated, reevaluate) -> tuple[float | None, str | None]:
    """As mlflow_registry.champion_standing: the champion's recorded top-1 when it was evaluated on the same folder
    (same fingerprint), else `reevaluate(model_data)` on the candidate's folder."""
    champion = registry.champion()
    if champion is None:
        return None, None
    if champion["fingerprint"] == candidate.folder_fingerprint.digest and champion["top1"] is not None:
        return champion["top1"], champion["version"]
    print(f"the champion (v{champion['version']}) was evaluated on another folder: evaluating it on {candidate.folder}")
    return reevaluate(champion["model_data"]).top1, champion["version"]


def split_image(images: dict[str, str], role: str) -> tuple[str, str]:
    """(Image, ImageDigest) of a role's pushed digest reference. The Image keeps its @sha256: so the package
    pins the image even where a reader ignores ImageDigest."""
    reference = images.get(role, "")
    _, _, digest = reference.partition("@")
    if not (digest.startswith("sha256:") and len(digest) == 71):
        raise RegistryError(
            f"the {role} image must be a pushed digest reference REGISTRY/REPO@sha256:..., got {reference!r} "
            "(make push writes them)"
        )
    return reference, digest


def specification(image: tuple[str, str], model_data: str, instances: list[str]) -> dict:
    return {
        "Containers": [{"Image": image[0], "ImageDigest": image[1], "ModelDataUrl": model_data}],
        "SupportedContentTypes": CONTENT_TYPES,
        "SupportedResponseMIMETypes": RESPONSE_TYPES,
        "SupportedRealtimeInferenceInstanceTypes": instances,
        "SupportedTransformInstanceTypes": instances,
    }


def description(candidate: Evaluated, verdict: Verdict) -> str:
    name = candidate.metadata.get("model_name") or "image classifier"
    text = (
        f"{name}, {len(candidate.metadata.get('classes', []))} classes: top-1 {candidate.top1:.4f}, "
        f"top-5 {float(candidate.result['top5']):.4f} on {candidate.folder} (served by {candidate.runtime or 'none'}). "
        f"Gate: {verdict.reason}"
    )
    return text[:MAX_DESCRIPTION]


def candidate_properties(candidate: Evaluated, verdict: Verdict) -> dict[str, str]:
    hyperparameters = candidate.metadata.get("hyperparameters", {})
    return {
        TOP1: f"{candidate.top1:.6f}",
        FOLDER_FINGERPRINT: candidate.folder_fingerprint.digest,
        FOLDER: str(Path(candidate.folder).resolve()),
        RUNTIME: candidate.runtime or "none",
        "evaluation.top5": f"{float(candidate.result['top5']):.6f}",
        "verdict.reason": verdict.reason,
        "verdict.by": who(),
        "verdict.at": now(),
        "model.name": str(candidate.metadata.get("model_name", "")),
        "model.classes": str(len(candidate.metadata.get("classes", []))),
        # One property each: a JSON object's braces and quotes are not allowed in a value.
        **{f"hyperparameter.{name}": str(value) for name, value in sorted(hyperparameters.items())},
    }


def metadata_properties(properties: dict) -> dict[str, str]:
    """CustomerMetadataProperties the service accepts: at most 50, the important ones first, keys cut to 128
    characters, values to 256, characters its pattern refuses replaced by '_', empty ones left out."""
    cleaned = {}
    for key, value in properties.items():
        key, value = allowed(str(key))[:MAX_KEY], allowed(str(value))[:MAX_VALUE]
        if key and value:
            cleaned.setdefault(key, value)
    ordered = sorted(cleaned, key=importance)  # stable: the rest keep the caller's order
    return {key: cleaned[key] for key in ordered[:MAX_METADATA_KEYS]}


def importance(key: str) -> int:
    for rank, wanted in enumerate(IMPORTANT):
        if key == wanted or (isinstance(wanted, tuple) and key.startswith(wanted[0]) and key.endswith(wanted[1])):
            return rank
    return len(IMPORTANT)


def allowed(text: str) -> str:
    """Letters, separators (\\p{Z}), numbers and METADATA_PUNCTUATION; anything else becomes '_'."""
    return "".join(c if c in METADATA_PUNCTUATION or unicodedata.category(c)[0] in "LZN" else "_" for c in text)


def decided_text(action: str, reason: str) -> str:
    return f"{action} by {who()} at {now()}: {reason}"


def new_id() -> str:
    """The registration's evaluation folder and CreateModelPackage's ClientToken (at most 36 characters)."""
    return uuid.uuid4().hex


def raise_if_bug(err: Exception) -> None:
    """A request the service model refuses (or a test's stub did not expect) is a bug in this code, not
    something a person can fix: let it through as it is rather than as a RegistryError."""
    if isinstance(err, (ParamValidationError, StubResponseError)):
        raise err


def error_code(err: Exception) -> str:
    return getattr(err, "response", {}).get("Error", {}).get("Code", "")


def describe_error(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return str(err) or type(err).__name__


__all__ = [
    "SageMakerRegistry",
    "Registered",
    "champion_standing",
    "container_from_package",
    "metadata_properties",
]
