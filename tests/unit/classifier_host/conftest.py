"""The fixtures of the host's cloud tests."""

from __future__ import annotations

import json

import boto3
import pytest

from classifier_host import settings

from .aws_stubs import IMAGE, IMAGE_CPU, StubbedBotoSession, aws_env


@pytest.fixture
def cloud(monkeypatch, tmp_path):
    """AWS settings, the pushed serving images and a state folder of the test's own, and every boto3 session
    the code makes is one whose clients botocore's Stubber answers (nothing reaches AWS)."""
    aws_env(monkeypatch)
    images = tmp_path / "images.json"
    images.write_text(json.dumps({"serve": {"uri": IMAGE}, "serve-cpu": {"uri": IMAGE_CPU}}))
    monkeypatch.setattr(settings, "IMAGES_FILE", images)
    monkeypatch.setattr(settings, "STATE_DIR", tmp_path / "state")
    boto = StubbedBotoSession()
    monkeypatch.setattr(boto3, "Session", lambda **kw: boto)
    return boto
