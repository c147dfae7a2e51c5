"""The transform jobs transform.py runs: local mode over a folder, Batch Transform over an S3 prefix. Each
lists the inputs, refuses what cannot be sent (listed as failed, never sent), runs the job with the serving
image the model needs, reads every answer back and writes predictions.jsonl and summary.json (outputs.py).

Errors: TransformError (an input, model or setting that cannot be used; no job started), TransformJobFailed
(the job ran and failed; its log is above)."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import records, settings
from ..sagemaker.access import Access


class TransformJobFailed(Exception):
    """The job started and failed: local mode's container never answered, or SageMaker's FailureReason."""


@dataclass(frozen=True)
class TransformRequest:
    """What transform.py asks for (its --help says what each option does)."""

    input: str  # a folder (local) or an s3:// prefix (cloud)
    output: Path
    model_data: str | None = None
    model: str | None = None  # a registered model instead: champion, a version, or (cloud) a model package ARN
    registry_name: str = "image-classifier"
    image: str | None = None
    gpu: bool = False
    max_payload_mb: int = 6
    job_name: str | None = None
    training_job: str | None = None
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    max_concurrent: int = 4
    network_isolation: bool = False


def job_name(request: TransformRequest) -> str:
    from ..sagemaker.session import new_job_name

    return request.job_name or new_job_name("image-classifier-transform")


# ---- local ----


def local_model(model_data: str, scratch: Path) -> tuple[Path, dict]:
    """(model.tar.gz, its metadata), checked as the server would load it: before any container starts."""
    from classifier.model import artifact

    from ..reports.evaluation import EvaluationError, model_folder
    from .inputs import TransformError

    path = Path(model_data.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise TransformError(f"--model-data {model_data}: no such file (train first: make demo / make train)")
    try:
        folder = model_folder(path, scratch)
        metadata = artifact.load_metadata(folder)
    except (EvaluationError, artifact.ArtifactError) as err:
        raise TransformError(f"--model-data {model_data}: {err}") from None
    if not artifact.exported(folder, metadata):
        raise TransformError(f"--model-data {model_data} holds none of the model files its metadata.json names")
    return path.resolve(), metadata


def run_local(request: TransformRequest) -> dict:
    """A local-mode transform job over request.input (a folder); the summary outputs.write wrote."""
    from ..images import serving
    from ..sagemaker import local, transform
    from . import inputs, outputs
    from .inputs import TransformError

    if request.input.startswith("s3://"):
        raise TransformError("--local reads a folder: give --input DIR (an s3:// prefix needs a cloud job)")
    if request.model and request.model_data:
        raise TransformError("give --model or --model-data, not both")
    if request.model:
        from ..registry import references

        resolved = references.local(request.model, request.registry_name)
        print(f"registered model {request.registry_name} v{resolved.version} ({request.model}): {resolved.model_data}")
        request = dataclasses.replace(request, model_data=resolved.model_data, model=None)
    if not request.model_data:
        raise TransformError("--local needs --model-data PATH/model.tar.gz or --model champion|VERSION")
    root = Path(request.input).resolve()
    files = inputs.list_folder(root)
    fits, failed = inputs.split_by_size(files, request.max_payload_mb)
    unsendable = {f.path for f in fits if not transform.sendable_locally(root / f.path)}
    failed += [
        inputs.Failure(
            path,
            "not an image: its bytes read as text that is not UTF-8, which SageMaker "
            "local mode cannot send (it would stop the whole job)",
        )
        for path in sorted(unsendable)
    ]
    fits = [f for f in fits if f.path not in unsendable]
    with tempfile.TemporaryDirectory(prefix="transform-") as scratch:
        scratch = Path(scratch)
        model, metadata = local_model(request.model_data, scratch / "model")
        image = request.image
        if not image:
            image, why = serving.local_choice(metadata, request.gpu)
            print(f"serving image: {image} ({why}); --image overrides", flush=True)
        try:
            local.check_can_serve(image)
        except ValueError as err:
            raise TransformError(str(err)) from None
        predictions = []
        if fits:
            names = inputs.stage(fits, root, scratch / "input")
            name = job_name(request)
            print(f"transform job {name}: {len(fits)} files on {image} (local mode)...", flush=True)
            try:
                transform.transform_local(
                    image, model, scratch / "input", scratch / "output", name, request.max_payload_mb, gpu=request.gpu
                )
            except RuntimeError as err:  # local mode's own failures: the container never answered...
                raise TransformJobFailed(f"transform job {name} failed: {err} (its container log is above)") from err
            predictions, failed = collect_local(names, scratch / "output", failed)
    summary = outputs.write(request.output, len(files), predictions, failed, metadata["classes"], str(root))
    return summary


def collect_local(names: dict[str, str], output: Path, failed: list):
    """Each staged file's answer (<staged name>.out), under the file's own path."""
    from .inputs import Failure
    from .outputs import Prediction, read_answer

    predictions, failed = [], list(failed)
    for staged, path in names.items():
        answer = output / f"{staged}.out"
        result = (
            read_answer(path, answer.read_bytes())
            if answer.is_file()
            else Failure(path, "the job wrote no answer for it")
        )
        (predictions if isinstance(result, Prediction) else failed).append(result)
    return predictions, failed


# ---- cloud ----


def run_cloud(request: TransformRequest) -> dict:
    """A Batch Transform job over request.input (an s3:// prefix); the summary outputs.write wrote."""
    from .inputs import TransformError

    cfg = settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET")
    if not request.input.startswith("s3://"):
        raise TransformError(
            f"--input {request.input}: a cloud job reads an s3:// prefix (or add --local for a folder)"
        )
    if request.model and (request.model_data or request.training_job or request.image):
        raise TransformError(
            "--model names a registered model with its images: no --model-data, --training-job, --image"
        )
    model_data, training_job = (
        (None, None) if request.model else records.cloud_model(request.model_data, request.training_job)
    )
    # The SDK takes over a second to import: only once the settings are known good.
    from classifier.model import artifact

    from ..data.s3 import parse_s3_uri
    from ..images import serving
    from ..sagemaker import session, training, transform
    from . import inputs, outputs

    boto = session.boto_session(cfg.region)
    s3 = boto.client("s3")
    package = None
    try:
        if request.model:
            from ..registry import references

            resolved = references.cloud(boto, cfg.s3_uri("registry"), request.model, request.registry_name)
            model_data = resolved.model_data
            print(f"registered model {request.registry_name} v{resolved.version} ({request.model}): {resolved.package}")
        model_data = model_data or training.model_of(boto, training_job)
        metadata = artifact.check_metadata(serving.s3_metadata(s3, model_data), model_data)
        role, why = serving.image_role(metadata, request.instance_type)
        if request.model:  # the package names the images: its main specification serves on a GPU, "cpu" slim
            from ..registry.sagemaker_registry import CPU_SPECIFICATION

            package = (resolved.package, CPU_SPECIFICATION if role == "serve-cpu" else None)
            image = f"{role} of {resolved.package}"
        else:
            image = records.cloud_image(request.image, role)
    except (ValueError, artifact.ArtifactError) as err:  # RegistryError is a ValueError
        raise TransformError(str(err)) from None
    print(f"serving image: {role} ({why})" if not request.image else f"serving image: {image}")
    try:
        bucket, prefix = parse_s3_uri(request.input)
    except ValueError as err:
        raise TransformError(f"--input: {err}") from None
    prefix = prefix + "/" if prefix else ""  # the objects under it, not those beside it
    files = list_prefix(s3, bucket, prefix)
    fits, failed = inputs.split_by_size(files, request.max_payload_mb)
    predictions = []
    if fits:
        name = job_name(request)
        manifest_uri, output_uri = (
            cfg.s3_uri("transform", name, "input.manifest"),
            cfg.s3_uri("transform", name, "output"),
        )
        manifest_bucket, manifest_key = parse_s3_uri(manifest_uri)
        s3.put_object(
            Bucket=manifest_bucket,
            Key=manifest_key,
            Body=inputs.manifest(f"s3://{bucket}/{prefix}", fits),
            **({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": cfg.kms_key_id} if cfg.kms_key_id else {}),
        )
        print(
            f"transform job {name}: {len(fits)} files on {request.instance_count} x {request.instance_type} ({image})",
            flush=True,
        )
        try:
            transform.start_cloud(
                boto,
                name,
                image,
                model_data,
                Access.of(cfg, request.network_isolation),
                manifest_uri,
                output_uri,
                instance_type=request.instance_type,
                instance_count=request.instance_count,
                max_concurrent=request.max_concurrent,
                max_payload_mb=request.max_payload_mb,
                package=package,
            )
            transform.wait_with_logs(boto, name)
        except RuntimeError as err:
            raise TransformJobFailed(err) from err
        finally:
            delete_job_model(boto, name)
        predictions, failed = collect_cloud(s3, output_uri, fits, failed)
    summary = outputs.write(request.output, len(files), predictions, failed, metadata["classes"], request.input)
    return summary


def delete_job_model(boto, name: str) -> None:
    from botocore.exceptions import ClientError

    from ..sagemaker import transform

    try:
        transform.delete_model(boto, name)
    except ClientError as err:  # not created (the job was refused), or no permission: say so, go on
        print(f"warning: could not delete the job's model {name}: {err}", file=sys.stderr)


def list_prefix(s3, bucket: str, prefix: str):
    """The objects under the prefix as input files (keys relative to it), hidden ones and folders left out."""
    from pathlib import PurePosixPath

    from .inputs import InputFile, TransformError, hidden

    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if relative and not relative.endswith("/") and not hidden(PurePosixPath(relative)):
                files.append(InputFile(relative, item["Size"]))
    if not files:
        raise TransformError(f"--input s3://{bucket}/{prefix} holds no objects")
    return files


def collect_cloud(s3, output_uri: str, sent, failed: list):
    """Each sent file's answer: SageMaker writes <key>.out under the output path, mirroring the input's
    key (matched here by the longest key tail, so either layout of the documented mirroring reads back)."""
    from ..data.s3 import parse_s3_uri
    from .inputs import Failure
    from .outputs import Prediction, read_answer

    bucket, prefix = parse_s3_uri(output_uri)
    prefix += "/"
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if item["Key"].endswith(".out")
    ]
    predictions, failed = [], list(failed)
    for entry in sent:
        matches = [
            key
            for key in keys
            if key.removesuffix(".out").endswith("/" + entry.path) or key.removesuffix(".out") == prefix + entry.path
        ]
        if not matches:
            failed.append(Failure(entry.path, "the job wrote no answer for it"))
            continue
        body = s3.get_object(Bucket=bucket, Key=min(matches, key=len))["Body"].read()
        result = read_answer(entry.path, body)
        (predictions if isinstance(result, Prediction) else failed).append(result)
    return predictions, failed
