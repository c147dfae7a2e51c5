"""Lint of the IAM policy documents in iam/: valid documents, real action names (checked against
botocore's service models, so a typo fails), no wildcard actions, "*" resources only for the actions
that have no resource-level permissions, placeholders instead of account data, and every AWS call the
project's code makes granted to the role that makes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[3]
IAM = ROOT / "iam"
PLACEHOLDERS = {"ACCOUNT_ID", "REGION", "BUCKET", "PREFIX", "KMS_KEY_ID", "CODEBUILD_PROJECT", "SAGEMAKER_ROLE_NAME"}
# IAM prefix -> botocore services whose operations are its actions.
SERVICES = {
    "sagemaker": ("sagemaker", "sagemaker-runtime"),
    "s3": ("s3",),
    "ecr": ("ecr",),
    "logs": ("logs",),
    "cloudwatch": ("cloudwatch",),
    "kms": ("kms",),
    "ec2": ("ec2",),
    "iam": ("iam",),
    "sts": ("sts",),
    "application-autoscaling": ("application-autoscaling",),
    "sns": ("sns",),
}
# Actions that are permissions, not API operations.
PERMISSION_ONLY = {"s3:ListBucket", "iam:PassRole"}
# Actions that support no resource-level permission (AWS's Service Authorization Reference): "*" is the only way.
STAR_ONLY = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "sagemaker:ListModelPackages",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DeregisterScalableTarget",
    # SageMaker's List* calls take no resource ARN (Service Authorization Reference)
    "sagemaker:ListEndpoints",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListModels",
    "sagemaker:ListInferenceExperiments",
    "cloudwatch:GetMetricData",
}
DOCUMENTS = sorted(IAM.glob("*.json"))
PERMISSION_DOCS = [p for p in DOCUMENTS if not p.name.endswith("-trust.json")]

_models = botocore.session.get_session()


def operations(service: str) -> set[str]:
    return set(_models.get_service_model(service).operation_names)


def statements(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    assert doc["Version"] == "2012-10-17", path.name
    return doc["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def granted(path: Path) -> set[str]:
    return {a for s in statements(path) for a in as_list(s["Action"])}


def resources_of(path: Path, action: str) -> set[str]:
    """Every resource `action` is granted on in the document."""
    return {r for s in statements(path) if action in as_list(s["Action"]) for r in as_list(s["Resource"])}


def test_there_are_documents_for_both_roles_and_the_operator():
    names = {p.name for p in DOCUMENTS}
    assert {
        "sagemaker-execution-role.json",
        "sagemaker-trust.json",
        "codebuild-role.json",
        "codebuild-trust.json",
        "operator-policy.json",
    } <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_statements_are_well_formed(path):
    sids = [s.get("Sid") for s in statements(path)]
    assert all(sids) and len(set(sids)) == len(sids), f"{path.name}: every statement needs a unique Sid"
    for s in statements(path):
        assert s["Effect"] == "Allow", f"{path.name} {s['Sid']}: only Allow statements here"
        assert set(s) <= {"Sid", "Effect", "Action", "Resource", "Condition", "Principal"}, s["Sid"]


@pytest.mark.parametrize("path", PERMISSION_DOCS, ids=lambda p: p.name)
def test_actions_are_real_and_not_wildcards(path):
    for s in statements(path):
        for action in as_list(s["Action"]):
            prefix, _, name = action.partition(":")
            assert "*" not in action, f"{path.name} {s['Sid']}: wildcard action {action}"
            assert prefix in SERVICES, f"{path.name}: unknown service prefix in {action}"
            known = set().union(*(operations(svc) for svc in SERVICES[prefix]))
            assert name in known or action in PERMISSION_ONLY, f"{path.name} {s['Sid']}: no such action {action}"


@pytest.mark.parametrize("path", PERMISSION_DOCS, ids=lambda p: p.name)
def test_star_resources_only_where_nothing_narrower_exists(path):
    for s in statements(path):
        resources = as_list(s["Resource"])
        if "*" in resources:
            broad = set(as_list(s["Action"])) - STAR_ONLY
            assert not broad, f"{path.name} {s['Sid']}: {sorted(broad)} on Resource '*' (give ARNs)"
        for arn in resources:
            assert arn == "*" or arn.startswith("arn:aws:"), f"{path.name}: {arn} is not an ARN"
            assert not re.search(r"\d{12}", arn), f"{path.name}: {arn} has an account id; use {{{{ACCOUNT_ID}}}}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_only_documented_placeholders(path):
    used = set(re.findall(r"{{(\w+)}}", path.read_text()))
    assert used <= PLACEHOLDERS, f"{path.name}: unknown placeholders {used - PLACEHOLDERS}"
    readme = (ROOT / "README.md").read_text()
    assert path.name in readme, f"README must reference iam/{path.name}"


@pytest.mark.parametrize(
    "name, service",
    [("sagemaker-trust.json", "sagemaker.amazonaws.com"), ("codebuild-trust.json", "codebuild.amazonaws.com")],
)
def test_trust_policies_name_only_their_service(name, service):
    (s,) = statements(IAM / name)
    assert s["Principal"] == {"Service": service} and s["Action"] == "sts:AssumeRole"


def calls_in(source: Path, client_attr: str, service: str) -> set[str]:
    """API operations a module calls as `<client_attr>.<snake_name>(`, as IAM actions."""
    by_snake = {xform_name(op): op for op in operations(service)}
    found = re.findall(rf"{re.escape(client_attr)}\.([a-z_]+)\(", source.read_text())
    prefix = "sagemaker" if service.startswith("sagemaker") else service
    return {f"{prefix}:{by_snake[name]}" for name in found if name in by_snake}


def test_push_calls_are_granted_to_codebuild_and_the_operator():
    needed = calls_in(ROOT / "scripts" / "classifier_host" / "images" / "push.py", "self.ecr", "ecr")
    assert {"ecr:CreateRepository", "ecr:BatchGetImage", "ecr:GetAuthorizationToken"} <= needed
    # docker push's own calls
    needed |= {
        "ecr:BatchCheckLayerAvailability",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
    }
    for doc in ("codebuild-role.json", "operator-policy.json"):
        assert needed <= granted(IAM / doc), f"{doc} lacks {sorted(needed - granted(IAM / doc))}"


def test_cloud_calls_are_granted_to_the_operator():
    needed = set()
    for api in (ROOT / "scripts" / "classifier_host" / "sagemaker").glob("*.py"):
        needed |= (
            calls_in(api, "client", "sagemaker")
            | calls_in(api, "autoscaling", "application-autoscaling")
            | calls_in(api, "cloudwatch", "cloudwatch")
        )
    assert {
        "sagemaker:DeleteEndpoint",
        "sagemaker:ListEndpoints",
        "application-autoscaling:PutScalingPolicy",
        "sagemaker:DescribeEndpointConfig",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    } <= needed
    # what sagemaker-core's resources call for train / tune / deploy / query (each create is followed by a
    # Describe), Batch Transform, and the log tailer
    needed |= {
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:CreateModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:CreateEndpoint",
        "sagemaker:InvokeEndpoint",
        "sagemaker:InvokeEndpointAsync",
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:DescribeModel",
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
        "sagemaker:CreateTransformJob",
        "sagemaker:DescribeTransformJob",
        "sagemaker:StopTransformJob",
        "logs:DescribeLogStreams",
        "logs:GetLogEvents",
        "iam:PassRole",
    }
    # register.py --cloud (registry/sagemaker_registry.py calls through a helper that names the operation).
    registry = (ROOT / "scripts" / "classifier_host" / "registry" / "sagemaker_registry.py").read_text()
    by_snake = {xform_name(op): op for op in operations("sagemaker")}
    used = set(re.findall(r'_call\(\s*"([A-Za-z]+)"', registry))
    used |= {by_snake[name] for name in re.findall(r"self\.sagemaker\.([a-z_]+)\(", registry) if name in by_snake}
    used |= {by_snake[name] for name in re.findall(r'get_paginator\("([a-z_]+)"\)', registry) if name in by_snake}
    assert {"CreateModelPackage", "UpdateModelPackage", "ListModelPackages", "CreateModelPackageGroup"} <= used
    needed |= {f"sagemaker:{op}" for op in used} | {"s3:PutObject", "s3:DeleteObject"}
    missing = needed - granted(IAM / "operator-policy.json")
    assert not missing, f"operator-policy.json lacks {sorted(missing)}"


def test_the_operator_reaches_async_requests_alarms_and_transform_logs_by_name():
    operator = IAM / "operator-policy.json"
    # query.py uploads async requests and reads their answers under the project prefix (a HEAD needs GetObject)
    for action in ("s3:PutObject", "s3:GetObject"):
        assert resources_of(operator, action) == {"arn:aws:s3:::{{BUCKET}}/{{PREFIX}}/*"}, action
    for action in ("cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"):
        assert resources_of(operator, action) == {
            "arn:aws:cloudwatch:{{REGION}}:{{ACCOUNT_ID}}:alarm:image-classifier-*"
        }, action
    assert resources_of(operator, "sagemaker:CreateTransformJob") == {
        "arn:aws:sagemaker:{{REGION}}:{{ACCOUNT_ID}}:transform-job/image-classifier-*"
    }
    # Batch Transform logs to /aws/sagemaker/TransformJobs, under the granted log groups
    assert resources_of(operator, "logs:GetLogEvents") == {
        "arn:aws:logs:{{REGION}}:{{ACCOUNT_ID}}:log-group:/aws/sagemaker/*"
    }


def test_the_execution_role_serves_async_endpoints():
    role = IAM / "sagemaker-execution-role.json"
    # requests read from PREFIX/async/input, answers and failures written to PREFIX/async/output|failures
    for action in ("s3:GetObject", "s3:PutObject"):
        assert "arn:aws:s3:::{{BUCKET}}/{{PREFIX}}/*" in resources_of(role, action), action
    # --sns-success-topic / --sns-error-topic: only topics named image-classifier-*
    assert resources_of(role, "sns:Publish") == {"arn:aws:sns:{{REGION}}:{{ACCOUNT_ID}}:image-classifier-*"}
    # KmsKeyId of the async output (KMS_KEY_ID): the KMS variant's key
    kms = IAM / "sagemaker-execution-role-vpc-kms.json"
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert resources_of(kms, action) == {"arn:aws:kms:{{REGION}}:{{ACCOUNT_ID}}:key/{{KMS_KEY_ID}}"}, action


def test_updates_shadow_tests_and_their_alarms_are_scoped_to_the_project():
    operator = IAM / "operator-policy.json"
    endpoint = "arn:aws:sagemaker:{{REGION}}:{{ACCOUNT_ID}}:endpoint/image-classifier-*"
    for action in ("sagemaker:UpdateEndpoint", "sagemaker:ListTags", "sagemaker:DeleteTags"):
        assert endpoint in resources_of(operator, action), action
    experiment = "arn:aws:sagemaker:{{REGION}}:{{ACCOUNT_ID}}:inference-experiment/image-classifier-*"
    for action in ("sagemaker:CreateInferenceExperiment", "sagemaker:StopInferenceExperiment"):
        assert resources_of(operator, action) == {experiment}, action
    # SageMaker reads the rollback alarms as the endpoint's execution role
    assert resources_of(IAM / "sagemaker-execution-role.json", "cloudwatch:DescribeAlarms") == {
        "arn:aws:cloudwatch:{{REGION}}:{{ACCOUNT_ID}}:alarm:image-classifier-*"
    }
