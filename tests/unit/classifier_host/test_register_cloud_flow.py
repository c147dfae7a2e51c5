"""register.py --cloud as a user runs it: the model downloaded from S3 (moto), evaluated on a real folder, the
SageMaker Model Registry calls answered by botocore's Stubber (each request checked against the service model):
a first model is Approved, a weaker one waits for approval with the reason naming both figures."""

from __future__ import annotations

import json
import shutil

import boto3
import pytest
from botocore.stub import ANY
from moto import mock_aws

from classifier.training import data
from classifier_host import settings
from classifier_host.cli import register
from classifier_host.registry import sagemaker_registry

from .aws_stubs import ACCOUNT, BUCKET, REGION, StubbedBotoSession, aws_env
from .test_registry_local import constant_model

GROUP = "image-classifier"
SERVE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-serve@sha256:" + "b" * 64
SERVE_CPU = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-serve-cpu@sha256:" + "c" * 64
GOOD, WEAK = (f"s3://{BUCKET}/image-classifier/output/{name}/output/model.tar.gz" for name in ("good", "weak"))


def arn(version: int) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/{version}"


@pytest.fixture
def cloud(monkeypatch, tmp_path, tiny_data):
    aws_env(monkeypatch)
    images = tmp_path / "images.json"
    images.write_text(json.dumps({"serve": {"uri": SERVE}, "serve-cpu": {"uri": SERVE_CPU}}))
    monkeypatch.setattr(settings, "IMAGES_FILE", images)
    with mock_aws():
        boto = StubbedBotoSession()
        boto.stub("sagemaker")
        monkeypatch.setattr(boto3, "Session", lambda **kw: boto)
        s3 = boto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        classes = data.class_folders(tiny_data / "train")
        for uri, favourite in ((GOOD, 0), (WEAK, len(classes) - 1)):
            model = constant_model(tmp_path, classes, favourite, uri.split("/")[-3])
            s3.upload_file(str(model), BUCKET, uri.removeprefix(f"s3://{BUCKET}/"))
        yield boto


@pytest.fixture
def folder(tiny_data, tmp_path):
    out = tmp_path / "eval"
    shutil.copytree(tiny_data / "test", out)
    shutil.rmtree(out / data.class_folders(out)[-1])
    return out


def expect_group(sm):
    sm.add_response(
        "describe_model_package_group",
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageGroupArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{GROUP}",
            "ModelPackageGroupDescription": sagemaker_registry.GROUP_DESCRIPTION,
            "CreationTime": 0,
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed",
        },
        {"ModelPackageGroupName": GROUP},
    )


def expect_champion(sm, version: int | None, top1: str = "", fingerprint: str = "", model: str = GOOD):
    summary = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": version,
        "ModelPackageArn": arn(version or 1),
        "CreationTime": 0,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
    }
    sm.add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": [summary] if version else []},
        {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )
    if version:
        sm.add_response(
            "describe_model_package",
            {
                **summary,
                "ModelPackageName": GROUP,
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "InferenceSpecification": {
                    "Containers": [{"Image": SERVE, "ModelDataUrl": model}],
                    "SupportedContentTypes": ["image/jpeg"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                "CustomerMetadataProperties": {"evaluation.top1": top1, "evaluation.fingerprint": fingerprint},
            },
            {"ModelPackageName": arn(version)},
        )


def expect_create(sm, model: str, status: str, version: int):
    sm.add_response(
        "create_model_package",
        {"ModelPackageArn": arn(version)},
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageDescription": ANY,
            "InferenceSpecification": {
                "Containers": [{"Image": SERVE, "ImageDigest": "sha256:" + "b" * 64, "ModelDataUrl": model}],
                "SupportedContentTypes": ANY,
                "SupportedResponseMIMETypes": ["application/json"],
                "SupportedRealtimeInferenceInstanceTypes": ANY,
                "SupportedTransformInstanceTypes": ANY,
            },
            "AdditionalInferenceSpecifications": ANY,
            "ModelMetrics": ANY,
            "CustomerMetadataProperties": ANY,
            "ModelApprovalStatus": status,
            "ClientToken": ANY,
        },
    )


def run(capsys, *argv):
    status = register.main(["--cloud", *argv])
    out = capsys.readouterr()
    return status, json.loads(out.out.strip().splitlines()[-1]) if status == 0 else out.err


def test_a_first_model_is_approved_and_a_weaker_one_waits_with_both_figures(cloud, folder, capsys):
    sm = cloud.stubbers["sagemaker"]
    expect_group(sm)
    expect_champion(sm, None)
    expect_create(sm, GOOD, "Approved", 1)
    status, first = run(capsys, "--model-data", GOOD, "--evaluate-on", str(folder))
    assert status == 0 and first == {"version": "1", "champion": True, "reason": first["reason"]}
    # The evaluation went to S3 before the package named it.
    listed = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="image-classifier/registry/")
    (key,) = [o["Key"] for o in listed["Contents"]]
    assert json.loads(cloud.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())["top1"] == 0.25
    from classifier_host.data import fingerprint

    expect_group(sm)
    expect_champion(sm, 1, "0.250000", fingerprint.of_folder(folder).digest)
    expect_create(sm, WEAK, "PendingManualApproval", 2)
    status, second = run(capsys, "--model-data", WEAK, "--evaluate-on", str(folder))
    assert status == 0 and second["champion"] is False and second["version"] == "2"
    assert "0.0000" in second["reason"] and "0.2500" in second["reason"]
    cloud.assert_no_pending()


def test_a_champion_evaluated_on_another_folder_is_evaluated_again(cloud, folder, capsys):
    sm = cloud.stubbers["sagemaker"]
    expect_group(sm)
    expect_champion(sm, 1, "0.010000", "sha256:another-folder")  # recorded elsewhere: 0.01 means nothing here
    expect_create(sm, WEAK, "PendingManualApproval", 2)
    status, verdict = run(capsys, "--model-data", WEAK, "--evaluate-on", str(folder))
    assert status == 0 and verdict["champion"] is False and "0.2500" in verdict["reason"]
    cloud.assert_no_pending()


def test_an_object_that_is_not_a_model_registers_nothing(cloud, folder, capsys):
    cloud.client("s3").put_object(Bucket=BUCKET, Key="junk/model.tar.gz", Body=b"not a tarball")
    expect_group(cloud.stubbers["sagemaker"])
    status, err = run(capsys, "--model-data", f"s3://{BUCKET}/junk/model.tar.gz", "--evaluate-on", str(folder))
    assert status == 2 and "not a model artifact" in err
    cloud.assert_no_pending()  # no ListModelPackages, no CreateModelPackage
