"""Shadow tests of a live endpoint (deploy.py --shadow NAME, --shadow-report NAME, --shadow NAME --promote |
--stop): a candidate model beside the endpoint's production variant as a SageMaker inference experiment in
shadow mode. Production keeps answering every request; SageMaker copies a share of them to the shadow and
keeps its answers to itself (and, with capture, both variants' requests and answers in S3). The report puts
the two variants' CloudWatch figures side by side with how often the shadow's top-1 label agrees with
production's on the same requests; then the shadow is promoted (it becomes the production variant) or stopped
(production stays as it was). A test that reaches its end without either is stopped by SageMaker itself,
production retained.

The candidate is resolved as for a new endpoint (models.resolve) and recorded in the experiment's description
(JSON), so a promotion from another machine still knows which model data, image and registry version the
endpoint serves from then on."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import records, settings
from ..sagemaker.shadow import MAX_HOURS  # SageMaker's limit, checked here before any call
from ..settings import SettingsError
from . import DeploymentError, models
from .models import ModelChoice

# A shadow test's captured requests and answers, under S3_PREFIX (deploy.py --data-capture uses data-capture/).
STORAGE = "shadow-tests"


@dataclass(frozen=True)
class ShadowRequest:
    """What deploy.py --shadow NAME asks for, its options checked by check()."""

    endpoint: str
    choice: ModelChoice
    instance_type: str | None = None  # None: the production variant's
    instance_count: int = 1
    hours: float = 24.0
    sampling_percentage: int = 100
    capture: bool = True  # both variants' requests and answers to s3://S3_BUCKET/S3_PREFIX/shadow-tests
    environment: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        """SettingsError for a duration, share or count SageMaker refuses (before any AWS call)."""
        if not 0 < self.hours <= MAX_HOURS:
            raise SettingsError(
                f"--duration {self.hours:g}: a shadow test runs more than 0 and at most {MAX_HOURS} hours "
                "(30 days, SageMaker's limit)"
            )
        if not 1 <= self.sampling_percentage <= 100:
            raise SettingsError(f"--shadow-percent {self.sampling_percentage}: the shadow gets 1-100% of the requests")
        if self.instance_count < 1:
            raise SettingsError(f"--instance-count {self.instance_count}: the shadow needs at least one instance")
        self.choice.check()


def start_shadow(cfg: settings.Settings, request: ShadowRequest, say: Callable[[str], object] = print) -> str:
    """Start a shadow test of request.choice's model on the endpoint, wait until it runs; the experiment's name.
    SettingsError before anything is created (a bad option, an endpoint that cannot take one now);
    DeploymentError when what was started failed (the message says what is left)."""
    request.check()
    from ..sagemaker import shadow

    try:
        name = shadow.experiment_name(request.endpoint, shadow.stamp())
    except ValueError as err:
        raise SettingsError(str(err)) from None
    if not cfg.role_arn:
        raise SettingsError(f"a shadow test runs as SAGEMAKER_ROLE_ARN: {settings.REQUIRED_HELP['SAGEMAKER_ROLE_ARN']}")
    if request.capture and not cfg.bucket:
        raise SettingsError(f"a shadow test captures to S3_BUCKET: {settings.REQUIRED_HELP['S3_BUCKET']}")
    # botocore and the SDK import in over a second: only once the options are known good.
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import endpoints, session
    from ..sagemaker.access import Access

    boto = session.boto_session(cfg.region)
    endpoint = _endpoint(boto, cfg, request.endpoint)
    production = check_can_shadow(endpoint)
    try:
        current = shadow.running(boto, request.endpoint)
    except (ClientError, BotoCoreError) as err:
        raise DeploymentError(f"cannot list the inference experiments of endpoint {request.endpoint}: {err}") from err
    if current:
        raise SettingsError(
            f"endpoint {request.endpoint} already runs shadow test {current['Name']} ({current['Status']}): "
            f"see it with --shadow-report {request.endpoint}, end it with --shadow {request.endpoint} --promote "
            "or --stop"
        )
    if endpoint.shadow_variants:
        raise SettingsError(
            f"endpoint {request.endpoint} already has a shadow variant ({', '.join(endpoint.shadow_variants)}): "
            "an inference experiment deploy.py did not start; end it in the SageMaker console first"
        )
    instance_type = request.instance_type or production.instance_type
    try:
        served = models.resolve(boto, cfg, request.choice, instance_type, say)
    except (ClientError, BotoCoreError) as err:
        raise DeploymentError(f"the candidate model could not be read: {err}; nothing was created") from err
    storage = cfg.s3_uri(STORAGE) if request.capture else None
    say(f"creating model {name}: {served.model_data} ({served.label})")
    try:
        endpoints.create_model(
            boto, name, served.image, served.model_data, Access.of(cfg), request.environment, served.package
        )
    except Exception as err:  # a refused request (ClientError), the SDK's validation of it
        raise DeploymentError(
            f"model {name} could not be created: {err}; the endpoint was not changed (if model {name} exists, "
            f"python scripts/deploy.py --delete {request.endpoint} removes it with the endpoint)"
        ) from err
    say(
        f"starting shadow test {name} on endpoint {request.endpoint}: {request.sampling_percentage}% of the "
        f"requests copied to {request.instance_count} x {instance_type} for {request.hours:g} h; production "
        f"variant {production.name} (model {production.model}) answers them all; this takes 5-15 minutes..."
    )
    try:
        shadow.start(
            boto,
            request.endpoint,
            production,
            name,
            instance_type,
            request.instance_count,
            cfg.role_arn,
            request.hours,
            storage,
            cfg.kms_key_id,
            request.sampling_percentage,
            description=json.dumps(served.record(request.choice.registry_name), sort_keys=True),
            say=say,
        )
    except (ClientError, BotoCoreError, RuntimeError, ValueError) as err:
        raise DeploymentError(_start_failed(boto, request.endpoint, name, err)) from err
    say(f"shadow test {name} runs: variant {shadow.shadow_variant_name(name)} gets the copies")
    if storage:
        say(f"requests and answers captured to {storage}/")
    say(f"report: python scripts/deploy.py --shadow-report {request.endpoint}")
    say(f"then: python scripts/deploy.py --shadow {request.endpoint} --promote (or --stop)")
    return name


def _endpoint(boto, cfg, name: str):
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import shadow

    try:
        return shadow.describe_endpoint(boto, name)
    except ClientError as err:
        if err.response["Error"].get("Code") == "ValidationException":
            message = err.response["Error"].get("Message")
            raise SettingsError(f"there is no endpoint {name} in {cfg.region}: {message}") from None
        raise DeploymentError(f"cannot read endpoint {name}: {err}") from err
    except BotoCoreError as err:
        raise DeploymentError(f"cannot read endpoint {name}: {err}") from err


def check_can_shadow(endpoint):
    """The endpoint's one production variant (sagemaker.shadow.Variant); SettingsError naming why the endpoint
    cannot take a shadow test now."""
    from ..sagemaker import shadow

    name, status = endpoint.name, endpoint.status
    if status != "InService":
        why = (
            "wait for its change to end, then start the shadow test"
            if status in shadow.ENDPOINT_BUSY
            else f"it cannot take a shadow test (deploy.py --delete {name} removes it)"
        )
        raise SettingsError(f"endpoint {name} is {status}, not InService: {why}")
    if endpoint.serverless:
        raise SettingsError(
            f"endpoint {name} is serverless: a shadow variant runs on instances beside a production variant on "
            "instances (SageMaker's shadow tests exclude serverless endpoints)"
        )
    if endpoint.asynchronous:
        raise SettingsError(
            f"endpoint {name} is asynchronous: SageMaker's shadow tests run on real-time endpoints only"
        )
    if len(endpoint.variants) != 1:
        raise SettingsError(
            f"endpoint {name} has {len(endpoint.variants)} production variants: a shadow test runs beside one"
        )
    production = endpoint.variants[0]
    if production.instance_type.startswith("ml.inf1."):
        raise SettingsError(f"endpoint {name} runs on {production.instance_type}: shadow tests exclude Inf1 instances")
    return production


def _start_failed(boto, endpoint: str, name: str, err: Exception) -> str:
    """What a start that failed leaves, and how to remove it: a test still in progress is stopped by --stop;
    one that ended (or was never created) leaves only the model, removed here when it can be."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import shadow

    head = f"shadow test {name} on endpoint {endpoint} did not start: {err}"
    try:
        status = shadow.describe(boto, name)["Status"]
    except (ClientError, BotoCoreError):
        status = None  # never created (or unreadable: then assume it may run)
    if status in shadow.IN_PROGRESS or status == shadow.STOPPING:
        return (
            f"{head}\nleft: inference experiment {name} ({status}) and model {name}; production still answers "
            f"every request.\nclean up with: python scripts/deploy.py --shadow {endpoint} --stop"
        )
    try:
        shadow.delete_model(boto, name)
        left = "nothing of it is left (model removed)"
    except (ClientError, BotoCoreError):
        left = f"left: model {name} (python scripts/deploy.py --delete {endpoint} removes it with the endpoint)"
    return f"{head}\nthe endpoint serves as before; {left}"


def shadow_report(cfg: settings.Settings, endpoint: str, say: Callable[[str], object] = print) -> dict:
    """The endpoint's shadow test in progress (or its last one): each variant's invocations, 5XX answers and
    p50 / p99 model latency (ms) since the test started, and, when requests were captured, the share of the
    requests both variants answered on which their top-1 labels agree. Says a table; returns the figures."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import session, shadow

    boto = session.boto_session(cfg.region)
    try:
        described = shadow.latest(boto, endpoint)
        if described is None:
            raise SettingsError(
                f"endpoint {endpoint} has no shadow test: start one with python scripts/deploy.py --shadow "
                f"{endpoint} --model-data s3://.../model.tar.gz (or --model, --training-job)"
            )
        production, shadow_variant = shadow.roles(described)
        begin, end = shadow.window(described)
        figures = shadow.metrics(boto, endpoint, [production, shadow_variant], begin, end)
        storage = (described.get("DataStorageConfig") or {}).get("Destination")
        captured = (
            shadow.captured_answers(
                boto, storage, endpoint, variants=(production, shadow_variant), since=described.get("CreationTime")
            )
            if storage
            else None
        )
    except (ClientError, BotoCoreError) as err:
        raise DeploymentError(f"the shadow test of endpoint {endpoint} could not be read: {err}") from err
    model_of = {v["VariantName"]: v["ModelName"] for v in described.get("ModelVariants", [])}
    report = {
        "experiment": described["Name"],
        "endpoint": endpoint,
        "status": described["Status"],
        "start": begin.isoformat(),
        "end": end.isoformat(),
        "production": production,
        "shadow": shadow_variant,
        "variants": {
            variant: {"role": role, "model": model_of.get(variant), **figures[variant]}
            for variant, role in ((production, "production"), (shadow_variant, "shadow"))
        },
        "storage": storage,
        "agreement": None,
    }
    if captured is not None:
        matched, agreed = shadow.agreement(captured.answers, production, shadow_variant)
        report["agreement"] = {
            "matched": matched,
            "agreed": agreed,
            "rate": agreed / matched if matched else None,
            "corrupt": captured.corrupt,
            "captured": {variant: len(captured.answers.get(variant, [])) for variant in (production, shadow_variant)},
        }
    for line in report_lines(report):
        say(line)
    return report


def report_lines(report: dict) -> list[str]:
    """The report as a person reads it: a heading, a table of the two variants, the agreement."""

    def ms(value):
        return "-" if value is None else f"{value:.1f}"

    lines = [
        f"shadow test {report['experiment']} on endpoint {report['endpoint']}: {report['status']}, "
        f"{report['start'][:16].replace('T', ' ')} to {report['end'][:16].replace('T', ' ')} UTC"
    ]
    rows = [("variant", "role", "model", "invocations", "5XX", "p50 ms", "p99 ms")]
    for variant, figures in report["variants"].items():
        rows.append(
            (
                variant,
                figures["role"],
                figures["model"] or "?",
                str(figures["invocations"]),
                str(figures["errors_5xx"]),
                ms(figures["p50_ms"]),
                ms(figures["p99_ms"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    agreement = report["agreement"]
    if agreement is None:
        lines.append("top-1 agreement: requests were not captured (the test was started without capture)")
    elif not agreement["matched"]:
        lines.append(f"top-1 agreement: no captured requests yet ({report['storage']}/)")
    else:
        lines.append(
            f"top-1 agreement: {100 * agreement['rate']:.1f}% of {agreement['matched']} requests both variants "
            f"answered ({agreement['agreed']} agreed)"
        )
    if agreement is not None and (agreement["corrupt"] or any(agreement["captured"].values())):
        counts = ", ".join(f"{n} by {variant}" for variant, n in agreement["captured"].items())
        lines.append(f"captured answers: {counts}; {agreement['corrupt']} unreadable line(s) skipped")
    return lines


def finish_shadow(cfg: settings.Settings, endpoint: str, promote: bool, say: Callable[[str], object] = print) -> dict:
    """Promote the endpoint's running shadow (it becomes the production variant, the old one goes) or stop the
    test (production stays, the shadow and its model go); waits until the endpoint is InService again. After a
    promotion the records (and the endpoint's tags, for --rollback) say what it serves. SettingsError when no
    test is in progress; DeploymentError when the stop failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import rollout, session, shadow

    boto = session.boto_session(cfg.region)
    try:
        described = shadow.running(boto, endpoint)
    except (ClientError, BotoCoreError) as err:
        raise DeploymentError(f"cannot list the inference experiments of endpoint {endpoint}: {err}") from err
    what = "promote" if promote else "stop"
    if described is None:
        raise SettingsError(
            f"no shadow test is in progress on endpoint {endpoint}: nothing to {what} "
            f"(python scripts/deploy.py --shadow-report {endpoint} shows its last one)"
        )
    name, status = described["Name"], described["Status"]
    if promote and status != "Running":
        raise SettingsError(
            f"shadow test {name} is {status}, not Running: only a running shadow can be promoted "
            f"(wait for it, or --shadow {endpoint} --stop)"
        )
    production, shadow_variant = shadow.roles(described)
    variants = {v["VariantName"]: v for v in described["ModelVariants"]}
    shadow_model = variants[shadow_variant]["ModelName"]
    if promote:
        infrastructure = variants[shadow_variant]["InfrastructureConfig"]["RealTimeInferenceConfig"]
        say(
            f"promoting shadow test {name}: variant {shadow_variant} (model {shadow_model}, "
            f"{infrastructure['InstanceCount']} x {infrastructure['InstanceType']}) becomes endpoint {endpoint}'s "
            f"production variant, {production} is removed; this takes 5-15 minutes..."
        )
        reason = "promoted with deploy.py --shadow --promote"
    else:
        say(f"stopping shadow test {name}: {production} keeps serving, {shadow_variant} is removed...")
        reason = "stopped with deploy.py --shadow --stop"
    try:
        final = shadow.stop(boto, name, production, shadow_variant, promote, reason, say=say)
    except (ClientError, BotoCoreError, RuntimeError, ValueError) as err:
        raise DeploymentError(
            f"shadow test {name} of endpoint {endpoint} could not be {'promoted' if promote else 'stopped'}: "
            f"{err}\nsee where it stands: python scripts/deploy.py --shadow-report {endpoint}; "
            f"clean up with: python scripts/deploy.py --shadow {endpoint} --stop"
        ) from err
    if not promote:
        try:
            shadow.delete_model(boto, shadow_model)
            say(f"deleted model {shadow_model}")
        except (ClientError, BotoCoreError) as err:
            say(f"model {shadow_model} is left ({err}); deploy.py --delete {endpoint} removes it with the endpoint")
        say(f"stopped: endpoint {endpoint} serves {production} as before")
        return {"experiment": name, "promoted": False, "config": final["EndpointConfigName"], "variant": production}
    return _record_promotion(boto, endpoint, described, final, shadow_variant, shadow_model, rollout, say)


def _record_promotion(boto, endpoint, described, final, shadow_variant, shadow_model, rollout, say) -> dict:
    """After a promotion: the records say what the endpoint serves now and what it served before, its tags
    name the config served before (what --rollback returns to) and the registry version it serves."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        served = json.loads(described.get("Description") or "{}")
    except ValueError:
        served = {}
    served = served if isinstance(served, dict) else {}
    entry = records.served_by().get(endpoint, {})
    before = entry.get("serving")
    config = final["EndpointConfigName"]
    serving = {"config": config, "model": shadow_model, "variant": shadow_variant, **served}
    records.record_serving(endpoint, serving, previous=before)
    if served.get("version"):
        records.record("endpoint-model", f"{endpoint} {served['registry']} v{served['version']} {served['package']}")
    tags = (
        {"registry.version": served["version"], "registry.package": served["package"]} if served.get("version") else {}
    )
    untag = [] if tags else list(models.REGISTRY_TAGS)
    if before and before.get("config"):
        tags[rollout.PREVIOUS_CONFIG_TAG] = before["config"]
    else:  # the config served before is unknown here: an older update's must not be returned to
        untag.append(rollout.PREVIOUS_CONFIG_TAG)
    try:
        rollout.tag_endpoint(boto, final["EndpointArn"], tags, untag)
    except (ClientError, BotoCoreError) as err:
        say(f"the endpoint's tags could not be updated ({err}): --rollback may not find the config served before")
    version = f", {served['registry']} v{served['version']}" if served.get("version") else ""
    model_data = served.get("model_data", f"model {shadow_model}")
    say(f"promoted: endpoint {endpoint} serves {model_data}{version} as variant {shadow_variant} ({config})")
    if before and before.get("config"):
        say(f"python scripts/deploy.py --rollback {endpoint} returns it to {before['config']}")
    return {"experiment": described["Name"], "promoted": True, "config": config, "variant": shadow_variant}
