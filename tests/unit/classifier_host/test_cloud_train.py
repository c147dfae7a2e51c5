"""The cloud training path: the CreateTrainingJob request (checked against SageMaker's service model by
botocore's Stubber), the S3 upload that skips what is there (moto), and train.py end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY
from moto import mock_aws

from classifier.contract import metrics
from classifier_host import records, settings, training_jobs
from classifier_host.cli import train
from classifier_host.data import s3 as download_dataset
from classifier_host.sagemaker import local, training
from classifier_host.sagemaker.access import Access

from .aws_stubs import ACCOUNT, BUCKET, REGION, ROLE, StubbedBotoSession, aws_env

IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-train@sha256:" + "a" * 64
JOB = "image-classifier-2026-11-24-09-00-00-000"
JOB_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{JOB}"
OUTPUT = f"s3://{BUCKET}/image-classifier/output"
RULE_IMAGE = ANY  # AWS's rules image for the region (the SDK's own table)


def create_request(**changes) -> dict:
    """What CreateTrainingJob must receive for a 1 x ml.g5.xlarge job with the defaults."""
    request = {
        "TrainingJobName": JOB,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": metrics.metric_definitions(),
        },
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": "training",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/image-classifier/data/dogs",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": OUTPUT},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.g5.xlarge", "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 4 * 3600},
        "HyperParameters": {"epochs": "3"},
    }
    request.update(changes)
    return request


SAGEMAKER_DEBUGGER_PARTS = {
    "DebugHookConfig": {"S3OutputPath": f"{OUTPUT}/debugger", "CollectionConfigurations": ANY},
    "DebugRuleConfigurations": [
        {"RuleConfigurationName": name, "RuleEvaluatorImage": RULE_IMAGE, "RuleParameters": {"rule_to_invoke": name}}
        for name in ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing")
    ],
    "ProfilerRuleConfigurations": [
        {"RuleConfigurationName": "LowGPUUtilization", "RuleEvaluatorImage": RULE_IMAGE, "RuleParameters": ANY},
        {
            "RuleConfigurationName": "ProfilerReport",
            "RuleEvaluatorImage": RULE_IMAGE,
            "RuleParameters": {"rule_to_invoke": "ProfilerReport"},
        },
    ],
    "ProfilerConfig": {"S3OutputPath": OUTPUT, "ProfilingIntervalInMilliseconds": 500},
}


def described(status="Completed", **extra) -> dict:
    """A DescribeTrainingJob answer (the Stubber checks it against the service model too)."""
    return {
        "TrainingJobName": JOB,
        "TrainingJobArn": JOB_ARN,
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.g5.xlarge", "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 4 * 3600},
        "CreationTime": 0,
        "OutputDataConfig": {"S3OutputPath": OUTPUT},
        "ModelArtifacts": {"S3ModelArtifacts": f"{OUTPUT}/{JOB}/output/model.tar.gz"},
        **extra,
    }


def start(boto, mode: str, access: Access | None = None, **kwargs):
    spec = training.JobSpec(IMAGE, access or Access(ROLE), OUTPUT, {"epochs": "3"}, **kwargs)
    return training.start_training(boto, spec, f"s3://{BUCKET}/image-classifier/data/dogs", JOB, debugger=mode)


def test_sagemaker_debugger_request_has_hook_rules_and_profiler(monkeypatch):
    aws_env(monkeypatch)
    boto = StubbedBotoSession()
    sm = boto.stub("sagemaker")
    sm.add_response("create_training_job", {"TrainingJobArn": JOB_ARN}, create_request(**SAGEMAKER_DEBUGGER_PARTS))
    sm.add_response("describe_training_job", described("InProgress"), {"TrainingJobName": JOB})
    assert start(boto, "sagemaker").training_job_status == "InProgress"
    boto.assert_no_pending()


def test_project_debugger_request_has_no_debugger_or_profiler_settings(monkeypatch):
    aws_env(monkeypatch)
    boto = StubbedBotoSession()
    sm = boto.stub("sagemaker")
    # No DebugHookConfig, no rules, no ProfilerConfig at all: the Stubber refuses any extra key.
    hp = {"epochs": "3", "debugger": "true", "tensors-dir": "/opt/ml/output/data/tensors"}
    sm.add_response("create_training_job", {"TrainingJobArn": JOB_ARN}, create_request(HyperParameters=hp))
    sm.add_response("describe_training_job", described("InProgress"), {"TrainingJobName": JOB})
    start(boto, "project")
    boto.assert_no_pending()


def test_spot_kms_vpc_isolation_and_instances_reach_the_request(monkeypatch):
    aws_env(monkeypatch)
    boto = StubbedBotoSession()
    sm = boto.stub("sagemaker")
    request = create_request(
        ResourceConfig={
            "InstanceCount": 2,
            "InstanceType": "ml.p3.2xlarge",
            "VolumeSizeInGB": 50,
            "VolumeKmsKeyId": "key-1",
        },
        OutputDataConfig={"S3OutputPath": OUTPUT, "KmsKeyId": "key-1"},
        StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        EnableManagedSpotTraining=True,
        CheckpointConfig={"S3Uri": f"s3://{BUCKET}/ckpt/{JOB}"},
        EnableNetworkIsolation=True,
        EnableInterContainerTrafficEncryption=True,
        VpcConfig={"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
    )
    sm.add_response("create_training_job", {"TrainingJobArn": JOB_ARN}, request)
    sm.add_response("describe_training_job", described("InProgress"), {"TrainingJobName": JOB})
    start(
        boto,
        "off",
        instance_type="ml.p3.2xlarge",
        instance_count=2,
        spot=True,
        max_run=3600,
        checkpoint_s3_uri=f"s3://{BUCKET}/ckpt/{JOB}",
        access=Access(
            ROLE,
            kms_key_id="key-1",
            vpc_config={"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
            network_isolation=True,
        ),
    )
    boto.assert_no_pending()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"spot": True}, "checkpoint_s3_uri"),
        ({"spot": True, "checkpoint_s3_uri": "s3://b/c", "max_wait": 60}, "max_wait"),
        ({"max_wait": 7200}, "only to managed spot"),
        ({"instance_count": 0}, "instance_count must be >= 1"),
    ],
)
def test_bad_training_settings_are_refused_before_any_call(monkeypatch, kwargs, message):
    with pytest.raises(ValueError, match=message):
        training.JobSpec(IMAGE, Access(ROLE), OUTPUT, {}, **kwargs)


def test_an_unknown_debugger_mode_is_refused_before_any_call(monkeypatch):
    aws_env(monkeypatch)
    boto = StubbedBotoSession()
    boto.stub("sagemaker")  # no responses queued: any AWS call would fail the test
    with pytest.raises(ValueError, match="not one of sagemaker, project, off"):
        start(boto, "smdebug")


# ---- the S3 upload: same size + same stored checksum = skipped ----


def test_upload_skips_files_already_there(tiny_data, monkeypatch):
    aws_env(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        assert download_dataset.upload_folder(s3, tiny_data, BUCKET, "data") == 100
        assert download_dataset.upload_folder(s3, tiny_data, BUCKET, "data") == 0
        # A changed file of the same size must go up again: the checksum decides, not the size.
        victim = sorted(tiny_data.rglob("*.jpg"))[0]
        original = victim.read_bytes()
        try:
            victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
            assert download_dataset.upload_folder(s3, tiny_data, BUCKET, "data") == 1
            key = f"data/{victim.relative_to(tiny_data).as_posix()}"
            stored = s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]["sha256"]
            assert stored == download_dataset.sha256_of(victim)
        finally:
            victim.write_bytes(original)


# ---- scripts/train.py without --local, end to end (SageMaker stubbed, S3 in moto) ----


def logs_stubs(boto):
    """The CloudWatch calls the SDK makes to stream the job's log."""
    logs = boto.stub("logs")
    group = "/aws/sagemaker/TrainingJobs"
    logs.add_response(
        "describe_log_streams",
        {"logStreams": [{"logStreamName": f"{JOB}/algo-1-1700000000"}]},
        {"logGroupName": group, "logStreamNamePrefix": JOB + "/", "orderBy": "LogStreamName", "limit": ANY},
    )
    line = metrics.format_metrics(epoch=1, best_val_acc=0.5)
    logs.add_response(
        "get_log_events",
        {"events": [{"timestamp": 1, "message": line, "ingestionTime": 1}], "nextForwardToken": "f/1"},
        {"logGroupName": group, "logStreamName": f"{JOB}/algo-1-1700000000", "startTime": 0, "startFromHead": True},
    )
    logs.add_response(
        "get_log_events",
        {"events": [], "nextForwardToken": "f/1"},
        {
            "logGroupName": group,
            "logStreamName": f"{JOB}/algo-1-1700000000",
            "nextToken": "f/1",
            "startTime": 0,
            "startFromHead": True,
        },
    )


@pytest.fixture
def cloud_job(tmp_path, monkeypatch):
    """What train.py reads before a cloud job: AWS settings, the pushed training image, the state and
    report folders (all under tmp_path)."""
    aws_env(monkeypatch)
    images = tmp_path / "images.json"
    images.write_text(json.dumps({"train": {"uri": IMAGE}}))
    monkeypatch.setattr(settings, "IMAGES_FILE", images)
    monkeypatch.setattr(settings, "STATE_DIR", tmp_path / "state")
    monkeypatch.setattr(training_jobs, "REPORTS_DIR", tmp_path / "reports")


def test_train_cloud_uploads_streams_records_and_fetches_profiler_report(
    cloud_job, tiny_data, tmp_path, monkeypatch, capsys
):
    data = tiny_data.parent / "dogs"
    if not data.exists():
        data.symlink_to(tiny_data, target_is_directory=True)
    rules = {
        "DebugRuleEvaluationStatuses": [{"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "NoIssuesFound"}],
        "ProfilerRuleEvaluationStatuses": [
            {
                "RuleConfigurationName": "ProfilerReport",
                "RuleEvaluationStatus": "IssuesFound",
                "StatusDetails": "see report",
            }
        ],
    }
    with mock_aws():
        boto = StubbedBotoSession()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        report_key = f"image-classifier/output/{JOB}/rule-output/ProfilerReport-1/profiler-output/profiler-report.html"
        s3.put_object(Bucket=BUCKET, Key=report_key, Body=b"<html>report</html>")
        sm = boto.stub("sagemaker")
        sm.add_response("create_training_job", {"TrainingJobArn": JOB_ARN}, create_request(**SAGEMAKER_DEBUGGER_PARTS))
        sm.add_response("describe_training_job", described(**rules), {"TrainingJobName": JOB})
        logs_stubs(boto)
        sm.add_response("describe_training_job", described(**rules), {"TrainingJobName": JOB})
        monkeypatch.setattr(boto3, "Session", lambda **kw: boto)  # the session run() builds is ours
        code = train.main(
            ["--data", str(data), "--output-dir", str(tmp_path / "out"), "--hp", "epochs=3", "--job-name", JOB]
        )
        uploaded = s3.list_objects_v2(Bucket=BUCKET, Prefix="image-classifier/data/dogs/")["KeyCount"]
    out = capsys.readouterr().out
    assert code == 0, out
    boto.assert_no_pending()
    assert uploaded == 100
    assert "best_val_acc=0.5" in out  # the job's log was streamed
    assert f"model: {OUTPUT}/{JOB}/output/model.tar.gz" in out
    assert "rule Overfit: NoIssuesFound" in out and "rule ProfilerReport: IssuesFound (see report)" in out
    assert (tmp_path / "reports" / f"{JOB}-profiler-report.html").read_bytes() == b"<html>report</html>"
    assert records.recorded("training-job", tmp_path / "state") == JOB


@pytest.mark.parametrize("unset", ["AWS_REGION", "SAGEMAKER_ROLE_ARN", "S3_BUCKET"])
def test_train_cloud_names_a_missing_setting_before_any_aws_call(monkeypatch, tmp_path, capsys, unset):
    aws_env(monkeypatch)
    monkeypatch.delenv(unset)
    monkeypatch.setattr(boto3, "Session", lambda **kw: pytest.fail("an AWS session was created"))
    code = train.main(["--data", str(tmp_path), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert f"missing AWS setting(s) {unset}" in capsys.readouterr().err


def test_train_cloud_without_pushed_images_says_run_make_push(monkeypatch, tmp_path, capsys):
    aws_env(monkeypatch)
    monkeypatch.setattr(settings, "IMAGES_FILE", tmp_path / "images.json")
    assert train.main(["--data", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2
    assert "make build push" in capsys.readouterr().err


def test_train_cloud_project_debugger_downloads_the_output_and_runs_the_report(
    cloud_job, tiny_data, tmp_path, monkeypatch, capsys
):
    """--debugger project: no Debugger settings in the request; the trainer's tensors come back in
    output.tar.gz, which train.py downloads (with model.tar.gz) in the local job-folder layout and hands
    to the project's report script (here a stand-in that records its arguments: report.py has its own tests)."""
    stand_in = tmp_path / "report.py"
    stand_in.write_text(
        "import json, sys, pathlib\n"
        f"pathlib.Path({str(tmp_path / 'report-args.json')!r}).write_text(json.dumps(sys.argv[1:]))\n"
    )
    monkeypatch.setattr(training_jobs, "REPORT_COMMAND", [sys.executable, str(stand_in)])
    hp = {"epochs": "3", "debugger": "true", "tensors-dir": "/opt/ml/output/data/tensors"}
    with mock_aws():
        boto = StubbedBotoSession()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        for name in ("model.tar.gz", "output.tar.gz"):
            s3.put_object(Bucket=BUCKET, Key=f"image-classifier/output/{JOB}/output/{name}", Body=name.encode())
        sm = boto.stub("sagemaker")
        sm.add_response(
            "create_training_job",
            {"TrainingJobArn": JOB_ARN},
            create_request(
                HyperParameters=hp,
                InputDataConfig=[
                    {
                        "ChannelName": "training",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri": f"s3://{BUCKET}/dogs",
                                "S3DataDistributionType": "FullyReplicated",
                            }
                        },
                    }
                ],
            ),
        )
        sm.add_response("describe_training_job", described(), {"TrainingJobName": JOB})
        logs_stubs(boto)
        sm.add_response("describe_training_job", described(), {"TrainingJobName": JOB})
        monkeypatch.setattr(boto3, "Session", lambda **kw: boto)
        code = train.main(
            [
                "--data",
                f"s3://{BUCKET}/dogs",
                "--output-dir",
                str(tmp_path / "out"),
                "--hp",
                "epochs=3",
                "--job-name",
                JOB,
                "--debugger",
                "project",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    boto.assert_no_pending()
    job_dir = tmp_path / "out" / JOB
    assert (job_dir / "output.tar.gz").read_bytes() == b"output.tar.gz"
    assert (job_dir / "model.tar.gz").read_bytes() == b"model.tar.gz"
    assert json.loads((tmp_path / "report-args.json").read_text()) == [
        str(job_dir),
        "--out",
        str(tmp_path / "reports" / f"{JOB}-report.html"),
    ]
    assert "rule " not in out  # no SageMaker rules in this mode


def test_a_refused_job_names_the_quota(monkeypatch):
    aws_env(monkeypatch)
    boto = StubbedBotoSession()
    sm = boto.stub("sagemaker")
    sm.add_client_error(
        "create_training_job",
        "ResourceLimitExceeded",
        "The account-level service limit 'ml.g5.xlarge for training job usage' is 0 Instances",
    )
    with pytest.raises(RuntimeError, match="was not started: .*ml.g5.xlarge for training job usage.*GPU quotas"):
        start(boto, "off")


@pytest.mark.parametrize(
    "name,found", [("failure", True), ("./failure", True), ("../failure", False), ("data/failure", False)]
)
def test_read_failure_finds_only_the_jobs_own_failure_file(tmp_path, name, found):
    import io
    import tarfile

    with tarfile.open(tmp_path / "output.tar.gz", "w:gz") as tar:
        data = b"AlgorithmError: lr must be > 0"
        member = tarfile.TarInfo(name)
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    assert local.read_failure(tmp_path) == ("AlgorithmError: lr must be > 0" if found else None)


class FakeLocalMode:
    """Local mode's client where it meets Docker: `create_training_job` runs `create` (what compose would
    have done) instead of containers. What train_local does with the outcome is under test."""

    def __init__(self, create):
        self.sagemaker_client = self
        self.create = create

    def create_training_job(self, **request):
        self.create(request)


def test_a_local_job_with_a_failure_file_fails_even_when_compose_says_it_succeeded(tmp_path, monkeypatch):
    """docker-compose 1.x may exit 0 although the training container exited 1; the job's failure file decides."""
    import io
    import tarfile

    def compose_said_success(request):  # archives written, create_training_job returns
        job_dir = Path(request["OutputDataConfig"]["S3OutputPath"].removeprefix("file://"))
        with tarfile.open(job_dir / "output.tar.gz", "w:gz") as tar:
            reason = b"HyperparameterError: hyperparameter 'batch-size': 'many' is not a valid int"
            member = tarfile.TarInfo("failure")
            member.size = len(reason)
            tar.addfile(member, io.BytesIO(reason))
        (job_dir / "model.tar.gz").write_bytes(b"")

    monkeypatch.setattr(local, "local_session", lambda root: FakeLocalMode(compose_said_success))
    monkeypatch.setattr(local, "remove_job_containers", lambda image, job: None)
    with pytest.raises(RuntimeError, match="training job bad-hp failed: HyperparameterError: .*'batch-size'"):
        local.train_local("image:tag", tmp_path, tmp_path / "out", {}, job_name="bad-hp")
    assert not (tmp_path / "out" / "model.tar.gz").exists()  # nothing of a failed job passes for a model


def test_a_local_job_request_carries_channels_hyperparameters_and_thread_limits(tmp_path, monkeypatch):
    sent = []

    def succeed(request):
        sent.append(request)
        (Path(request["OutputDataConfig"]["S3OutputPath"].removeprefix("file://")) / "model.tar.gz").write_bytes(b"m")

    monkeypatch.setattr(local, "local_session", lambda root: FakeLocalMode(succeed))
    monkeypatch.setattr(local, "remove_job_containers", lambda image, job: None)
    model = local.train_local(
        "image:tag",
        tmp_path / "data",
        tmp_path / "out",
        {"epochs": 2},
        instance_count=2,
        job_name="two",
        checkpoint_dir=tmp_path / "ckpt",
    )
    assert model.read_bytes() == b"m"
    (request,) = sent
    assert request["ResourceConfig"] == {"InstanceType": "local", "InstanceCount": 2}
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["training", "checkpoints"]
    assert request["InputDataConfig"][1]["DataSource"]["FileDataSource"]["FileUri"] == f"file://{tmp_path / 'ckpt'}"
    assert request["HyperParameters"] == {"epochs": "2", "checkpoint-dir": local.CHECKPOINT_CHANNEL_PATH}
    assert "OMP_NUM_THREADS" in request["Environment"]


def test_a_local_job_that_cannot_start_leaves_no_scratch_folder(tmp_path, monkeypatch):
    import tempfile

    def refuse(root):
        raise ValueError("bad local session arguments")

    monkeypatch.setattr(local, "local_session", refuse)
    monkeypatch.setattr(local, "remove_job_containers", lambda image, job: None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # mkdtemp's folder: this test's own
    with pytest.raises(RuntimeError, match="training job no-start failed: bad local session arguments"):
        local.train_local("image:tag", tmp_path, tmp_path / "out", {}, job_name="no-start")
    assert not list(tmp_path.glob(f"{local.LOCAL_SCRATCH_PREFIX}*"))
