"""register.py --cloud's registry: SageMaker Model Registry through botocore's Stubber, which checks every
request against the service model and the exact parameters expected here."""

from __future__ import annotations

import datetime
import json

import pytest

from classifier_host.data.fingerprint import Fingerprint
from classifier_host.registry import sagemaker_registry
from classifier_host.registry.candidate import Evaluated
from classifier_host.registry.gate import RegistryError, Verdict
from classifier_host.registry.sagemaker_registry import (
    SageMakerRegistry,
    champion_standing,
    container_from_package,
    metadata_properties,
)

from .aws_stubs import ACCOUNT, BUCKET, REGION, ROLE, StubbedBotoSession

GROUP = "image-classifier"
PREFIX = f"s3://{BUCKET}/image-classifier/registry"
TOKEN = "0123456789abcdef0123456789abcdef"
EVALUATION_KEY = f"image-classifier/registry/{GROUP}/{TOKEN}/evaluation.json"
EVALUATION_URI = f"s3://{BUCKET}/{EVALUATION_KEY}"
MODEL = f"s3://{BUCKET}/image-classifier/output/job-1/output/model.tar.gz"
SERVE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-serve@sha256:" + "b" * 64
SERVE_CPU = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-serve-cpu@sha256:" + "c" * 64
IMAGES = {"serve": SERVE, "serve-cpu": SERVE_CPU}
GROUP_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{GROUP}"
WHEN = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
EVALUATION = {"top1": 0.9, "top5": 1.0, "runtime": "onnx-cpu"}


def arn(version: int, group: str = GROUP) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"


@pytest.fixture(autouse=True)
def fixed(monkeypatch):
    """The registration id, the person and the time are the only things a request holds that a test cannot
    know otherwise."""
    monkeypatch.setattr(sagemaker_registry, "new_id", lambda: TOKEN)
    monkeypatch.setattr(sagemaker_registry, "who", lambda: "alice")
    monkeypatch.setattr(sagemaker_registry, "now", lambda: "2026-12-01T00:00:00Z")


@pytest.fixture
def session():
    session = StubbedBotoSession()
    session.stub("sagemaker"), session.stub("s3")
    yield session


@pytest.fixture
def registry(session):
    return SageMakerRegistry(session.client("sagemaker"), session.client("s3"), GROUP, PREFIX)


@pytest.fixture
def candidate(tmp_path) -> Evaluated:
    folder = tmp_path / "evaluate-on"
    folder.mkdir()
    files = (tmp_path / "evaluation.json", tmp_path / "evaluation.html")
    files[0].write_text(json.dumps(EVALUATION) + "\n")
    files[1].write_text("<html></html>\n")
    metadata = {"model_name": "resnet18", "classes": ["cat", "dog"], "hyperparameters": {"epochs": 3, "lr": 0.01}}
    fingerprint = Fingerprint(digest="sha256:ab", files=3, bytes=10, method="m")
    return Evaluated(MODEL, metadata, EVALUATION, "onnx-cpu", folder, fingerprint, files)


def properties(candidate: Evaluated, reason: str, **extra: str) -> dict[str, str]:
    """The metadata a registration records, important keys first."""
    important = {k: extra.pop(k) for k in ("git.commit", "image.serve.inputs_digest") if k in extra}
    return {
        **important,
        "evaluation.top1": "0.900000",
        "evaluation.fingerprint": "sha256:ab",
        "runtime.served": "onnx-cpu",
        **{k: extra.pop(k) for k in ("mlflow.run_id", "data.fingerprint") if k in extra},
        "evaluation.folder": str(candidate.folder.resolve()),
        "evaluation.top5": "1.000000",
        "verdict.reason": reason,
        "verdict.by": "alice",
        "verdict.at": "2026-12-01T00:00:00Z",
        "model.name": "resnet18",
        "model.classes": "2",
        "hyperparameter.epochs": "3",
        "hyperparameter.lr": "0.01",
        **extra,
    }


def specification(image: str, instances: list[str]) -> dict:
    return {
        "Containers": [{"Image": image, "ImageDigest": image.split("@")[1], "ModelDataUrl": MODEL}],
        "SupportedContentTypes": ["image/jpeg", "image/png", "application/x-image", "application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
        "SupportedRealtimeInferenceInstanceTypes": instances,
        "SupportedTransformInstanceTypes": instances,
    }


def package_request(candidate: Evaluated, status: str, reason: str, extra: dict, metadata_reason: str = "") -> dict:
    """CreateModelPackage's request; metadata_reason: the reason as the metadata's character set writes it."""
    return {
        "ModelPackageGroupName": GROUP,
        "ModelPackageDescription": (
            f"resnet18, 2 classes: top-1 0.9000, top-5 1.0000 on {candidate.folder} (served by onnx-cpu). "
            f"Gate: {reason}"
        ),
        "InferenceSpecification": specification(SERVE, ["ml.g5.xlarge", "ml.g4dn.xlarge"]),
        "AdditionalInferenceSpecifications": [
            {"Name": "cpu", **specification(SERVE_CPU, ["ml.m5.xlarge", "ml.c5.xlarge", "ml.c5.2xlarge"])}
        ],
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": EVALUATION_URI}}},
        "CustomerMetadataProperties": properties(candidate, metadata_reason or reason, **extra),
        "ModelApprovalStatus": status,
        "ClientToken": TOKEN,
    }


def expect_upload(session, candidate: Evaluated) -> None:
    session.stub("s3").add_response(
        "put_object",
        {"ETag": '"etag"'},
        {
            "Bucket": BUCKET,
            "Key": EVALUATION_KEY,
            "Body": candidate.files[0].read_bytes(),
            "ContentType": "application/json",
        },
    )


def summary(version: int, status: str = "Approved") -> dict:
    return {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": version,
        "ModelPackageArn": arn(version),
        "CreationTime": WHEN,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": status,
    }


def described(version: int, top1: str = "0.850000", fingerprint: str = "sha256:ab", group: str = GROUP) -> dict:
    return {
        "ModelPackageName": group,
        "ModelPackageGroupName": group,
        "ModelPackageVersion": version,
        "ModelPackageArn": arn(version, group),
        "CreationTime": WHEN,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": specification(SERVE, ["ml.g5.xlarge"]),
        "CustomerMetadataProperties": {"evaluation.top1": top1, "evaluation.fingerprint": fingerprint},
    }


def expect_champion(session, version: int | None, **describe) -> None:
    stub = session.stub("sagemaker")
    stub.add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": [summary(version)] if version else []},
        {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )
    if version:
        stub.add_response("describe_model_package", described(version, **describe), {"ModelPackageName": arn(version)})


def expect_versions(session, *pages: list[int]) -> None:
    """ListModelPackages over the group, one response per page (NextToken between them)."""
    for number, versions in enumerate(pages):
        response = {"ModelPackageSummaryList": [summary(v, "PendingManualApproval") for v in versions]}
        if number < len(pages) - 1:
            response["NextToken"] = f"page-{number + 1}"
        params = {"ModelPackageGroupName": GROUP} | ({"NextToken": f"page-{number}"} if number else {})
        session.stub("sagemaker").add_response("list_model_packages", response, params)


def group_answer(description: str) -> dict:
    return {
        "ModelPackageGroupName": GROUP,
        "ModelPackageGroupArn": GROUP_ARN,
        "ModelPackageGroupDescription": description,
        "CreationTime": WHEN,
        "CreatedBy": {},
        "ModelPackageGroupStatus": "Completed",
    }


# ---- the group ----


def test_ensure_group_creates_a_missing_group(session, registry):
    stub = session.stub("sagemaker")
    stub.add_client_error(
        "describe_model_package_group",
        "ValidationException",
        f"ModelPackageGroup {GROUP} does not exist.",
        expected_params={"ModelPackageGroupName": GROUP},
    )
    stub.add_response(
        "create_model_package_group",
        {"ModelPackageGroupArn": GROUP_ARN},
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageGroupDescription": "sagemaker-image-classifier: image classifiers registered by register.py",
            "Tags": [{"Key": "classifier.owner", "Value": "sagemaker-image-classifier"}],
        },
    )
    registry.ensure_group()
    session.assert_no_pending()


def test_ensure_group_keeps_our_group(session, registry):
    session.stub("sagemaker").add_response(
        "describe_model_package_group",
        group_answer("sagemaker-image-classifier: image classifiers registered by register.py"),
        {"ModelPackageGroupName": GROUP},
    )
    registry.ensure_group()
    session.assert_no_pending()


def test_ensure_group_refuses_a_group_in_use_by_something_else(session, registry):
    session.stub("sagemaker").add_response(
        "describe_model_package_group", group_answer("fraud models"), {"ModelPackageGroupName": GROUP}
    )
    with pytest.raises(RegistryError, match="in use by something else.*--registry-name"):
        registry.ensure_group()
    session.assert_no_pending()  # and nothing created: any further call would have no stubbed answer


def test_ensure_group_other_errors_name_the_operation(session, registry):
    session.stub("sagemaker").add_client_error(
        "describe_model_package_group", "AccessDeniedException", "no", expected_params={"ModelPackageGroupName": GROUP}
    )
    with pytest.raises(RegistryError, match="DescribeModelPackageGroup on model package group 'image-classifier'"):
        registry.ensure_group()
    session.assert_no_pending()


# ---- registering ----


def test_register_a_champion_approves_it(session, registry, candidate):
    extra = {"git.commit": "f" * 40, "image.serve.inputs_digest": "sha256:" + "1" * 64, "mlflow.run_id": "abc123"}
    reason = "first model: top-1 0.9000 >= --min-accuracy 0.5000 (onnx-cpu)"
    expect_upload(session, candidate)
    session.stub("sagemaker").add_response(
        "create_model_package",
        {"ModelPackageArn": arn(1)},
        package_request(
            candidate, "Approved", reason, dict(extra), "first model: top-1 0.9000 _= --min-accuracy 0.5000 _onnx-cpu_"
        ),
    )
    registered = registry.register(candidate, Verdict(True, reason), IMAGES, extra)
    assert registered == sagemaker_registry.Registered("1", True, reason)
    assert json.loads(registered.line()) == {"version": "1", "champion": True, "reason": reason}
    session.assert_no_pending()


def test_register_a_non_champion_waits_for_approval(session, registry, candidate):
    reason = "not promoted: top-1 0.9000 vs champion v1 0.9500, 5.00 points lower (--max-drop 0)"
    expect_upload(session, candidate)
    session.stub("sagemaker").add_response(
        "create_model_package",
        {"ModelPackageArn": arn(2)},
        package_request(
            candidate,
            "PendingManualApproval",
            reason,
            {"data.fingerprint": "sha256:cd"},
            # commas and brackets are outside the metadata's character set; the description keeps them
            "not promoted: top-1 0.9000 vs champion v1 0.9500_ 5.00 points lower _--max-drop 0_",
        ),
    )
    registered = registry.register(candidate, Verdict(False, reason), IMAGES, {"data.fingerprint": "sha256:cd"})
    assert registered == sagemaker_registry.Registered("2", False, reason)
    session.assert_no_pending()


def test_register_failing_deletes_the_evaluation(session, registry, candidate):
    expect_upload(session, candidate)
    session.stub("sagemaker").add_client_error(
        "create_model_package",
        "ResourceLimitExceeded",
        "too many model packages",
        expected_params=package_request(candidate, "Approved", "ok", {}),
    )
    session.stub("s3").add_response("delete_object", {}, {"Bucket": BUCKET, "Key": EVALUATION_KEY})
    with pytest.raises(RegistryError, match="nothing registered.*CreateModelPackage.*ResourceLimitExceeded"):
        registry.register(candidate, Verdict(True, "ok"), IMAGES, {})
    session.assert_no_pending()


def test_register_a_failed_upload_registers_nothing(session, registry, candidate):
    session.stub("s3").add_client_error(
        "put_object",
        "AccessDenied",
        "denied",
        expected_params={
            "Bucket": BUCKET,
            "Key": EVALUATION_KEY,
            "Body": candidate.files[0].read_bytes(),
            "ContentType": "application/json",
        },
    )
    with pytest.raises(RegistryError, match="uploading the evaluation.*nothing registered.*AccessDenied"):
        registry.register(candidate, Verdict(True, "ok"), IMAGES, {})
    session.assert_no_pending()


@pytest.mark.parametrize(
    "images",
    [
        {"serve": SERVE},
        {"serve": SERVE.split("@")[0] + ":latest", "serve-cpu": SERVE_CPU},
    ],
)
def test_register_needs_both_images_by_digest(session, registry, candidate, images):
    with pytest.raises(RegistryError, match="pushed digest reference"):
        registry.register(candidate, Verdict(True, "ok"), images, {})
    session.assert_no_pending()  # nothing uploaded


def test_metadata_properties_keep_the_service_limits_and_the_important_keys():
    filler = {f"extra.key{i:02d}": f"value {i}" for i in range(60)}
    important = {
        "git.commit": "f" * 40,
        "image.serve.inputs_digest": "sha256:" + "1" * 64,
        "image.serve-cpu.inputs_digest": "sha256:" + "2" * 64,
        "evaluation.top1": "0.900000",
        "evaluation.fingerprint": "sha256:ab",
        "runtime.served": "onnx-cpu",
        "mlflow.run_id": "abc123",
        "data.fingerprint": "sha256:cd",
    }
    long_key = "k" * 200
    found = metadata_properties({long_key: "v" * 1000, "hyperparameters": '{"lr": 0.1}'} | filler | important)
    assert len(found) == 50
    assert all(len(k) <= 128 and 0 < len(v) <= 256 for k, v in found.items())
    assert {k: found[k] for k in important} == important
    assert list(found)[: len(important)] == list(important)  # the important ones first
    assert found["k" * 128] == "v" * 256
    assert found["hyperparameters"] == "__lr_: 0.1_"  # braces and quotes are outside the service's pattern
    assert "extra.key39" in found and "extra.key40" not in found  # the last of the rest left out


def test_metadata_properties_leave_out_empty_values():
    assert metadata_properties({"model.name": "", "a": "b"}) == {"a": "b"}


# ---- approving and rejecting ----


def test_approve_makes_the_newest_version_the_champion(session, registry):
    stub = session.stub("sagemaker")
    expect_versions(session, [3, 2])
    stub.add_response(
        "update_model_package",
        {"ModelPackageArn": arn(3)},
        {
            "ModelPackageArn": arn(3),
            "ModelApprovalStatus": "Approved",
            "ApprovalDescription": "approved by alice at 2026-12-01T00:00:00Z: checked by hand",
        },
    )
    expect_champion(session, 3)
    registered = registry.approve("3", "checked by hand")
    assert registered == sagemaker_registry.Registered(
        "3", True, "approved by alice at 2026-12-01T00:00:00Z: checked by hand"
    )
    session.assert_no_pending()


def test_approving_an_older_version_says_the_newer_champion_stays(session, registry):
    stub = session.stub("sagemaker")
    stub.add_response("describe_model_package", described(2), {"ModelPackageName": arn(2)})
    stub.add_response(
        "update_model_package",
        {"ModelPackageArn": arn(2)},
        {
            "ModelPackageArn": arn(2),
            "ModelApprovalStatus": "Approved",
            "ApprovalDescription": "approved by alice at 2026-12-01T00:00:00Z: fine",
        },
    )
    expect_champion(session, 3)
    registered = registry.approve(arn(2), "fine")
    assert registered.version == "2" and not registered.champion
    assert "version 3 (newer, Approved) stays the champion" in registered.reason
    session.assert_no_pending()


def test_reject(session, registry):
    expect_champion(session, 4)
    session.stub("sagemaker").add_response(
        "update_model_package",
        {"ModelPackageArn": arn(4)},
        {
            "ModelPackageArn": arn(4),
            "ModelApprovalStatus": "Rejected",
            "ApprovalDescription": "rejected by alice at 2026-12-01T00:00:00Z: wrong labels",
        },
    )
    registered = registry.reject("champion", "wrong labels")
    assert registered == sagemaker_registry.Registered(
        "4", False, "rejected by alice at 2026-12-01T00:00:00Z: wrong labels"
    )
    session.assert_no_pending()


def test_reject_refuses_another_groups_package(session, registry):
    other = arn(1, "fraud-models")
    session.stub("sagemaker").add_response(
        "describe_model_package", described(1, group="fraud-models"), {"ModelPackageName": other}
    )
    with pytest.raises(RegistryError, match="belongs to model package group 'fraud-models'"):
        registry.reject(other, "no")
    session.assert_no_pending()  # no UpdateModelPackage


# ---- reading ----


def test_champion(session, registry):
    expect_champion(session, 3, top1="0.912345")
    assert registry.champion() == {
        "arn": arn(3),
        "version": "3",
        "top1": 0.912345,
        "fingerprint": "sha256:ab",
        "model_data": MODEL,
    }
    session.assert_no_pending()


def test_resolve_champion(session, registry):
    expect_champion(session, 3)
    assert registry.resolve("champion") == arn(3)
    session.assert_no_pending()


def test_resolve_without_a_champion(session, registry):
    expect_champion(session, None)
    with pytest.raises(RegistryError, match="'image-classifier' has no champion"):
        registry.resolve("champion")
    session.assert_no_pending()


def test_resolve_a_version_on_a_later_page(session, registry):
    expect_versions(session, [5, 4], [2, 1])
    assert registry.resolve("2") == arn(2)
    session.assert_no_pending()


def test_resolve_an_unknown_version(session, registry):
    expect_versions(session, [5, 4], [2, 1])
    with pytest.raises(RegistryError, match="group 'image-classifier' has no version 3"):
        registry.resolve("3")
    session.assert_no_pending()


def test_resolve_an_arn(session, registry):
    session.stub("sagemaker").add_response("describe_model_package", described(2), {"ModelPackageName": arn(2)})
    assert registry.resolve(arn(2)) == arn(2)
    session.assert_no_pending()


def test_resolve_an_unknown_arn(session, registry):
    session.stub("sagemaker").add_client_error(
        "describe_model_package",
        "ValidationException",
        "ModelPackage does not exist.",
        expected_params={"ModelPackageName": arn(9)},
    )
    with pytest.raises(RegistryError, match="does not exist"):
        registry.resolve(arn(9))
    session.assert_no_pending()


def test_resolve_refuses_anything_else(session, registry):
    with pytest.raises(RegistryError, match="give 'champion', a version number"):
        registry.resolve("latest")
    session.assert_no_pending()


def test_service_errors_name_the_operation_and_the_group(session, registry):
    session.stub("sagemaker").add_client_error("list_model_packages", "AccessDeniedException", "not allowed")
    with pytest.raises(RegistryError, match="ListModelPackages on model package group 'image-classifier'.*not allowed"):
        registry.champion()
    session.assert_no_pending()


@pytest.mark.parametrize(("fingerprint", "expected"), [("sha256:ab", (0.85, "3")), ("sha256:other", (0.7, "3"))])
def test_champion_standing(session, registry, candidate, fingerprint, expected):
    """The recorded top-1 on the same folder; on another one the champion's model evaluated again."""
    expect_champion(session, 3, fingerprint=fingerprint)
    reevaluated = []

    def reevaluate(model_data):
        reevaluated.append(model_data)
        return type("Result", (), {"top1": 0.7})()

    assert champion_standing(registry, candidate, reevaluate) == expected
    assert reevaluated == ([] if fingerprint == "sha256:ab" else [MODEL])
    session.assert_no_pending()


# ---- deploying a version ----


@pytest.mark.parametrize(
    ("cpu", "container"),
    [(False, {"ModelPackageName": arn(3)}), (True, {"ModelPackageName": arn(3), "InferenceSpecificationName": "cpu"})],
)
def test_container_from_package_is_a_create_model_container(session, cpu, container):
    assert container_from_package(arn(3), cpu) == container
    session.stub("sagemaker").add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/classifier-v3"},
        {"ModelName": "classifier-v3", "ExecutionRoleArn": ROLE, "PrimaryContainer": container},
    )
    session.client("sagemaker").create_model(
        ModelName="classifier-v3", ExecutionRoleArn=ROLE, PrimaryContainer=container_from_package(arn(3), cpu)
    )
    session.assert_no_pending()
