"""The cloud deploy path: model, endpoint config (data capture, async inference), endpoint, autoscaling (scale
to zero with its CloudWatch alarm) and deletion, each request checked against the service model and the
expected parameters by botocore's Stubber."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY

from classifier_host import records, settings
from classifier_host.cli import deploy
from classifier_host.deployment import cloud as cloud_deployment
from classifier_host.sagemaker import endpoints

from .aws_stubs import ACCOUNT, BUCKET, IMAGE, IMAGE_CPU, REGION, ROLE

JOB = "image-classifier-2026-11-24-09-00-00-000"
MODEL = f"s3://{BUCKET}/image-classifier/output/{JOB}/output/model.tar.gz"
EP = "dogs-endpoint"
EP_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{EP}"
RESOURCE = f"endpoint/{EP}/variant/AllTraffic"
ALARM = f"{EP}-has-backlog-without-capacity"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:image-classifier-answers"
ERROR_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:image-classifier-failures"
KMS = "1234abcd-12ab-34cd-56ef-1234567890ab"


def describe_job(status="Completed"):
    return {
        "TrainingJobName": JOB,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{JOB}",
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "CreationTime": 0,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"VolumeSizeInGB": 50},
        "StoppingCondition": {},
        "ModelArtifacts": {"S3ModelArtifacts": MODEL},
        **({"FailureReason": "AlgorithmError: out of memory"} if status == "Failed" else {}),
    }


def model_tar(runtimes: dict) -> bytes:
    """A model.tar.gz as SageMaker packs /opt/ml/model: model.pt first, metadata.json after it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (
            ("model.pt", b"\0" * 4096),
            ("metadata.json", json.dumps({"runtimes": runtimes, "export": {"enabled": True}}).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


TORCH_ONLY = {"torch": {"file": "model.pt", "test_acc": 0.8, "agreement": 1.0}}
EXPORTED = {
    **TORCH_ONLY,
    "onnx": {"file": "model.onnx", "test_acc": 0.8, "agreement": 1.0},
    "onnx-int8": {"file": "model.int8.onnx", "test_acc": 0.8, "agreement": 0.995},
}


def artifact_stub(cloud, runtimes: dict):
    """deploy reads the model's metadata.json from S3 to pick the serving image."""
    body = model_tar(runtimes)
    cloud.stub("s3").add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(body), len(body))},
        {"Bucket": BUCKET, "Key": MODEL.removeprefix(f"s3://{BUCKET}/")},
    )


def deploy_stubs(
    sm,
    capture: bool,
    count=1,
    final: dict | None = None,
    image=IMAGE,
    instance="ml.m5.xlarge",
    environment: dict | None = None,
    async_config: dict | None = None,
    kms: str | None = None,
    container: dict | None = None,
    tags: list[dict] | None = None,
):
    """The requests of one deployment; sagemaker-core describes each resource right after creating it."""
    model_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{EP}"
    container = container or {
        "Image": image,
        "ModelDataUrl": MODEL,
        **({"Environment": environment} if environment else {}),
    }
    sm.add_response(
        "create_model",
        {"ModelArn": model_arn},
        {"ModelName": EP, "ExecutionRoleArn": ROLE, "PrimaryContainer": container},
    )
    sm.add_response(
        "describe_model",
        {
            "ModelName": EP,
            "ModelArn": model_arn,
            "CreationTime": 0,
            "PrimaryContainer": container,
            "ExecutionRoleArn": ROLE,
        },
        {"ModelName": EP},
    )
    config = {
        "EndpointConfigName": EP,
        "ProductionVariants": [
            {
                "ModelName": EP,
                "VariantName": "AllTraffic",
                "InitialVariantWeight": 1.0,
                "InitialInstanceCount": count,
                "InstanceType": instance,
            }
        ],
    }
    if capture:
        config["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/image-classifier/data-capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    if kms:
        config["KmsKeyId"] = kms
    if async_config:
        config["AsyncInferenceConfig"] = async_config
    config_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{EP}"
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": config_arn}, config)
    sm.add_response(
        "describe_endpoint_config",
        {**config, "EndpointConfigArn": config_arn, "CreationTime": 0},
        {"EndpointConfigName": EP},
    )
    sm.add_response(
        "create_endpoint",
        {"EndpointArn": EP_ARN},
        {"EndpointName": EP, "EndpointConfigName": EP, **({"Tags": tags} if tags else {})},
    )
    # create's own Describe, then deploy waits until InService
    for status in ("Creating", "Creating", "InService"):
        sm.add_response(
            "describe_endpoint",
            {
                "EndpointName": EP,
                "EndpointArn": EP_ARN,
                "EndpointConfigName": EP,
                "EndpointStatus": status,
                "CreationTime": 0,
                "LastModifiedTime": 0,
                **(final or {} if status == "InService" else {}),
            },
            {"EndpointName": EP},
        )


def test_deploy_the_recorded_training_job_with_capture_and_autoscaling(cloud, capsys):
    records.record("training-job", JOB)
    sm = cloud.stub("sagemaker")
    sm.add_response("describe_training_job", describe_job(), {"TrainingJobName": JOB})
    artifact_stub(cloud, TORCH_ONLY)  # no ONNX export: the torch serving image
    deploy_stubs(sm, capture=True)
    scaling = cloud.stub("application-autoscaling")
    scaling.add_response(
        "register_scalable_target",
        {},
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": RESOURCE,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": 1,
            "MaxCapacity": 4,
        },
    )
    scaling.add_response(
        "put_scaling_policy",
        {"PolicyARN": "arn:aws:autoscaling:policy"},
        {
            "PolicyName": f"{EP}-invocations",
            "ServiceNamespace": "sagemaker",
            "ResourceId": RESOURCE,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 50.0,
                "ScaleOutCooldown": 60,
                "ScaleInCooldown": 300,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            },
        },
    )
    code = deploy.main(
        ["--endpoint-name", EP, "--data-capture", "--autoscale", "1:4", "--invocations-per-instance", "50"]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    cloud.assert_no_pending()
    assert f"endpoint {EP} is InService" in out.out
    assert records.recorded("endpoint") == EP


def test_an_autoscaling_refusal_is_an_error_naming_the_running_endpoint(cloud, capsys):
    sm = cloud.stub("sagemaker")
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(sm, capture=False)
    cloud.stub("application-autoscaling").add_client_error(
        "register_scalable_target", "AccessDeniedException", "not authorized to perform RegisterScalableTarget"
    )
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP, "--autoscale", "1:4"]) == 1
    err = capsys.readouterr().err
    assert f"endpoint {EP} is InService but its autoscaling could not be set: AccessDeniedException" in err
    assert f"deploy.py --delete {EP}" in err and "Traceback" not in err
    assert records.recorded("endpoint") == EP  # it runs: teardown must still find it
    cloud.assert_no_pending()


def test_deploy_a_model_uri_without_extras(cloud, capsys):
    sm = cloud.stub("sagemaker")
    artifact_stub(cloud, EXPORTED)  # ONNX exports on a CPU instance: the slim image
    deploy_stubs(sm, capture=False, count=2, image=IMAGE_CPU)
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP, "--instance-count", "2"]) == 0
    cloud.assert_no_pending()
    assert (
        "serving image: serve-cpu (ml.m5.xlarge is a CPU instance and the model has onnx-int8 and onnx"
        in capsys.readouterr().out
    )


def test_the_package_deploys_without_the_cli_and_says_each_step(cloud):
    """deployment.cloud.deploy_cloud, called as the CLI calls it: the same requests, its lines through `say`."""
    sm = cloud.stub("sagemaker")
    artifact_stub(cloud, EXPORTED)
    deploy_stubs(sm, capture=False, count=2, image=IMAGE_CPU)
    said = []
    request = cloud_deployment.CloudDeployment(model_data=MODEL, endpoint_name=EP, instance_count=2)
    assert cloud_deployment.deploy_cloud(settings.load("SAGEMAKER_ROLE_ARN"), request, say=said.append) == EP
    cloud.assert_no_pending()
    assert said[0].startswith("serving image: serve-cpu") and said[-2].startswith(f"endpoint {EP} is InService")
    assert records.recorded("endpoint") == EP


def test_the_package_refuses_a_model_with_no_image_before_any_endpoint_call(cloud):
    settings.IMAGES_FILE.write_text(json.dumps({"serve": {"uri": IMAGE}}))
    cloud.stub("sagemaker")  # nothing queued: no endpoint call may happen
    artifact_stub(cloud, EXPORTED)
    with pytest.raises(settings.SettingsError, match="has no 'serve-cpu' image"):
        cloud_deployment.deploy_cloud(
            settings.load("SAGEMAKER_ROLE_ARN"), cloud_deployment.CloudDeployment(model_data=MODEL)
        )
    assert records.recorded("endpoint") is None


def test_a_gpu_instance_gets_the_torch_image_and_image_overrides(cloud):
    sm = cloud.stub("sagemaker")
    artifact_stub(cloud, EXPORTED)
    deploy_stubs(sm, capture=False, image=IMAGE, instance="ml.g5.xlarge")
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP, "--instance-type", "ml.g5.xlarge"]) == 0
    cloud.assert_no_pending()
    deploy_stubs(sm, capture=False, image=IMAGE)  # --image: no metadata read (no S3 stub queued)
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP, "--image", IMAGE]) == 0
    cloud.assert_no_pending()


def test_an_unpushed_slim_image_or_a_foreign_tarball_is_a_clear_error(cloud, capsys):
    settings.IMAGES_FILE.write_text(json.dumps({"serve": {"uri": IMAGE}}))  # pushed before serve-cpu existed
    cloud.stub("sagemaker")  # nothing queued: no endpoint call may happen
    artifact_stub(cloud, EXPORTED)
    assert deploy.main(["--model-data", MODEL]) == 2
    assert "has no 'serve-cpu' image" in capsys.readouterr().err
    s3 = cloud.stub("s3")
    s3.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(b"not a tarball"), 13)},
        {"Bucket": BUCKET, "Key": MODEL.removeprefix(f"s3://{BUCKET}/")},
    )
    assert deploy.main(["--model-data", MODEL]) == 2
    assert "is not a readable model.tar.gz" in capsys.readouterr().err
    cloud.assert_no_pending()


def test_a_failed_training_job_is_not_deployed(cloud, capsys):
    sm = cloud.stub("sagemaker")
    sm.add_response("describe_training_job", describe_job("Failed"), {"TrainingJobName": JOB})
    assert deploy.main(["--training-job", JOB]) == 2
    err = capsys.readouterr().err
    assert "is Failed, not Completed" in err and "AlgorithmError: out of memory" in err
    cloud.assert_no_pending()


@pytest.mark.parametrize(
    "argv, unset, message",
    [
        ([], "SAGEMAKER_ROLE_ARN", "missing AWS setting(s) SAGEMAKER_ROLE_ARN"),
        (["--data-capture"], "S3_BUCKET", "missing AWS setting(s) S3_BUCKET"),
        ([], None, "no model: give --training-job"),
        (["--model-data", "/local/model.tar.gz"], None, "needs an s3:// URI"),
        (["--training-job", JOB, "--autoscale", "4:1"], None, "expected MIN:MAX"),
        (["--training-job", JOB, "--autoscale", "0:2"], None, "MIN 0, scale to zero, needs --async"),
        (["--training-job", JOB, "--async", "--autoscale", "0:0"], None, "MAX >= 1"),
        (["--training-job", JOB, "--async"], "S3_BUCKET", "missing AWS setting(s) S3_BUCKET"),
        (["--training-job", JOB, "--sns-success-topic", TOPIC], None, "--sns-success-topic applies to asynchronous"),
        (
            ["--training-job", JOB, "--backlog-per-instance", "3"],
            None,
            "--backlog-per-instance applies to asynchronous",
        ),
        (["--training-job", JOB, "--async", "--invocations-per-instance", "10"], None, "does not apply to --async"),
        (
            ["--training-job", JOB, "--async", "--async-max-payload-mb", "2048"],
            None,
            "--async-max-payload-mb 2048: expected 1 to 1024",
        ),
        (
            ["--training-job", JOB, "--async", "--async-timeout", "3601"],
            None,
            "--async-timeout 3601: expected 1 to 3600",
        ),
        (
            ["--training-job", JOB, "--async", "--sns-error-topic", "image-classifier-failures"],
            None,
            "is not an SNS topic ARN",
        ),
    ],
)
def test_bad_or_missing_settings_fail_before_any_aws_call(cloud, capsys, monkeypatch, argv, unset, message):
    if unset:
        monkeypatch.delenv(unset)
    cloud.stub("sagemaker")  # nothing queued: any call would raise
    assert deploy.main(argv) == 2
    assert message in capsys.readouterr().err


ROLLOUT_ALARMS = [f"{EP}-rollout-5xx-errors", f"{EP}-rollout-model-latency", f"{EP}-rollout-model-errors"]


def delete_stubs(
    sm,
    scaling,
    cloudwatch,
    has_target=True,
    endpoint=True,
    config=True,
    model=True,
    alarm=False,
    updates=(),
    rollout_alarms=False,
):
    """What deletion asks: which parts exist (by exact name), then deletes those that do. updates: the
    names of in-place updates' configs and models (ENDPOINT--STAMP); the endpoint serves the last one."""
    sm.add_response(
        "list_endpoints",
        {
            "Endpoints": [
                {
                    "EndpointName": EP,
                    "EndpointArn": EP_ARN,
                    "CreationTime": 0,
                    "LastModifiedTime": 0,
                    "EndpointStatus": "InService",
                }
            ]
            if endpoint
            else []
        },
        {"NameContains": EP},
    )
    configs = ([EP] if config else []) + list(updates)
    sm.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {
                    "EndpointConfigName": name,
                    "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{name}",
                    "CreationTime": 0,
                }
                for name in configs
            ]
        },
        {"NameContains": EP, "MaxResults": 100},
    )
    serving = configs[-1] if configs else EP
    if endpoint:
        sm.add_response(
            "describe_endpoint",
            {
                "EndpointName": EP,
                "EndpointArn": EP_ARN,
                "EndpointConfigName": serving,
                "EndpointStatus": "InService",
                "CreationTime": 0,
                "LastModifiedTime": 0,
            },
            {"EndpointName": EP},
        )
    for name in sorted(configs):
        sm.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": name,
                "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{name}",
                "CreationTime": 0,
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name}],
            },
            {"EndpointConfigName": name},
        )
    if endpoint:
        sm.add_response("list_inference_experiments", {"InferenceExperiments": []}, {"NameContains": EP})
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": RESOURCE,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    scaling.add_response(
        "describe_scalable_targets",
        {
            "ScalableTargets": [{**target, "MinCapacity": 1, "MaxCapacity": 4, "RoleARN": ROLE, "CreationTime": 0}]
            if has_target
            else []
        },
        {
            "ServiceNamespace": "sagemaker",
            "ResourceIds": [RESOURCE],
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        },
    )
    if has_target:
        scaling.add_response("deregister_scalable_target", {}, target)
    found = ([ALARM] if alarm else []) + (ROLLOUT_ALARMS if rollout_alarms else [])
    cloudwatch.add_response(
        "describe_alarms",
        {
            "MetricAlarms": [
                {"AlarmName": name, "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"} for name in found
            ]
        },
        {"AlarmNames": [ALARM, *ROLLOUT_ALARMS]},
    )
    if found:
        cloudwatch.add_response("delete_alarms", {}, {"AlarmNames": found})
    if endpoint:
        sm.add_response("delete_endpoint", {}, {"EndpointName": EP})
    for name in sorted(configs):
        sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": name})
    models = ([EP] if model else []) + list(updates)
    sm.add_response(
        "list_models",
        {
            "Models": [
                {"ModelName": name, "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{name}", "CreationTime": 0}
                for name in models
            ]
        },
        {"NameContains": EP, "MaxResults": 100},
    )
    for name in sorted(models):
        sm.add_response("delete_model", {}, {"ModelName": name})


def test_delete_removes_endpoint_config_model_and_scaling(cloud, capsys):
    records.record("endpoint", EP)
    delete_stubs(cloud.stub("sagemaker"), cloud.stub("application-autoscaling"), cloud.stub("cloudwatch"))
    assert deploy.main(["--delete"]) == 0
    cloud.assert_no_pending()
    out = capsys.readouterr().out
    for what in (f"endpoint {EP}", f"endpoint config {EP}", f"model {EP}", f"scaling target {RESOURCE}"):
        assert f"deleted {what}" in out
    assert records.recorded("endpoint") is None


def test_delete_of_an_unknown_endpoint_says_so(cloud, capsys):
    delete_stubs(
        cloud.stub("sagemaker"),
        cloud.stub("application-autoscaling"),
        cloud.stub("cloudwatch"),
        has_target=False,
        endpoint=False,
        config=False,
        model=False,
    )
    assert deploy.main(["--delete", EP]) == 1
    cloud.assert_no_pending()
    assert f"there is no endpoint {EP} (nor its config or model) in {REGION}" in capsys.readouterr().err


def test_a_deletion_stopped_half_way_is_finished_by_the_next(cloud, capsys):
    """The endpoint went, then the config's deletion failed: the record stays, and the next --delete
    removes the config and the model it finds by name."""
    records.record("endpoint", EP)
    sm, scaling = cloud.stub("sagemaker"), cloud.stub("application-autoscaling")
    sm.add_response(
        "list_endpoints",
        {
            "Endpoints": [
                {
                    "EndpointName": EP,
                    "EndpointArn": EP_ARN,
                    "CreationTime": 0,
                    "LastModifiedTime": 0,
                    "EndpointStatus": "InService",
                }
            ]
        },
        {"NameContains": EP},
    )
    sm.add_response("list_endpoint_configs", {"EndpointConfigs": []}, {"NameContains": EP, "MaxResults": 100})
    sm.add_response(
        "describe_endpoint",
        {
            "EndpointName": EP,
            "EndpointArn": EP_ARN,
            "EndpointConfigName": EP,
            "EndpointStatus": "InService",
            "CreationTime": 0,
            "LastModifiedTime": 0,
        },
        {"EndpointName": EP},
    )
    sm.add_client_error("describe_endpoint_config", "ThrottlingException", "Rate exceeded")
    assert deploy.main(["--delete"]) == 1
    assert "run the same command again" in capsys.readouterr().err
    assert records.recorded("endpoint") == EP
    delete_stubs(sm, scaling, cloud.stub("cloudwatch"), has_target=False, endpoint=False)
    assert deploy.main(["--delete"]) == 0
    cloud.assert_no_pending()
    out = capsys.readouterr().out
    assert f"deleted endpoint config {EP}" in out and f"deleted model {EP}" in out
    assert records.recorded("endpoint") is None


def test_autoscaling_bounds_are_checked():
    with pytest.raises(ValueError, match="1 <= min"):
        endpoints.enable_autoscaling(None, EP, 0, 2, 10)
    with pytest.raises(ValueError, match="max >= 1"):
        endpoints.enable_async_autoscaling(None, None, EP, 0, 0, 5)


def test_local_async_is_refused_with_the_reason(capsys):
    with pytest.raises(SystemExit) as end:
        deploy.main(["--local", "--async", "--model-data", "model.tar.gz"])
    assert end.value.code == 2
    assert "local mode has no asynchronous inference" in capsys.readouterr().err


# ---- asynchronous endpoints ----


def async_config(max_concurrent=4, kms=None, topics: dict | None = None) -> dict:
    """The endpoint config's AsyncInferenceConfig as the request must carry it."""
    output = {
        "S3OutputPath": f"s3://{BUCKET}/image-classifier/async/output",
        "S3FailurePath": f"s3://{BUCKET}/image-classifier/async/failures",
    }
    if kms:
        output["KmsKeyId"] = kms
    if topics:
        output["NotificationConfig"] = topics
    return {"ClientConfig": {"MaxConcurrentInvocationsPerInstance": max_concurrent}, "OutputConfig": output}


def test_an_async_endpoint_gets_its_config_and_the_containers_limits(cloud, capsys):
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(
        cloud.stub("sagemaker"),
        capture=False,
        async_config=async_config(),
        environment={"SERVING_MAX_PAYLOAD_MB": "100", "SERVING_REQUEST_TIMEOUT_S": "890"},
    )
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP, "--async"]) == 0
    cloud.assert_no_pending()
    out = capsys.readouterr().out
    assert f"as async endpoint {EP}" in out
    assert (
        f"answers in s3://{BUCKET}/image-classifier/async/output/, failures in "
        f"s3://{BUCKET}/image-classifier/async/failures/" in out
    )
    assert records.recorded("endpoint") == EP


def test_an_async_endpoint_with_kms_sns_and_options(cloud, monkeypatch):
    monkeypatch.setenv("KMS_KEY_ID", KMS)
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(
        cloud.stub("sagemaker"),
        capture=False,
        kms=KMS,
        async_config=async_config(2, KMS, {"SuccessTopic": TOPIC, "ErrorTopic": ERROR_TOPIC}),
        # --env wins over what --async-max-payload-mb sets
        environment={"SERVING_MAX_PAYLOAD_MB": "200", "SERVING_REQUEST_TIMEOUT_S": "1800", "A": "b"},
    )
    assert (
        deploy.main(
            [
                "--model-data",
                MODEL,
                "--endpoint-name",
                EP,
                "--async",
                "--async-max-concurrent",
                "2",
                "--async-max-payload-mb",
                "500",
                "--async-timeout",
                "1800",
                "--sns-success-topic",
                TOPIC,
                "--sns-error-topic",
                ERROR_TOPIC,
                "--env",
                "SERVING_MAX_PAYLOAD_MB=200",
                "--env",
                "A=b",
            ]
        )
        == 0
    )
    cloud.assert_no_pending()


def test_an_async_endpoint_without_an_error_topic_sends_only_the_success_topic(cloud):
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(
        cloud.stub("sagemaker"),
        capture=False,
        async_config=async_config(topics={"SuccessTopic": TOPIC}),
        environment={"SERVING_MAX_PAYLOAD_MB": "100", "SERVING_REQUEST_TIMEOUT_S": "890"},
    )
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP, "--async", "--sns-success-topic", TOPIC]) == 0
    cloud.assert_no_pending()


ASYNC_ENV = {"SERVING_MAX_PAYLOAD_MB": "100", "SERVING_REQUEST_TIMEOUT_S": "890"}
TARGET = {
    "ServiceNamespace": "sagemaker",
    "ResourceId": RESOURCE,
    "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
}
STEP_POLICY_ARN = (
    f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:1:resource/sagemaker/{RESOURCE}:policyName/{EP}-has-backlog"
)


def backlog_stubs(scaling, low: int, high: int, target: float = 5.0):
    """The scalable target and the target tracking on the queue of an async endpoint."""
    scaling.add_response("register_scalable_target", {}, {**TARGET, "MinCapacity": low, "MaxCapacity": high})
    scaling.add_response(
        "put_scaling_policy",
        {"PolicyARN": "arn:aws:autoscaling:backlog"},
        {
            **TARGET,
            "PolicyName": f"{EP}-backlog",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": target,
                "ScaleOutCooldown": 60,
                "ScaleInCooldown": 300,
                "CustomizedMetricSpecification": {
                    "MetricName": "ApproximateBacklogSizePerInstance",
                    "Namespace": "AWS/SageMaker",
                    "Dimensions": [{"Name": "EndpointName", "Value": EP}],
                    "Statistic": "Average",
                },
            },
        },
    )


def wake_up_stubs(scaling, cloudwatch):
    """Scale to zero: the step policy that adds an instance and the alarm that fires it."""
    scaling.add_response(
        "put_scaling_policy",
        {"PolicyARN": STEP_POLICY_ARN},
        {
            **TARGET,
            "PolicyName": f"{EP}-has-backlog",
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Average",
                "Cooldown": 300,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            },
        },
    )
    cloudwatch.add_response(
        "put_metric_alarm",
        {},
        {
            "AlarmName": ALARM,
            "MetricName": "HasBacklogWithoutCapacity",
            "Namespace": "AWS/SageMaker",
            "Dimensions": [{"Name": "EndpointName", "Value": EP}],
            "Statistic": "Average",
            "Period": 60,
            "EvaluationPeriods": 2,
            "DatapointsToAlarm": 2,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "missing",
            "AlarmActions": [STEP_POLICY_ARN],
        },
    )


def test_scale_to_zero_tracks_the_backlog_and_wakes_up_on_an_alarm(cloud, capsys):
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(cloud.stub("sagemaker"), capture=False, async_config=async_config(), environment=ASYNC_ENV)
    scaling, cloudwatch = cloud.stub("application-autoscaling"), cloud.stub("cloudwatch")
    backlog_stubs(scaling, 0, 2, target=10.0)
    wake_up_stubs(scaling, cloudwatch)
    assert (
        deploy.main(
            [
                "--model-data",
                MODEL,
                "--endpoint-name",
                EP,
                "--async",
                "--autoscale",
                "0:2",
                "--backlog-per-instance",
                "10",
            ]
        )
        == 0
    )
    cloud.assert_no_pending()
    assert (
        f"autoscaling 0-2 instances at 10 queued requests per instance; at zero, alarm {ALARM} starts one"
        in capsys.readouterr().out
    )


def test_async_autoscaling_from_one_needs_no_alarm(cloud):
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(cloud.stub("sagemaker"), capture=False, async_config=async_config(), environment=ASYNC_ENV)
    backlog_stubs(cloud.stub("application-autoscaling"), 1, 3)
    cloud.stub("cloudwatch")  # nothing queued: no alarm may be made
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP, "--async", "--autoscale", "1:3"]) == 0
    cloud.assert_no_pending()


def test_a_refused_alarm_is_an_error_naming_the_call_and_the_cleanup(cloud, capsys):
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(cloud.stub("sagemaker"), capture=False, async_config=async_config(), environment=ASYNC_ENV)
    scaling, cloudwatch = cloud.stub("application-autoscaling"), cloud.stub("cloudwatch")
    backlog_stubs(scaling, 0, 2)
    scaling.add_response(
        "put_scaling_policy",
        {"PolicyARN": STEP_POLICY_ARN},
        {
            **TARGET,
            "PolicyName": f"{EP}-has-backlog",
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": ANY,
        },
    )
    cloudwatch.add_client_error("put_metric_alarm", "AccessDenied", "not authorized to perform PutMetricAlarm")
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP, "--async", "--autoscale", "0:2"]) == 1
    err = capsys.readouterr().err
    assert f"endpoint {EP} is InService but its autoscaling could not be set: AccessDenied" in err
    assert "(PutMetricAlarm failed; the role needs the application-autoscaling and cloudwatch permissions" in err
    assert f"deploy.py --delete {EP}" in err and "Traceback" not in err
    assert records.recorded("endpoint") == EP
    cloud.assert_no_pending()


def test_deleting_an_async_endpoint_removes_its_alarm(cloud, capsys):
    records.record("endpoint", EP)
    delete_stubs(cloud.stub("sagemaker"), cloud.stub("application-autoscaling"), cloud.stub("cloudwatch"), alarm=True)
    assert deploy.main(["--delete"]) == 0
    cloud.assert_no_pending()
    out = capsys.readouterr().out
    assert f"deleted scaling target {RESOURCE}" in out and f"deleted alarm {ALARM}" in out
    assert f"deleted endpoint {EP}" in out and records.recorded("endpoint") is None


def test_teardown_deletes_the_recorded_endpoint_and_lists_what_is_left(cloud, capsys, tmp_path):
    from classifier_host.cli import teardown

    records.record("endpoint", EP)
    records.record("training-job", JOB)
    settings.IMAGES_FILE.write_text(
        json.dumps(
            {
                "serve": {
                    "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-serve:abc",
                    "digest": "sha256:" + "b" * 64,
                    "uri": IMAGE,
                }
            }
        )
    )
    delete_stubs(
        cloud.stub("sagemaker"), cloud.stub("application-autoscaling"), cloud.stub("cloudwatch"), has_target=False
    )
    assert teardown.main([]) == 0
    cloud.assert_no_pending()
    out = capsys.readouterr().out
    assert f"deleted endpoint {EP}" in out and f"deleted model {EP}" in out
    assert f"aws s3 rm --recursive s3://{BUCKET}/image-classifier/" in out
    assert (
        f"under it, async endpoints' requests, answers and failures: s3://{BUCKET}/image-classifier/async/input/, "
        f"s3://{BUCKET}/image-classifier/async/output/, s3://{BUCKET}/image-classifier/async/failures/"
    ) in out
    assert "--repository-name sagemaker-image-classifier-serve --image-ids imageDigest=sha256:bbbb" in out
    assert f"training job {JOB}" in out
    assert records.recorded("endpoint") is None


def test_teardown_with_nothing_deployed_makes_no_call(cloud, capsys):
    from classifier_host.cli import teardown

    cloud.stub("sagemaker")  # nothing queued
    assert teardown.main([]) == 0
    assert "no endpoint recorded" in capsys.readouterr().out


def test_an_endpoint_that_fails_is_reported_with_the_cleanup_command(cloud, capsys):
    sm = cloud.stub("sagemaker")
    artifact_stub(cloud, TORCH_ONLY)
    deploy_stubs(sm, capture=False, final={"EndpointStatus": "Failed", "FailureReason": "ping health check failed"})
    assert deploy.main(["--model-data", MODEL, "--endpoint-name", EP]) == 1
    err = capsys.readouterr().err
    assert "ping health check failed" in err and f"deploy.py --delete {EP}" in err
    assert records.recorded("endpoint") is None


PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/image-classifier/3"


def package_stubs(sm, version=3, approved=True):
    """The champion: the newest Approved version of the group (ListModelPackages, then DescribeModelPackage)."""
    summary = {
        "ModelPackageName": "image-classifier",
        "ModelPackageGroupName": "image-classifier",
        "ModelPackageVersion": version,
        "ModelPackageArn": PACKAGE,
        "CreationTime": 0,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
    }
    sm.add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": [summary] if approved else []},
        {
            "ModelPackageGroupName": "image-classifier",
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )
    if not approved:
        return
    described = {
        **summary,
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE, "ImageDigest": "sha256:" + "b" * 64, "ModelDataUrl": MODEL}],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "CustomerMetadataProperties": {"evaluation.top1": "0.900000", "evaluation.fingerprint": "sha256:ab"},
    }
    for _ in range(2):  # the champion's own lookup, then deploy's
        sm.add_response("describe_model_package", described, {"ModelPackageName": PACKAGE})


def test_deploy_the_registrys_champion_from_its_model_package(cloud, capsys):
    """--model champion: CreateModel names the model package (its "cpu" specification on a CPU instance, the
    slim image), the endpoint's tags and record name the version."""
    sm = cloud.stub("sagemaker")
    package_stubs(sm)
    artifact_stub(cloud, EXPORTED)
    deploy_stubs(
        sm,
        capture=False,
        container={"ModelPackageName": PACKAGE, "InferenceSpecificationName": "cpu"},
        tags=[{"Key": "registry.version", "Value": "3"}, {"Key": "registry.package", "Value": PACKAGE}],
    )
    assert deploy.main(["--model", "champion", "--endpoint-name", EP]) == 0
    cloud.assert_no_pending()
    out = capsys.readouterr().out
    assert f"registered model image-classifier v3 (champion): {PACKAGE}" in out
    assert records.recorded("endpoint-model") == f"{EP} image-classifier v3 {PACKAGE}"


def test_deploy_without_a_champion_or_with_model_data_too_is_refused_before_any_endpoint_call(cloud, capsys):
    package_stubs(cloud.stub("sagemaker"), approved=False)
    assert deploy.main(["--model", "champion", "--endpoint-name", EP]) == 2
    assert "no champion" in capsys.readouterr().err
    cloud.assert_no_pending()
    assert deploy.main(["--model", "3", "--model-data", MODEL]) == 2
    assert "--model" in capsys.readouterr().err


def test_delete_removes_every_update_and_the_rollback_alarms(cloud, capsys):
    """An endpoint updated in place twice: both updates' configs and models, and its rollback alarms, go with it."""
    records.record("endpoint", EP)
    updates = [f"{EP}--20261201090000", f"{EP}--20261207163000"]
    delete_stubs(
        cloud.stub("sagemaker"),
        cloud.stub("application-autoscaling"),
        cloud.stub("cloudwatch"),
        has_target=False,
        updates=updates,
        rollout_alarms=True,
    )
    assert deploy.main(["--delete"]) == 0
    cloud.assert_no_pending()
    out = capsys.readouterr().out
    for name in (EP, *updates):
        assert f"deleted endpoint config {name}" in out and f"deleted model {name}" in out
    for name in ROLLOUT_ALARMS:
        assert f"deleted alarm {name}" in out
