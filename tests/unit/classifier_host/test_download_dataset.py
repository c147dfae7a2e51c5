"""The S3 half of the dataset download (data/s3.py), against moto (AWS mocked at the network boundary)."""

import boto3
import pytest
from moto import mock_aws

from classifier_host.data.s3 import parse_s3_uri, upload_folder


def test_upload_keeps_the_layout(tiny_data, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="data")
        count = upload_folder(s3, tiny_data, "data", "dog-breeds")
        keys = sorted(
            o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="data") for o in page["Contents"]
        )
    assert count == 100 == len(keys)
    assert keys[0].startswith("dog-breeds/test/001.Red_circle/")
    assert {k.split("/")[1] for k in keys} == {"train", "valid", "test"}


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("s3://bucket/some/prefix/", ("bucket", "some/prefix")),
        ("s3://bucket", ("bucket", "")),
    ],
)
def test_parse_s3_uri(uri, expected):
    assert parse_s3_uri(uri) == expected


def test_parse_s3_uri_refuses_other_schemes():
    with pytest.raises(ValueError, match="not an S3 URI"):
        parse_s3_uri("/local/path")
