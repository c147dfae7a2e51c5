"""scripts/push_images.py against ECR and STS (botocore's Stubber: requests checked against the service
models) with the docker CLI replaced by a recorder. The real docker push is tests/integration/test_registry.py."""
from __future__ import annotations

import base64
import json

import pytest

import push_images
from push_images import ImageRef, PushError

from .aws_stubs import ACCOUNT, REGION, StubbedBotoSession, aws_env

ECR = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TAG = "3f2a9c1b7d4e"
LOCAL_ID = "sha256:" + "1" * 64
DIGEST = "sha256:" + "d" * 64


class RecordingDocker(push_images.Docker):
    """Answers like the docker CLI would; records every command."""

    def __init__(self, image_id=LOCAL_ID):
        self.calls = []
        self.image = image_id

    def run(self, *args, input=None, echo=False):
        self.calls.append((args, input))
        if args[:2] == ("image", "inspect"):
            return self.image + "\n"
        if args[0] == "push":
            return f"{TAG}: digest: {DIGEST} size: 1234\n"
        return ""

    def commands(self):
        return [args[0] if args[0] != "image" else "inspect" for args, _ in self.calls]


def manifest(config_digest):
    return json.dumps({"schemaVersion": 2, "mediaType": push_images.MANIFEST_TYPES[0],
                       "config": {"digest": config_digest, "mediaType": "application/vnd.docker.container.image.v1+json",
                                  "size": 1}, "layers": []})


def ecr_session(repo_exists: bool, existing_config: str | None):
    boto = StubbedBotoSession()
    boto.stub("sts").add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "UserId": "AIDAEXAMPLEUSERID"}, {})
    ecr = boto.stub("ecr")
    token = base64.b64encode(b"AWS:secret-password").decode()
    ecr.add_response("get_authorization_token", {"authorizationData": [
        {"authorizationToken": token, "proxyEndpoint": f"https://{ECR}"}]}, {})
    repo = "sagemaker-image-classifier-train"
    if repo_exists:
        ecr.add_response("describe_repositories", {"repositories": [{
            "repositoryName": repo, "imageTagMutability": "IMMUTABLE",
            "imageScanningConfiguration": {"scanOnPush": True}}]}, {"repositoryNames": [repo]})
    else:
        ecr.add_client_error("describe_repositories", "RepositoryNotFoundException", expected_params={"repositoryNames": [repo]})
        ecr.add_response("create_repository", {"repository": {"repositoryName": repo}},
                         {"repositoryName": repo, "imageTagMutability": "IMMUTABLE",
                          "imageScanningConfiguration": {"scanOnPush": True}})
    images = [] if existing_config is None else [{
        "repositoryName": repo, "imageId": {"imageDigest": DIGEST, "imageTag": TAG},
        "imageManifest": manifest(existing_config)}]
    ecr.add_response("batch_get_image", {"images": images, "failures": []},
                     {"repositoryName": repo, "imageIds": [{"imageTag": TAG}],
                      "acceptedMediaTypes": list(push_images.MANIFEST_TYPES)})
    return boto


def test_new_repository_is_created_immutable_and_the_image_pushed(monkeypatch, tmp_path):
    aws_env(monkeypatch)
    boto, docker = ecr_session(repo_exists=False, existing_config=None), RecordingDocker()
    out = tmp_path / "images.json"
    assert push_images.main(["--output", str(out), f"train=sagemaker-image-classifier-train:{TAG}"],
                            docker=docker, boto_session=boto) == 0
    boto.assert_no_pending()
    # docker logged in to ECR's endpoint with the token's password, then tagged and pushed the commit tag.
    assert (("login", "--username", "AWS", "--password-stdin", f"https://{ECR}"), "secret-password") in docker.calls
    remote = f"{ECR}/sagemaker-image-classifier-train:{TAG}"
    assert (("tag", f"sagemaker-image-classifier-train:{TAG}", remote), None) in docker.calls
    assert (("push", remote), None) in docker.calls
    assert json.loads(out.read_text()) == {"train": {
        "image": remote, "digest": DIGEST, "uri": f"{ECR}/sagemaker-image-classifier-train@{DIGEST}"}}


def test_same_image_already_pushed_is_not_pushed_again(monkeypatch, tmp_path):
    aws_env(monkeypatch)
    boto, docker = ecr_session(repo_exists=True, existing_config=LOCAL_ID), RecordingDocker()
    out = tmp_path / "images.json"
    assert push_images.main(["--output", str(out), f"train=sagemaker-image-classifier-train:{TAG}"],
                            docker=docker, boto_session=boto) == 0
    boto.assert_no_pending()
    assert "push" not in docker.commands()
    assert json.loads(out.read_text())["train"]["digest"] == DIGEST


def test_a_tag_holding_another_image_is_never_overwritten(monkeypatch, tmp_path, capsys):
    aws_env(monkeypatch)
    boto, docker = ecr_session(repo_exists=True, existing_config="sha256:" + "9" * 64), RecordingDocker()
    out = tmp_path / "images.json"
    assert push_images.main(["--output", str(out), f"train=sagemaker-image-classifier-train:{TAG}"],
                            docker=docker, boto_session=boto) == 1
    assert "push" not in docker.commands() and not out.exists()
    assert "already holds a different image" in capsys.readouterr().err


def test_missing_region_fails_before_any_aws_call(monkeypatch, tmp_path, capsys):
    aws_env(monkeypatch)
    monkeypatch.delenv("AWS_REGION")
    boto = StubbedBotoSession()
    boto.stub("sts")
    boto.stub("ecr")  # nothing queued: a call would raise
    assert push_images.main(["--output", str(tmp_path / "i.json"), f"train=x:{TAG}"],
                            docker=RecordingDocker(), boto_session=boto) == 1
    assert "missing AWS setting(s) AWS_REGION" in capsys.readouterr().err


def test_an_image_not_built_is_named(tmp_path, capsys):
    class NoImages(RecordingDocker):
        def run(self, *args, input=None, echo=False):
            raise PushError("docker image failed: No such image")

    code = push_images.main(["--registry", "127.0.0.1:1", "--output", str(tmp_path / "i.json"), "train=gone:abc"],
                            docker=NoImages())
    assert code == 1 and "image gone:abc is not on this machine: run `make build`" in capsys.readouterr().err


@pytest.mark.parametrize("ref, repository, tag", [
    ("sagemaker-image-classifier-train:abc", "sagemaker-image-classifier-train", "abc"),
    ("127.0.0.1:5000/sagemaker-image-classifier-serve:abc-dirty", "sagemaker-image-classifier-serve", "abc-dirty"),
    (f"{ECR}/team/classifier:v1", "team/classifier", "v1"),
    ("team/classifier:v1", "team/classifier", "v1"),
])
def test_image_ref_parsing(ref, repository, tag):
    assert ImageRef.parse(ref) == ImageRef(repository, tag)


@pytest.mark.parametrize("ref", ["no-tag", "127.0.0.1:5000/no-tag"])
def test_image_without_tag_is_refused(ref):
    with pytest.raises(PushError, match="has no tag"):
        ImageRef.parse(ref)


def test_record_keeps_other_roles(tmp_path):
    path = tmp_path / "images.json"
    push_images.write_record({"train": {"uri": "a"}}, path)
    push_images.write_record({"serve": {"uri": "b"}}, path)
    assert json.loads(path.read_text()) == {"train": {"uri": "a"}, "serve": {"uri": "b"}}
