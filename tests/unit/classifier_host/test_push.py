"""The push (images/push.py, the command scripts/push_images.py runs) against ECR and STS (botocore's
Stubber: requests checked against the service models) with the docker CLI replaced by a recorder. The
real docker push is tests/integration/test_registry.py."""

from __future__ import annotations

import base64
import json

import pytest

from classifier_host.cli import push_images as push_command
from classifier_host.images import push, sbom
from classifier_host.images.provenance import INPUTS_LABEL, OCI, ProvenanceError
from classifier_host.images.push import ImageRef, PushError

from .aws_stubs import ACCOUNT, REGION, StubbedBotoSession, aws_env

ECR = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TAG = "3f2a9c1b7d4e"
LOCAL_ID = "sha256:" + "1" * 64
CONFIG = "sha256:" + "c" * 64
DIGEST = "sha256:" + "d" * 64
COMMIT = "3f2a9c1b7d4e" + "0" * 28
INPUTS = "sha256:" + "a" * 64
LABELS = {
    f"{OCI}.revision": COMMIT,
    f"{OCI}.version": TAG,
    f"{OCI}.created": "2026-12-02T03:00:00+00:00",
    f"{OCI}.base.name": "base@sha256:" + "b" * 64,
    f"{OCI}.base.digest": "sha256:" + "b" * 64,
    INPUTS_LABEL: INPUTS,
}
# What cyclonedx-py and dpkg print inside an image (images/sbom.py runs both there).
PYTHON_BOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.6",
    "components": [
        {
            "type": "library",
            "bom-ref": "torch==2.14.1",
            "name": "torch",
            "version": "2.14.1",
            "purl": "pkg:pypi/torch@2.14.1",
        }
    ],
    "dependencies": [{"ref": "torch==2.14.1"}],
    "metadata": {},
}
DPKG = (
    'ID=debian\nVERSION_ID="12"\n---\nlibc6\t2.36-9+deb12u13\tamd64\nperl-base\t5.36.0-7+deb12u3\tamd64\n'
    "tzdata\t2025b-0+deb12u2\tall\nlibgcc-s1\t1:12.2.0-14+deb12u1\tamd64\n"
)


class RecordingDocker(push.Docker):
    """Answers like the docker CLI would; records every command."""

    def __init__(self, image_id=LOCAL_ID, labels=LABELS):
        self.calls = []
        self.image = image_id
        self.image_labels = labels

    def run(self, *args, input=None, echo=False):
        self.calls.append((args, input))
        if args[:2] == ("image", "inspect"):
            return (json.dumps(self.image_labels) if ".Config.Labels" in args[3] else self.image) + "\n"
        if args[0] == "run":
            return DPKG if "sh" in args else json.dumps(PYTHON_BOM)
        if args[0] == "push":
            return f"{TAG}: digest: {DIGEST} size: 1234\n"
        return ""

    def commands(self):
        return [args[0] if args[0] != "image" else "inspect" for args, _ in self.calls]


def manifest(config_digest):
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": push.MANIFEST_TYPES[0],
            "config": {
                "digest": config_digest,
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1,
            },
            "layers": [],
        }
    )


@pytest.fixture(autouse=True)
def sbom_tool(monkeypatch, tmp_path):
    """The SBOM tool is mounted into the image; the recorder runs nothing, so no tool is installed."""
    monkeypatch.setattr(sbom, "install_tool", lambda: tmp_path / "sbom-tool")


def registry_config(monkeypatch, labels):
    """The image config ECR's pre-signed URL serves (the labels of the image under the tag)."""
    monkeypatch.setattr(push, "http_json", lambda url: {"config": {"Labels": labels}})


def ecr_session(repo_exists: bool, existing_config: str | None):
    boto = StubbedBotoSession()
    boto.stub("sts").add_response(
        "get_caller_identity",
        {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "UserId": "AIDAEXAMPLEUSERID"},
        {},
    )
    ecr = boto.stub("ecr")
    token = base64.b64encode(b"AWS:secret-password").decode()
    ecr.add_response(
        "get_authorization_token",
        {"authorizationData": [{"authorizationToken": token, "proxyEndpoint": f"https://{ECR}"}]},
        {},
    )
    repo = "sagemaker-image-classifier-train"
    if repo_exists:
        ecr.add_response(
            "describe_repositories",
            {
                "repositories": [
                    {
                        "repositoryName": repo,
                        "imageTagMutability": "IMMUTABLE",
                        "imageScanningConfiguration": {"scanOnPush": True},
                    }
                ]
            },
            {"repositoryNames": [repo]},
        )
    else:
        ecr.add_client_error(
            "describe_repositories", "RepositoryNotFoundException", expected_params={"repositoryNames": [repo]}
        )
        ecr.add_response(
            "create_repository",
            {"repository": {"repositoryName": repo}},
            {
                "repositoryName": repo,
                "imageTagMutability": "IMMUTABLE",
                "imageScanningConfiguration": {"scanOnPush": True},
            },
        )
    images = (
        []
        if existing_config is None
        else [
            {
                "repositoryName": repo,
                "imageId": {"imageDigest": DIGEST, "imageTag": TAG},
                "imageManifest": manifest(existing_config),
            }
        ]
    )
    ecr.add_response(
        "batch_get_image",
        {"images": images, "failures": []},
        {"repositoryName": repo, "imageIds": [{"imageTag": TAG}], "acceptedMediaTypes": list(push.MANIFEST_TYPES)},
    )
    if existing_config:
        ecr.add_response(
            "get_download_url_for_layer",
            {"downloadUrl": "https://s3.example/config", "layerDigest": existing_config},
            {"repositoryName": repo, "layerDigest": existing_config},
        )
    return boto


def test_new_repository_is_created_immutable_and_the_image_pushed(monkeypatch, tmp_path):
    aws_env(monkeypatch)
    boto, docker = ecr_session(repo_exists=False, existing_config=None), RecordingDocker()
    out = tmp_path / "images.json"
    assert (
        push_command.main(
            ["--output", str(out), f"train=sagemaker-image-classifier-train:{TAG}"], docker=docker, boto_session=boto
        )
        == 0
    )
    boto.assert_no_pending()
    # docker logged in to ECR's endpoint with the token's password, then tagged and pushed the commit tag.
    assert (("login", "--username", "AWS", "--password-stdin", f"https://{ECR}"), "secret-password") in docker.calls
    remote = f"{ECR}/sagemaker-image-classifier-train:{TAG}"
    assert (("tag", f"sagemaker-image-classifier-train:{TAG}", remote), None) in docker.calls
    assert (("push", remote), None) in docker.calls
    assert json.loads(out.read_text()) == {
        "train": {
            "image": remote,
            "digest": DIGEST,
            "uri": f"{ECR}/sagemaker-image-classifier-train@{DIGEST}",
            "labels": LABELS,
            "sbom": "sbom-train.cdx.json",
        }
    }
    # The SBOM was written before the push, beside the record.
    assert json.loads((tmp_path / "sbom-train.cdx.json").read_text())["metadata"]["component"]["version"] == TAG
    assert docker.commands().index("run") < docker.commands().index("push")


def test_a_rebuild_with_the_same_inputs_is_not_pushed_again(monkeypatch, tmp_path, capsys):
    """A CodeBuild retry: same commit, no layer cache, new image id and created time, same inputs digest."""
    aws_env(monkeypatch)
    theirs = {**LABELS, f"{OCI}.created": "2026-12-01T09:00:00+00:00"}
    registry_config(monkeypatch, theirs)
    boto, docker = ecr_session(repo_exists=True, existing_config=CONFIG), RecordingDocker(image_id="sha256:" + "2" * 64)
    out = tmp_path / "images.json"
    assert (
        push_command.main(
            ["--output", str(out), f"train=sagemaker-image-classifier-train:{TAG}"], docker=docker, boto_session=boto
        )
        == 0
    )
    boto.assert_no_pending()
    assert "push" not in docker.commands()
    entry = json.loads(out.read_text())["train"]
    # The record describes what the registry holds: its digest and its labels (its build time).
    assert entry["digest"] == DIGEST and entry["labels"] == theirs
    assert "built from the same inputs" in capsys.readouterr().out


@pytest.mark.parametrize(
    "theirs, reason",
    [
        ({**LABELS, INPUTS_LABEL: "sha256:" + "e" * 64, f"{OCI}.revision": "9" * 40}, "built from commit 9999"),
        (
            {**LABELS, INPUTS_LABEL: "sha256:" + "e" * 64, f"{OCI}.base.digest": "recipe sha256:" + "f" * 64},
            "other base image",
        ),
        ({**LABELS, INPUTS_LABEL: "sha256:" + "e" * 64}, "what differs is outside git: the baked weights"),
        ({f"{OCI}.revision": COMMIT}, "carries no inputs digest"),
    ],
)
def test_a_tag_holding_other_inputs_is_never_overwritten(monkeypatch, tmp_path, capsys, theirs, reason):
    aws_env(monkeypatch)
    registry_config(monkeypatch, theirs)
    boto, docker = ecr_session(repo_exists=True, existing_config=CONFIG), RecordingDocker()
    out = tmp_path / "images.json"
    assert (
        push_command.main(
            ["--output", str(out), f"train=sagemaker-image-classifier-train:{TAG}"], docker=docker, boto_session=boto
        )
        == 1
    )
    assert "push" not in docker.commands() and not out.exists()
    err = capsys.readouterr().err
    assert "tags are never overwritten" in err and reason in err


def test_uncommitted_changes_are_told_to_commit():
    ours = {**LABELS, INPUTS_LABEL: "sha256:" + "e" * 64}
    message = push.why_different(f"{ECR}/x:{TAG}-dirty", LABELS, ours)
    assert "uncommitted changes" in message and "commit your changes and rebuild" in message


def test_an_image_without_an_inputs_digest_is_not_pushed(tmp_path, capsys):
    docker = RecordingDocker(labels={"maintainer": "someone"})
    code = push_command.main(
        ["--registry", "127.0.0.1:1", "--output", str(tmp_path / "i.json"), "train=x:abc"], docker=docker
    )
    assert code == 1 and "push" not in docker.commands()
    assert f"image x:abc has no {INPUTS_LABEL} label" in capsys.readouterr().err


def test_sbom_adds_the_debian_packages_and_names_the_image():
    bom = sbom.sbom(f"sagemaker-image-classifier-train:{TAG}", RecordingDocker())
    purls = [c["purl"] for c in bom["components"]]
    assert purls[0] == "pkg:pypi/torch@2.14.1"
    # Epochs and '+' are percent-encoded, as the purl spec wants for versions.
    assert "pkg:deb/debian/libgcc-s1@1%3A12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12" in purls
    assert len(purls) == 5 and {d["ref"] for d in bom["dependencies"]} == {c["bom-ref"] for c in bom["components"]}
    image = bom["metadata"]["component"]
    assert (image["type"], image["name"], image["version"]) == ("container", "sagemaker-image-classifier-train", TAG)
    assert {"name": INPUTS_LABEL, "value": INPUTS} in image["properties"]


def test_missing_region_fails_before_any_aws_call(monkeypatch, tmp_path, capsys):
    aws_env(monkeypatch)
    monkeypatch.delenv("AWS_REGION")
    boto = StubbedBotoSession()
    boto.stub("sts")
    boto.stub("ecr")  # nothing queued: a call would raise
    assert (
        push_command.main(
            ["--output", str(tmp_path / "i.json"), f"train=x:{TAG}"], docker=RecordingDocker(), boto_session=boto
        )
        == 1
    )
    assert "missing AWS setting(s) AWS_REGION" in capsys.readouterr().err


def test_an_image_not_built_is_named(tmp_path, capsys):
    class NoImages(RecordingDocker):
        def run(self, *args, input=None, echo=False):
            raise PushError("docker image failed: No such image")

    code = push_command.main(
        ["--registry", "127.0.0.1:1", "--output", str(tmp_path / "i.json"), "train=gone:abc"], docker=NoImages()
    )
    assert code == 1 and "image gone:abc is not on this machine: run `make build`" in capsys.readouterr().err


@pytest.mark.parametrize(
    "ref, repository, tag",
    [
        ("sagemaker-image-classifier-train:abc", "sagemaker-image-classifier-train", "abc"),
        ("127.0.0.1:5000/sagemaker-image-classifier-serve:abc-dirty", "sagemaker-image-classifier-serve", "abc-dirty"),
        (f"{ECR}/team/classifier:v1", "team/classifier", "v1"),
        ("team/classifier:v1", "team/classifier", "v1"),
    ],
)
def test_image_ref_parsing(ref, repository, tag):
    assert ImageRef.parse(ref) == ImageRef(repository, tag)


@pytest.mark.parametrize("ref", ["no-tag", "127.0.0.1:5000/no-tag"])
def test_image_without_tag_is_refused(ref):
    with pytest.raises(ProvenanceError, match="has no tag"):
        ImageRef.parse(ref)


def test_record_keeps_other_roles(tmp_path):
    path = tmp_path / "images.json"
    push.write_record({"train": {"uri": "a"}}, path)
    push.write_record({"serve": {"uri": "b"}}, path)
    assert json.loads(path.read_text()) == {"train": {"uri": "a"}, "serve": {"uri": "b"}}
