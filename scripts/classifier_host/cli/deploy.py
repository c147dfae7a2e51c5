"""Deploy a trained model.tar.gz on a serving image: SageMaker local mode here, a real-time or asynchronous
endpoint in the cloud.

    python scripts/deploy.py --local --model-data file://build/output/model.tar.gz [--image IMAGE] [--gpu]
        SageMaker local mode: the endpoint answers on http://localhost:8080 until Ctrl-C (or SIGTERM),
        then its container is removed.
    ... --local --model-data ... --query IMAGE|DIR ...
        deploy, classify those images (as scripts/query.py does) against the endpoint, tear down (make demo).
    python scripts/deploy.py [--training-job NAME | --model-data s3://.../model.tar.gz]
        [--instance-type ml.m5.xlarge] [--instance-count 1] [--autoscale MIN:MAX] [--invocations-per-instance N]
        [--data-capture] [--endpoint-name NAME] [--network-isolation]               (cloud)
    ... --async [--autoscale 0:MAX] [--backlog-per-instance N] [--async-max-payload-mb MB] [--async-timeout S]
        [--async-max-concurrent N] [--sns-success-topic ARN] [--sns-error-topic ARN]  (cloud, asynchronous)
    python scripts/deploy.py [--local] --model champion|VERSION|ARN ...
        a model of the registry (register.py) instead of --model-data: local mode looks it up in MLflow's
        registry; the cloud creates the model from the SageMaker model package and tags the endpoint with it.
    python scripts/deploy.py --endpoint NAME [--model ... | --model-data ...] [--rollout canary:10:10]
        [--max-latency-ms 1000] [--max-error-rate 1] [--termination-wait S] [--max-execution-timeout S]
        update NAME in place when it exists (blue/green: canary:PERCENT:MINUTES, linear:PERCENT:MINUTES or
        all-at-once[:MINUTES]; rolled back by SageMaker when one of its alarms fires), else deploy it (cloud)
    python scripts/deploy.py --rollback [NAME]       the config NAME served before its last update (cloud)
    python scripts/deploy.py --serverless [MEMORY_MB[:MAX_CONCURRENCY]] [--provisioned-concurrency N] ...
        a serverless endpoint of serve-cpu (default 3072:5): no instance billed while idle (cloud)
    python scripts/deploy.py --shadow NAME [--model ... | --model-data ...] [--duration HOURS]
        a candidate beside NAME's model as a shadow variant: it gets a copy of the traffic, production answers
    python scripts/deploy.py --shadow-report NAME | --shadow NAME --promote | --shadow NAME --stop
    python scripts/deploy.py --delete [NAME]

Cloud: the model defaults to the last training job train.py recorded; the image is a serving digest
`make push` recorded: serve-cpu on a CPU instance when the model has ONNX exports (its metadata.json, read
from S3), serve otherwise (classifier_host.images.serving); --image overrides. Waits until InService, prints
the endpoint name and records it for query.py and teardown.py. --delete removes the endpoint, its endpoint
config, model, scaling target and the wake-up alarm of an async endpoint that scales to zero, and of each
in-place update its config, model and rollback alarms, and its shadow tests.

Cloud only (SageMaker local mode has no UpdateEndpoint, no inference experiments, no serverless): --endpoint's
in-place update, --rollback, --shadow and --serverless. Locally, a new model means a new local endpoint.

--async: requests and answers go through S3 (s3://S3_BUCKET/S3_PREFIX/async/...), payloads up to 1 GB, up to
an hour per request, a queue in front of the instances; the container is told the larger payload and deadline
(SERVING_MAX_PAYLOAD_MB, SERVING_REQUEST_TIMEOUT_S; --env overrides). With --autoscale 0:MAX it scales to
zero instances when the queue is empty.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from functools import partial
from pathlib import Path

from .. import settings
from ..deployment import cloud, deletion, models, rollouts, serverless, shadow_tests
from ..sagemaker import endpoints
from ..settings import SettingsError
from . import errors


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


def registered_model_data(reference: str, registry_name: str) -> str:
    """The archive of a version in MLflow's registry (local mode serves local files)."""
    from ..registry import references

    resolved = references.local(reference, registry_name)
    print(f"registered model {registry_name} v{resolved.version} ({reference}): {resolved.model_data}", flush=True)
    return resolved.model_data


def deploy_local(args) -> int:
    from ..images import serving
    from ..sagemaker import local

    model_data = model_data_uri(args.model_data)
    image = args.image
    try:
        if not image:
            image, why = serving.local_choice(
                serving.local_metadata(Path(model_data.removeprefix("file://"))), args.gpu
            )
            print(f"serving image: {image} ({why}); --image overrides", flush=True)
        local.check_can_serve(image)
    except ValueError as err:
        return errors.fail(err, 2)
    print(f"deploying {model_data} on {image} (local mode)...", flush=True)
    start = time.monotonic()
    try:
        endpoint = local.deploy_local(image, model_data, gpu=args.gpu, env=dict(args.env))
    except Exception as err:  # local mode raises a bare RuntimeError when /ping never answers
        return errors.fail(f"the local endpoint did not come up: {err} (its container log is above)", 1)
    status = 0
    try:
        print(
            f"endpoint {endpoint.name} in service after {time.monotonic() - start:.0f}s: "
            f"{endpoint.url} (POST /invocations)",
            flush=True,
        )
        if args.query:
            status = query_local(endpoint.url, args.query)
        else:
            print(f"try: python scripts/query.py --url {endpoint.url} IMAGE...; Ctrl-C stops it", flush=True)
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
        return errors.fail(err, err.exit_code)
    return 0


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="SageMaker local mode (Docker on this machine)")
    parser.add_argument("--model-data", help="model.tar.gz: file://PATH or PATH (local), s3://... (cloud)")
    parser.add_argument(
        "--model",
        metavar="champion|VERSION|ARN",
        help="a registered model instead of --model-data (register.py): the champion, a version, or (cloud) a "
        "model package ARN",
    )
    parser.add_argument("--registry-name", default="image-classifier", help="registered model / package group")
    parser.add_argument(
        "--image",
        help="serving image (default: serve-cpu for a model with ONNX exports on a CPU "
        "instance, else serve; names from make print-images or build/images.json)",
    )
    parser.add_argument("--gpu", action="store_true", help="local_gpu instead of local")
    parser.add_argument(
        "--env",
        action="append",
        type=env_pair,
        default=[],
        metavar="NAME=VALUE",
        help="container environment, e.g. SERVING_MAX_BATCH_SIZE=16 (repeatable)",
    )
    parser.add_argument(
        "--query",
        nargs="+",
        metavar="IMAGE|DIR",
        help="local: classify these images once it is up (as query.py does), then tear down",
    )
    add_cloud_arguments(parser)
    args = parser.parse_args(argv)
    if args.local:
        cloud_only = next((flag for flag, dest in CLOUD_ONLY.items() if getattr(args, dest) is not None), None)
        if cloud_only:
            parser.error(
                f"{cloud_only} is cloud-only: SageMaker local mode cannot update an endpoint in place, run a shadow "
                "test or a serverless endpoint; locally a new model is a new endpoint (--local --model-data ...)"
            )
        if args.asynchronous:
            parser.error(
                "--async is for cloud endpoints: SageMaker local mode has no asynchronous inference "
                "(no InvokeEndpointAsync); try large requests locally with --env SERVING_MAX_PAYLOAD_MB=... "
                "--env SERVING_REQUEST_TIMEOUT_S=..."
            )
        if args.model and args.model_data:
            parser.error("give --model or --model-data, not both")
        if args.model:
            try:
                args.model_data = registered_model_data(args.model, args.registry_name)
            except ValueError as err:  # RegistryError: no champion, unknown version, not ours
                return errors.fail(err, 2)
        if not args.model_data:
            parser.error("--local needs --model-data or --model")
        return deploy_local(args)
    return run_cloud(args)


# ---- cloud ----

INVOCATIONS_PER_INSTANCE = 100
# The options of asynchronous endpoints and their defaults. argparse's default is None so that one given
# without --async is refused rather than silently ignored.
ASYNC_DEFAULTS = {
    "async_max_concurrent": 4,
    "async_max_payload_mb": 100,
    # Under InvokeEndpointAsync's own deadline, so the container's error, not a bare timeout, is what lands
    # in the failure object.
    "async_timeout": endpoints.ASYNC_INVOCATION_TIMEOUT_S - 10,
    "backlog_per_instance": 5,
    "sns_success_topic": None,
    "sns_error_topic": None,
}
# (lowest, highest) accepted for the numeric ones: SageMaker's limits (1000 concurrent invocations, the
# ones in endpoints.py); a backlog target only needs to be positive.
ASYNC_RANGES = {
    "async_max_concurrent": (1, 1000),
    "async_max_payload_mb": (1, endpoints.ASYNC_MAX_PAYLOAD_MB),
    "async_timeout": (1, endpoints.ASYNC_MAX_INVOCATION_TIMEOUT_S),
    "backlog_per_instance": (1, None),
}
# The pattern of the service model's SuccessTopic / ErrorTopic.
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$")


def add_cloud_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cloud (without --local; AWS settings from the environment)")
    group.add_argument("--training-job", help="deploy this training job's model (default: the last one train.py ran)")
    group.add_argument(
        "--instance-type", help="endpoint instance (default ml.m5.xlarge; an update: the one the endpoint runs on)"
    )
    group.add_argument(
        "--instance-count", type=int, help="instances to start with (default 1; an update: as many as it runs)"
    )
    group.add_argument(
        "--autoscale",
        metavar="MIN:MAX",
        help="scale between MIN and MAX instances on invocations (with --async: on the queue, and MIN may be 0)",
    )
    group.add_argument(
        "--invocations-per-instance",
        type=int,
        help=f"with --autoscale: target invocations per instance per minute (default "
        f"{INVOCATIONS_PER_INSTANCE}; real-time endpoints)",
    )
    group.add_argument(
        "--data-capture", action="store_true", help="capture requests and responses to s3://BUCKET/PREFIX/data-capture"
    )
    group.add_argument(
        "--endpoint-name", help="a new endpoint's name (default: image-classifier-<timestamp>); --endpoint updates"
    )
    group.add_argument(
        "--delete",
        nargs="?",
        const="",
        metavar="NAME",
        help="delete the endpoint NAME (default: the recorded one), its config, model, autoscaling and alarm",
    )
    group.add_argument("--network-isolation", action="store_true", help="the model's container gets no network access")
    add_rollout_arguments(parser)
    add_shadow_arguments(parser)
    group = parser.add_argument_group("serverless endpoint (cloud)")
    group.add_argument(
        "--serverless",
        nargs="?",
        const=serverless.DEFAULT,
        metavar="MEMORY_MB[:MAX_CONCURRENCY]",
        help=f"a serverless endpoint of serve-cpu (default {serverless.DEFAULT}; memory 1024-6144 in 1024 steps, "
        "concurrency 1-200): billed per request, cold starts after idle; the container gets 4 MB payloads, "
        "one worker; no GPU, VPC, network isolation, data capture, async or autoscaling",
    )
    group.add_argument(
        "--provisioned-concurrency", type=int, metavar="N", help="with --serverless: N containers kept warm (billed)"
    )
    add_async_arguments(parser)


# Options of cloud-only features, refused with --local (flag -> argparse dest; None when not given).
CLOUD_ONLY = {
    "--endpoint": "endpoint",
    "--rollback": "rollback",
    "--serverless": "serverless",
    "--shadow": "shadow",
    "--shadow-report": "shadow_report",
}
# The in-place update's options: their defaults, applied only with --endpoint (given without it, refused).
ROLLOUT_DEFAULTS = {
    "rollout": "canary:10:10",
    "max_latency_ms": 1000.0,
    "max_error_rate": 1.0,
    "termination_wait": 0,
    "max_execution_timeout": None,
}


def add_rollout_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "in-place update of a live endpoint (cloud; blue/green with SageMaker's deployment guardrails)"
    )
    group.add_argument(
        "--endpoint",
        metavar="NAME",
        help="deploy to NAME: update it in place when it exists (the same variant, a new model and config "
        "NAME--TIMESTAMP; the instances it runs on unless --instance-type/--instance-count), else create it",
    )
    group.add_argument(
        "--rollout",
        metavar="SPEC",
        help="canary:PERCENT:MINUTES (default canary:10:10: 10%% of the capacity, 10 min of baking, then the rest), "
        "linear:PERCENT:MINUTES (PERCENT more every MINUTES) or all-at-once[:MINUTES]",
    )
    group.add_argument(
        "--max-latency-ms",
        type=float,
        metavar="MS",
        help="roll back when the p99 ModelLatency stays above MS for 2 minutes (default 1000)",
    )
    group.add_argument(
        "--max-error-rate",
        type=float,
        metavar="PERCENT",
        help="roll back when 5XX answers, or the model container's own failures, stay above PERCENT of the "
        "invocations for 2 minutes (default 1)",
    )
    group.add_argument(
        "--termination-wait",
        type=int,
        metavar="SECONDS",
        help="keep the old fleet this long after the shift before terminating it (0-3600, default 0)",
    )
    group.add_argument(
        "--max-execution-timeout",
        type=int,
        metavar="SECONDS",
        help="SageMaker rolls back an update still running after this (600-28800; default: the rollout's "
        "baking + termination wait + 30 min)",
    )
    group.add_argument(
        "--rollback",
        nargs="?",
        const="",
        metavar="NAME",
        help="return NAME (default: the recorded endpoint) to the config it served before its last update",
    )


def add_shadow_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "shadow tests (cloud; an inference experiment: production answers, the shadow gets a copy of the traffic)"
    )
    group.add_argument(
        "--shadow",
        metavar="NAME",
        help="run the model given (--model / --model-data / --training-job) as a shadow variant of endpoint NAME",
    )
    group.add_argument(
        "--duration", type=float, metavar="HOURS", help="with --shadow: how long it runs (default 24, at most 720)"
    )
    group.add_argument(
        "--shadow-percent",
        type=int,
        metavar="PERCENT",
        help="with --shadow: share of the requests copied to the shadow (default 100)",
    )
    group.add_argument(
        "--shadow-report",
        metavar="NAME",
        help="per variant: invocations, 5XX, ModelLatency p50/p99, and top-1 agreement on the same requests",
    )
    group.add_argument("--promote", action="store_true", help="with --shadow NAME: the shadow becomes production")
    group.add_argument("--stop", action="store_true", help="with --shadow NAME: end the experiment, production stays")


def add_async_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "asynchronous endpoint (cloud, with --async; needs S3_BUCKET: requests and answers go through "
        f"s3://BUCKET/PREFIX/{settings.ASYNC_PREFIX}/)"
    )
    group.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="an asynchronous endpoint: a queue, payloads up to 1 GB, up to an hour per request, "
        "scale to zero (query.py detects it)",
    )
    group.add_argument(
        "--async-max-concurrent",
        type=int,
        metavar="N",
        help=f"requests SageMaker hands one instance at once (default {ASYNC_DEFAULTS['async_max_concurrent']})",
    )
    group.add_argument(
        "--async-max-payload-mb",
        type=int,
        metavar="MB",
        help="largest request the container accepts, SERVING_MAX_PAYLOAD_MB (default "
        f"{ASYNC_DEFAULTS['async_max_payload_mb']}, at most {endpoints.ASYNC_MAX_PAYLOAD_MB})",
    )
    group.add_argument(
        "--async-timeout",
        type=int,
        metavar="SECONDS",
        help="how long the container may work on one request, SERVING_REQUEST_TIMEOUT_S (default "
        f"{ASYNC_DEFAULTS['async_timeout']}: under InvokeEndpointAsync's default of "
        f"{endpoints.ASYNC_INVOCATION_TIMEOUT_S} s; at most "
        f"{endpoints.ASYNC_MAX_INVOCATION_TIMEOUT_S}; keep it under query.py's --async-timeout)",
    )
    group.add_argument(
        "--backlog-per-instance",
        type=int,
        metavar="N",
        help="with --autoscale: target queued requests per instance "
        f"(default {ASYNC_DEFAULTS['backlog_per_instance']})",
    )
    for outcome in ("success", "error"):
        group.add_argument(
            f"--sns-{outcome}-topic",
            metavar="ARN",
            help=f"SNS topic notified of each {outcome} (named image-classifier-*: the execution "
            "role may publish only to those)",
        )


def check_async_arguments(args: argparse.Namespace) -> None:
    """Fill in the defaults of the options that apply (async or real-time); SettingsError for an option
    that does not apply or a value out of range."""
    if not args.asynchronous:
        given = [name for name in ASYNC_DEFAULTS if getattr(args, name) is not None]
        if given:
            raise SettingsError(f"{flag(given[0])} applies to asynchronous endpoints only: add --async")
        if args.invocations_per_instance is None:
            args.invocations_per_instance = INVOCATIONS_PER_INSTANCE
        return
    if args.invocations_per_instance is not None:
        raise SettingsError(
            "--invocations-per-instance does not apply to --async: an async endpoint scales on its "
            "queue, --backlog-per-instance"
        )
    for name, default in ASYNC_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    for name, (low, high) in ASYNC_RANGES.items():
        value = getattr(args, name)
        if value < low or high is not None and value > high:
            expected = f"{low} to {high}" if high is not None else f"at least {low}"
            raise SettingsError(f"{flag(name)} {value}: expected {expected}")
    for name in ("sns_success_topic", "sns_error_topic"):
        topic = getattr(args, name)
        if topic and not SNS_TOPIC_ARN.match(topic):
            raise SettingsError(
                f"{flag(name)} {topic!r} is not an SNS topic ARN "
                "(expected arn:aws:sns:REGION:ACCOUNT:image-classifier-NAME)"
            )


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def container_environment(args: argparse.Namespace) -> dict[str, str]:
    """The model's environment: an async endpoint's container must accept its larger requests and longer
    deadline (the container refuses more than SageMaker's real-time 6 MB / 60 s otherwise); --env wins."""
    limits = {}
    if args.asynchronous:
        limits = {
            "SERVING_MAX_PAYLOAD_MB": str(args.async_max_payload_mb),
            "SERVING_REQUEST_TIMEOUT_S": str(args.async_timeout),
        }
    return {**limits, **dict(args.env)}


def parse_autoscale(text: str | None, asynchronous: bool = False) -> tuple[int, int] | None:
    """MIN:MAX; MIN 0 (scale to zero) only for an async endpoint: a real-time one would refuse every
    request while it has no instance."""
    if not text:
        return None
    low, sep, high = text.partition(":")
    try:
        bounds = int(low), int(high)
    except ValueError:
        bounds = None
    lowest = 0 if asynchronous else 1
    if not sep or bounds is None or not lowest <= bounds[0] <= bounds[1] or bounds[1] < 1:
        example = "0:4" if asynchronous else "1:4"
        raise SettingsError(
            f"--autoscale {text!r}: expected MIN:MAX with {lowest} <= MIN <= MAX and MAX >= 1, "
            f"e.g. {example}" + ("" if asynchronous else " (MIN 0, scale to zero, needs --async)")
        )
    return bounds


def run_cloud(args: argparse.Namespace) -> int:
    if args.delete is not None:
        return delete(args.delete or None)
    if args.rollback is not None:
        return errors.run(lambda: rollouts.rollback(settings.load(), args.rollback or None, _say), errors.DEPLOYMENT)
    if args.shadow_report:
        return errors.run(
            lambda: shadow_tests.shadow_report(settings.load(), args.shadow_report, _say), errors.DEPLOYMENT
        )
    if args.shadow and (args.promote or args.stop):
        if args.promote and args.stop:
            return errors.fail("give --promote or --stop, not both", 2)
        return errors.run(
            lambda: shadow_tests.finish_shadow(settings.load(), args.shadow, args.promote, _say), errors.DEPLOYMENT
        )
    try:
        needs_bucket = ("S3_BUCKET",) if args.data_capture or args.asynchronous or args.shadow else ()
        cfg = settings.load("SAGEMAKER_ROLE_ARN", *needs_bucket)
        check_async_arguments(args)
        rollout, thresholds = check_rollout_arguments(args)
        bounds = parse_autoscale(args.autoscale, args.asynchronous)
        if args.provisioned_concurrency is not None and args.serverless is None:
            raise SettingsError("--provisioned-concurrency applies to --serverless only")
        if args.promote or args.stop:
            raise SettingsError(f"{'--promote' if args.promote else '--stop'} needs --shadow NAME")
        given = [flag(d) for d in ("duration", "shadow_percent") if getattr(args, d) is not None]
        if given and not args.shadow:
            raise SettingsError(f"{given[0]} applies to --shadow only")
        if args.endpoint and args.endpoint_name:
            raise SettingsError("give --endpoint (create or update) or --endpoint-name (create), not both")
        plan = serverless.Serverless.parse(args.serverless, args.provisioned_concurrency) if args.serverless else None
    except SettingsError as err:
        return errors.fail(err, 2)
    choice_args = {
        "model_data": args.model_data,
        "training_job": args.training_job,
        "model": args.model,
        "registry_name": args.registry_name,
        "image": args.image,
    }
    if args.shadow:
        request = shadow_tests.ShadowRequest(
            endpoint=args.shadow,
            choice=models.ModelChoice(**choice_args),
            instance_type=args.instance_type,
            instance_count=args.instance_count or 1,
            hours=args.duration if args.duration is not None else 24.0,
            sampling_percentage=args.shadow_percent if args.shadow_percent is not None else 100,
            environment=dict(args.env),
        )
        return errors.run(lambda: shadow_tests.start_shadow(cfg, request, _say), errors.DEPLOYMENT)
    target = args.backlog_per_instance if args.asynchronous else args.invocations_per_instance
    request = cloud.CloudDeployment(
        **choice_args,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        endpoint_name=args.endpoint or args.endpoint_name,
        network_isolation=args.network_isolation,
        data_capture=args.data_capture,
        environment=container_environment(args),
        scaling=cloud.Scaling(*bounds, target) if bounds else None,
        asynchronous=args.asynchronous,
        async_max_concurrent=args.async_max_concurrent or ASYNC_DEFAULTS["async_max_concurrent"],
        sns_success_topic=args.sns_success_topic,
        sns_error_topic=args.sns_error_topic,
        serverless=plan,
    )
    if args.endpoint:
        return errors.run(
            partial(rollouts.deploy_or_update, cfg, request, rollout, thresholds, _say), errors.DEPLOYMENT
        )
    return errors.run(partial(cloud.deploy_cloud, cfg, request, _say), errors.DEPLOYMENT)


def check_rollout_arguments(args: argparse.Namespace):
    """(Rollout, Thresholds) of an in-place update; SettingsError for an update option given without
    --endpoint or a value out of range."""
    from ..sagemaker import rollout as guardrails

    given = [name for name in ROLLOUT_DEFAULTS if getattr(args, name) is not None]
    if given and not args.endpoint:
        raise SettingsError(f"{flag(given[0])} applies to in-place updates only: add --endpoint NAME")
    values = {
        name: default if getattr(args, name) is None else getattr(args, name)
        for name, default in ROLLOUT_DEFAULTS.items()
    }
    if values["max_latency_ms"] <= 0 or not 0 < values["max_error_rate"] <= 100:
        raise SettingsError("--max-latency-ms must be positive and --max-error-rate a percentage above 0")
    try:
        rollout = guardrails.Rollout.parse(
            values["rollout"], values["termination_wait"], values["max_execution_timeout"]
        )
    except ValueError as err:
        raise SettingsError(str(err)) from None
    return rollout, guardrails.Thresholds(values["max_latency_ms"], values["max_error_rate"] / 100)


def _say(line: str) -> None:
    print(line, flush=True)


def delete(name: str | None) -> int:
    return errors.run(lambda: deletion.delete_endpoint(name), errors.DELETION)


if __name__ == "__main__":  # python -m classifier_host.cli.deploy
    sys.exit(main())
