"""The SageMaker tuner path against botocore's Stubber: the requests are validated against the
SageMaker service model, and the test checks what would reach AWS (metric definitions, ranges,
objective, image, static hyperparameters) and what comes back (best job, all jobs)."""

import csv
import datetime
import json

import boto3
import pytest

from classifier.contract import hyperparams, metrics
from classifier_host import settings
from classifier_host.cli import tune
from classifier_host.sagemaker import training, tuning
from classifier_host.sagemaker.access import Access
from classifier_host.tracking import runs, store
from classifier_host.tuning import jobs as tuning_jobs

from .aws_stubs import StubbedBotoSession

REGION = "us-east-1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-image-classifier-train:abc123"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
DATA = "s3://my-bucket/dog-images"
FIXED = {"epochs": "20", "model-name": "resnet50", "image-size": "224"}
TUNING_JOB = "image-classifier-tune-0001"
T0 = datetime.datetime(2026, 11, 24, 9, 0, tzinfo=datetime.UTC)


@pytest.fixture
def aws(monkeypatch):
    """A boto3 session whose SageMaker calls a Stubber answers (every session the code opens is this one);
    the requests are recorded."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    boto = StubbedBotoSession()
    stubber = boto.stub("sagemaker")
    sent = []
    boto.client("sagemaker").meta.events.register(
        "before-parameter-build.sagemaker.*", lambda params, model, **_: sent.append((model.name, dict(params)))
    )
    monkeypatch.setattr(boto3, "Session", lambda **kw: boto)
    yield stubber, boto, sent
    stubber.assert_no_pending_responses()


def created(stubber, name=TUNING_JOB):
    """CreateHyperParameterTuningJob's answer, and the Describe sagemaker-core sends right after."""
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:hyper-parameter-tuning-job/{name}"
    stubber.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": arn})
    stubber.add_response(
        "describe_hyper_parameter_tuning_job",
        {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": arn,
            "CreationTime": T0,
            "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 1}},
            "HyperParameterTuningJobStatus": "InProgress",
            "TrainingJobStatusCounters": {},
            "ObjectiveStatusCounters": {},
        },
    )


def creation(sent) -> dict:
    (request,) = [request for name, request in sent if name == "CreateHyperParameterTuningJob"]
    return request


def start(aws, spot=True, access: Access | None = None, **spec) -> dict:
    stubber, boto, sent = aws
    created(stubber)
    job = training.JobSpec(
        IMAGE,
        access or Access(ROLE),
        "s3://my-bucket/tuning",
        FIXED,
        spot=spot,
        checkpoint_s3_uri="s3://my-bucket/checkpoints/t" if spot else None,
        **spec,
    )
    assert tuning.start_tuning(boto, job, tuning_jobs.search_space(FIXED), DATA, TUNING_JOB, 12, 3) == TUNING_JOB
    return creation(sent)


def test_tuning_job_request(aws):
    request = start(aws)
    config, definition = request["HyperParameterTuningJobConfig"], request["TrainingJobDefinition"]
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "best_val_acc"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3}

    ranges = {r["Name"]: r for kind in config["ParameterRanges"].values() for r in kind}
    assert set(ranges) == set(hyperparams.SEARCH_SPACE)
    assert ranges["lr"] == {"Name": "lr", "MinValue": "1e-05", "MaxValue": "0.01", "ScalingType": "Logarithmic"}
    assert ranges["batch-size"] == {"Name": "batch-size", "Values": ["32", "64", "128"]}
    assert ranges["fine-tune"]["Values"] == ["head", "last-block", "full"]
    assert config["ParameterRanges"]["IntegerParameterRanges"][0]["Name"] == "warmup-epochs"

    algorithm = definition["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == IMAGE
    # The trainer's own regex table, not a copy; the objective is one of its names.
    assert algorithm["MetricDefinitions"] == metrics.metric_definitions()
    assert metrics.OBJECTIVE in {d["Name"] for d in algorithm["MetricDefinitions"]}
    assert definition["StaticHyperParameters"] == FIXED  # tuned names are not static
    assert definition["RoleArn"] == ROLE
    assert definition["InputDataConfig"][0]["ChannelName"] == "training"
    assert definition["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == DATA
    assert definition["EnableManagedSpotTraining"] is True
    stop = definition["StoppingCondition"]
    assert stop["MaxWaitTimeInSeconds"] >= stop["MaxRuntimeInSeconds"]


def test_the_trials_carry_what_a_training_job_carries(aws):
    """v3's HyperparameterTuner drops these from its request; the project's tuning job keeps them."""
    definition = start(
        aws,
        spot=False,
        access=Access(
            ROLE,
            kms_key_id="key-1",
            vpc_config={"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
            network_isolation=True,
        ),
        instance_count=2,
    )["TrainingJobDefinition"]
    assert definition["EnableNetworkIsolation"] is True
    assert definition["EnableInterContainerTrafficEncryption"] is True
    assert definition["ResourceConfig"] == {
        "InstanceType": "ml.g5.xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 50,
        "VolumeKmsKeyId": "key-1",
    }
    assert definition["OutputDataConfig"] == {"S3OutputPath": "s3://my-bucket/tuning", "KmsKeyId": "key-1"}
    assert definition["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}


def test_a_fixed_value_takes_its_name_out_of_the_ranges(aws):
    stubber, boto, sent = aws
    created(stubber)
    fixed = {**FIXED, "batch-size": "32"}
    spec = training.JobSpec(IMAGE, Access(ROLE), "s3://b/t", fixed)
    tuning.start_tuning(boto, spec, tuning_jobs.search_space(fixed), DATA, TUNING_JOB, 4, 2)
    request = creation(sent)
    names = {r["Name"] for kind in request["HyperParameterTuningJobConfig"]["ParameterRanges"].values() for r in kind}
    assert "batch-size" not in names
    assert request["TrainingJobDefinition"]["StaticHyperParameters"]["batch-size"] == "32"
    assert not request["TrainingJobDefinition"].get("EnableManagedSpotTraining")


def summary(name, status, tuned, value=None, reason=None, minutes=0):
    out = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
        "CreationTime": T0,
        "TrainingJobStatus": status,
        "TunedHyperParameters": tuned,
        "TrainingStartTime": T0 + datetime.timedelta(minutes=minutes),
        "TrainingEndTime": T0 + datetime.timedelta(minutes=minutes + 10),
    }
    if value is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "best_val_acc", "Value": value}
    if reason:
        out["FailureReason"] = reason
    return out


GOOD = summary(
    "image-classifier-tune-0001-001-aaaa",
    "Completed",
    {
        "lr": "0.00031",
        "batch-size": '"64"',
        "weight-decay": "0.02",
        "label-smoothing": "0.1",
        "fine-tune": '"last-block"',
        "warmup-epochs": "1",
    },
    0.875,
    minutes=0,
)
WORSE = summary(
    "image-classifier-tune-0001-002-bbbb",
    "Completed",
    {
        "lr": "0.008",
        "batch-size": '"128"',
        "weight-decay": "0.001",
        "label-smoothing": "0.05",
        "fine-tune": '"full"',
        "warmup-epochs": "0",
    },
    0.61,
    minutes=5,
)
BROKEN = summary(
    "image-classifier-tune-0001-003-cccc",
    "Failed",
    {
        "lr": "0.0001",
        "batch-size": '"128"',
        "weight-decay": "0.01",
        "label-smoothing": "0.0",
        "fine-tune": '"full"',
        "warmup-epochs": "2",
    },
    reason="AlgorithmError: CUDA out of memory",
    minutes=9,
)


def describe(request, status, counters):
    definition = dict(request["TrainingJobDefinition"])
    # AWS adds the objective's name to the static hyperparameters of every tuning job.
    definition["StaticHyperParameters"] = {
        **definition["StaticHyperParameters"],
        "_tuning_objective_metric": "best_val_acc",
    }
    out = {
        "HyperParameterTuningJobName": TUNING_JOB,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:hyper-parameter-tuning-job/x",
        "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
        "TrainingJobDefinition": definition,
        "HyperParameterTuningJobStatus": status,
        "CreationTime": T0,
        "TrainingJobStatusCounters": counters,
        "ObjectiveStatusCounters": {"Succeeded": counters.get("Completed", 0)},
    }
    if counters.get("Completed"):
        out["BestTrainingJob"] = GOOD
    return out


def test_wait_reports_progress_until_the_job_ends(aws):
    stubber, session, sent = aws
    request = start(aws)
    stubber.add_response(
        "describe_hyper_parameter_tuning_job",
        describe(request, "InProgress", {"InProgress": 3}),
        {"HyperParameterTuningJobName": TUNING_JOB},
    )
    stubber.add_response(
        "describe_hyper_parameter_tuning_job", describe(request, "InProgress", {"InProgress": 2, "Completed": 1})
    )
    stubber.add_response(
        "describe_hyper_parameter_tuning_job", describe(request, "Completed", {"Completed": 2, "NonRetryableError": 1})
    )
    lines = []
    final = tuning.wait_for_tuning(session, TUNING_JOB, poll_seconds=0, say=lines.append)
    assert final["HyperParameterTuningJobStatus"] == "Completed"
    assert len(lines) == 3 and "running 3" in lines[0] and "best best_val_acc=0.875" in lines[1]
    assert "completed 2" in lines[2] and "failed 1" in lines[2]


def test_attach_writes_the_best_hyperparameters_and_every_job(aws, monkeypatch, tmp_path, capsys):
    stubber, session, sent = aws
    request = start(aws)
    done = describe(request, "Completed", {"Completed": 2, "NonRetryableError": 1})
    for _ in range(2):  # attach, wait (already done)
        stubber.add_response("describe_hyper_parameter_tuning_job", done, {"HyperParameterTuningJobName": TUNING_JOB})
    stubber.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": [BROKEN, WORSE], "NextToken": "page-2"},
        {"HyperParameterTuningJobName": TUNING_JOB},
    )
    stubber.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": [GOOD]},
        {"HyperParameterTuningJobName": TUNING_JOB, "NextToken": "page-2"},
    )
    for name, value in {"AWS_REGION": REGION, "SAGEMAKER_ROLE_ARN": ROLE, "S3_BUCKET": "my-bucket"}.items():
        monkeypatch.setenv(name, value)

    assert tune.main(["--attach", TUNING_JOB, "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 completed, 1 failed" in out and "tuning.png" in out

    best = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert best["source"] == "sagemaker" and best["tuning_job_name"] == TUNING_JOB
    assert best["best_training_job_name"] == GOOD["TrainingJobName"]
    assert best["objective"] == {"name": "best_val_acc", "type": "Maximize", "value": 0.875}
    assert best["hyperparameters"] == {
        "epochs": 20,
        "model-name": "resnet50",
        "image-size": 224,
        "lr": 0.00031,
        "batch-size": 64,
        "weight-decay": 0.02,
        "label-smoothing": 0.1,
        "fine-tune": "last-block",
        "warmup-epochs": 1,
    }
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert [r["job_name"] for r in rows] == [
        GOOD["TrainingJobName"],
        WORSE["TrainingJobName"],
        BROKEN["TrainingJobName"],
    ]
    assert rows[2]["status"] == "Failed" and "CUDA out of memory" in rows[2]["failure_reason"]
    assert rows[0]["batch-size"] == "64" and rows[1]["best_val_acc"] == "0.61"
    assert (tmp_path / "tuning.png").stat().st_size > 1000
    # The search in MLflow: a parent run with its files, a child per training job, the best one tagged.
    mlflow = store.client(store.tracking_uri())
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    (parent,) = mlflow.search_runs(
        experiments, f"tags.`{runs.KIND_TAG}` = 'search' and tags.`{runs.JOB_TAG}` = '{TUNING_JOB}'"
    )
    children = mlflow.search_runs(experiments, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_name = {c.data.tags[runs.JOB_TAG]: c for c in children}
    assert set(by_name) == {GOOD["TrainingJobName"], WORSE["TrainingJobName"], BROKEN["TrainingJobName"]}
    best_run = by_name[GOOD["TrainingJobName"]]
    assert best_run.data.tags[runs.BEST_TAG] == "true" and best_run.data.metrics["best_val_acc"] == 0.875
    assert best_run.data.params["lr"] == "0.00031" and by_name[BROKEN["TrainingJobName"]].info.status == "FAILED"
    assert {a.path for a in mlflow.list_artifacts(parent.info.run_id)} == {
        "trials.csv",
        "tuning.png",
        "best_hyperparameters.json",
    }


def test_cli_starts_a_spot_search_with_its_own_checkpoint_folder(aws, monkeypatch, capsys):
    stubber, session, sent = aws
    created(stubber, name="ic-tune-generated")
    for name, value in {"AWS_REGION": REGION, "SAGEMAKER_ROLE_ARN": ROLE, "S3_BUCKET": "my-bucket"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("S3_PREFIX", raising=False)
    assert (
        tune.main(
            [
                "--data",
                DATA,
                "--image",
                IMAGE,
                "--max-jobs",
                "6",
                "--max-parallel-jobs",
                "2",
                "--spot",
                "--no-wait",
                "--hp",
                "epochs=5",
            ]
        )
        == 0
    )
    request = creation(sent)
    name = request["HyperParameterTuningJobName"]
    assert len(name) <= 32 and f"--attach {name}" in capsys.readouterr().out
    definition = request["TrainingJobDefinition"]
    assert definition["CheckpointConfig"]["S3Uri"] == f"s3://my-bucket/image-classifier/checkpoints/{name}"
    assert definition["OutputDataConfig"]["S3OutputPath"] == "s3://my-bucket/image-classifier/tuning"
    assert definition["StaticHyperParameters"] == {"epochs": "5"}
    assert request["HyperParameterTuningJobConfig"]["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 6,
        "MaxParallelTrainingJobs": 2,
    }


def test_cloud_settings_missing_are_named(monkeypatch, capsys):
    for name in ("AWS_REGION", "SAGEMAKER_ROLE_ARN", "S3_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", REGION)
    assert tune.main(["--data", DATA, "--max-jobs", "2", "--image", IMAGE]) == 2
    err = capsys.readouterr().err
    assert "SAGEMAKER_ROLE_ARN" in err and "S3_BUCKET" in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--data", "/tmp/images", "--image", IMAGE], ["s3://", "--local"]),
        # A local image name cannot run on SageMaker: the digest `make push` records is used, and is missing here.
        (["--data", DATA, "--image", "sagemaker-image-classifier-train:abc"], ["images.json", "make build push"]),
        (["--data", DATA, "--image", IMAGE, "--hp", "batch-size=many"], ["'batch-size'", "'many'"]),
    ],
)
def test_bad_cloud_arguments_are_named(monkeypatch, capsys, tmp_path, args, words):
    for name, value in {"AWS_REGION": REGION, "SAGEMAKER_ROLE_ARN": ROLE, "S3_BUCKET": "my-bucket"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(settings, "IMAGES_FILE", tmp_path / "images.json")
    assert tune.main(args) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_attach_to_a_missing_job_is_named(aws, monkeypatch, capsys):
    stubber, session, sent = aws
    stubber.add_client_error(
        "describe_hyper_parameter_tuning_job",
        "ResourceNotFound",
        "Amazon SageMaker can't find a tuning job with name nope",
    )
    monkeypatch.setenv("AWS_REGION", REGION)
    assert tune.main(["--attach", "nope"]) == 1
    assert "cannot attach to tuning job 'nope'" in capsys.readouterr().err
