"""classifier_host.settings and .records: every missing or malformed AWS setting is named before anything
reaches AWS."""

import pytest

from classifier_host import records, settings
from classifier_host.settings import SettingsError

ROLE = "arn:aws:iam::123456789012:role/image-classifier-sagemaker"
FULL = {"AWS_REGION": "eu-west-1", "SAGEMAKER_ROLE_ARN": ROLE, "S3_BUCKET": "my-bucket"}


def test_all_set():
    cfg = settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET", env=FULL)
    assert (cfg.region, cfg.role_arn, cfg.bucket, cfg.prefix) == ("eu-west-1", ROLE, "my-bucket", "image-classifier")
    assert cfg.s3_uri("data", "dogs") == "s3://my-bucket/image-classifier/data/dogs"
    assert cfg.vpc_config is None and cfg.kms_key_id is None


@pytest.mark.parametrize("missing", sorted(FULL))
def test_a_missing_setting_is_named_with_how_to_set_it(missing):
    env = {k: v for k, v in FULL.items() if k != missing}
    with pytest.raises(SettingsError, match=f"missing AWS setting\\(s\\) {missing}:\n  {missing}: "):
        settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET", env=env)


def test_every_missing_setting_is_named_at_once():
    with pytest.raises(SettingsError, match="AWS_REGION, SAGEMAKER_ROLE_ARN, S3_BUCKET"):
        settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET", env={"S3_BUCKET": " "})


def test_only_what_is_asked_for_is_required():
    assert settings.load(env={"AWS_REGION": "us-east-1"}).bucket is None


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("SAGEMAKER_ROLE_ARN", "image-classifier-sagemaker", "is not an IAM role ARN"),
        ("S3_BUCKET", "s3://bucket/prefix", "bucket name only"),
        ("SUBNETS", "subnet-1", "SUBNETS and SECURITY_GROUP_IDS go together"),
    ],
)
def test_malformed_settings_are_refused(name, value, message):
    with pytest.raises(SettingsError, match=message):
        settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET", env={**FULL, name: value})


def test_optional_settings():
    cfg = settings.load(
        env={
            **FULL,
            "S3_BUCKET": "s3://my-bucket/",
            "S3_PREFIX": "/team/x/",
            "KMS_KEY_ID": "k",
            "SUBNETS": "subnet-1, subnet-2",
            "SECURITY_GROUP_IDS": "sg-1",
        }
    )
    assert cfg.s3_uri("output") == "s3://my-bucket/team/x/output"
    assert cfg.vpc_config == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
    assert cfg.kms_key_id == "k"


def test_records_round_trip(tmp_path):
    assert records.recorded("endpoint", tmp_path) is None
    records.record("endpoint", "ep-1", tmp_path)
    assert records.recorded("endpoint", tmp_path) == "ep-1"
    records.forget("endpoint", tmp_path)
    assert records.recorded("endpoint", tmp_path) is None
