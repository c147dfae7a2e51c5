"""Shadow tests (deploy.py --shadow NAME, --shadow-report NAME, --shadow NAME --promote | --stop), each request
checked against the service model and the expected parameters by botocore's Stubber: a start and its status
sequence to Running, the refusals (endpoint busy, a test already running, bad options before any call), a
report from CloudWatch figures and captured requests, a promotion, a stop, and the deletion's clean-up."""

from __future__ import annotations

import base64
import datetime
import io
import json

import boto3
import pytest
from botocore.response import StreamingBody

from classifier_host import records, settings
from classifier_host.deployment import DeploymentError, shadow_tests
from classifier_host.deployment.models import ModelChoice
from classifier_host.sagemaker import rollout, shadow
from classifier_host.settings import SettingsError

from .aws_stubs import ACCOUNT, BUCKET, REGION, ROLE
from .test_cloud_deploy import EP, EP_ARN, EXPORTED, IMAGE, IMAGE_CPU, MODEL, artifact_stub

UTC = datetime.UTC
NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
STAMP = "20261207120000"
NAME = f"{EP}--shadow-{STAMP}"
SHADOW = f"Shadow-{STAMP}"
EXPERIMENT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:inference-experiment/{NAME}"
STORAGE = f"s3://{BUCKET}/image-classifier/shadow-tests"
PROMOTED_CONFIG = f"{EP}-config-after-promotion"
PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/image-classifier/3"
# What the experiment's description records of the candidate (start_shadow writes it).
CANDIDATE = {"model_data": MODEL, "image": IMAGE_CPU}
REGISTERED = {"model_data": MODEL, "image": f"serve-cpu of {PACKAGE}", "registry": "image-classifier", "version": "3"}
REGISTERED["package"] = PACKAGE
BEFORE = {"config": EP, "model_data": f"s3://{BUCKET}/image-classifier/output/old/model.tar.gz", "image": IMAGE}


@pytest.fixture
def cloud(cloud, monkeypatch):
    """conftest's `cloud`, with a fixed clock: the names and the schedule derive from it."""
    monkeypatch.setattr(shadow, "now", lambda: NOW)
    return cloud


def endpoint_description(status="InService", variants=("AllTraffic",), shadow_variants=(), config=EP, count=2):
    return {
        "EndpointName": EP,
        "EndpointArn": EP_ARN,
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": 0,
        "LastModifiedTime": 0,
        "ProductionVariants": [{"VariantName": v, "CurrentInstanceCount": count} for v in variants],
        **(
            {"ShadowProductionVariants": [{"VariantName": v, "CurrentInstanceCount": 1} for v in shadow_variants]}
            if shadow_variants
            else {}
        ),
    }


def endpoint_stubs(sm, status="InService", variant: dict | None = None, asynchronous=False):
    """describe_endpoint.describe_endpoint's two calls: the endpoint, then its config."""
    sm.add_response("describe_endpoint", endpoint_description(status), {"EndpointName": EP})
    config = {
        "EndpointConfigName": EP,
        "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{EP}",
        "CreationTime": 0,
        "ProductionVariants": [
            variant
            or {"VariantName": "AllTraffic", "ModelName": EP, "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge"}
        ],
        **({"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/out"}}} if asynchronous else {}),
    }
    sm.add_response("describe_endpoint_config", config, {"EndpointConfigName": EP})


def summary(status, name=NAME, created=NOW):
    return {
        "Name": name,
        "Type": "ShadowMode",
        "Status": status,
        "CreationTime": created,
        "LastModifiedTime": created,
    }


def infrastructure(instance_type="ml.m5.xlarge", count=2):
    return {
        "InfrastructureType": "RealTimeInference",
        "RealTimeInferenceConfig": {"InstanceType": instance_type, "InstanceCount": count},
    }


def experiment(status, name=NAME, storage=True, description=CANDIDATE, reason=None, start=NOW, completion=None):
    """A DescribeInferenceExperiment answer: production AllTraffic (model EP, 2 x ml.m5.xlarge), shadow SHADOW."""
    return {
        "Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:inference-experiment/{name}",
        "Name": name,
        "Type": "ShadowMode",
        "Status": status,
        **({"StatusReason": reason} if reason else {}),
        "Schedule": {"StartTime": start, "EndTime": NOW + datetime.timedelta(hours=21)},
        "Description": json.dumps(description, sort_keys=True),
        "CreationTime": start,
        **({"CompletionTime": completion} if completion else {}),
        "RoleArn": ROLE,
        "EndpointMetadata": {"EndpointName": EP, "EndpointConfigName": EP, "EndpointStatus": "InService"},
        "ModelVariants": [
            {
                "ModelName": EP,
                "VariantName": "AllTraffic",
                "InfrastructureConfig": infrastructure(),
                "Status": "InService",
            },
            {
                "ModelName": name,
                "VariantName": SHADOW,
                "InfrastructureConfig": infrastructure(count=1),
                "Status": "InService",
            },
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": "AllTraffic",
            "ShadowModelVariants": [{"ShadowModelVariantName": SHADOW, "SamplingPercentage": 100}],
        },
        **({"DataStorageConfig": {"Destination": STORAGE}} if storage else {}),
    }


def running_stubs(sm, status="Running", **kwargs):
    """shadow.running: the listing, then the experiment in progress described."""
    sm.add_response(
        "list_inference_experiments",
        {"InferenceExperiments": [summary("Completed", f"{EP}--shadow-20261101090000"), summary(status)]},
        {"NameContains": EP},
    )
    sm.add_response("describe_inference_experiment", experiment(status, **kwargs), {"Name": NAME})


def model_stubs(sm):
    container = {"Image": IMAGE_CPU, "ModelDataUrl": MODEL}
    model_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{NAME}"
    sm.add_response(
        "create_model",
        {"ModelArn": model_arn},
        {"ModelName": NAME, "ExecutionRoleArn": ROLE, "PrimaryContainer": container},
    )
    sm.add_response(
        "describe_model",
        {"ModelName": NAME, "ModelArn": model_arn, "CreationTime": 0, "PrimaryContainer": container},
        {"ModelName": NAME},
    )


CREATE_REQUEST = {
    "Name": NAME,
    "Type": "ShadowMode",
    "Schedule": {"EndTime": NOW + datetime.timedelta(hours=6)},
    "RoleArn": ROLE,
    "EndpointName": EP,
    "Description": json.dumps(CANDIDATE, sort_keys=True),
    "ModelVariants": [
        {"ModelName": EP, "VariantName": "AllTraffic", "InfrastructureConfig": infrastructure("ml.m5.xlarge", 2)},
        {"ModelName": NAME, "VariantName": SHADOW, "InfrastructureConfig": infrastructure("ml.m5.xlarge", 1)},
    ],
    "ShadowModeConfig": {
        "SourceModelVariantName": "AllTraffic",
        "ShadowModelVariants": [{"ShadowModelVariantName": SHADOW, "SamplingPercentage": 50}],
    },
    "DataStorageConfig": {"Destination": STORAGE, "ContentType": {"JsonContentTypes": ["application/json"]}},
}


def request(**overrides):
    values = {"endpoint": EP, "choice": ModelChoice(model_data=MODEL), "hours": 6.0, "sampling_percentage": 50}
    return shadow_tests.ShadowRequest(**(values | overrides))


def test_a_start_creates_the_model_and_the_experiment_and_waits_until_it_runs(cloud):
    sm = cloud.stub("sagemaker")
    endpoint_stubs(sm)
    sm.add_response("list_inference_experiments", {"InferenceExperiments": []}, {"NameContains": EP})
    artifact_stub(cloud, EXPORTED)  # ONNX exports on a CPU instance: serve-cpu
    model_stubs(sm)
    sm.add_response("create_inference_experiment", {"InferenceExperimentArn": EXPERIMENT_ARN}, CREATE_REQUEST)
    for status in ("Creating", "Starting", "Starting", "Running"):
        sm.add_response("describe_inference_experiment", experiment(status), {"Name": NAME})
    said = []
    name = shadow_tests.start_shadow(settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET"), request(), said.append)
    cloud.assert_no_pending()
    assert name == NAME
    # each status said once, in order
    assert [line.split(": ")[1] for line in said if line.startswith(f"inference experiment {NAME}")] == [
        "Creating",
        "Starting",
        "Running",
    ]


def test_a_start_that_sagemaker_cancels_says_why_and_removes_the_model(cloud):
    sm = cloud.stub("sagemaker")
    endpoint_stubs(sm)
    sm.add_response("list_inference_experiments", {"InferenceExperiments": []}, {"NameContains": EP})
    artifact_stub(cloud, EXPORTED)
    model_stubs(sm)
    sm.add_response("create_inference_experiment", {"InferenceExperimentArn": EXPERIMENT_ARN}, CREATE_REQUEST)
    sm.add_response("describe_inference_experiment", experiment("Creating"), {"Name": NAME})
    failed = experiment("Cancelled", reason="the shadow variant's container did not pass ping")
    sm.add_response("describe_inference_experiment", failed, {"Name": NAME})
    sm.add_response("describe_inference_experiment", failed, {"Name": NAME})  # what is left of it
    sm.add_response("delete_model", {}, {"ModelName": NAME})
    with pytest.raises(DeploymentError, match="did not pass ping") as raised:
        shadow_tests.start_shadow(settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET"), request(), lambda line: None)
    cloud.assert_no_pending()
    assert "--stop" not in str(raised.value)  # nothing runs: nothing to stop


def test_an_endpoint_being_updated_is_refused_with_its_status(cloud):
    endpoint_stubs(cloud.stub("sagemaker"), status="Updating")
    with pytest.raises(SettingsError, match="is Updating, not InService"):
        shadow_tests.start_shadow(settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET"), request(), lambda line: None)
    cloud.assert_no_pending()


@pytest.mark.parametrize(
    "variant, asynchronous, why",
    [
        (
            {
                "VariantName": "AllTraffic",
                "ModelName": EP,
                "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 5},
            },
            False,
            "serverless",
        ),
        (None, True, "asynchronous"),
    ],
)
def test_serverless_and_asynchronous_endpoints_are_refused(cloud, variant, asynchronous, why):
    endpoint_stubs(cloud.stub("sagemaker"), variant=variant, asynchronous=asynchronous)
    with pytest.raises(SettingsError, match=f"is {why}"):
        shadow_tests.start_shadow(settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET"), request(), lambda line: None)
    cloud.assert_no_pending()


def test_a_second_test_while_one_runs_is_refused_naming_it(cloud):
    sm = cloud.stub("sagemaker")
    endpoint_stubs(sm)
    running_stubs(sm, status="Starting")
    with pytest.raises(SettingsError, match=f"already runs shadow test {NAME} \\(Starting\\)"):
        shadow_tests.start_shadow(settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET"), request(), lambda line: None)
    cloud.assert_no_pending()


@pytest.mark.parametrize(
    "overrides, flag",
    [
        ({"hours": 0.0}, "--duration"),
        ({"hours": -2.0}, "--duration"),
        ({"hours": 721.0}, "--duration"),
        ({"hours": float("nan")}, "--duration"),
        ({"sampling_percentage": 0}, "--shadow-percent"),
        ({"sampling_percentage": 101}, "--shadow-percent"),
    ],
)
def test_bad_duration_or_share_is_refused_before_any_call(cloud, monkeypatch, overrides, flag):
    def no_aws(**kwargs):
        raise AssertionError("a boto3 session was made")

    monkeypatch.setattr(boto3, "Session", no_aws)
    with pytest.raises(SettingsError) as raised:
        shadow_tests.start_shadow(settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET"), request(**overrides), print)
    assert str(raised.value).startswith(flag)


def test_an_endpoint_name_too_long_for_the_shadow_model_is_refused_before_any_call(cloud, monkeypatch):
    monkeypatch.setattr(boto3, "Session", lambda **kw: pytest.fail("a boto3 session was made"))
    with pytest.raises(SettingsError, match="at most 63 characters"):
        shadow_tests.start_shadow(settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET"), request(endpoint="e" * 41), print)


def capture_line(body: bytes, labels: tuple[str, ...], event: str, time: str, encoding="BASE64") -> str:
    """One line of a capture file, as SageMaker writes it: the request (an image, base64; a JSON body as text)
    and the container's JSON answer (one image: a ranked list; a batch: a list of them)."""
    ranked = [[{"label": label, "index": 0, "probability": 0.9}, {"label": "bird", "index": 2, "probability": 0.1}]
              for label in labels]  # fmt: skip
    answer = {"predictions": ranked[0] if len(labels) == 1 else ranked}
    data = base64.b64encode(body).decode() if encoding == "BASE64" else body.decode()
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "image/jpeg",
                    "mode": "INPUT",
                    "data": data,
                    "encoding": encoding,
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": json.dumps(answer),
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {"eventId": event, "inferenceTime": time},
            "eventVersion": "0",
        }
    )


def metric_query(query_id, variant, metric, statistic, period=3 * 3600):
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/SageMaker",
                "MetricName": metric,
                "Dimensions": [{"Name": "EndpointName", "Value": EP}, {"Name": "VariantName", "Value": variant}],
            },
            "Period": period,
            "Stat": statistic,
        },
        "ReturnData": True,
    }


def metric_queries(period: int) -> list[dict]:
    """GetMetricData's queries: four per variant, production first."""
    return [
        metric_query(f"{key.replace('_', '')}_{i}", variant, metric, statistic, period)
        for i, variant in enumerate(("AllTraffic", SHADOW))
        for key, metric, statistic in shadow.METRICS
    ]


def test_a_report_puts_cloudwatch_figures_beside_the_top1_agreement_of_captured_requests(cloud):
    sm = cloud.stub("sagemaker")
    started = NOW - datetime.timedelta(hours=2, minutes=55)  # 09:05
    sm.add_response(
        "list_inference_experiments",
        {"InferenceExperiments": [summary("Completed", f"{EP}--shadow-20261101090000"), summary("Running")]},
        {"NameContains": EP},
    )
    sm.add_response("describe_inference_experiment", experiment("Running", start=started), {"Name": NAME})
    queries = metric_queries(3 * 3600)  # one period: 09:00 (the start's hour) to past now (12:00)
    # invocations, 5XX, p50 and p99 ModelLatency (CloudWatch's microseconds) of production, then of the shadow
    values = (120, 0, 12000, 45500, 118, 2, 9800, 30100)
    results = [
        {"Id": query["Id"], "Timestamps": [NOW], "Values": [float(value)], "StatusCode": "Complete"}
        for query, value in zip(queries, values, strict=True)
    ]
    cloud.stub("cloudwatch").add_response(
        "get_metric_data",
        {"MetricDataResults": results},
        {
            "MetricDataQueries": queries,
            "StartTime": datetime.datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
            "EndTime": datetime.datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        },
    )
    cat, dog, unanswered, batch = b"\xff\xd8 cat", b"\xff\xd8 dog", b"\xff\xd8 lost", b'{"instances": ["a", "b"]}'
    production = "\n".join(
        [
            capture_line(cat, ("cat",), "p1", "2026-12-07T10:00:00Z"),
            capture_line(dog, ("dog",), "p2", "2026-12-07T10:01:00Z"),
            capture_line(unanswered, ("dog",), "p3", "2026-12-07T10:02:00Z"),  # the shadow did not get this one
            capture_line(batch, ("cat", "dog"), "p4", "2026-12-07T10:03:00Z", encoding="JSON"),
        ]
    )
    candidate = "\n".join(
        [
            capture_line(cat, ("cat",), "s1", "2026-12-07T10:00:00Z"),  # event ids differ: matched by the bytes
            capture_line(dog, ("cat",), "s2", "2026-12-07T10:01:00Z"),  # disagrees
            '{"captureData": {"endpointInput": ',  # a line cut short
            capture_line(batch, ("cat", "dog"), "s4", "2026-12-07T10:03:00Z", encoding="JSON"),
        ]
    )
    prefix = "image-classifier/shadow-tests/"
    written = datetime.datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
    s3 = cloud.stub("s3")
    s3.add_response(
        "list_objects_v2",
        {
            "IsTruncated": False,
            "Contents": [
                {
                    "Key": f"{prefix}{EP}/AllTraffic/2026/11/01/10/old.jsonl",
                    "LastModified": NOW - datetime.timedelta(30),
                },
                {"Key": f"{prefix}{EP}/AllTraffic/2026/12/07/10/a.jsonl", "LastModified": written},
                {"Key": f"{prefix}{EP}/{SHADOW}/2026/12/07/10/b.jsonl", "LastModified": written},
                {"Key": f"{prefix}cats-endpoint/AllTraffic/2026/12/07/10/c.jsonl", "LastModified": written},
            ],
        },
        {"Bucket": BUCKET, "Prefix": prefix},
    )
    files = {f"{EP}/AllTraffic/2026/12/07/10/a.jsonl": production, f"{EP}/{SHADOW}/2026/12/07/10/b.jsonl": candidate}
    for key, text in files.items():
        body = text.encode()
        s3.add_response(
            "get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))}, {"Bucket": BUCKET, "Key": prefix + key}
        )
    said = []
    report = shadow_tests.shadow_report(settings.load(), EP, said.append)
    cloud.assert_no_pending()
    assert report["experiment"] == NAME and report["status"] == "Running"
    assert report["variants"] == {
        "AllTraffic": {
            "role": "production",
            "model": EP,
            "invocations": 120,
            "errors_5xx": 0,
            "p50_ms": 12.0,
            "p99_ms": 45.5,
        },
        SHADOW: {"role": "shadow", "model": NAME, "invocations": 118, "errors_5xx": 2, "p50_ms": 9.8, "p99_ms": 30.1},
    }
    assert report["agreement"] == {
        "matched": 3,  # cat, dog and the batch; the request only production answered is not matched
        "agreed": 2,
        "rate": 2 / 3,
        "corrupt": 1,
        "captured": {"AllTraffic": 4, SHADOW: 3},
    }
    assert "top-1 agreement: 66.7% of 3 requests" in "\n".join(said)


def test_a_report_without_capture_has_the_figures_and_no_agreement(cloud):
    sm = cloud.stub("sagemaker")
    sm.add_response("list_inference_experiments", {"InferenceExperiments": [summary("Running")]}, {"NameContains": EP})
    sm.add_response("describe_inference_experiment", experiment("Running", storage=False), {"Name": NAME})
    cloud.stub("cloudwatch").add_response(
        "get_metric_data",
        {"MetricDataResults": []},
        {"MetricDataQueries": metric_queries(3600), "StartTime": NOW, "EndTime": NOW + datetime.timedelta(hours=1)},
    )
    report = shadow_tests.shadow_report(settings.load(), EP, lambda line: None)
    cloud.assert_no_pending()  # no S3 call
    assert report["agreement"] is None
    no_data = {"invocations": 0, "errors_5xx": 0, "p50_ms": None, "p99_ms": None}
    assert report["variants"][SHADOW] == {"role": "shadow", "model": NAME, **no_data}


def test_a_promotion_makes_the_shadow_production_and_updates_the_records(cloud):
    records.record_serving(EP, BEFORE)
    sm = cloud.stub("sagemaker")
    running_stubs(sm, description=REGISTERED)
    sm.add_response("describe_inference_experiment", experiment("Running", description=REGISTERED), {"Name": NAME})
    sm.add_response(
        "stop_inference_experiment",
        {"InferenceExperimentArn": EXPERIMENT_ARN},
        {
            "Name": NAME,
            "Reason": "promoted with deploy.py --shadow --promote",
            "DesiredState": "Completed",
            "ModelVariantActions": {SHADOW: "Promote", "AllTraffic": "Remove"},
            "DesiredModelVariants": [
                {"ModelName": NAME, "VariantName": SHADOW, "InfrastructureConfig": infrastructure(count=1)}
            ],
        },
    )
    for status in ("Stopping", "Completed"):
        sm.add_response("describe_inference_experiment", experiment(status, description=REGISTERED), {"Name": NAME})
    for described in (
        endpoint_description("Updating", shadow_variants=(SHADOW,)),
        endpoint_description("InService", shadow_variants=(SHADOW,)),  # not yet: the shadow is still there
        endpoint_description("InService", variants=(SHADOW,), config=PROMOTED_CONFIG, count=1),
    ):
        sm.add_response("describe_endpoint", described, {"EndpointName": EP})
    sm.add_response(
        "add_tags",
        {"Tags": []},
        {
            "ResourceArn": EP_ARN,
            "Tags": [
                {"Key": "registry.version", "Value": "3"},
                {"Key": "registry.package", "Value": PACKAGE},
                {"Key": rollout.PREVIOUS_CONFIG_TAG, "Value": EP},
            ],
        },
    )
    finished = shadow_tests.finish_shadow(settings.load(), EP, True, lambda line: None)
    cloud.assert_no_pending()
    assert finished == {"experiment": NAME, "promoted": True, "config": PROMOTED_CONFIG, "variant": SHADOW}
    assert records.served_by()[EP] == {
        "serving": {"config": PROMOTED_CONFIG, "model": NAME, "variant": SHADOW, **REGISTERED},
        "previous": BEFORE,
    }
    assert records.recorded("endpoint-model") == f"{EP} image-classifier v3 {PACKAGE}"


def test_a_stop_keeps_production_and_removes_the_shadow_and_its_model(cloud):
    records.record_serving(EP, BEFORE)
    sm = cloud.stub("sagemaker")
    running_stubs(sm)
    sm.add_response(
        "stop_inference_experiment",
        {"InferenceExperimentArn": EXPERIMENT_ARN},
        {
            "Name": NAME,
            "Reason": "stopped with deploy.py --shadow --stop",
            "DesiredState": "Completed",
            "ModelVariantActions": {"AllTraffic": "Retain", SHADOW: "Remove"},
        },
    )
    sm.add_response("describe_inference_experiment", experiment("Completed"), {"Name": NAME})
    sm.add_response(
        "describe_endpoint", endpoint_description("Updating", shadow_variants=(SHADOW,)), {"EndpointName": EP}
    )
    sm.add_response("describe_endpoint", endpoint_description("InService"), {"EndpointName": EP})
    sm.add_response("delete_model", {}, {"ModelName": NAME})
    finished = shadow_tests.finish_shadow(settings.load(), EP, False, lambda line: None)
    cloud.assert_no_pending()
    assert finished == {"experiment": NAME, "promoted": False, "config": EP, "variant": "AllTraffic"}
    assert records.served_by()[EP] == {"serving": BEFORE, "previous": None}  # it serves what it served


@pytest.mark.parametrize(
    "action, message",
    [
        ("report", f"endpoint {EP} has no shadow test"),
        ("promote", f"no shadow test is in progress on endpoint {EP}: nothing to promote"),
        ("stop", f"no shadow test is in progress on endpoint {EP}: nothing to stop"),
    ],
)
def test_without_an_experiment_each_action_says_there_is_none(cloud, action, message):
    sm = cloud.stub("sagemaker")
    # an ended test is nothing to promote or stop; the report shows the last one, so it gets none at all
    done = [summary("Completed", f"{EP}--shadow-20261101090000")] if action != "report" else []
    sm.add_response("list_inference_experiments", {"InferenceExperiments": done}, {"NameContains": EP})
    with pytest.raises(SettingsError, match=message):
        if action == "report":
            shadow_tests.shadow_report(settings.load(), EP, lambda line: None)
        else:
            shadow_tests.finish_shadow(settings.load(), EP, action == "promote", lambda line: None)
    cloud.assert_no_pending()


def test_deleting_the_endpoint_stops_its_running_test_then_deletes_every_experiment(cloud):
    old = f"{EP}--shadow-20261101090000"
    sm = cloud.stub("sagemaker")
    sm.add_response(
        "list_inference_experiments",
        {
            "InferenceExperiments": [
                summary("Running"),
                summary("Completed", old, created=NOW - datetime.timedelta(days=36)),
                summary("Running", f"{EP}-2--shadow-{STAMP}"),  # another endpoint's: NameContains matches it too
            ]
        },
        {"NameContains": EP},
    )
    sm.add_response("delete_inference_experiment", {"InferenceExperimentArn": EXPERIMENT_ARN}, {"Name": old})
    sm.add_response("describe_inference_experiment", experiment("Running"), {"Name": NAME})
    sm.add_response(
        "stop_inference_experiment",
        {"InferenceExperimentArn": EXPERIMENT_ARN},
        {
            "Name": NAME,
            "Reason": "the endpoint is being deleted (deploy.py --delete)",
            "DesiredState": "Cancelled",
            "ModelVariantActions": {"AllTraffic": "Retain", SHADOW: "Remove"},
        },
    )
    sm.add_response("describe_inference_experiment", experiment("Cancelled"), {"Name": NAME})
    sm.add_response("describe_endpoint", endpoint_description("InService"), {"EndpointName": EP})
    sm.add_response("delete_inference_experiment", {"InferenceExperimentArn": EXPERIMENT_ARN}, {"Name": NAME})
    removed = shadow.remove_all(cloud, EP)
    cloud.assert_no_pending()
    assert removed == [f"inference experiment {old}", f"inference experiment {NAME}"]
