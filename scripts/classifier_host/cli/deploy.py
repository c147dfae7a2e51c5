"""Deploy a trained model.tar.gz on a serving image: SageMaker local mode here, a real-time endpoint in the cloud.

    python scripts/deploy.py --local --model-data file://build/output/model.tar.gz [--image IMAGE] [--gpu]
        SageMaker local mode: the endpoint answers on http://localhost:8080 until Ctrl-C (or SIGTERM),
        then its container is removed.
    ... --local --model-data ... --query IMAGE|DIR ...
        deploy, classify those images (as scripts/query.py does) against the endpoint, tear down (make demo).
    python scripts/deploy.py [--training-job NAME | --model-data s3://.../model.tar.gz]
        [--instance-type ml.m5.xlarge] [--instance-count 1] [--autoscale MIN:MAX] [--invocations-per-instance N]
        [--data-capture] [--endpoint-name NAME] [--network-isolation]               (cloud)
    python scripts/deploy.py --delete [NAME]

Cloud: the model defaults to the last training job train.py recorded; the image is a serving digest
`make push` recorded: serve-cpu on a CPU instance when the model has ONNX exports (its metadata.json, read
from S3), serve otherwise (classifier_host.images.serving); --image overrides. Waits until InService, prints
the endpoint name and records it for query.py and teardown.py. --delete removes the endpoint, its endpoint
config, model and scaling target.
"""
from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .. import records, settings
from ..settings import SettingsError


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def model_data_uri(value: str) -> str:
    """A path or file:// URI of an existing model.tar.gz, as an absolute file:// URI."""
    path = Path(value.removeprefix("file://")).expanduser().resolve()
    if not path.is_file():
        raise SystemExit(f"error: --model-data {value}: no such file (train first: make demo / make train)")
    return f"file://{path}"


def _interrupt(*_):
    raise KeyboardInterrupt


def wait_for_signal() -> None:
    """Block until Ctrl-C or SIGTERM (kill, CI); the caller then tears the endpoint down."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping the endpoint...", flush=True)


def deploy_local(args) -> int:
    from ..images import serving
    from ..images.names import local_image
    from ..sagemaker import local

    model_data = model_data_uri(args.model_data)
    image = args.image
    if not image:
        try:
            metadata = serving.local_metadata(Path(model_data.removeprefix("file://")))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        role, why = serving.image_role(metadata, "local_gpu" if args.gpu else "local")
        image = local_image(role)
        print(f"serving image: {image} ({why}); --image overrides", flush=True)
    if not image_exists(image):
        print(f"error: serving image {image} is not built: run `make build`", file=sys.stderr)
        return 2
    port = int(local.LOCAL_ENDPOINT_URL.rsplit(":", 1)[1])
    if port_in_use(port):
        print(f"error: port {port} is already in use; local mode serves every endpoint there. Stop the other "
              "endpoint (Ctrl-C in its deploy.py, or `docker ps` and `docker stop`) and retry", file=sys.stderr)
        return 2
    print(f"deploying {model_data} on {image} (local mode)...", flush=True)
    start = time.monotonic()
    try:
        endpoint = local.deploy_local(image, model_data, gpu=args.gpu, env=dict(args.env))
    except Exception as err:  # local mode raises a bare RuntimeError when /ping never answers
        print(f"error: the local endpoint did not come up: {err} (its container log is above)", file=sys.stderr)
        return 1
    status = 0
    try:
        print(f"endpoint {endpoint.name} in service after {time.monotonic() - start:.0f}s: "
              f"{endpoint.url} (POST /invocations)", flush=True)
        if args.query:
            status = query_local(endpoint.url, args.query)
        else:
            print(f"try: python scripts/query.py --url {endpoint.url} IMAGE...; "
                  "Ctrl-C stops it", flush=True)
            wait_for_signal()
    finally:
        local.delete_local(endpoint)
        print("endpoint deleted", flush=True)
    return status


def query_local(url: str, sources: list[str]) -> int:
    """Classify `sources` with the endpoint at `url` and print a table per image; the exit status."""
    from ..client import QueryError, format_table, invoke_url, read_source

    try:
        for image in [image for source in sources for image in read_source(source)]:
            print(format_table(image.source, invoke_url(url, image, top_k=5)["predictions"]), flush=True)
    except QueryError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="SageMaker local mode (Docker on this machine)")
    parser.add_argument("--model-data", help="model.tar.gz: file://PATH or PATH (local, required), s3://... (cloud)")
    parser.add_argument("--image", help="serving image (default: serve-cpu for a model with ONNX exports on a CPU "
                                        "instance, else serve; names from make print-images or build/images.json)")
    parser.add_argument("--gpu", action="store_true", help="local_gpu instead of local")
    parser.add_argument("--env", action="append", type=env_pair, default=[], metavar="NAME=VALUE",
                        help="container environment, e.g. SERVING_MAX_BATCH_SIZE=16 (repeatable)")
    parser.add_argument("--query", nargs="+", metavar="IMAGE|DIR",
                        help="local: classify these images once it is up (as query.py does), then tear down")
    add_cloud_arguments(parser)
    args = parser.parse_args(argv)
    if args.local:
        if not args.model_data:
            parser.error("--local needs --model-data")
        return deploy_local(args)
    return run_cloud(args)


# ---- cloud ----

def add_cloud_arguments(parser: argparse.ArgumentParser) -> None:
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
    group.add_argument("--network-isolation", action="store_true", help="the model's container gets no network access")


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


def run_cloud(args: argparse.Namespace) -> int:
    if args.delete is not None:
        return delete(args.delete or None)
    try:
        needs_bucket = ("S3_BUCKET",) if args.data_capture else ()
        cfg = settings.load("SAGEMAKER_ROLE_ARN", *needs_bucket)
        autoscale = parse_autoscale(args.autoscale)
        image = records.cloud_image(args.image, "serve") if args.image else None
        job = None
        if args.model_data:
            if not args.model_data.startswith("s3://"):
                raise SettingsError(f"--model-data {args.model_data}: the cloud needs an s3:// URI of a model.tar.gz")
        else:
            job = args.training_job or records.recorded("training-job")
            if not job:
                raise SettingsError("no model: give --training-job NAME or --model-data s3://..., "
                                    "or train first (make train MODE=cloud records the job)")
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # The SDK takes over a second to import: only once the settings are known good.
    from ..images import serving
    from ..sagemaker import endpoints, session, training

    boto = session.boto_session(cfg.region)
    try:
        model_data = args.model_data or training.model_of(boto, job)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if image is None:
        try:
            role, why = serving.image_role(serving.s3_metadata(boto.client("s3"), model_data), args.instance_type)
            image = records.cloud_image(None, role)
        except (ValueError, SettingsError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"serving image: {role} ({why})")
    name = args.endpoint_name or session.new_job_name()
    capture = cfg.s3_uri("data-capture") if args.data_capture else None
    print(f"deploying {model_data} on {args.instance_count} x {args.instance_type} as endpoint {name} ({image}); "
          "this takes 5-10 minutes...", flush=True)
    try:
        endpoints.deploy(boto, image, model_data, cfg.role_arn, name, instance_type=args.instance_type,
                         instance_count=args.instance_count, data_capture_s3=capture, kms_key_id=cfg.kms_key_id,
                         vpc_config=cfg.vpc_config, network_isolation=args.network_isolation,
                         environment=dict(args.env))
    except Exception as err:  # FailedStatusError (the endpoint's FailureReason), a refused request, a timeout
        print(f"error: endpoint {name} did not come up: {err}", file=sys.stderr)
        print(f"clean up with: python scripts/deploy.py --delete {name}", file=sys.stderr)
        return 1
    records.record("endpoint", name)
    if autoscale:
        from botocore.exceptions import ClientError

        try:
            endpoints.enable_autoscaling(boto.client("application-autoscaling"), name, *autoscale,
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


def delete(name: str | None) -> int:
    """Delete the endpoint NAME (default: the recorded one) and what belongs to it. The record is forgotten
    only once nothing of it is left, so a deletion stopped half-way is finished by the next one."""
    try:
        cfg = settings.load()
        name = name or records.recorded("endpoint")
        if not name:
            raise SettingsError("no endpoint recorded in build/cloud/endpoint.txt: give its name, --delete NAME")
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import endpoints, session

    boto = session.boto_session(cfg.region)
    try:
        done = endpoints.delete(boto, name, boto.client("application-autoscaling"))
    except (ClientError, BotoCoreError) as err:
        print(f"error: deleting endpoint {name} stopped: {err}; what is left stays recorded, run the same "
              "command again", file=sys.stderr)
        return 1
    for what in done.deleted:
        print(f"deleted {what}")
    if records.recorded("endpoint") == name:
        records.forget("endpoint")
    if not done.found:
        print(f"error: there is no endpoint {name} (nor its config or model) in {cfg.region}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # python -m classifier_host.cli.deploy
    sys.exit(main())
