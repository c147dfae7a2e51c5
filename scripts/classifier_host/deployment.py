"""What deploy.py and teardown.py do to a cloud endpoint: deploy one (model, image, endpoint, autoscaling,
the record query.py and teardown.py read) and delete one with all that belongs to it. The CLI modules parse
arguments, call one function here and map its errors to an exit status; they never call each other.

Errors: SettingsError (a setting, record or option that cannot be used; nothing was created),
DeploymentError (what was started failed; the message says what is left and how to remove it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import records, settings
from .settings import SettingsError


class DeletionError(Exception):
    """Deleting an endpoint stopped or found nothing; the message says what to do."""


class DeploymentError(Exception):
    """The endpoint, or its autoscaling, did not come up; the message says what is left."""


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
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
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


def deploy_cloud(cfg: settings.Settings, request: CloudDeployment, say: Callable[[str], object] = print) -> str:
    """Deploy `request` with the AWS settings `cfg` (settings.load, with S3_BUCKET for capture and async),
    wait until InService, record it, set its autoscaling; the endpoint's name."""
    if request.model and (request.model_data or request.training_job or request.image):
        raise SettingsError(
            "--model names a registered model with its images: no --model-data, --training-job, --image"
        )
    image = records.cloud_image(request.image, "serve") if request.image else None
    model_data, job = (None, None) if request.model else records.cloud_model(request.model_data, request.training_job)
    # The SDK takes over a second to import: only once the settings are known good.
    from .images import serving
    from .sagemaker import endpoints, session, training
    from .sagemaker.access import Access

    boto = session.boto_session(cfg.region)
    package = tags = None
    try:
        if request.model:
            from .registry import references

            resolved = references.cloud(boto, cfg.s3_uri("registry"), request.model, request.registry_name)
            package, model_data, tags = resolved.package, resolved.model_data, resolved.tags()
            say(f"registered model {request.registry_name} v{resolved.version} ({request.model}): {package}")
        model_data = model_data or training.model_of(boto, job)
        if image is None:
            role, why = serving.image_role(serving.s3_metadata(boto.client("s3"), model_data), request.instance_type)
            image = records.cloud_image(None, role) if not package else f"{role} of {package}"
            say(f"serving image: {role} ({why})")
            if package:  # the package's main specification is the GPU image, "cpu" the slim one
                from .registry.sagemaker_registry import CPU_SPECIFICATION

                package = (package, CPU_SPECIFICATION if role == "serve-cpu" else None)
    except ValueError as err:  # RegistryError too: no champion, an unknown version, another group's package
        raise SettingsError(str(err)) from None
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
    kind = "async endpoint" if request.asynchronous else "endpoint"
    say(
        f"deploying {model_data} on {request.instance_count} x {request.instance_type} as {kind} {name} ({image}); "
        "this takes 5-10 minutes..."
    )
    try:
        endpoints.deploy(
            boto,
            image,
            model_data,
            Access.of(cfg, request.network_isolation),
            name,
            instance_type=request.instance_type,
            instance_count=request.instance_count,
            data_capture_s3=capture,
            environment=request.environment,
            async_options=async_options,
            package=package,
            tags=tags,
        )
    except Exception as err:  # FailedStatusError (the endpoint's FailureReason), a refused request, a timeout
        raise DeploymentError(
            f"endpoint {name} did not come up: {err}\nclean up with: python scripts/deploy.py --delete {name}"
        ) from err
    records.record("endpoint", name)
    if tags:  # which registered version the endpoint serves (also its tags)
        records.record("endpoint-model", f"{name} {request.registry_name} v{tags['registry.version']} {package[0]}")
    if request.scaling:
        start_autoscaling(boto, request, name, say)
    if capture:
        say(f"data capture: {capture}")
    if async_options:
        say(f"answers in {async_options.output_s3}/, failures in {async_options.failure_s3}/")
    say(f"endpoint {name} is InService (recorded for query.py and teardown.py)")
    say(f"try: python scripts/query.py --endpoint {name} IMAGE...")
    return name


def start_autoscaling(boto, request: CloudDeployment, name: str, say: Callable[[str], object]) -> None:
    """Autoscaling of the endpoint just deployed; DeploymentError saying what failed when AWS refuses a part."""
    from botocore.exceptions import ClientError

    from .sagemaker import endpoints

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


def delete_endpoint(name: str | None, say: Callable[[str], object] = print) -> None:
    """Delete the endpoint NAME (default: the recorded one) and what belongs to it, saying each thing deleted.
    The record is forgotten only once nothing of it is left, so a deletion stopped half-way is finished
    by the next one. SettingsError: nothing to delete was named; DeletionError: the deletion stopped, or
    there was no such endpoint."""
    cfg = settings.load()
    name = name or records.recorded("endpoint")
    if not name:
        raise SettingsError("no endpoint recorded in build/cloud/endpoint.txt: give its name, --delete NAME")
    # botocore and the session import in over a second: only once the settings are known good.
    from botocore.exceptions import BotoCoreError, ClientError

    from .sagemaker import endpoints, session

    boto = session.boto_session(cfg.region)
    try:
        done = endpoints.delete(boto, name, boto.client("application-autoscaling"), boto.client("cloudwatch"))
    except (ClientError, BotoCoreError) as err:
        raise DeletionError(
            f"deleting endpoint {name} stopped: {err}; what is left stays recorded, run the same command again"
        ) from err
    for what in done.deleted:
        say(f"deleted {what}")
    if records.recorded("endpoint") == name:
        records.forget("endpoint")
    if not done.found:
        raise DeletionError(f"there is no endpoint {name} (nor its config or model) in {cfg.region}")
