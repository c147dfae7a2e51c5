"""A new cloud endpoint: model, image, endpoint (real-time, asynchronous or serverless), autoscaling, and the
record query.py and teardown.py read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .. import records, settings
from . import DeploymentError, models
from .models import ModelChoice
from .serverless import SERVERLESS_INSTANCE, Serverless, serverless_environment

DEFAULT_INSTANCE = "ml.m5.xlarge"


@dataclass(frozen=True)
class Scaling:
    """Autoscaling between low and high instances: on invocations per instance per minute (real-time) or
    on queued requests per instance (asynchronous; low may be 0)."""

    low: int
    high: int
    target: int


@dataclass(frozen=True)
class CloudDeployment:
    """What deploy.py asks for in the cloud, its options checked (deploy.py's --help says what each does)."""

    model_data: str | None = None  # s3://.../model.tar.gz; None: the model of training_job, or of the last job
    training_job: str | None = None
    model: str | None = None  # a registered model instead: champion, a version, or a model package ARN
    registry_name: str = "image-classifier"
    image: str | None = None  # None: the serving image the model needs on instance_type (images/serving.py)
    instance_type: str | None = None  # None: DEFAULT_INSTANCE (an update: the instances the endpoint runs on)
    instance_count: int | None = None  # None: 1 (an update: as many as the endpoint runs)
    endpoint_name: str | None = None
    network_isolation: bool = False
    data_capture: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    scaling: Scaling | None = None
    # An asynchronous endpoint: its options (output and failure locations come from the settings).
    asynchronous: bool = False
    async_max_concurrent: int = 4
    sns_success_topic: str | None = None
    sns_error_topic: str | None = None
    serverless: Serverless | None = None

    @property
    def choice(self) -> ModelChoice:
        return ModelChoice(self.model_data, self.training_job, self.model, self.registry_name, self.image)


def deploy_cloud(cfg: settings.Settings, request: CloudDeployment, say: Callable[[str], object] = print) -> str:
    """Deploy `request` with the AWS settings `cfg` (settings.load, with S3_BUCKET for capture and async),
    wait until InService, record it, set its autoscaling; the endpoint's name."""
    request.choice.check()
    if request.serverless:
        request.serverless.check(request, cfg)
    request = replace(
        request, instance_type=request.instance_type or DEFAULT_INSTANCE, instance_count=request.instance_count or 1
    )
    # The SDK takes over a second to import: only once the settings are known good.
    from ..sagemaker import endpoints, session
    from ..sagemaker.access import Access

    boto = session.boto_session(cfg.region)
    served = models.resolve(
        boto,
        cfg,
        request.choice,
        SERVERLESS_INSTANCE if request.serverless else request.instance_type,
        say,
        serverless=bool(request.serverless),
    )
    name = request.endpoint_name or session.new_job_name()
    capture = cfg.s3_uri("data-capture") if request.data_capture else None
    async_options = None
    if request.asynchronous:
        async_options = endpoints.AsyncOptions(
            output_s3=cfg.s3_uri(settings.ASYNC_OUTPUT),
            failure_s3=cfg.s3_uri(settings.ASYNC_FAILURES),
            max_concurrent=request.async_max_concurrent,
            success_topic=request.sns_success_topic,
            error_topic=request.sns_error_topic,
        )
    environment = request.environment
    if request.serverless:
        kind, where = "serverless endpoint", request.serverless.describe()
        environment = {**serverless_environment(), **environment}
    else:
        kind = "async endpoint" if request.asynchronous else "endpoint"
        where = f"{request.instance_count} x {request.instance_type}"
    say(f"deploying {served.model_data} on {where} as {kind} {name} ({served.label}); this takes 5-10 minutes...")
    try:
        endpoints.deploy(
            boto,
            served.image,
            served.model_data,
            Access.of(cfg, request.network_isolation),
            name,
            instance_type=request.instance_type,
            instance_count=request.instance_count,
            data_capture_s3=capture,
            environment=environment,
            async_options=async_options,
            package=served.package,
            tags=served.tags,
            serverless=request.serverless.config() if request.serverless else None,
        )
    except Exception as err:  # FailedStatusError (the endpoint's FailureReason), a refused request, a timeout
        raise DeploymentError(
            f"endpoint {name} did not come up: {err}\nclean up with: python scripts/deploy.py --delete {name}"
        ) from err
    records.record("endpoint", name)
    record_serving(name, name, request.registry_name, served)
    if request.scaling:
        start_autoscaling(boto, request, name, say)
    if capture:
        say(f"data capture: {capture}")
    if async_options:
        say(f"answers in {async_options.output_s3}/, failures in {async_options.failure_s3}/")
    say(f"endpoint {name} is InService (recorded for query.py and teardown.py)")
    say(f"try: python scripts/query.py --endpoint {name} IMAGE...")
    return name


def record_serving(name: str, config: str, registry_name: str, served: models.Served, previous: dict | None = None):
    """Which model (and registered version) the endpoint now serves, under config (build/cloud/endpoints.json;
    endpoint-model.txt names the last registered version deployed)."""
    serving = {"config": config, **served.record(registry_name)}
    if served.version:
        records.record("endpoint-model", f"{name} {registry_name} v{served.version} {served.package[0]}")
    records.record_serving(name, serving, previous)
    return serving


def start_autoscaling(boto, request: CloudDeployment, name: str, say: Callable[[str], object]) -> None:
    """Autoscaling of the endpoint just deployed; DeploymentError saying what failed when AWS refuses a part."""
    from botocore.exceptions import ClientError

    from ..sagemaker import endpoints

    scaling = request.scaling
    autoscaling = boto.client("application-autoscaling")
    try:
        if request.asynchronous:
            endpoints.enable_async_autoscaling(
                autoscaling, boto.client("cloudwatch"), name, scaling.low, scaling.high, scaling.target
            )
        else:
            endpoints.enable_autoscaling(autoscaling, name, scaling.low, scaling.high, scaling.target)
    except ClientError as err:  # the endpoint is up and recorded: say so, and how to retry or remove it
        services = "application-autoscaling and cloudwatch" if request.asynchronous else "application-autoscaling"
        # An async endpoint's scaling may be half set: a target at 0 without its alarm may never start again.
        state = (
            "its scaling may be half set"
            if request.asynchronous
            else f"it runs at {request.instance_count} instance(s)"
        )
        raise DeploymentError(
            f"endpoint {name} is InService but its autoscaling could not be set: "
            f"{err.response['Error'].get('Code')}: {err.response['Error'].get('Message')} ({err.operation_name} "
            f"failed; the role needs the {services} permissions of iam/operator-policy.json); {state}. "
            f"Remove it with: python scripts/deploy.py --delete {name}"
        ) from err
    if request.asynchronous:
        say(
            f"autoscaling {scaling.low}-{scaling.high} instances at {scaling.target} queued requests per "
            "instance"
            + (
                f"; at zero, alarm {endpoints.wake_up_alarm_name(name)} starts one as soon as a request waits"
                if scaling.low == 0
                else ""
            )
        )
    else:
        say(
            f"autoscaling {scaling.low}-{scaling.high} instances at {scaling.target} "
            "invocations per instance per minute"
        )
