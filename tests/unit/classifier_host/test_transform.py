"""Batch Transform without Docker: which files go in (recursion, sizes, staging, the manifest), what comes
out (predictions.jsonl, summary.json, scores, the plot), and the cloud job end to end: its requests checked
by botocore's Stubber with the exact parameters, S3 in moto."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest
from botocore.stub import ANY
from moto import mock_aws

from classifier_host import settings
from classifier_host.cli import transform as command
from classifier_host.transform import inputs, outputs
from classifier_host.transform.inputs import Failure, InputFile, TransformError
from classifier_host.transform.outputs import Prediction

from .aws_stubs import ACCOUNT, BUCKET, REGION, ROLE, StubbedBotoSession, aws_env

CLASSES = ["cat", "dog", "fox"]


def ranked(*labels: str) -> list[dict]:
    return [{"label": label, "probability": round(0.9 - 0.2 * i, 2)} for i, label in enumerate(labels)]


# ---- inputs ----


def test_every_file_is_listed_recursively_by_its_path_and_hidden_ones_are_left_out(tmp_path):
    for path, size in {
        "dog/a.jpg": 10,
        "dog/deeper/b.png": 20,
        "cat/c.jpg": 5,
        "notes.txt": 3,
        ".DS_Store": 1,
        "cat/.hidden/d.jpg": 1,
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x" * size)
    assert inputs.list_folder(tmp_path) == [
        InputFile("cat/c.jpg", 5),
        InputFile("dog/a.jpg", 10),
        InputFile("dog/deeper/b.png", 20),
        InputFile("notes.txt", 3),
    ]


@pytest.mark.parametrize(
    "make, message", [(lambda p: p / "nowhere", "no such folder"), (lambda p: p, "holds no files")]
)
def test_an_unusable_input_folder_is_named(tmp_path, make, message):
    with pytest.raises(TransformError, match=message):
        inputs.list_folder(make(tmp_path))


def test_files_over_the_payload_limit_are_failed_not_sent():
    small, large = InputFile("a.jpg", 1024 * 1024), InputFile("b.jpg", 1024 * 1024 + 1)
    fits, over = inputs.split_by_size([small, large], 1)
    assert fits == [small] and [f.path for f in over] == ["b.jpg"] and "MaxPayloadInMB of 1" in over[0].reason


@pytest.mark.parametrize(
    "payload, concurrent, ok",
    [(6, 4, True), (100, 1, True), (101, 1, False), (0, 1, False), (25, 4, True), (26, 4, False), (6, 0, False)],
)
def test_payload_and_concurrency_bounds(payload, concurrent, ok):
    if ok:
        inputs.check_payload(payload, concurrent)
    else:
        with pytest.raises(TransformError, match="max-payload-mb"):
            inputs.check_payload(payload, concurrent)


def test_staging_is_flat_and_maps_back_to_each_path(tmp_path):
    (tmp_path / "in" / "dog" / "x").mkdir(parents=True)
    (tmp_path / "in" / "dog" / "x" / "A.JPG").write_bytes(b"1")
    (tmp_path / "in" / "b.png").write_bytes(b"2")
    files = inputs.list_folder(tmp_path / "in")
    names = inputs.stage(files, tmp_path / "in", tmp_path / "staged")
    assert names == {"000001.png": "b.png", "000002.jpg": "dog/x/A.JPG"}
    assert (tmp_path / "staged" / "000002.jpg").read_bytes() == b"1"
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == sorted(names)


def test_manifest_names_the_prefix_then_each_key():
    body = inputs.manifest("s3://b/photos", [InputFile("dog/a.jpg", 1), InputFile("b.png", 1)])
    assert json.loads(body) == [{"prefix": "s3://b/photos/"}, "dog/a.jpg", "b.png"]


# ---- outputs ----


@pytest.mark.parametrize(
    "body, expected",
    [
        (json.dumps({"predictions": ranked("dog", "cat")}).encode(), Prediction("p", ranked("dog", "cat"))),
        (b'{"error": "p is not an image", "status": 415}', Failure("p", "p is not an image (415)")),
        (b"<html>proxy error</html>", Failure("p", "the answer is not JSON: b'<html>proxy error</html>'")),
        (b'{"something": 1}', Failure("p", "the answer has no predictions: {'something': 1}")),
    ],
)
def test_each_answer_is_a_prediction_or_a_reason(body, expected):
    assert outputs.read_answer("p", body) == expected


def test_a_labelled_input_is_scored_and_plotted(tmp_path):
    predictions = [
        Prediction("dog/1.jpg", ranked("dog", "cat")),
        Prediction("dog/2.jpg", ranked("cat", "dog")),
        Prediction("cat/3.jpg", ranked("cat", "dog")),
        Prediction("cat/4.jpg", ranked("cat", "fox")),
    ]
    failed = [Failure("cat/bad.jpg", "not an image (400)")]
    summary = outputs.write(tmp_path, 5, predictions, failed, CLASSES, "photos")
    assert summary["images"] == 5 and summary["classified"] == 4
    assert summary["failed"] == [{"path": "cat/bad.jpg", "reason": "not an image (400)"}]
    assert summary["accuracy"] == 0.75 and summary["scored"] == 4
    # cat: 2 right of 2, and 1 dog taken for a cat -> precision 2/3; dog: recall 1/2, precision 1/1
    assert summary["per_class"]["cat"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert summary["per_class"]["dog"]["recall"] == 0.5 and "fox" not in summary["per_class"]
    assert summary["confusion_matrix"] == [[2, 0], [1, 1]]  # rows: cat, dog (true); columns: predicted
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [line["path"] for line in lines] == ["cat/3.jpg", "cat/4.jpg", "dog/1.jpg", "dog/2.jpg"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_an_unlabelled_input_has_no_scores(tmp_path):
    summary = outputs.write(
        tmp_path,
        2,
        [Prediction("a.jpg", ranked("dog")), Prediction("trip/b.jpg", ranked("cat"))],
        [],
        CLASSES,
        "photos",
    )
    assert "accuracy" not in summary and not (tmp_path / "confusion_matrix.png").exists()


# ---- the cloud job (Stubber for SageMaker and CloudWatch Logs, moto for S3) ----

JOB = "image-classifier-transform-2026-12-02-10-00-00-000"
MODEL = f"s3://{BUCKET}/image-classifier/output/job/output/model.tar.gz"
IMAGE_CPU = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-serve-cpu@sha256:" + "c" * 64
PREFIX = "photos/"
OUTPUT = f"s3://{BUCKET}/image-classifier/transform/{JOB}/output"
MANIFEST = f"s3://{BUCKET}/image-classifier/transform/{JOB}/input.manifest"


def model_tar() -> bytes:
    metadata = {
        "format_version": 2,
        "classes": CLASSES,
        "model_name": "resnet18",
        "image_size": 64,
        "preprocessing": {},
        "export": {"enabled": True},
        "runtimes": {"torch": {"file": "model.pt"}, "onnx-int8": {"file": "model.int8.onnx"}},
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = json.dumps(metadata).encode()
        info = tarfile.TarInfo("metadata.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def job_stubs(boto, kms: bool = False, container: dict | None = None):
    sm = boto.stub("sagemaker")
    container = container or {"Image": IMAGE_CPU, "ModelDataUrl": MODEL}
    model_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{JOB}"
    sm.add_response(
        "create_model",
        {"ModelArn": model_arn},
        {
            "ModelName": JOB,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": container,
            **(
                {"VpcConfig": {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}, "EnableNetworkIsolation": True}
                if kms
                else {}
            ),
        },
    )
    sm.add_response(
        "describe_model",
        {"ModelName": JOB, "ModelArn": model_arn, "CreationTime": 0, "PrimaryContainer": container},
        {"ModelName": JOB},
    )
    request = {
        "TransformJobName": JOB,
        "ModelName": JOB,
        "MaxConcurrentTransforms": 4,
        "MaxPayloadInMB": 6,
        "BatchStrategy": "SingleRecord",
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 0},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": MANIFEST}},
            "ContentType": "application/x-image",
            "SplitType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": OUTPUT,
            "Accept": "application/json",
            "AssembleWith": "None",
            **({"KmsKeyId": "key-1"} if kms else {}),
        },
        "TransformResources": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            **({"VolumeKmsKeyId": "key-1"} if kms else {}),
        },
    }
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:transform-job/{JOB}"
    sm.add_response("create_transform_job", {"TransformJobArn": arn}, request)
    for status in ("InProgress", "Completed"):
        sm.add_response(
            "describe_transform_job",
            {
                "TransformJobName": JOB,
                "TransformJobArn": arn,
                "TransformJobStatus": status,
                "ModelName": JOB,
                "CreationTime": 0,
                "TransformInput": request["TransformInput"],
                "TransformResources": request["TransformResources"],
            },
            {"TransformJobName": JOB},
        )
    logs = boto.stub("logs")
    group, stream = "/aws/sagemaker/TransformJobs", f"{JOB}/i-0abc"
    logs.add_response(
        "describe_log_streams",
        {"logStreams": [{"logStreamName": stream}]},
        {"logGroupName": group, "logStreamNamePrefix": JOB + "/", "orderBy": "LogStreamName", "limit": 1},
    )
    logs.add_response(
        "get_log_events",
        {
            "events": [{"timestamp": 5, "message": "classifier-serve ready", "ingestionTime": 5}],
            "nextForwardToken": "f/1",
        },
        {"logGroupName": group, "logStreamName": stream, "startTime": 0, "startFromHead": True},
    )
    for _ in range(2):  # the stream read to its end, once per poll
        logs.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "f/1"},
            {
                "logGroupName": group,
                "logStreamName": stream,
                "startTime": ANY,
                "startFromHead": True,
                **({} if _ else {"nextToken": "f/1"}),
            },
        )
    sm.add_response("delete_model", {}, {"ModelName": JOB})
    return sm


@pytest.fixture
def cloud(monkeypatch, tmp_path):
    aws_env(monkeypatch)
    images = tmp_path / "images.json"
    images.write_text(json.dumps({"serve-cpu": {"uri": IMAGE_CPU}}))
    monkeypatch.setattr(settings, "IMAGES_FILE", images)
    monkeypatch.setattr(settings, "STATE_DIR", tmp_path / "state")
    with mock_aws():
        boto = StubbedBotoSession()
        monkeypatch.setattr(boto3, "Session", lambda **kw: boto)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=MODEL.removeprefix(f"s3://{BUCKET}/"), Body=model_tar())
        for key, size in {"dog/a.jpg": 10, "dog/deep/b.jpg": 10, "cat/c.jpg": 10, "cat/big.jpg": 7 * 2**20}.items():
            s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=b"\xff" * size)
        yield boto, s3


def answers(s3, layout: str):
    """What the job writes: <output>/<key relative to the manifest prefix>.out (or mirrored under the input
    prefix's last folder, the other reading of the docs)."""
    base = f"image-classifier/transform/{JOB}/output/" + ("photos/" if layout == "mirrored" else "")
    for key, body in {
        "dog/a.jpg": {"predictions": ranked("dog", "cat")},
        "dog/deep/b.jpg": {"predictions": ranked("cat", "dog")},
        "cat/c.jpg": {"error": "cat/c.jpg is not an image", "status": 415},
    }.items():
        s3.put_object(Bucket=BUCKET, Key=f"{base}{key}.out", Body=json.dumps(body).encode())


@pytest.mark.parametrize("layout", ["relative", "mirrored"])
def test_cloud_transform_job_end_to_end(cloud, tmp_path, capsys, layout):
    boto, s3 = cloud
    job_stubs(boto)
    answers(s3, layout)
    code = command.main(
        [
            "--input",
            f"s3://{BUCKET}/photos",
            "--output",
            str(tmp_path / "out"),
            "--model-data",
            MODEL,
            "--job-name",
            JOB,
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    boto.assert_no_pending()
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST.removeprefix(f"s3://{BUCKET}/"))["Body"].read())
    assert manifest == [{"prefix": f"s3://{BUCKET}/photos/"}, "cat/c.jpg", "dog/a.jpg", "dog/deep/b.jpg"]
    assert "classifier-serve ready" in out.out  # the job's log was streamed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == 4 and summary["classified"] == 2
    assert {f["path"] for f in summary["failed"]} == {"cat/big.jpg", "cat/c.jpg"}
    assert summary["accuracy"] == 0.5
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["dog/a.jpg", "dog/deep/b.jpg"]


def test_cloud_transform_with_kms_vpc_and_isolation(cloud, tmp_path, monkeypatch):
    boto, s3 = cloud
    monkeypatch.setenv("KMS_KEY_ID", "key-1")
    monkeypatch.setenv("SUBNETS", "subnet-1")
    monkeypatch.setenv("SECURITY_GROUP_IDS", "sg-1")
    job_stubs(boto, kms=True)
    answers(s3, "relative")
    assert (
        command.main(
            [
                "--input",
                f"s3://{BUCKET}/photos/",
                "--output",
                str(tmp_path / "out"),
                "--model-data",
                MODEL,
                "--job-name",
                JOB,
                "--network-isolation",
            ]
        )
        == 0
    )
    boto.assert_no_pending()
    head = s3.head_object(Bucket=BUCKET, Key=MANIFEST.removeprefix(f"s3://{BUCKET}/"))
    assert head["ServerSideEncryption"] == "aws:kms"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--input", "s3://b/p", "--max-concurrent", "20"], "max-concurrent x --max-payload-mb must be at most 100"),
        (["--input", "s3://b/p", "--max-payload-mb", "101"], "1..100"),
        (["--input", "/some/folder"], "a cloud job reads an s3:// prefix"),
        (["--input", "s3://b/p", "--model-data", "model.tar.gz"], "needs an s3:// URI"),
        (["--input", "s3://b/p"], "no model: give --training-job"),
        (["--local", "--input", "s3://b/p", "--model-data", "m.tar.gz"], "--local reads a folder"),
    ],
)
def test_bad_arguments_fail_before_any_call(monkeypatch, tmp_path, capsys, argv, message):
    aws_env(monkeypatch)
    monkeypatch.setattr(settings, "STATE_DIR", tmp_path / "state")
    monkeypatch.setattr(boto3, "Session", lambda **kw: pytest.fail("an AWS session was created"))
    assert command.main([*argv, "--output", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_files_local_mode_cannot_send_are_recognised(tmp_path):
    from classifier_host.sagemaker.transform import sendable_locally

    cases = {
        "photo.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        "notes.txt": "caf\u00e9 notes\n".encode(),
        "truncated.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert {name: sendable_locally(tmp_path / name) for name in cases} == {
        "photo.jpg": True,
        "notes.txt": True,
        "truncated.jpg": False,
    }


PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/image-classifier/4"


def test_cloud_transform_of_a_registered_version_uses_its_model_package(cloud, tmp_path, capsys):
    """--model 4: the version's ARN from the group's listing, its model data from the package, CreateModel naming
    the package's "cpu" specification (the model has ONNX exports, the instance is a CPU)."""
    boto, s3 = cloud
    sm = boto.stub("sagemaker")
    summary = {
        "ModelPackageGroupName": "image-classifier",
        "ModelPackageVersion": 4,
        "ModelPackageArn": PACKAGE,
        "CreationTime": 0,
        "ModelPackageStatus": "Completed",
    }
    sm.add_response(
        "list_model_packages", {"ModelPackageSummaryList": [summary]}, {"ModelPackageGroupName": "image-classifier"}
    )
    described = {
        **summary,
        "ModelPackageName": "image-classifier",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE_CPU, "ModelDataUrl": MODEL}],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    sm.add_response("describe_model_package", described, {"ModelPackageName": PACKAGE})
    job_stubs(boto, container={"ModelPackageName": PACKAGE, "InferenceSpecificationName": "cpu"})
    answers(s3, "relative")
    argv = ["--input", f"s3://{BUCKET}/photos", "--output", str(tmp_path / "out"), "--model", "4", "--job-name", JOB]
    code = command.main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    boto.assert_no_pending()
    assert f"registered model image-classifier v4 (4): {PACKAGE}" in out.out
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["classified"] == 2
