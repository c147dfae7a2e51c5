"""Shadow tests: SageMaker inference experiments of type ShadowMode (boto3; sagemaker-core has no waiter for
them). A candidate model runs as a shadow variant beside an endpoint's one production variant: SageMaker sends
it a copy of a share of the requests, production alone answers. Here: the experiment's start and stop (with
promotion of the shadow), the CloudWatch figures of both variants, the requests and answers the experiment
captured to S3, and the top-1 agreement of the two models on the same requests.

Names: experiment and shadow model are both ENDPOINT--shadow-YYYYMMDDHHMMSS (UTC), so everything of an
endpoint's shadow tests is found by its name (endpoints.delete deletes the models it finds as ENDPOINT--*).
The shadow variant is Shadow-YYYYMMDDHHMMSS: after a promotion it is the endpoint's production variant, and
the next shadow test's variant must have another name.

SageMaker's limits (CreateInferenceExperiment): one production and one shadow variant, on instances (no
serverless or asynchronous endpoint, no Inf1 instance); 7 days when no schedule is given, at most 30 days.
When the schedule ends SageMaker removes the shadow variant itself and the endpoint serves as before.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# The endpoint states of a change in progress (an experiment's start and stop update the endpoint, as an update does).
from .rollout import IN_PROGRESS as ENDPOINT_BUSY
from .rollout import STAMP
from .session import sagemaker_client

SEPARATOR = "--shadow-"
STAMP_LENGTH = len("20261207120000")
STAMP_PATTERN = rf"\d{{{STAMP_LENGTH}}}"
# SageMaker's name limits: inference experiments 120 characters, models (and variants) 63.
MAX_EXPERIMENT_NAME = 120
MAX_MODEL_NAME = 63
MAX_ENDPOINT_NAME = MAX_MODEL_NAME - len(SEPARATOR) - STAMP_LENGTH
SHADOW_VARIANT_PREFIX = "Shadow-"
MAX_HOURS = 30 * 24
# The experiment states: in progress (one at a time per endpoint), on its way out, ended.
IN_PROGRESS = ("Creating", "Created", "Updating", "Starting", "Running")
STOPPING = "Stopping"
ENDED = ("Completed", "Cancelled")
# A start or stop creates or removes instances: 5-15 minutes, more on GPU instances.
START_TIMEOUT_S = 45 * 60
STOP_TIMEOUT_S = 45 * 60
POLL_S = 15
NAMESPACE = "AWS/SageMaker"
# (key in metrics()'s answer, CloudWatch metric, statistic); ModelLatency is in microseconds.
METRICS = (
    ("invocations", "Invocations", "Sum"),
    ("errors_5xx", "Invocation5XXErrors", "Sum"),
    ("p50_ms", "ModelLatency", "p50"),
    ("p99_ms", "ModelLatency", "p99"),
)
# How requests and answers are captured: JSON answers (the container's) as text, images as base64.
JSON_CONTENT_TYPES = ["application/json"]


def now() -> datetime.datetime:
    """The current UTC time (one place, so tests can fix it)."""
    return datetime.datetime.now(datetime.UTC)


def stamp(at: datetime.datetime | None = None) -> str:
    return (at or now()).strftime(STAMP)


def experiment_name(endpoint: str, stamp: str) -> str:
    """ENDPOINT--shadow-STAMP: the experiment's name and its shadow model's. ValueError naming SageMaker's limit
    when the endpoint's name is too long for it (the model's 63 characters bind first)."""
    if not re.fullmatch(STAMP_PATTERN, stamp):
        raise ValueError(f"shadow test stamp {stamp!r}: expected UTC time as {STAMP} ({STAMP_LENGTH} digits)")
    name = f"{endpoint}{SEPARATOR}{stamp}"
    if len(name) > min(MAX_MODEL_NAME, MAX_EXPERIMENT_NAME):
        raise ValueError(
            f"endpoint {endpoint} has {len(endpoint)} characters: a shadow test names its model and inference "
            f"experiment {endpoint}{SEPARATOR}YYYYMMDDHHMMSS, and SageMaker's model names are at most "
            f"{MAX_MODEL_NAME} characters (inference experiments {MAX_EXPERIMENT_NAME}): endpoint names of up to "
            f"{MAX_ENDPOINT_NAME} characters can have shadow tests"
        )
    return name


def shadow_variant_name(name: str) -> str:
    """The shadow variant of experiment `name`: Shadow-STAMP."""
    return SHADOW_VARIANT_PREFIX + name.rsplit(SEPARATOR, 1)[-1]


def belongs_to(name: str, endpoint: str) -> bool:
    """Whether an inference experiment (or model) named `name` is one of `endpoint`'s shadow tests."""
    return re.fullmatch(re.escape(endpoint + SEPARATOR) + STAMP_PATTERN, name) is not None


@dataclass(frozen=True)
class Variant:
    """A variant of an experiment: its name, model and instances (CreateInferenceExperiment's ModelVariantConfig)."""

    name: str
    model: str
    instance_type: str
    instance_count: int

    def config(self) -> dict:
        return {
            "ModelName": self.model,
            "VariantName": self.name,
            "InfrastructureConfig": {
                "InfrastructureType": "RealTimeInference",
                "RealTimeInferenceConfig": {"InstanceType": self.instance_type, "InstanceCount": self.instance_count},
            },
        }


@dataclass(frozen=True)
class Endpoint:
    """What a shadow test needs to know of an endpoint (DescribeEndpoint and its DescribeEndpointConfig)."""

    name: str
    arn: str
    status: str
    config: str
    variants: tuple[Variant, ...]  # the production variants on instances
    serverless: tuple[str, ...] = ()  # the production variants without instances
    asynchronous: bool = False
    shadow_variants: tuple[str, ...] = ()
    failure: str | None = None


def describe_endpoint(boto, endpoint: str) -> Endpoint:
    """The endpoint and its config; botocore's ClientError (ValidationException) when there is no such endpoint."""
    client = sagemaker_client(boto)
    described = client.describe_endpoint(EndpointName=endpoint)
    config = client.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    counts = {
        v["VariantName"]: v["CurrentInstanceCount"]
        for v in described.get("ProductionVariants", [])
        if v.get("CurrentInstanceCount") is not None
    }
    variants, serverless = [], []
    for variant in config["ProductionVariants"]:
        if variant.get("ServerlessConfig") or not variant.get("InstanceType"):
            serverless.append(variant["VariantName"])
            continue
        count = counts.get(variant["VariantName"], variant.get("InitialInstanceCount") or 1)
        variants.append(Variant(variant["VariantName"], variant["ModelName"], variant["InstanceType"], count))
    return Endpoint(
        name=endpoint,
        arn=described["EndpointArn"],
        status=described["EndpointStatus"],
        config=described["EndpointConfigName"],
        variants=tuple(variants),
        serverless=tuple(serverless),
        asynchronous="AsyncInferenceConfig" in config,
        shadow_variants=tuple(v["VariantName"] for v in described.get("ShadowProductionVariants", [])),
        failure=described.get("FailureReason"),
    )


def start(
    boto,
    endpoint: str,
    production_variant: Variant,
    shadow_model: str,
    instance_type: str,
    instance_count: int,
    role: str,
    hours: float,
    storage_s3: str | None,
    kms_key_id: str | None,
    sampling_percentage: int = 100,
    *,
    description: str | None = None,
    timeout_s: float = START_TIMEOUT_S,
    say: Callable[[str], object] | None = None,
) -> dict:
    """CreateInferenceExperiment named `shadow_model` (the shadow's model has the experiment's name): the
    production variant as it runs, the shadow on its own instances getting `sampling_percentage` of the
    requests, until now + `hours`; with storage_s3, the requests and answers of both variants captured there
    (encrypted with kms_key_id, which also encrypts the shadow's volumes). Waits until it runs and returns its
    DescribeInferenceExperiment; RuntimeError with SageMaker's StatusReason when it ends instead, or when it
    does not run after timeout_s. ValueError for a duration or share SageMaker refuses."""
    if not 0 < hours <= MAX_HOURS:
        raise ValueError(f"a shadow test runs more than 0 and at most {MAX_HOURS} hours (30 days), not {hours:g}")
    if not 1 <= sampling_percentage <= 100:
        raise ValueError(f"the shadow gets 1-100% of the requests, not {sampling_percentage}")
    client = sagemaker_client(boto)
    shadow = Variant(shadow_variant_name(shadow_model), shadow_model, instance_type, instance_count)
    request = {
        "Name": shadow_model,
        "Type": "ShadowMode",
        "Schedule": {"EndTime": now() + datetime.timedelta(hours=hours)},
        "RoleArn": role,
        "EndpointName": endpoint,
        "ModelVariants": [production_variant.config(), shadow.config()],
        "ShadowModeConfig": {
            "SourceModelVariantName": production_variant.name,
            "ShadowModelVariants": [{"ShadowModelVariantName": shadow.name, "SamplingPercentage": sampling_percentage}],
        },
    }
    if description:
        request["Description"] = description
    if storage_s3:
        request["DataStorageConfig"] = {
            "Destination": storage_s3,
            "ContentType": {"JsonContentTypes": list(JSON_CONTENT_TYPES)},
            **({"KmsKey": kms_key_id} if kms_key_id else {}),
        }
    if kms_key_id:
        request["KmsKey"] = kms_key_id
    client.create_inference_experiment(**request)
    return _wait_experiment(client, shadow_model, ("Running",), timeout_s, say)


def _wait_experiment(client, name: str, until: tuple[str, ...], timeout_s: float, say) -> dict:
    """Poll DescribeInferenceExperiment until its status is in `until`; RuntimeError when it ends otherwise or
    not within timeout_s."""
    deadline, said = time.monotonic() + timeout_s, None
    while True:
        described = client.describe_inference_experiment(Name=name)
        status = described["Status"]
        if say and status != said:
            say(f"inference experiment {name}: {status}")
        said = status
        if status in until:
            return described
        if status in ENDED:
            reason = described.get("StatusReason") or "no reason given"
            raise RuntimeError(f"inference experiment {name} ended {status}: {reason}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"inference experiment {name} is still {status} after {timeout_s / 60:.0f} min")
        time.sleep(POLL_S)


def _wait_endpoint(client, endpoint: str, variant: str | None, timeout_s: float, strict: bool = True, say=None) -> dict:
    """Poll DescribeEndpoint until the experiment's change is over: no update in progress, no shadow variant
    and, when `variant` is given, that variant alone in production. Its DescribeEndpoint; with strict, a
    RuntimeError (SageMaker's FailureReason) when it is not InService then."""
    deadline, said = time.monotonic() + timeout_s, None
    while True:
        described = client.describe_endpoint(EndpointName=endpoint)
        status = described["EndpointStatus"]
        names = [v["VariantName"] for v in described.get("ProductionVariants", [])]
        settled = status not in ENDPOINT_BUSY and not described.get("ShadowProductionVariants")
        if settled and (variant is None or names == [variant] or status != "InService"):
            if strict and status != "InService":
                reason = described.get("FailureReason") or "no reason given"
                raise RuntimeError(f"endpoint {endpoint} is {status} after the shadow test: {reason}")
            return described
        if say and status != said:
            say(f"endpoint {endpoint}: {status}")
        said = status
        if time.monotonic() > deadline:
            raise RuntimeError(f"endpoint {endpoint} is still {status} after {timeout_s / 60:.0f} min")
        time.sleep(POLL_S)


def experiments(boto, endpoint: str) -> list[dict]:
    """The summaries (ListInferenceExperiments) of the endpoint's shadow tests, oldest first."""
    client = sagemaker_client(boto)
    found, token = [], None
    while True:
        page = client.list_inference_experiments(NameContains=endpoint, **({"NextToken": token} if token else {}))
        found += [e for e in page.get("InferenceExperiments", []) if belongs_to(e["Name"], endpoint)]
        token = page.get("NextToken")
        if not token:
            return sorted(found, key=lambda e: (e["CreationTime"], e["Name"]))


def describe(boto, name: str) -> dict:
    return sagemaker_client(boto).describe_inference_experiment(Name=name)


def running(boto, endpoint: str) -> dict | None:
    """The DescribeInferenceExperiment of the endpoint's experiment in progress (created, starting, running,
    being updated), or None."""
    for summary in reversed(experiments(boto, endpoint)):
        if summary["Status"] in IN_PROGRESS:
            described = describe(boto, summary["Name"])
            if described["EndpointMetadata"]["EndpointName"] == endpoint:
                return described
    return None


def latest(boto, endpoint: str) -> dict | None:
    """The experiment in progress, else the endpoint's last one (DescribeInferenceExperiment), or None."""
    found = experiments(boto, endpoint)
    in_progress = [e for e in found if e["Status"] in IN_PROGRESS]
    for summary in reversed(in_progress or found):
        described = describe(boto, summary["Name"])
        if described["EndpointMetadata"]["EndpointName"] == endpoint:
            return described
    return None


def roles(described: dict) -> tuple[str, str]:
    """(production variant, shadow variant) of a DescribeInferenceExperiment."""
    config = described["ShadowModeConfig"]
    return config["SourceModelVariantName"], config["ShadowModelVariants"][0]["ShadowModelVariantName"]


def window(described: dict) -> tuple[datetime.datetime, datetime.datetime]:
    """The time an experiment ran: from its start (or creation) to its completion, its scheduled end or now."""
    schedule = described.get("Schedule") or {}
    begin = schedule.get("StartTime") or described.get("CreationTime") or now()
    end = described.get("CompletionTime") or min(schedule.get("EndTime") or now(), now())
    return begin, max(end, begin)


def metrics(
    boto, endpoint: str, variants: list[str] | tuple[str, ...], start: datetime.datetime, end: datetime.datetime
) -> dict[str, dict]:
    """{variant: {"invocations", "errors_5xx", "p50_ms", "p99_ms"}} from CloudWatch (AWS/SageMaker, per
    EndpointName and VariantName) between start and end: one GetMetricData with every query, one period from
    start's hour to past end (a multiple of an hour, as CloudWatch wants for data older than 15 days).
    Latencies are None (and counts 0) when the variant has no data point."""
    cloudwatch = boto.client("cloudwatch")
    begin = start.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    period = max(1, math.ceil((end - begin).total_seconds() / 3600)) * 3600
    queries, asked = [], {}
    for i, variant in enumerate(variants):
        for key, metric, statistic in METRICS:
            query_id = f"{key.replace('_', '')}_{i}"
            asked[query_id] = (variant, key)
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": metric,
                            "Dimensions": [
                                {"Name": "EndpointName", "Value": endpoint},
                                {"Name": "VariantName", "Value": variant},
                            ],
                        },
                        "Period": period,
                        "Stat": statistic,
                    },
                    "ReturnData": True,
                }
            )
    values: dict[str, list[float]] = {query_id: [] for query_id in asked}
    token = None
    while True:
        page = cloudwatch.get_metric_data(
            MetricDataQueries=queries,
            StartTime=begin,
            EndTime=begin + datetime.timedelta(seconds=period),
            **({"NextToken": token} if token else {}),
        )
        for result in page.get("MetricDataResults", []):
            values.setdefault(result["Id"], []).extend(result.get("Values", []))
        token = page.get("NextToken")
        if not token:
            break
    figures = {variant: {} for variant in variants}
    for query_id, (variant, key) in asked.items():
        got = values[query_id]
        if key.endswith("_ms"):  # one period: one value; more (a period split by CloudWatch): the worst
            figures[variant][key] = round(max(got) / 1000, 3) if got else None
        else:
            figures[variant][key] = int(round(sum(got)))
    return figures


@dataclass(frozen=True)
class Answer:
    """One captured request and a variant's answer to it."""

    request: str  # SHA-256 of the request's body (the shadow gets the same bytes)
    labels: tuple[str, ...]  # the top-1 label of each image of the request
    time: str | None = None  # eventMetadata.inferenceTime


@dataclass
class Captured:
    """What captured_answers read: the answers by variant, the lines it could not read, the files it read."""

    answers: dict[str, list[Answer]] = field(default_factory=dict)
    corrupt: int = 0
    files: int = 0


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key.strip("/")


def variant_of(key: str, endpoint: str) -> str | None:
    """The variant a capture file belongs to, from its key below the storage prefix: the path segment after
    the endpoint's name (data capture writes ENDPOINT/VARIANT/yyyy/mm/dd/hh/FILE.jsonl); None when the key has
    no segment named as the endpoint (another endpoint's file)."""
    segments = key.split("/")[:-1]
    for i, segment in enumerate(segments[:-1]):
        if segment == endpoint:
            return segments[i + 1]
    return None


def captured_answers(
    boto,
    storage_s3: str,
    endpoint: str,
    *,
    variants: tuple[str, ...] = (),
    since: datetime.datetime | None = None,
) -> Captured:
    """Read the JSON-lines files captured under storage_s3 for `endpoint` (files last written before `since`
    are an earlier experiment's, and files of variants not in `variants` when given, skipped), grouped by
    variant; a line that is not a capture record with a
    readable request and a classifier's answer is counted in `corrupt`."""
    s3 = boto.client("s3")
    bucket, prefix = split_s3(storage_s3)
    prefix = f"{prefix}/" if prefix else ""
    files, token = [], None
    while True:
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        for item in page.get("Contents", []):
            key = item["Key"]
            if not key.endswith(".jsonl") or (since and item.get("LastModified") and item["LastModified"] < since):
                continue
            variant = variant_of(key[len(prefix) :], endpoint)
            if variant and (not variants or variant in variants):
                files.append((key, variant))
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        if not token:
            break
    captured = Captured(files=len(files))
    for key, variant in files:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for line in body.splitlines():
            if not line.strip():
                continue
            answer = parse_line(line)
            if answer is None:
                captured.corrupt += 1
            else:
                captured.answers.setdefault(variant, []).append(answer)
    return captured


def parse_line(line: bytes | str) -> Answer | None:
    """One capture record (captureData.endpointInput / endpointOutput, eventMetadata) as an Answer, or None."""
    try:
        record = json.loads(line)
        capture = record["captureData"]
        request = body_of(capture["endpointInput"])
        labels = top_labels(json.loads(body_of(capture["endpointOutput"])))
        metadata = record.get("eventMetadata") or {}
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):  # JSON, base64 and UTF-8 errors too
        return None
    return Answer(hashlib.sha256(request).hexdigest(), labels, metadata.get("inferenceTime"))


def body_of(part: dict) -> bytes:
    """The bytes of a captured body: BASE64 decoded, JSON and CSV as their UTF-8 text (a JSON body captured
    as a parsed value is written back compactly: the same for both variants)."""
    encoding, data = str(part.get("encoding", "")).upper(), part["data"]
    if encoding == "BASE64":
        return base64.b64decode(data, validate=True)
    if encoding in ("JSON", "CSV"):
        if isinstance(data, str):
            return data.encode("utf-8")
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
    raise ValueError(f"unknown capture encoding {encoding!r}")


def top_labels(answer: dict) -> tuple[str, ...]:
    """The top-1 label of each image in the container's answer: {"predictions": [{label, index, probability},
    ...]} for one image, {"predictions": [[...], [...]]} for a batch (ranked best first)."""
    predictions = answer["predictions"]
    if not isinstance(predictions, list) or not predictions:
        raise ValueError("no predictions")
    rows = [predictions] if isinstance(predictions[0], dict) else predictions
    labels = tuple(str(row[0]["label"]) for row in rows)
    if not labels:
        raise ValueError("no predictions")
    return labels


def agreement(answers_by_variant: dict[str, list[Answer]], production: str, shadow: str) -> tuple[int, int]:
    """(matched, agreed): the requests both variants answered (matched by the SHA-256 of the request's bytes;
    repeated identical requests are paired in time order) and how many of them got the same top-1 labels."""

    def by_request(answers) -> dict[str, list[Answer]]:
        grouped: dict[str, list[Answer]] = {}
        for answer in sorted(answers, key=lambda a: a.time or ""):
            grouped.setdefault(answer.request, []).append(answer)
        return grouped

    mine, theirs = by_request(answers_by_variant.get(production, ())), by_request(answers_by_variant.get(shadow, ()))
    matched = agreed = 0
    for request, answers in mine.items():
        for ours, its in zip(answers, theirs.get(request, ()), strict=False):
            matched += 1
            agreed += ours.labels == its.labels
    return matched, agreed


def stop(
    boto,
    name: str,
    production_variant: str,
    shadow_variant: str,
    promote: bool,
    reason: str,
    *,
    state: str = "Completed",
    timeout_s: float = STOP_TIMEOUT_S,
    strict: bool = True,
    say: Callable[[str], object] | None = None,
) -> dict:
    """StopInferenceExperiment: with promote, the shadow becomes the production variant on its instances
    (Promote, with its ModelVariantConfig as DesiredModelVariants) and the old production variant goes
    (Remove); without, production stays (Retain) and the shadow goes (Remove). Waits until the experiment has
    ended and the endpoint serves from the one variant left; that DescribeEndpoint. RuntimeError when the
    endpoint is not InService then (with strict), or not within timeout_s."""
    client = sagemaker_client(boto)
    request = {"Name": name, "Reason": reason, "DesiredState": state}
    if promote:
        described = client.describe_inference_experiment(Name=name)
        shadow = next((v for v in described["ModelVariants"] if v["VariantName"] == shadow_variant), None)
        if shadow is None:
            raise ValueError(f"inference experiment {name} has no variant {shadow_variant}")
        request["ModelVariantActions"] = {shadow_variant: "Promote", production_variant: "Remove"}
        request["DesiredModelVariants"] = [
            {key: shadow[key] for key in ("ModelName", "VariantName", "InfrastructureConfig")}
        ]
    else:
        request["ModelVariantActions"] = {production_variant: "Retain", shadow_variant: "Remove"}
    client.stop_inference_experiment(**request)
    deadline = time.monotonic() + timeout_s
    ended = _wait_experiment(client, name, ENDED, timeout_s, say)
    endpoint = ended["EndpointMetadata"]["EndpointName"]
    left = shadow_variant if promote else production_variant
    return _wait_endpoint(client, endpoint, left, max(deadline - time.monotonic(), POLL_S), strict, say)


def delete_model(boto, name: str) -> None:
    """DeleteModel: the shadow's model once no variant serves it (a stopped test's)."""
    sagemaker_client(boto).delete_model(ModelName=name)


def remove_all(boto, endpoint: str) -> list[str]:
    """For deleting the endpoint: stop its experiment in progress (production retained, shadow removed), wait
    for one being stopped, then DeleteInferenceExperiment every experiment of it; "inference experiment NAME"
    for each deleted. botocore's errors reach the caller, and a RuntimeError when a stop does not end in time."""
    client = sagemaker_client(boto)
    removed = []
    for summary in experiments(boto, endpoint):
        name = summary["Name"]
        if summary["Status"] in IN_PROGRESS:
            production, shadow = roles(describe(boto, name))
            stop(
                boto,
                name,
                production,
                shadow,
                promote=False,
                reason="the endpoint is being deleted (deploy.py --delete)",
                state="Cancelled",
                strict=False,
            )
        elif summary["Status"] == STOPPING:
            _wait_experiment(client, name, ENDED, STOP_TIMEOUT_S, None)
        client.delete_inference_experiment(Name=name)
        removed.append(f"inference experiment {name}")
    return removed
