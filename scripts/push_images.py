"""Push the built images to ECR (default) or to any registry, and record their digests.

    python scripts/push_images.py [--registry HOST:PORT] [--output build/images.json] ROLE=IMAGE ...
    e.g. push_images.py train=sagemaker-image-classifier-train:3f2a... serve=sagemaker-image-classifier-serve:3f2a...

ECR: the account comes from STS, the region from AWS_REGION; a missing repository is created with scan
on push and IMMUTABLE tags; docker logs in with ECR's authorization token (no AWS CLI needed).
--registry HOST:PORT pushes there instead (login with REGISTRY_USER / REGISTRY_PASSWORD when set).

A tag is never overwritten: when the registry already has the tag with the same image (same config
digest), the push is skipped; with a different image it stops with an error. The pushed digests are
printed and written to --output as {ROLE: {"image": REF:TAG, "digest": "sha256:...", "uri": REF@DIGEST}},
which the cloud scripts read so jobs and endpoints run an exact digest.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import settings

MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.oci.image.manifest.v1+json")
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


class PushError(RuntimeError):
    """A push that must not happen or did not work; the message says why and what to do."""


@dataclass(frozen=True)
class ImageRef:
    repository: str  # without any registry host
    tag: str

    @classmethod
    def parse(cls, ref: str) -> "ImageRef":
        """'[host[:port]/]path/name:tag' -> repository 'path/name', tag."""
        name, sep, tag = ref.rpartition(":")
        if not sep or "/" in tag or not tag:
            raise PushError(f"image {ref!r} has no tag: give NAME:TAG (the Makefile's TAG is the git commit)")
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            name = rest
        return cls(name, tag)


class Docker:
    """The docker CLI (the one boundary the unit tests replace)."""

    def run(self, *args: str, input: str | None = None, echo: bool = False) -> str:
        done = subprocess.run(["docker", *args], input=input, capture_output=True, text=True)
        if echo and done.stdout:
            print(done.stdout, end="")
        if done.returncode:
            raise PushError(f"docker {args[0]} failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def image_id(self, ref: str) -> str:
        try:
            return self.run("image", "inspect", "--format", "{{.Id}}", ref).strip()
        except PushError:
            raise PushError(f"image {ref} is not on this machine: run `make build` first") from None

    def login(self, registry: str, user: str, password: str) -> None:
        self.run("login", "--username", user, "--password-stdin", registry, input=password)

    def push(self, local: str, remote: str) -> str:
        """Tag and push; returns the manifest digest the registry answered with."""
        self.run("tag", local, remote)
        out = self.run("push", remote, echo=True)
        found = PUSHED_DIGEST.findall(out)
        if not found:
            raise PushError(f"docker push {remote} printed no digest:\n{out}")
        return found[-1]


class EcrRegistry:
    """Amazon ECR in the caller's account (STS) and AWS_REGION."""

    def __init__(self, ecr, sts, region: str):
        self.ecr = ecr
        self.account = sts.get_caller_identity()["Account"]
        self.address = f"{self.account}.dkr.ecr.{region}.amazonaws.com"

    def prepare(self, repository: str) -> None:
        try:
            repo = self.ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
        except self.ecr.exceptions.RepositoryNotFoundException:
            self.ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE",
                                       imageScanningConfiguration={"scanOnPush": True})
            print(f"created ECR repository {repository} (scan on push, immutable tags)")
            return
        if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
            self.ecr.put_image_scanning_configuration(repositoryName=repository,
                                                      imageScanningConfiguration={"scanOnPush": True})
            print(f"turned on scan on push for ECR repository {repository}")
        if repo.get("imageTagMutability") != "IMMUTABLE":
            # Not changed behind the owner's back; the check in existing() still keeps tags from moving.
            print(f"warning: ECR repository {repository} has mutable tags; this push still never overwrites one")

    def login(self, docker: Docker) -> None:
        data = self.ecr.get_authorization_token()["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        docker.login(data["proxyEndpoint"], user, password)

    def existing(self, repository: str, tag: str) -> tuple[str, str] | None:
        """(manifest digest, config digest) of the image under `tag`, or None when the tag is free."""
        found = self.ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}],
                                         acceptedMediaTypes=list(MANIFEST_TYPES))["images"]
        if not found:
            return None
        manifest = json.loads(found[0]["imageManifest"])
        return found[0]["imageId"]["imageDigest"], manifest["config"]["digest"]


class PlainRegistry:
    """Any registry speaking the Distribution API (e.g. Debian's docker-registry on 127.0.0.1)."""

    def __init__(self, address: str, user: str | None = None, password: str | None = None):
        self.address = address
        self.auth = (user, password) if user else None
        local = address.split(":")[0] in ("127.0.0.1", "localhost")
        self.base = f"{'http' if local else 'https'}://{address}/v2"  # docker uses plain HTTP only for these

    def prepare(self, repository: str) -> None:
        """Repositories spring into being on the first push."""

    def login(self, docker: Docker) -> None:
        if self.auth:
            docker.login(self.address, *self.auth)

    def existing(self, repository: str, tag: str) -> tuple[str, str] | None:
        import requests

        answer = requests.get(f"{self.base}/{repository}/manifests/{tag}", auth=self.auth, timeout=30,
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise PushError(f"registry {self.address}: reading {repository}:{tag} answered "
                            f"{answer.status_code} {answer.text[:200]}")
        return answer.headers["Docker-Content-Digest"], answer.json()["config"]["digest"]


def push(images: dict[str, str], registry, docker: Docker) -> dict[str, dict[str, str]]:
    """Push every local image (role -> local ref); returns role -> {image, digest, uri}."""
    refs = {role: (local, ImageRef.parse(local), docker.image_id(local)) for role, local in images.items()}
    registry.login(docker)
    pushed = {}
    for role, (local, ref, image_id) in refs.items():
        registry.prepare(ref.repository)
        remote = f"{registry.address}/{ref.repository}:{ref.tag}"
        there = registry.existing(ref.repository, ref.tag)
        if there and there[1] != image_id:
            raise PushError(f"{remote} already holds a different image (config {there[1][:19]}, local "
                            f"{image_id[:19]}); tags are never overwritten: commit the change (a new tag) and rebuild")
        if there:
            print(f"{remote} is already in the registry with this image: not pushed again")
            digest = there[0]
        else:
            digest = docker.push(local, remote)
        pushed[role] = {"image": remote, "digest": digest, "uri": f"{registry.address}/{ref.repository}@{digest}"}
        print(f"{role}: {pushed[role]['uri']}")
    return pushed


def write_record(pushed: dict[str, dict[str, str]], path: Path) -> None:
    """Merge into the record file (other roles' entries stay), one JSON object."""
    record = json.loads(path.read_text()) if path.is_file() else {}
    record.update(pushed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def parse_images(pairs: list[str]) -> dict[str, str]:
    images = {}
    for pair in pairs:
        role, sep, ref = pair.partition("=")
        if not sep or not role or not ref:
            raise PushError(f"expected ROLE=IMAGE (e.g. train=name:tag), got {pair!r}")
        images[role] = ref
    return images


def main(argv: list[str] | None = None, docker: Docker | None = None, boto_session=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", metavar="ROLE=IMAGE")
    parser.add_argument("--registry", help="HOST:PORT of a registry to push to instead of ECR")
    parser.add_argument("--output", type=Path, default=settings.IMAGES_FILE, help="digest record (default build/images.json)")
    args = parser.parse_args(argv)
    try:
        images = parse_images(args.images)
        if args.registry:
            registry = PlainRegistry(args.registry, os.environ.get("REGISTRY_USER"), os.environ.get("REGISTRY_PASSWORD"))
        else:
            cfg = settings.load()  # AWS_REGION, before any AWS call
            import boto3

            boto_session = boto_session or boto3.Session(region_name=cfg.region)
            registry = EcrRegistry(boto_session.client("ecr"), boto_session.client("sts"), cfg.region)
        pushed = push(images, registry, docker or Docker())
    except (PushError, settings.SettingsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    write_record(pushed, args.output)
    print(f"digests written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
