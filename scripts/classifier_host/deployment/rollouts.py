"""Update a live endpoint without downtime and let it roll itself back (deploy.py --endpoint NAME), or
return it to the config it served before (deploy.py --rollback NAME).

An update creates the new model and endpoint config (ENDPOINT--YYYYMMDDHHMMSS), the endpoint's three
rollback alarms (created, or updated if they exist), and calls UpdateEndpoint with a blue/green
DeploymentConfig: SageMaker starts the new fleet, shifts traffic (canary, linear or all at once), and
returns the traffic to the old fleet if an alarm fires while it bakes. The command follows it to the end.
After a completed update the endpoint keeps two configs, the one it serves and the previous one (its tag
rollout.previous-config, what --rollback returns to); older ones are deleted. After a rollback the new
config and model are deleted. SageMaker local mode has none of this: it cannot update an endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import records, settings
from ..settings import SettingsError
from . import DeploymentError, cloud, models
from .serverless import SERVERLESS_INSTANCE, serverless_environment


@dataclass(frozen=True)
class Update:
    """What an update did: its outcome ('completed' or 'rolled back'), the config now serving, the alarms
    that fired."""

    outcome: str
    serving: str
    fired: dict


def deploy_or_update(cfg, request: cloud.CloudDeployment, rollout, thresholds, say: Callable = print):
    """deploy.py --endpoint NAME: update NAME in place when it exists, else deploy it under that name.
    Returns the endpoint's name (new) or the Update (in place); DeploymentError when the update rolled back."""
    from botocore.exceptions import ClientError

    from ..sagemaker import session
    from ..sagemaker.session import sagemaker_client

    boto = session.boto_session(cfg.region)
    try:
        described = sagemaker_client(boto).describe_endpoint(EndpointName=request.endpoint_name)
    except ClientError as err:
        if err.response["Error"].get("Code") != "ValidationException":
            raise DeploymentError(f"cannot read endpoint {request.endpoint_name}: {err}") from err
        say(f"there is no endpoint {request.endpoint_name} yet: deploying it")
        return cloud.deploy_cloud(cfg, request, say)
    return update(cfg, boto, described, request, rollout, thresholds, say)


def check_can_update(described: dict, variants: list[dict]) -> dict:
    """The endpoint's one production variant; SettingsError naming why it cannot be updated now."""
    name, status = described["EndpointName"], described["EndpointStatus"]
    if status != "InService":
        from ..sagemaker.rollout import IN_PROGRESS

        why = (
            "another update is in progress: wait for it to end (deploy.py --endpoint follows its own updates)"
            if status in IN_PROGRESS
            else "delete it and deploy again (deploy.py --delete NAME)"
        )
        raise SettingsError(f"endpoint {name} is {status}, not InService: {why}")
    if len(variants) != 1:
        raise SettingsError(
            f"endpoint {name} has {len(variants)} production variants: deploy.py updates endpoints of one variant "
            "(an inference experiment may be running: deploy.py --shadow NAME --stop)"
        )
    return variants[0]


def update(cfg, boto, described: dict, request: cloud.CloudDeployment, rollout, thresholds, say) -> Update:
    """The in-place update of the endpoint `described` (DescribeEndpoint's answer) to `request`'s model."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import endpoints
    from ..sagemaker import rollout as guardrails
    from ..sagemaker.access import Access
    from ..sagemaker.session import sagemaker_client

    name, old = described["EndpointName"], described["EndpointConfigName"]
    if len(name) > guardrails.MAX_ENDPOINT_NAME:
        raise SettingsError(
            f"endpoint {name} has {len(name)} characters: an update names its config {name}--YYYYMMDDHHMMSS, "
            f"which SageMaker allows for endpoint names of up to {guardrails.MAX_ENDPOINT_NAME}"
        )
    client = sagemaker_client(boto)
    current = client.describe_endpoint_config(EndpointConfigName=old)
    variant = check_can_update(described, current["ProductionVariants"])
    serverless = _serverless_of(name, variant, request)
    if "AsyncInferenceConfig" in current or request.asynchronous:
        raise SettingsError(
            f"endpoint {name}: deploy.py updates real-time and serverless endpoints in place, not asynchronous ones; "
            "deploy the new model as a new endpoint (--endpoint-name NEW) and point the clients at it"
        )
    if serverless and (rollout.kind != "all-at-once" or rollout.minutes):
        raise SettingsError(
            f"endpoint {name} is serverless: SageMaker's traffic shifting and alarm rollback need an endpoint "
            "on instances; update it with --rollout all-at-once"
        )
    instance_type = request.instance_type or variant.get("InstanceType") or cloud.DEFAULT_INSTANCE
    count = request.instance_count or variant.get("CurrentInstanceCount") or variant.get("InitialInstanceCount", 1)
    served = models.resolve(
        boto, cfg, request.choice, SERVERLESS_INSTANCE if serverless else instance_type, say, bool(serverless)
    )
    environment = {**serverless_environment(), **request.environment} if serverless else request.environment
    new = guardrails.config_name(name)
    # The endpoint's capture goes on where it went (a new --data-capture starts it at the project's prefix).
    capture = current.get("DataCaptureConfig", {}).get("DestinationS3Uri")
    if request.data_capture and not capture:
        capture = cfg.s3_uri("data-capture")
    access = Access.of(cfg, request.network_isolation)
    try:
        endpoints.create_model(boto, new, served.image, served.model_data, access, environment, served.package)
        endpoints.create_config(
            boto,
            new,
            new,
            access,
            instance_type,
            count,
            data_capture_s3=capture,
            serverless=serverless,
            variant=variant["VariantName"],  # guardrails refuse a variant whose name changes
        )
        alarms, config = [], None
        if not serverless:
            alarms = guardrails.put_alarms(boto.client("cloudwatch"), name, variant["VariantName"], thresholds)
            config = rollout.deployment_config(alarms)
        say(
            f"updating endpoint {name} from {old} to {new} ({served.label}, "
            f"{'serverless' if serverless else f'{count} x {instance_type}'}); "
            f"{rollout.describe()}" + (f"; rolled back if any of {', '.join(alarms)} fires" if alarms else "")
        )
        guardrails.start(boto, name, new, config)
    except (ClientError, BotoCoreError) as err:
        left = _remove_quietly(boto, new)
        raise DeploymentError(f"endpoint {name} was not updated: {err}; {left}") from err
    try:
        outcome = guardrails.follow(boto, name, alarms, say, timeout_s=rollout.execution_timeout_s() + 15 * 60)
    except (ClientError, BotoCoreError, RuntimeError) as err:
        raise DeploymentError(
            f"lost track of the update of endpoint {name}: {err}; SageMaker goes on with it: see its status with "
            f"`aws sagemaker describe-endpoint --endpoint-name {name}`"
        ) from err
    return _conclude(cfg, boto, name, old, new, served, request.registry_name, outcome, say)


def _serverless_of(name: str, variant: dict, request: cloud.CloudDeployment) -> dict | None:
    """The ServerlessConfig fields the updated variant gets (the request's, else the endpoint's), or None for
    an endpoint on instances; SettingsError for a change between the two."""
    current = variant.get("ServerlessConfig")
    if bool(current) != bool(request.serverless):
        if request.serverless:
            raise SettingsError(
                f"endpoint {name} runs on instances: deploy the serverless endpoint under a new name (--endpoint-name)"
            )
        fields = ("MemorySizeInMB", "MaxConcurrency", "ProvisionedConcurrency")
        return {key: current[key] for key in fields if key in current}
    return request.serverless.config() if request.serverless else None


def _conclude(cfg, boto, name, old, new, served, registry_name, outcome, say) -> Update:
    from ..sagemaker import rollout as guardrails

    if outcome.status == "InService" and outcome.config == new:
        arn = guardrails.endpoint_arn(boto, name)
        tags = {guardrails.PREVIOUS_CONFIG_TAG: old, **(served.tags or {})}
        guardrails.tag_endpoint(boto, arn, tags, untag=[] if served.tags else list(models.REGISTRY_TAGS))
        before = records.served_by().get(name, {}).get("serving") or {"config": old}
        cloud.record_serving(name, new, registry_name, served, previous=before)
        for config in guardrails.configs_of(boto, name):
            if config not in (new, old):
                for what in guardrails.remove_config(boto, config):
                    say(f"deleted {what} (older than the previous config)")
        version = f", {registry_name} v{served.version}" if served.version else ""
        say(f"completed: endpoint {name} serves {new} ({served.model_data}{version}); {old} is kept for --rollback")
        return Update("completed", new, outcome.fired)
    if outcome.status == "InService" and outcome.config == old:
        why = (
            "alarm " + ", ".join(f"{alarm} fired ({reason})" for alarm, reason in outcome.fired.items())
            if outcome.fired
            else f"SageMaker: {outcome.failure or 'no reason given'}"
        )
        for what in guardrails.remove_config(boto, new):
            say(f"deleted {what} (the update that rolled back)")
        raise DeploymentError(f"rolled back: {why}; endpoint {name} still serves {old}")
    raise DeploymentError(
        f"the update of endpoint {name} ended {outcome.status} serving {outcome.config}: "
        f"{outcome.failure or 'no reason given'}; delete it with: python scripts/deploy.py --delete {name}"
    )


def _remove_quietly(boto, config: str) -> str:
    """Remove a new config and model an update could not start with; what the user must know of them."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker.session import sagemaker_client

    client = sagemaker_client(boto)
    left = []
    for kind, call in (
        ("endpoint config", lambda: client.delete_endpoint_config(EndpointConfigName=config)),
        ("model", lambda: client.delete_model(ModelName=config)),
    ):
        try:
            call()
        except (ClientError, BotoCoreError):
            left.append(f"{kind} {config}")
    return "left: " + ", ".join(left) + " (deploy.py --delete removes them)" if left else "nothing of it is left"


def rollback(cfg: settings.Settings, name: str | None, say: Callable = print) -> Update:
    """deploy.py --rollback NAME: return the endpoint to the config it served before its last update, all at
    once (the old config was serving until that update: it needs no canary)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import rollout as guardrails
    from ..sagemaker import session
    from ..sagemaker.session import sagemaker_client

    name = name or records.recorded("endpoint")
    if not name:
        raise SettingsError("no endpoint recorded in build/cloud/endpoint.txt: give its name, --rollback NAME")
    boto = session.boto_session(cfg.region)
    client = sagemaker_client(boto)
    try:
        described = client.describe_endpoint(EndpointName=name)
        current = described["EndpointConfigName"]
        check_can_update(described, client.describe_endpoint_config(EndpointConfigName=current)["ProductionVariants"])
        previous = guardrails.previous_config(boto, described["EndpointArn"])
        if not previous or previous == current:
            raise SettingsError(
                f"endpoint {name} has no previous config to return to: it has not been updated by deploy.py "
                "since it was created (or was already rolled back)"
            )
        if previous not in guardrails.configs_of(boto, name):
            raise SettingsError(f"endpoint {name}'s previous config {previous} no longer exists")
        say(f"rolling endpoint {name} back from {current} to {previous}, all at once")
        guardrails.start(boto, name, previous, guardrails.Rollout("all-at-once").deployment_config([]))
        outcome = guardrails.follow(boto, name, [], say, timeout_s=guardrails.MIN_EXECUTION_S + 15 * 60)
    except (ClientError, BotoCoreError, RuntimeError) as err:
        raise DeploymentError(f"endpoint {name} was not rolled back: {err}") from err
    if outcome.status != "InService" or outcome.config != previous:
        raise DeploymentError(
            f"the rollback of endpoint {name} ended {outcome.status} serving {outcome.config}: "
            f"{outcome.failure or 'no reason given'}"
        )
    entry = records.served_by().get(name, {})
    serving = entry.get("previous") or {"config": previous}
    registry = {"registry.version": serving.get("version"), "registry.package": serving.get("package")}
    guardrails.tag_endpoint(
        boto,
        described["EndpointArn"],
        {guardrails.PREVIOUS_CONFIG_TAG: current, **(registry if serving.get("version") else {})},
        untag=[] if serving.get("version") else list(models.REGISTRY_TAGS),
    )
    records.record_serving(name, serving, previous=entry.get("serving") or {"config": current})
    version = f" ({serving['registry']} v{serving['version']})" if serving.get("version") else ""
    say(f"rolled back: endpoint {name} serves {previous}{version} again; --rollback again returns it to {current}")
    return Update("rolled back", previous, {})
