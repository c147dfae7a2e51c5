"""AWS at the network boundary for unit tests: real botocore clients whose calls botocore's Stubber
answers (it checks each request against the service model and the parameters we expect)."""

from __future__ import annotations

import time

import boto3
from botocore.stub import Stubber

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/image-classifier-sagemaker"
BUCKET = "classifier-bucket"
# The serving digests `make push` records (build/images.json of the `cloud` fixture, conftest.py).
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-serve@sha256:" + "b" * 64
IMAGE_CPU = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-image-classifier-serve-cpu@sha256:" + "c" * 64


class StubbedBotoSession(boto3.Session):
    """A boto3 session handing out the stubbed clients; other services get ordinary clients
    (moto answers them where a test activates it)."""

    def __init__(self):
        super().__init__(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        self.stubbers: dict[str, Stubber] = {}
        self._clients = {}

    def stub(self, service: str) -> Stubber:
        if service not in self.stubbers:
            client = super().client(service, region_name=REGION)
            self._clients[service] = client
            self.stubbers[service] = Stubber(client)
            self.stubbers[service].activate()
        return self.stubbers[service]

    def client(self, service_name, *args, **kwargs):
        if service_name in self._clients:
            return self._clients[service_name]
        return super().client(service_name, *args, **kwargs)

    def assert_no_pending(self):
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


def aws_env(monkeypatch, **extra: str) -> None:
    """The settings the cloud scripts read, with fake credentials (nothing reaches AWS). The SDK's
    waiters sleep 5-30 s before each poll: no need to when the Stubber answers."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    values = {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SAGEMAKER_ROLE_ARN": ROLE,
        "S3_BUCKET": BUCKET,
        **extra,
    }
    for name in ("KMS_KEY_ID", "SUBNETS", "SECURITY_GROUP_IDS", "S3_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
