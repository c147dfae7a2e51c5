"""In-place updates of a live endpoint (deploy.py --endpoint NAME, --rollback NAME) and serverless endpoints
(--serverless), each request checked against the service model and the expected parameters by botocore's
Stubber: the endpoint status sequences of an update that completes, one that rolls back on an alarm, a
rollback, an update refused while another runs; serverless configs and refusals."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.stub import ANY
from botocore.validate import validate_parameters

from classifier_host import records
from classifier_host.cli import deploy
from classifier_host.sagemaker import rollout

from .aws_stubs import ACCOUNT, IMAGE, IMAGE_CPU, REGION, ROLE
from .test_cloud_deploy import EP, EP_ARN, EXPORTED, MODEL, TORCH_ONLY, artifact_stub, deploy_stubs

NEW = f"{EP}--20261207163000"
OLDER = f"{EP}--20261101090000"
ALARMS = [f"{EP}-rollout-5xx-errors", f"{EP}-rollout-model-latency", f"{EP}-rollout-model-errors"]
CANARY_10_10 = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "WaitIntervalInSeconds": 600,
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
        },
        "TerminationWaitInSeconds": 0,
        # 10 min of baking + 30 min for the new fleet to start
        "MaximumExecutionTimeoutInSeconds": 2400,
    },
    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ALARMS]},
}


@pytest.fixture
def named(monkeypatch):
    """The update's model and config name (a UTC timestamp in real runs)."""
    monkeypatch.setattr(rollout, "config_name", lambda endpoint, now=None: f"{endpoint}--20261207163000")


def described(status="InService", config=EP, pending=None, failure=None):
    return {
        "EndpointName": EP,
        "EndpointArn": EP_ARN,
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": 0,
        "LastModifiedTime": 0,
        **({"PendingDeploymentSummary": pending} if pending else {}),
        **({"FailureReason": failure} if failure else {}),
    }


def pending(state, weight=None):
    variant = {
        "VariantName": "AllTraffic",
        "DesiredInstanceCount": 2,
        "InstanceType": "ml.m5.xlarge",
        "VariantStatus": [{"Status": state}],
    }
    if weight is not None:
        variant["CurrentWeight"] = weight
    return {"EndpointConfigName": NEW, "ProductionVariants": [variant]}


def config_description(name, model, serverless=None, count=2, variant_name="AllTraffic"):
    variant = {"VariantName": variant_name, "ModelName": model, "InitialVariantWeight": 1.0}
    if serverless:
        variant["ServerlessConfig"] = serverless
    else:
        variant |= {"InitialInstanceCount": count, "InstanceType": "ml.m5.xlarge"}
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{name}",
        "CreationTime": 0,
        "ProductionVariants": [variant],
    }


def alarm_states(cw, fired: dict | None = None):
    cw.add_response(
        "describe_alarms",
        {
            "MetricAlarms": [
                {
                    "AlarmName": name,
                    "StateValue": "ALARM" if fired and name in fired else "OK",
                    "StateReason": (fired or {}).get(name, "Threshold Crossed: no datapoints were received"),
                }
                for name in ALARMS
            ]
        },
        {"AlarmNames": ALARMS},
    )


def new_model_stubs(sm, image=IMAGE_CPU, serverless=None, environment=None, name=NEW, variant_name="AllTraffic"):
    """CreateModel and CreateEndpointConfig of `name` (an update's, by default). sagemaker-core describes each
    after creating it; a serverless config goes through the client as written, with no Describe after it."""
    container = {"Image": image, "ModelDataUrl": MODEL, **({"Environment": environment} if environment else {})}
    model_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{name}"
    sm.add_response(
        "create_model",
        {"ModelArn": model_arn},
        {"ModelName": name, "ExecutionRoleArn": ROLE, "PrimaryContainer": container},
    )
    sm.add_response(
        "describe_model",
        {
            "ModelName": name,
            "ModelArn": model_arn,
            "CreationTime": 0,
            "PrimaryContainer": container,
            "ExecutionRoleArn": ROLE,
        },
        {"ModelName": name},
    )
    config = config_description(name, name, serverless, variant_name=variant_name)
    request = {k: config[k] for k in ("EndpointConfigName", "ProductionVariants")}
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": config["EndpointConfigArn"]}, request)
    if not serverless:
        sm.add_response("describe_endpoint_config", config, {"EndpointConfigName": name})


def alarm_request(name, metric, threshold, statistic, variant_name="AllTraffic"):
    return {
        "AlarmName": name,
        "AlarmDescription": ANY,
        "Namespace": "AWS/SageMaker",
        "MetricName": metric,
        "Dimensions": [{"Name": "EndpointName", "Value": EP}, {"Name": "VariantName", "Value": variant_name}],
        "Period": 60,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        **statistic,
    }


def update_start_stubs(cloud, deployment_config=CANARY_10_10, latency_us=1_000_000.0, error_rate=0.01):
    """Everything up to UpdateEndpoint: the endpoint and its config read, the model's metadata, the new
    model and config, the three alarms."""
    sm, cw = cloud.stub("sagemaker"), cloud.stub("cloudwatch")
    sm.add_response("describe_endpoint", described(), {"EndpointName": EP})
    sm.add_response("describe_endpoint_config", config_description(EP, EP), {"EndpointConfigName": EP})
    artifact_stub(cloud, EXPORTED)
    new_model_stubs(sm)
    for name, metric, threshold, statistic in (
        (ALARMS[0], "Invocation5XXErrors", error_rate, {"Statistic": "Average"}),
        (ALARMS[1], "ModelLatency", latency_us, {"ExtendedStatistic": "p99"}),
        (ALARMS[2], "InvocationModelErrors", error_rate, {"Statistic": "Average"}),
    ):
        cw.add_response("put_metric_alarm", {}, alarm_request(name, metric, threshold, statistic))
    sm.add_response(
        "update_endpoint",
        {"EndpointArn": EP_ARN},
        {"EndpointName": EP, "EndpointConfigName": NEW, "DeploymentConfig": deployment_config},
    )
    return sm, cw


def test_an_update_that_completes_says_each_phase_and_keeps_the_previous_config(cloud, named, capsys):
    sm, cw = update_start_stubs(cloud)
    for status, summary in (
        ("Updating", pending("Creating")),
        ("Updating", pending("Baking", 0.1)),
        ("Updating", pending("ActivatingTraffic", 1.0)),
        ("Updating", pending("Deleting", 1.0)),
    ):
        sm.add_response("describe_endpoint", described(status, EP, summary), {"EndpointName": EP})
        alarm_states(cw)
    sm.add_response("describe_endpoint", described("InService", NEW), {"EndpointName": EP})
    alarm_states(cw)
    # the end: the endpoint tagged with its previous config, the config older than that deleted
    sm.add_response("describe_endpoint", described("InService", NEW), {"EndpointName": EP})
    sm.add_response(
        "add_tags",
        {"Tags": [{"Key": "rollout.previous-config", "Value": EP}]},
        {"ResourceArn": EP_ARN, "Tags": [{"Key": "rollout.previous-config", "Value": EP}]},
    )
    sm.add_response("delete_tags", {}, {"ResourceArn": EP_ARN, "TagKeys": ["registry.version", "registry.package"]})
    sm.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {
                    "EndpointConfigName": n,
                    "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{n}",
                    "CreationTime": 0,
                }
                for n in (EP, OLDER, NEW, f"{EP}-other")  # an endpoint named EP-other is not ours
            ]
        },
        {"NameContains": EP, "MaxResults": 100},
    )
    sm.add_response("describe_endpoint_config", config_description(OLDER, OLDER), {"EndpointConfigName": OLDER})
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": OLDER})
    sm.add_response("delete_model", {}, {"ModelName": OLDER})

    code = deploy.main(["--endpoint", EP, "--model-data", MODEL])
    out = capsys.readouterr()
    assert code == 0, out.err
    cloud.assert_no_pending()
    lines = out.out.splitlines()
    phases = [
        "creating the new fleet (2 x ml.m5.xlarge)",
        "baking: the new fleet takes 10% of the traffic",
        "shifting traffic to the new fleet (100% of the traffic)",
        "removing the old fleet",
    ]
    assert [line for line in lines if line in phases] == phases
    assert lines[-1] == f"completed: endpoint {EP} serves {NEW} ({MODEL}); {EP} is kept for --rollback"
    assert f"deleted endpoint config {OLDER} (older than the previous config)" in lines
    entry = records.served_by()[EP]
    assert entry["serving"]["config"] == NEW and entry["previous"] == {"config": EP}


def test_an_update_rolled_back_by_an_alarm_names_it_and_exits_non_zero(cloud, named, capsys):
    sm, cw = update_start_stubs(cloud)
    reason = "Threshold Crossed: 2 datapoints [2100000.0, 1900000.0] were greater than the threshold (1000000.0)."
    sm.add_response("describe_endpoint", described("Updating", EP, pending("Baking", 0.1)), {"EndpointName": EP})
    alarm_states(cw)
    sm.add_response("describe_endpoint", described("RollingBack", EP), {"EndpointName": EP})
    alarm_states(cw, fired={ALARMS[1]: reason})
    sm.add_response("describe_endpoint", described("InService", EP), {"EndpointName": EP})
    alarm_states(cw, fired={ALARMS[1]: reason})
    # the rolled-back config and its model are removed: nothing serves them
    sm.add_response("describe_endpoint_config", config_description(NEW, NEW), {"EndpointConfigName": NEW})
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": NEW})
    sm.add_response("delete_model", {}, {"ModelName": NEW})

    assert deploy.main(["--endpoint", EP, "--model-data", MODEL]) == 1
    cloud.assert_no_pending()
    out = capsys.readouterr()
    assert "rolling back: traffic returns to the old fleet" in out.out.splitlines()
    assert out.err.strip() == (
        f"error: rolled back: alarm {ALARMS[1]} fired ({reason}); endpoint {EP} still serves {EP}"
    )
    assert EP not in records.served_by()  # what it serves did not change


def test_a_rollback_returns_to_the_previous_config_all_at_once(cloud, capsys):
    records.record_serving(EP, {"config": NEW, "model_data": MODEL}, previous={"config": EP, "model_data": "s3://old"})
    sm = cloud.stub("sagemaker")
    sm.add_response("describe_endpoint", described("InService", NEW), {"EndpointName": EP})
    sm.add_response("describe_endpoint_config", config_description(NEW, NEW), {"EndpointConfigName": NEW})
    sm.add_response("list_tags", {"Tags": [{"Key": "rollout.previous-config", "Value": EP}]}, {"ResourceArn": EP_ARN})
    sm.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {
                    "EndpointConfigName": n,
                    "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{n}",
                    "CreationTime": 0,
                }
                for n in (EP, NEW)
            ]
        },
        {"NameContains": EP, "MaxResults": 100},
    )
    sm.add_response(
        "update_endpoint",
        {"EndpointArn": EP_ARN},
        {
            "EndpointName": EP,
            "EndpointConfigName": EP,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                    "TerminationWaitInSeconds": 0,
                    "MaximumExecutionTimeoutInSeconds": 1800,
                }
            },
        },
    )
    sm.add_response("describe_endpoint", described("Updating", NEW, pending("Creating")), {"EndpointName": EP})
    sm.add_response("describe_endpoint", described("InService", EP), {"EndpointName": EP})
    sm.add_response("add_tags", {}, {"ResourceArn": EP_ARN, "Tags": [{"Key": "rollout.previous-config", "Value": NEW}]})
    sm.add_response("delete_tags", {}, {"ResourceArn": EP_ARN, "TagKeys": ["registry.version", "registry.package"]})

    assert deploy.main(["--rollback", EP]) == 0
    cloud.assert_no_pending()
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"rolled back: endpoint {EP} serves {EP} again; --rollback again returns it to {NEW}"
    entry = records.served_by()[EP]
    assert entry["serving"]["model_data"] == "s3://old" and entry["previous"]["config"] == NEW


def test_a_rollback_without_a_previous_config_is_refused(cloud, capsys):
    sm = cloud.stub("sagemaker")
    sm.add_response("describe_endpoint", described(), {"EndpointName": EP})
    sm.add_response("describe_endpoint_config", config_description(EP, EP), {"EndpointConfigName": EP})
    sm.add_response("list_tags", {"Tags": []}, {"ResourceArn": EP_ARN})
    assert deploy.main(["--rollback", EP]) == 2
    cloud.assert_no_pending()
    assert f"endpoint {EP} has no previous config to return to" in capsys.readouterr().err


@pytest.mark.parametrize("status", ["Updating", "RollingBack", "SystemUpdating"])
def test_an_update_while_another_is_in_progress_is_refused_with_the_reason(cloud, named, capsys, status):
    sm = cloud.stub("sagemaker")
    sm.add_response("describe_endpoint", described(status), {"EndpointName": EP})
    sm.add_response("describe_endpoint_config", config_description(EP, EP), {"EndpointConfigName": EP})
    assert deploy.main(["--endpoint", EP, "--model-data", MODEL]) == 2
    cloud.assert_no_pending()  # nothing created
    assert f"endpoint {EP} is {status}, not InService: another update is in progress" in capsys.readouterr().err


def test_endpoint_that_does_not_exist_yet_is_deployed_under_that_name(cloud, capsys):
    sm = cloud.stub("sagemaker")
    sm.add_client_error("describe_endpoint", "ValidationException", f"Could not find endpoint {EP}.")
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(sm, capture=False)
    assert deploy.main(["--endpoint", EP, "--model-data", MODEL]) == 0
    cloud.assert_no_pending()
    assert f"there is no endpoint {EP} yet: deploying it" in capsys.readouterr().out
    assert records.served_by()[EP]["serving"]["config"] == EP


def test_a_refused_update_removes_what_it_created(cloud, named, capsys):
    sm, cw = cloud.stub("sagemaker"), cloud.stub("cloudwatch")
    sm.add_response("describe_endpoint", described(), {"EndpointName": EP})
    sm.add_response("describe_endpoint_config", config_description(EP, EP), {"EndpointConfigName": EP})
    artifact_stub(cloud, EXPORTED)
    new_model_stubs(sm)
    for _ in ALARMS:
        cw.add_response("put_metric_alarm", {}, None)
    sm.add_client_error("update_endpoint", "ValidationException", "Cannot update in-progress endpoint")
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": NEW})
    sm.add_response("delete_model", {}, {"ModelName": NEW})
    assert deploy.main(["--endpoint", EP, "--model-data", MODEL]) == 1
    cloud.assert_no_pending()
    err = capsys.readouterr().err
    assert f"endpoint {EP} was not updated" in err and err.rstrip().endswith("nothing of it is left")


@pytest.mark.parametrize(
    "spec, routing",
    [
        (
            "linear:25:5",
            {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 300,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            },
        ),
        ("all-at-once", {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}),
        ("all-at-once:15", {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 900}),
        (
            "canary:50:60",
            {"Type": "CANARY", "WaitIntervalInSeconds": 3600, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}},
        ),
    ],
)
def test_each_rollout_is_a_valid_deployment_config(spec, routing):
    config = rollout.Rollout.parse(spec, termination_wait_s=120).deployment_config(ALARMS)
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == routing
    policy = config["BlueGreenUpdatePolicy"]
    assert policy["TerminationWaitInSeconds"] == 120
    assert 600 <= policy["MaximumExecutionTimeoutInSeconds"] <= 28800
    # linear:25:5 shifts 4 times and bakes 5 min each: 20 min, + 2 min termination wait, + 30 min
    if spec == "linear:25:5":
        assert policy["MaximumExecutionTimeoutInSeconds"] == 20 * 60 + 120 + 30 * 60
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("UpdateEndpoint").input_shape
    validate_parameters({"EndpointName": EP, "EndpointConfigName": NEW, "DeploymentConfig": config}, shape)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--rollout", "canary:10:10"], "--rollout applies to in-place updates only: add --endpoint NAME"),
        (["--endpoint", EP, "--rollout", "canary:60:10"], "a canary step must be 1-50% of the capacity"),
        (["--endpoint", EP, "--rollout", "linear:5:10"], "a linear step must be 10-50% of the capacity"),
        (["--endpoint", EP, "--rollout", "blue-green"], "expected canary:PERCENT:MINUTES"),
        (["--endpoint", EP, "--rollout", "canary:10:90"], "SageMaker bakes each step at most 60 minutes"),
        (["--endpoint", EP, "--max-execution-timeout", "60"], "SageMaker takes 600-28800 s"),
        (
            ["--endpoint", EP, "--rollout", "linear:10:60", "--max-execution-timeout", "3600"],
            "shorter than the rollout",
        ),
        (["--endpoint", EP, "--max-error-rate", "0"], "--max-error-rate a percentage above 0"),
        (["--endpoint", EP, "--endpoint-name", "x"], "not both"),
    ],
)
def test_bad_rollout_options_are_refused_before_any_call(cloud, capsys, argv, message):
    cloud.stub("sagemaker")  # nothing queued: any call fails the test
    assert deploy.main(["--model-data", MODEL, *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag", [["--endpoint", EP], ["--rollback"], ["--serverless"], ["--shadow", EP], ["--shadow-report", EP]]
)
def test_local_mode_refuses_what_only_the_cloud_can_do(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        deploy.main(["--local", "--model-data", "x.tar.gz", *flag])
    assert exit_info.value.code == 2
    assert (
        f"{flag[0]} is cloud-only: SageMaker local mode cannot update an endpoint in place" in capsys.readouterr().err
    )


# ---- serverless ----

SERVERLESS_ENV = {"SERVING_MAX_PAYLOAD_MB": "4", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}


def test_a_serverless_endpoint_of_serve_cpu_with_its_limits_told_to_the_container(cloud, capsys):
    sm = cloud.stub("sagemaker")
    artifact_stub(cloud, EXPORTED)
    serverless = {"MemorySizeInMB": 4096, "MaxConcurrency": 8, "ProvisionedConcurrency": 2}
    new_model_stubs(sm, serverless=serverless, environment=SERVERLESS_ENV, name=EP)
    sm.add_response("create_endpoint", {"EndpointArn": EP_ARN}, {"EndpointName": EP, "EndpointConfigName": EP})
    for status in ("Creating", "InService"):
        sm.add_response("describe_endpoint", described(status), {"EndpointName": EP})
    code = deploy.main(
        ["--model-data", MODEL, "--endpoint-name", EP, "--serverless", "4096:8", "--provisioned-concurrency", "2"]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    cloud.assert_no_pending()
    assert f"on serverless 4096 MB, up to 8 concurrent, 2 provisioned as serverless endpoint {EP}" in out.out


@pytest.mark.parametrize(
    "argv, settings, refused",
    [
        (["--data-capture"], {}, "--data-capture: serverless endpoints cannot capture data"),
        (["--image", IMAGE], {}, "serverless runs CPU only"),
        (["--instance-type", "ml.g5.xlarge"], {}, "serverless has no GPU"),
        (["--network-isolation"], {}, "--network-isolation: not supported by serverless endpoints"),
        (["--async"], {}, "an endpoint is either serverless or asynchronous"),
        (["--autoscale", "1:3"], {}, "serverless scales by itself"),
        ([], {"SUBNETS": "subnet-1", "SECURITY_GROUP_IDS": "sg-1"}, "serverless endpoints cannot run in a VPC"),
    ],
)
def test_serverless_refuses_what_it_does_not_support_before_any_call(
    cloud, capsys, monkeypatch, argv, settings, refused
):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    cloud.stub("sagemaker")
    assert deploy.main(["--model-data", MODEL, "--serverless", *argv]) == 2
    err = capsys.readouterr().err
    assert "a serverless endpoint cannot take: " in err and refused in err


@pytest.mark.parametrize(
    "spec, extra, message",
    [
        ("3000", [], "must be 1024-6144 in 1024 MB steps"),
        ("8192:5", [], "must be 1024-6144 in 1024 MB steps"),
        ("3072:500", [], "max concurrency 500 must be 1-200"),
        ("3072:5", ["--provisioned-concurrency", "6"], "must be 1 to the max concurrency (5)"),
        ("big", [], "expected MEMORY_MB[:MAX_CONCURRENCY]"),
    ],
)
def test_bad_serverless_sizes_are_refused(cloud, capsys, spec, extra, message):
    cloud.stub("sagemaker")
    assert deploy.main(["--model-data", MODEL, "--serverless", spec, *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_model_without_onnx_exports_cannot_be_serverless(cloud, capsys):
    artifact_stub(cloud, TORCH_ONLY)
    cloud.stub("sagemaker")
    assert deploy.main(["--model-data", MODEL, "--serverless"]) == 2
    cloud.assert_no_pending()
    assert "a serverless endpoint runs on CPU only and this model needs the serve image" in capsys.readouterr().err


def test_rollout_names_stay_within_sagemakers_limits():
    assert rollout.belongs_to(NEW, EP) and rollout.belongs_to(EP, EP)
    assert not rollout.belongs_to(f"{EP}-other", EP) and not rollout.belongs_to(f"{EP}---x", EP)
    # SageMaker's names are at most 63 characters (botocore checks only the minimum): the longest endpoint
    # name an update accepts gives exactly 63, one more is refused before any call
    assert len(rollout.config_name("e" * rollout.MAX_ENDPOINT_NAME)) == 63


def test_an_endpoint_name_too_long_for_its_update_names_is_refused_before_anything_is_created(cloud, capsys):
    long_name = "image-classifier-" + "x" * 31  # 48 characters
    sm = cloud.stub("sagemaker")
    sm.add_response("describe_endpoint", {**described(), "EndpointName": long_name}, {"EndpointName": long_name})
    assert deploy.main(["--endpoint", long_name, "--model-data", MODEL]) == 2
    cloud.assert_no_pending()
    assert "SageMaker allows for endpoint names of up to 47" in capsys.readouterr().err


def test_an_update_keeps_the_variant_name_a_promoted_shadow_left(cloud, named, capsys):
    """After a shadow promotion the endpoint's variant is Shadow-STAMP: the update's config and alarms keep that
    name (guardrails refuse a variant whose name changes)."""
    variant = "Shadow-20261201090000"
    sm, cw = cloud.stub("sagemaker"), cloud.stub("cloudwatch")
    sm.add_response("describe_endpoint", described(), {"EndpointName": EP})
    sm.add_response(
        "describe_endpoint_config", config_description(EP, EP, variant_name=variant), {"EndpointConfigName": EP}
    )
    artifact_stub(cloud, EXPORTED)
    new_model_stubs(sm, variant_name=variant)
    for name, metric, threshold, statistic in (
        (ALARMS[0], "Invocation5XXErrors", 0.01, {"Statistic": "Average"}),
        (ALARMS[1], "ModelLatency", 1_000_000.0, {"ExtendedStatistic": "p99"}),
        (ALARMS[2], "InvocationModelErrors", 0.01, {"Statistic": "Average"}),
    ):
        cw.add_response("put_metric_alarm", {}, alarm_request(name, metric, threshold, statistic, variant))
    sm.add_client_error("update_endpoint", "ValidationException", "Cannot update in-progress endpoint")
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": NEW})
    sm.add_response("delete_model", {}, {"ModelName": NEW})
    assert deploy.main(["--endpoint", EP, "--model-data", MODEL]) == 1
    cloud.assert_no_pending()
