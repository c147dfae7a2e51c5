"""Classify every image under a folder or an S3 prefix with a trained model, without an endpoint.

    python scripts/transform.py --local --model-data build/output/model.tar.gz --input DIR --output DIR
        [--image IMAGE] [--gpu] [--max-payload-mb 6]                       (SageMaker local mode)
    python scripts/transform.py --input s3://BUCKET/PREFIX --output DIR [--model-data s3://... | --training-job NAME]
        [--instance-type ml.m5.xlarge] [--instance-count 1] [--max-concurrent 4] [--max-payload-mb 6]
        [--network-isolation]                                              (SageMaker Batch Transform)
    ... --model champion|VERSION|ARN instead of --model-data: a model of the registry (register.py)

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
import dataclasses
import sys
from pathlib import Path

from ..settings import SettingsError
from ..transform import jobs
from . import errors

# TransformRequest's fields are the options of the same names.
REQUEST_FIELDS = [field.name for field in dataclasses.fields(jobs.TransformRequest)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="SageMaker local mode (Docker on this machine)")
    parser.add_argument("--input", required=True, help="folder (local) or s3:// prefix (cloud) of images")
    parser.add_argument("--output", type=Path, required=True, help="folder for predictions.jsonl and summary.json")
    parser.add_argument("--model-data", help="model.tar.gz: a path (local) or s3:// URI (cloud)")
    parser.add_argument(
        "--model",
        metavar="champion|VERSION|ARN",
        help="a registered model instead of --model-data (register.py): the champion, a version, or (cloud) a "
        "model package ARN",
    )
    parser.add_argument("--registry-name", default="image-classifier", help="registered model / package group")
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
        request = jobs.TransformRequest(**{name: getattr(args, name) for name in REQUEST_FIELDS})
        summary = jobs.run_local(request) if args.local else jobs.run_cloud(request)
    except (TransformError, SettingsError) as err:
        return errors.fail(err, 2)
    except jobs.TransformJobFailed as err:
        return errors.fail(err, 1)
    return report(summary, args.output)


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


if __name__ == "__main__":  # python -m classifier_host.cli.transform
    sys.exit(main())
