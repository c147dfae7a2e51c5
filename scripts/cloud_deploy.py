"""The cloud half of scripts/deploy.py: a SageMaker real-time endpoint on the pushed serving image.

    python scripts/deploy.py [--training-job NAME | --model-data s3://.../model.tar.gz]
        [--instance-type ml.m5.xlarge] [--instance-count 1] [--autoscale MIN:MAX] [--invocations-per-instance N]
        [--data-capture] [--endpoint-name NAME]
    python scripts/deploy.py --delete [NAME]

The model defaults to the last training job train.py recorded; the image is a serving digest `make push`
recorded: serve-cpu on a CPU instance when the model has ONNX exports (its metadata.json, read from S3),
serve otherwise (scripts/serving_image.py); --image overrides. Waits until InService, prints the endpoint name and records it for query.py and teardown.py.
--delete removes the endpoint, its endpoint config, model and scaling target.
"""
from __future__ import annotations

import argparse
import sys

import serving_image
import settings
from settings import SettingsError, cloud_image


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cloud (without --local; AWS settings from the environment)")
    group.add_argument("--training-job", help="deploy this training job's model (default: the last one train.py ran)")
    group.add_argument("--instance-type", default="ml.m5.xlarge", help="endpoint instance (default ml.m5.xlarge)")
    group.add_argument("--instance-count", type=int, default=1, help="instances to start with (default 1)")
    group.add_argument("--autoscale", metavar="MIN:MAX", help="scale between MIN and MAX instances on invocations")
    group.add_argument("--invocations-per-instance", type=int, default=100,
                       help="with --autoscale: target invocations per instance per minute (default 100)")
    group.add_argument("--data-capture", action="store_true",
                       help="capture requests and responses to s3://BUCKET/PREFIX/data-capture")
    group.add_argument("--endpoint-name", help="default: image-classifier-<timestamp>")
    group.add_argument("--delete", nargs="?", const="", metavar="NAME",
                       help="delete the endpoint NAME (default: the recorded one), its config and model")


def parse_autoscale(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    low, sep, high = text.partition(":")
    try:
        bounds = int(low), int(high)
    except ValueError:
        bounds = None
    if not sep or bounds is None or not 1 <= bounds[0] <= bounds[1]:
        raise SettingsError(f"--autoscale {text!r}: expected MIN:MAX with 1 <= MIN <= MAX, e.g. 1:4")
    return bounds


def sessions(region: str, boto_session=None):
    """(boto3 session, SageMaker session) for the region; imported late, after the settings checks,
    so a missing setting fails before the SDK loads."""
    import boto3

    import sagemaker_api

    boto_session = boto_session or boto3.Session(region_name=region)
    return boto_session, sagemaker_api.cloud_session(region, boto_session=boto_session)


def run(args: argparse.Namespace, boto_session=None) -> int:
    if args.delete is not None:
        return delete(args.delete or None, boto_session)
    try:
        needs_bucket = ("S3_BUCKET",) if args.data_capture else ()
        cfg = settings.load("SAGEMAKER_ROLE_ARN", *needs_bucket)
        autoscale = parse_autoscale(args.autoscale)
        image = cloud_image(args.image, serving_image.SERVE) if args.image else None
        job = None
        if args.model_data:
            if not args.model_data.startswith("s3://"):
                raise SettingsError(f"--model-data {args.model_data}: the cloud needs an s3:// URI of a model.tar.gz")
        else:
            job = args.training_job or settings.recorded("training-job")
            if not job:
                raise SettingsError("no model: give --training-job NAME or --model-data s3://..., "
                                    "or train first (make train MODE=cloud records the job)")
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    boto_session, session = sessions(cfg.region, boto_session)
    import sagemaker_api  # already loaded by sessions()
    try:
        model_data = args.model_data or sagemaker_api.training_job_model(session, job)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if image is None:
        try:
            role, why = serving_image.image_role(serving_image.s3_metadata(boto_session.client("s3"), model_data),
                                                 args.instance_type)
            image = cloud_image(None, role)
        except (ValueError, SettingsError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"serving image: {role} ({why})")
    name = args.endpoint_name or sagemaker_api.new_job_name()
    capture = cfg.s3_uri("data-capture") if args.data_capture else None
    print(f"deploying {model_data} on {args.instance_count} x {args.instance_type} as endpoint {name} ({image}); "
          "this takes 5-10 minutes...", flush=True)
    try:
        sagemaker_api.deploy_cloud(session, image, model_data, cfg.role_arn, name, instance_type=args.instance_type,
                                   instance_count=args.instance_count, data_capture_s3=capture,
                                   kms_key_id=cfg.kms_key_id, vpc_config=cfg.vpc_config)
    except Exception as err:  # the SDK raises UnexpectedStatusException with the endpoint's FailureReason
        print(f"error: endpoint {name} did not come up: {err}", file=sys.stderr)
        print(f"clean up with: python scripts/deploy.py --delete {name}", file=sys.stderr)
        return 1
    settings.record("endpoint", name)
    if autoscale:
        from botocore.exceptions import ClientError

        try:
            sagemaker_api.enable_autoscaling(boto_session.client("application-autoscaling"), name, *autoscale,
                                             args.invocations_per_instance)
        except ClientError as err:  # the endpoint is up and recorded: say so, and how to retry or remove it
            print(f"error: endpoint {name} is InService but its autoscaling could not be set: "
                  f"{err.response['Error'].get('Code')}: {err.response['Error'].get('Message')} (the role needs "
                  "application-autoscaling permissions, iam/operator-policy.json); it runs at "
                  f"{args.instance_count} instance(s). Remove it with: python scripts/deploy.py --delete {name}",
                  file=sys.stderr)
            return 1
        print(f"autoscaling {autoscale[0]}-{autoscale[1]} instances at {args.invocations_per_instance} "
              "invocations per instance per minute")
    if capture:
        print(f"data capture: {capture}")
    print(f"endpoint {name} is InService (recorded for query.py and teardown.py)")
    print(f"try: python scripts/query.py --endpoint {name} IMAGE...")
    return 0


def delete(name: str | None, boto_session=None) -> int:
    try:
        cfg = settings.load()
        name = name or settings.recorded("endpoint")
        if not name:
            raise SettingsError("no endpoint recorded in build/cloud/endpoint.txt: give its name, --delete NAME")
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    boto_session, session = sessions(cfg.region, boto_session)
    import sagemaker_api  # already loaded by sessions()
    try:
        deleted = sagemaker_api.delete_cloud_endpoint(session, name, boto_session.client("application-autoscaling"))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        if settings.recorded("endpoint") == name:
            settings.forget("endpoint")
        return 1
    for what in deleted:
        print(f"deleted {what}")
    if settings.recorded("endpoint") == name:
        settings.forget("endpoint")
    return 0
