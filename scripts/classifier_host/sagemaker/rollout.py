"""In-place updates of a live endpoint (SageMaker's deployment guardrails): the traffic-shifting policy, the
CloudWatch alarms that roll an update back, UpdateEndpoint, and following the update to its end.

Each update's model and endpoint config are named ENDPOINT--YYYYMMDDHHMMSS and its alarms ENDPOINT-rollout-*,
so deletion finds everything of an endpoint by its name (endpoints.delete).
"""

from __future__ import annotations

import datetime
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .session import sagemaker_client

# The endpoint tag naming the config served before the last update: what --rollback returns to. A tag,
# not a local file, so whoever updates the endpoint next (another machine, CodeBuild) finds it too.
PREVIOUS_CONFIG_TAG = "rollout.previous-config"
SEPARATOR = "--"
STAMP = "%Y%m%d%H%M%S"
# SageMaker's names are at most 63 characters: ENDPOINT--YYYYMMDDHHMMSS leaves 47 for the endpoint's.
MAX_ENDPOINT_NAME = 63 - len(SEPARATOR) - len("20261207120000")
# The alarms' metric period and how many periods in a row must breach (AWS/SageMaker publishes per minute).
PERIOD_S = 60
BREACHING_PERIODS = 2
# How long an update may take before SageMaker gives up (its own limits: 600-28800 s); the default leaves
# this margin over the traffic shifting's wait intervals for the new fleet to start.
MIN_EXECUTION_S, MAX_EXECUTION_S = 600, 28800
START_MARGIN_S = 30 * 60
POLL_S = 15
# The endpoint states of an update in progress, and of an update that could not be undone.
IN_PROGRESS = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
FAILED = {"Failed", "UpdateRollbackFailed", "OutOfService"}


def config_name(endpoint: str, now: datetime.datetime | None = None) -> str:
    """The name of a new model and endpoint config of `endpoint` (UTC to the second)."""
    now = now or datetime.datetime.now(datetime.UTC)
    return f"{endpoint}{SEPARATOR}{now.strftime(STAMP)}"


def belongs_to(name: str, endpoint: str) -> bool:
    """Whether a model or endpoint config named `name` is one of `endpoint`'s (its first or an update's)."""
    return name == endpoint or (
        name.startswith(endpoint + SEPARATOR) and name[len(endpoint) + len(SEPARATOR) :][:1].isalnum()
    )


@dataclass(frozen=True)
class Thresholds:
    """When an update is rolled back: the error rates (share of invocations, 0-1) and the p99 model latency."""

    max_latency_ms: float = 1000.0
    max_error_rate: float = 0.01


# (name suffix, metric, statistic, what it watches): the alarms of every rollout of an endpoint.
ALARMS = (
    ("5xx-errors", "Invocation5XXErrors", "Average", "share of invocations answered 5XX"),
    ("model-latency", "ModelLatency", "p99", "p99 ModelLatency (microseconds)"),
    # The model container's own failures: any non-2XX answer, a broken connection, a timeout.
    ("model-errors", "InvocationModelErrors", "Average", "share of invocations the model container failed"),
)


def alarm_names(endpoint: str) -> list[str]:
    return [f"{endpoint}-rollout-{suffix}" for suffix, *_ in ALARMS]


def put_alarms(cloudwatch, endpoint: str, variant: str, thresholds: Thresholds) -> list[str]:
    """Create (or, as PutMetricAlarm does, update) the endpoint's rollback alarms; their names. A minute
    without invocations is not a breach: an idle endpoint must not roll back."""
    for (_suffix, metric, statistic, what), name in zip(ALARMS, alarm_names(endpoint), strict=True):
        threshold = thresholds.max_latency_ms * 1000 if metric == "ModelLatency" else thresholds.max_error_rate
        statistic_kwargs = {"ExtendedStatistic": statistic} if statistic.startswith("p") else {"Statistic": statistic}
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            AlarmDescription=f"Rolls back an update of endpoint {endpoint} (deploy.py): {what} above {threshold:g}",
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}],
            Period=PERIOD_S,
            EvaluationPeriods=BREACHING_PERIODS,
            DatapointsToAlarm=BREACHING_PERIODS,
            Threshold=float(threshold),
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
            **statistic_kwargs,
        )
    return alarm_names(endpoint)


@dataclass(frozen=True)
class Rollout:
    """How traffic moves to the new fleet: `canary` sends `percent` of capacity first and the rest after
    `minutes` of baking; `linear` moves `percent` more every `minutes`; `all-at-once` moves everything and
    bakes `minutes` (default 0). Any alarm in ALARM during baking rolls the update back."""

    kind: str
    percent: int | None = None
    minutes: int = 0
    termination_wait_s: int = 0
    max_execution_s: int | None = None  # None: the shifting's wait intervals plus START_MARGIN_S

    @classmethod
    def parse(cls, text: str, termination_wait_s: int = 0, max_execution_s: int | None = None) -> Rollout:
        """canary:PERCENT:MINUTES, linear:PERCENT:MINUTES or all-at-once[:MINUTES]; ValueError naming the limit."""
        match = re.fullmatch(r"(canary|linear):(\d+):(\d+)|all-at-once(?::(\d+))?", text.strip())
        if not match:
            raise ValueError(
                f"--rollout {text!r}: expected canary:PERCENT:MINUTES, linear:PERCENT:MINUTES or all-at-once[:MINUTES]"
            )
        if match[1]:
            kind, percent, minutes = match[1], int(match[2]), int(match[3])
            low = 1 if kind == "canary" else 10  # SageMaker: a canary of at most 50%, linear steps of 10-50%
            if not low <= percent <= 50:
                raise ValueError(f"--rollout {text!r}: a {kind} step must be {low}-50% of the capacity")
        else:
            kind, percent, minutes = "all-at-once", None, int(match[4] or 0)
        if minutes > 60:
            raise ValueError(f"--rollout {text!r}: SageMaker bakes each step at most 60 minutes")
        if not 0 <= termination_wait_s <= 3600:
            raise ValueError(f"--termination-wait {termination_wait_s}: expected 0-3600 seconds")
        rollout = cls(kind, percent, minutes, termination_wait_s, max_execution_s)
        if max_execution_s is not None:
            if not MIN_EXECUTION_S <= max_execution_s <= MAX_EXECUTION_S:
                raise ValueError(
                    f"--max-execution-timeout {max_execution_s}: SageMaker takes {MIN_EXECUTION_S}-{MAX_EXECUTION_S} s"
                )
            if max_execution_s < rollout.baking_s():
                raise ValueError(
                    f"--max-execution-timeout {max_execution_s}: shorter than the rollout's own baking "
                    f"({rollout.baking_s()} s for {text})"
                )
        return rollout

    def steps(self) -> int:
        """How many times traffic moves (and bakes)."""
        if self.kind == "linear":
            return math.ceil(100 / self.percent)
        return 2 if self.kind == "canary" else 1

    def baking_s(self) -> int:
        """The wait intervals of the whole shift (a canary bakes once, the rest then moves at once)."""
        return self.minutes * 60 * (self.steps() - 1 if self.kind == "canary" else self.steps())

    def execution_timeout_s(self) -> int:
        if self.max_execution_s is not None:
            return self.max_execution_s
        return min(MAX_EXECUTION_S, max(MIN_EXECUTION_S, self.baking_s() + self.termination_wait_s + START_MARGIN_S))

    def describe(self) -> str:
        if self.kind == "canary":
            return f"canary: {self.percent}% of the capacity, {self.minutes} min of baking, then the rest"
        if self.kind == "linear":
            return f"linear: {self.percent}% more every {self.minutes} min"
        return "all at once" + (f", then {self.minutes} min of baking" if self.minutes else "")

    def deployment_config(self, alarms: list[str]) -> dict:
        """UpdateEndpoint's DeploymentConfig: a blue/green update with this traffic shifting, rolled back
        when any of `alarms` goes to ALARM."""
        routing = {"Type": self.kind.upper().replace("-", "_"), "WaitIntervalInSeconds": self.minutes * 60}
        if self.kind == "canary":
            routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        elif self.kind == "linear":
            routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        config = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": routing,
                "TerminationWaitInSeconds": self.termination_wait_s,
                "MaximumExecutionTimeoutInSeconds": self.execution_timeout_s(),
            }
        }
        if alarms:
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
        return config


def start(boto, endpoint: str, config: str, deployment_config: dict | None) -> None:
    """UpdateEndpoint to `config`; botocore's ClientError when SageMaker refuses it."""
    client = sagemaker_client(boto)
    client.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=config,
        **({"DeploymentConfig": deployment_config} if deployment_config else {}),
    )


@dataclass
class Outcome:
    """How an update ended: the config the endpoint serves, its status, the alarms seen firing."""

    status: str
    config: str
    fired: dict[str, str] = field(default_factory=dict)  # alarm name -> its StateReason
    failure: str | None = None


def phase(described: dict) -> str | None:
    """What an update in progress is doing, as a person reads it (from DescribeEndpoint's
    PendingDeploymentSummary: the new fleet's variant status and traffic weight)."""
    status = described["EndpointStatus"]
    if status == "RollingBack":
        return "rolling back: traffic returns to the old fleet"
    pending = described.get("PendingDeploymentSummary") or {}
    for variant in pending.get("ProductionVariants", []):
        states = [s["Status"] for s in variant.get("VariantStatus", [])]
        count = variant.get("DesiredInstanceCount") or variant.get("CurrentInstanceCount")
        weight = variant.get("CurrentWeight")
        share = f"{round(100 * weight)}% of the traffic" if weight is not None else "part of the traffic"
        if "Baking" in states:
            return f"baking: the new fleet takes {share}"
        if "ActivatingTraffic" in states:
            return f"shifting traffic to the new fleet ({share})"
        if "Creating" in states:
            return f"creating the new fleet ({count} x {variant.get('InstanceType', '?')})"
        if "Deleting" in states:
            return "removing the old fleet"
    return f"{status.lower()}" if status in IN_PROGRESS else None


def follow(
    boto,
    endpoint: str,
    alarms: list[str],
    say: Callable[[str], object],
    timeout_s: float,
    poll_s: float = POLL_S,
) -> Outcome:
    """Poll the endpoint (and its alarms) until the update ends; say each new phase. RuntimeError when it
    has not ended after timeout_s (SageMaker's own MaximumExecutionTimeout normally ends it first)."""
    client = sagemaker_client(boto)
    cloudwatch = boto.client("cloudwatch")
    deadline, said, fired = time.monotonic() + timeout_s, None, {}
    while True:
        described = client.describe_endpoint(EndpointName=endpoint)
        if alarms:
            for alarm in cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]:
                if alarm.get("StateValue") == "ALARM" and alarm["AlarmName"] not in fired:
                    fired[alarm["AlarmName"]] = alarm.get("StateReason", "")
                    say(f"alarm {alarm['AlarmName']} is in ALARM: {alarm.get('StateReason', '')}")
        status = described["EndpointStatus"]
        if status not in IN_PROGRESS:
            return Outcome(status, described["EndpointConfigName"], fired, described.get("FailureReason"))
        now = phase(described)
        if now and now != said:
            say(now)
            said = now
        if time.monotonic() > deadline:
            raise RuntimeError(f"endpoint {endpoint} is still {status} after {timeout_s / 60:.0f} min")
        time.sleep(poll_s)


def endpoint_arn(boto, endpoint: str) -> str:
    return sagemaker_client(boto).describe_endpoint(EndpointName=endpoint)["EndpointArn"]


def previous_config(boto, arn: str) -> str | None:
    """The config the endpoint served before its last update (the tag an update leaves), or None."""
    client = sagemaker_client(boto)
    tags = client.list_tags(ResourceArn=arn)["Tags"]
    return next((tag["Value"] for tag in tags if tag["Key"] == PREVIOUS_CONFIG_TAG), None)


def tag_endpoint(boto, arn: str, tags: dict[str, str], untag: list[str] | tuple[str, ...] = ()) -> None:
    """Set the endpoint's tags after an update or a promotion (the previous config, the registry version it
    serves) and remove those that no longer hold (a registry version when the new model is not registered)."""
    client = sagemaker_client(boto)
    if tags:
        client.add_tags(ResourceArn=arn, Tags=[{"Key": key, "Value": value} for key, value in tags.items()])
    if untag:
        client.delete_tags(ResourceArn=arn, TagKeys=list(untag))


def remove_config(boto, config: str) -> list[str]:
    """Delete an endpoint config the endpoint no longer needs and the models of its variants; what went."""
    client = sagemaker_client(boto)
    variants = client.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    client.delete_endpoint_config(EndpointConfigName=config)
    removed = [f"endpoint config {config}"]
    for model in sorted({variant["ModelName"] for variant in variants}):
        client.delete_model(ModelName=model)
        removed.append(f"model {model}")
    return removed


def configs_of(boto, endpoint: str) -> list[str]:
    """The endpoint configs of `endpoint` (its first and each update's), oldest name first."""
    client = sagemaker_client(boto)
    listed = client.list_endpoint_configs(NameContains=endpoint, MaxResults=100)["EndpointConfigs"]
    return sorted(c["EndpointConfigName"] for c in listed if belongs_to(c["EndpointConfigName"], endpoint))
