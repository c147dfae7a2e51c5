"""Classify every image under a folder or an S3 prefix with a trained model, without an endpoint.

    python scripts/transform.py --local --model-data build/output/model.tar.gz --input DIR --output DIR
        [--image IMAGE] [--gpu] [--max-payload-mb 6]                       (SageMaker local mode)
    python scripts/transform.py --input s3://BUCKET/PREFIX --output DIR [--model-data s3://... | --training-job NAME]
        [--instance-type ml.m5.xlarge] [--instance-count 1] [--max-concurrent 4] [--max-payload-mb 6]
        [--network-isolation]                                              (SageMaker Batch Transform)

Every file under the input, recursively, is sent on its own (files over --max-payload-mb are not sent:
they are listed as failed). --output gets predictions.jsonl (one line per classified file: "path"
relative to the input, "predictions" as the endpoint answers) and summary.json ("images", "failed":
each bad file's path and reason); when the input is laid out in class folders named as the model's
classes, summary.json also has "accuracy" and per-class precision/recall, and confusion_matrix.png is
written beside it. A bad image never stops the job. The local job serves on localhost:8080, as a local
endpoint does: with one running there it refuses to start. The cloud job reads AWS_REGION,
SAGEMAKER_ROLE_ARN, S3_BUCKET (KMS_KEY_ID, SUBNETS and SECURITY_GROUP_IDS when set), streams its log and
downloads its output; its model defaults to the last training job train.py recorded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .. import records, settings
from ..sagemaker.access import Access
from ..settings import SettingsError
from . import errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="SageMaker local mode (Docker on this machine)")
    parser.add_argument("--input", required=True, help="folder (local) or s3:// prefix (cloud) of images")
    parser.add_argument("--output", type=Path, required=True, help="folder for predictions.jsonl and summary.json")
    parser.add_argument("--model-data", help="model.tar.gz: a path (local) or s3:// URI (cloud)")
    parser.add_argument(
        "--image",
        help="serving image (default: serve-cpu for a model with ONNX exports on a "
        "CPU instance, else serve; make print-images or build/images.json)",
    )
    parser.add_argument("--gpu", action="store_true", help="local: local_gpu instead of local")
    parser.add_argument(
        "--max-payload-mb",
        type=int,
        default=6,
        help="largest file sent, MB (SageMaker's MaxPayloadInMB, 1..100; default 6)",
    )
    parser.add_argument("--job-name", help="transform job name (default: generated)")
    group = parser.add_argument_group("cloud (without --local; AWS settings from the environment)")
    group.add_argument("--training-job", help="use this training job's model (default: the last one train.py ran)")
    group.add_argument("--instance-type", default="ml.m5.xlarge", help="instance type (default ml.m5.xlarge)")
    group.add_argument("--instance-count", type=int, default=1, help="instances (default 1)")
    group.add_argument(
        "--max-concurrent",
        type=int,
        default=4,
        help="requests in flight per instance (MaxConcurrentTransforms; x max payload <= 100)",
    )
    group.add_argument("--network-isolation", action="store_true", help="the model's container gets no network")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..transform.inputs import TransformError, check_payload

    try:
        check_payload(args.max_payload_mb, 1 if args.local else args.max_concurrent)
        if args.instance_count < 1:
            raise TransformError(f"--instance-count must be >= 1, got {args.instance_count}")
        return run_local(args) if args.local else run_cloud(args)
    except (TransformError, SettingsError) as err:
        return errors.fail(err, 2)


def job_name(args) -> str:
    from ..sagemaker.session import new_job_name

    return args.job_name or new_job_name("image-classifier-transform")


def report(summary: dict, output: Path) -> int:
    from ..transform import outputs

    print(
        f"classified {summary['classified']} of {summary['images']} files; {len(summary['failed'])} failed"
        + (f" (listed in {output / outputs.SUMMARY_FILE})" if summary["failed"] else "")
    )
    if "accuracy" in summary:
        print(
            f"accuracy {summary['accuracy']:.1%} over {summary['scored']} labelled images; "
            f"confusion matrix: {output / summary['confusion_matrix_png']}"
        )
    print(f"predictions: {output / outputs.PREDICTIONS_FILE}")
    return 0


# ---- local ----


def local_model(model_data: str, scratch: Path) -> tuple[Path, dict]:
    """(model.tar.gz, its metadata), checked as the server would load it: before any container starts."""
    from classifier.model import artifact

    from ..reports.evaluation import EvaluationError, model_folder
    from ..transform.inputs import TransformError

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


def run_local(args) -> int:
    from ..images import serving
    from ..sagemaker import local, transform
    from ..transform import inputs, outputs
    from ..transform.inputs import TransformError

    if args.input.startswith("s3://"):
        raise TransformError("--local reads a folder: give --input DIR (an s3:// prefix needs a cloud job)")
    if not args.model_data:
        raise TransformError("--local needs --model-data PATH/model.tar.gz")
    root = Path(args.input).resolve()
    files = inputs.list_folder(root)
    fits, failed = inputs.split_by_size(files, args.max_payload_mb)
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
        model, metadata = local_model(args.model_data, scratch / "model")
        image = args.image
        if not image:
            image, why = serving.local_choice(metadata, args.gpu)
            print(f"serving image: {image} ({why}); --image overrides", flush=True)
        try:
            local.check_can_serve(image)
        except ValueError as err:
            raise TransformError(str(err)) from None
        predictions = []
        if fits:
            names = inputs.stage(fits, root, scratch / "input")
            name = job_name(args)
            print(f"transform job {name}: {len(fits)} files on {image} (local mode)...", flush=True)
            try:
                transform.transform_local(
                    image, model, scratch / "input", scratch / "output", name, args.max_payload_mb, gpu=args.gpu
                )
            except RuntimeError as err:  # local mode's own failures: the container never answered...
                return errors.fail(f"transform job {name} failed: {err} (its container log is above)", 1)
            predictions, failed = collect_local(names, scratch / "output", failed)
    summary = outputs.write(args.output, len(files), predictions, failed, metadata["classes"], str(root))
    return report(summary, args.output)


def collect_local(names: dict[str, str], output: Path, failed: list):
    """Each staged file's answer (<staged name>.out), under the file's own path."""
    from ..transform.inputs import Failure
    from ..transform.outputs import Prediction, read_answer

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


def run_cloud(args) -> int:
    from ..transform.inputs import TransformError

    cfg = settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET")
    if not args.input.startswith("s3://"):
        raise TransformError(f"--input {args.input}: a cloud job reads an s3:// prefix (or add --local for a folder)")
    model_data, training_job = records.cloud_model(args.model_data, args.training_job)
    # The SDK takes over a second to import: only once the settings are known good.
    from classifier.model import artifact

    from ..data.s3 import parse_s3_uri
    from ..images import serving
    from ..sagemaker import session, training, transform
    from ..transform import inputs, outputs

    boto = session.boto_session(cfg.region)
    s3 = boto.client("s3")
    try:
        model_data = model_data or training.model_of(boto, training_job)
        metadata = artifact.check_metadata(serving.s3_metadata(s3, model_data), model_data)
        role, why = serving.image_role(metadata, args.instance_type)
        image = records.cloud_image(args.image, role)
    except (ValueError, artifact.ArtifactError) as err:
        raise TransformError(str(err)) from None
    print(f"serving image: {role} ({why})" if not args.image else f"serving image: {image}")
    try:
        bucket, prefix = parse_s3_uri(args.input)
    except ValueError as err:
        raise TransformError(f"--input: {err}") from None
    prefix = prefix + "/" if prefix else ""  # the objects under it, not those beside it
    files = list_prefix(s3, bucket, prefix)
    fits, failed = inputs.split_by_size(files, args.max_payload_mb)
    predictions = []
    if fits:
        name = job_name(args)
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
            f"transform job {name}: {len(fits)} files on {args.instance_count} x {args.instance_type} ({image})",
            flush=True,
        )
        try:
            transform.start_cloud(
                boto,
                name,
                image,
                model_data,
                Access.of(cfg, args.network_isolation),
                manifest_uri,
                output_uri,
                instance_type=args.instance_type,
                instance_count=args.instance_count,
                max_concurrent=args.max_concurrent,
                max_payload_mb=args.max_payload_mb,
            )
            transform.wait_with_logs(boto, name)
        except RuntimeError as err:
            return errors.fail(err, 1)
        finally:
            delete_job_model(boto, name)
        predictions, failed = collect_cloud(s3, output_uri, fits, failed)
    summary = outputs.write(args.output, len(files), predictions, failed, metadata["classes"], args.input)
    return report(summary, args.output)


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

    from ..transform.inputs import InputFile, TransformError, hidden

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
    from ..transform.inputs import Failure
    from ..transform.outputs import Prediction, read_answer

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


if __name__ == "__main__":  # python -m classifier_host.cli.transform
    sys.exit(main())
