"""Pushing the built images to ECR or to any registry, and the record of their digests, labels and SBOMs.

ECR: the account comes from STS, the region from AWS_REGION; a missing repository is created with scan
on push and IMMUTABLE tags; docker logs in with ECR's authorization token (no AWS CLI needed). Any other
registry (PlainRegistry) is spoken to over the Distribution API.

A tag is never overwritten. What decides is the digest of the build inputs each image carries as a label
(images/provenance.py), not the image id, which changes with every rebuild (timestamps, no layer cache):
when the registry already has the tag with an image built from the same inputs, the push is skipped and
the registry's digest recorded; with other inputs it stops with an error saying what differs.
Before pushing, each image's SBOM is written beside the record (sbom-ROLE.cdx.json, images/sbom.py).
The record (build/images.json) is {ROLE: {"image": REF:TAG, "digest": "sha256:...", "uri": REF@DIGEST,
"labels": {...}, "sbom": FILE}}; the cloud commands read it so jobs and endpoints run an exact digest.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from . import provenance, sbom
from .provenance import INPUTS_LABEL, OCI, ImageRef, ProvenanceError

MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json")
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


class PushError(ProvenanceError):
    """A push that must not happen or did not work; the message says why and what to do."""


class Docker(provenance.Docker):
    """The docker CLI, with the calls a push needs."""

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


def http_json(url: str, auth: tuple[str, str] | None = None) -> dict:
    import requests

    answer = requests.get(url, auth=auth, timeout=60)
    if answer.status_code != 200:
        raise PushError(f"reading {url.split('?')[0]} answered {answer.status_code} {answer.text[:200]}")
    return answer.json()


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
            self.ecr.create_repository(
                repositoryName=repository,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
            )
            print(f"created ECR repository {repository} (scan on push, immutable tags)")
            return
        if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
            self.ecr.put_image_scanning_configuration(
                repositoryName=repository, imageScanningConfiguration={"scanOnPush": True}
            )
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
        found = self.ecr.batch_get_image(
            repositoryName=repository, imageIds=[{"imageTag": tag}], acceptedMediaTypes=list(MANIFEST_TYPES)
        )["images"]
        if not found:
            return None
        manifest = json.loads(found[0]["imageManifest"])
        return found[0]["imageId"]["imageDigest"], manifest["config"]["digest"]

    def labels(self, repository: str, config_digest: str) -> dict[str, str]:
        """The labels in the image's config blob (ECR hands out a pre-signed URL for it)."""
        url = self.ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=config_digest)["downloadUrl"]
        return http_json(url)["config"].get("Labels") or {}


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

        answer = requests.get(
            f"{self.base}/{repository}/manifests/{tag}",
            auth=self.auth,
            timeout=30,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise PushError(
                f"registry {self.address}: reading {repository}:{tag} answered {answer.status_code} {answer.text[:200]}"
            )
        return answer.headers["Docker-Content-Digest"], answer.json()["config"]["digest"]

    def labels(self, repository: str, config_digest: str) -> dict[str, str]:
        """The labels in the image's config blob."""
        return http_json(f"{self.base}/{repository}/blobs/{config_digest}", self.auth)["config"].get("Labels") or {}


def why_different(remote: str, theirs: dict[str, str], ours: dict[str, str]) -> str:
    """The refusal: what differs between the image under the tag and ours, and what to do."""
    if INPUTS_LABEL not in theirs:
        return (
            f"{remote} already holds an image that carries no inputs digest (pushed before images were "
            "labelled with one), so it cannot be compared with this build; tags are never overwritten: "
            "commit (a new commit is a new tag) and rebuild, or push under another tag (make build push TAG=...)"
        )
    head = (
        f"{remote} already holds an image built from other inputs (inputs digest there "
        f"{theirs[INPUTS_LABEL]}, here {ours[INPUTS_LABEL]}); tags are never overwritten. "
    )
    if theirs.get(f"{OCI}.revision") != ours.get(f"{OCI}.revision"):
        return head + (
            f"It was built from commit {theirs.get(f'{OCI}.revision')}, this one from "
            f"{ours.get(f'{OCI}.revision')}: give this build its own tag (make build push TAG=...)"
        )
    if ImageRef.parse(remote).tag.endswith("-dirty"):
        return head + (
            "Both were built from uncommitted changes to the same commit: commit your changes and "
            "rebuild (the new commit is a new tag)"
        )
    base = f"{OCI}.base.digest"
    if theirs.get(base) != ours.get(base):
        return head + (
            f"Same commit, other base image (there {theirs.get(f'{OCI}.base.name')} = {theirs.get(base)}, "
            f"here {ours.get(f'{OCI}.base.name')} = {ours.get(base)}): rebuild on the base the pushed "
            "image used (make build BASE_IMAGE=...), or push under another tag (make build push TAG=...)"
        )
    return head + (
        "Same commit and base image, so what differs is outside git: the baked weights in build/weights "
        "(WEIGHTS_MODELS, or a download that failed on one machine) or untracked files in the build "
        "context (`python scripts/provenance.py inputs --base BASE` lists every input): make them "
        "match the build that pushed, or push under another tag (make build push TAG=...)"
    )


def push(images: dict[str, str], registry, docker: Docker, record_dir: Path) -> dict[str, dict]:
    """Push every local image (role -> local ref), SBOMs first; returns role -> its record entry."""
    local = {}
    for role, ref in images.items():
        labels = docker.labels(ref)
        if INPUTS_LABEL not in labels:
            raise PushError(
                f"image {ref} has no {INPUTS_LABEL} label, so a later push could not tell whether "
                "the registry holds the same build: build it with `make build` (docker/build.sh)"
            )
        local[role] = (ref, ImageRef.parse(ref), labels)
    # Written before anything is published: an image whose SBOM cannot be made is not pushed.
    boms = {
        role: sbom.write(ref, record_dir / f"sbom-{role}.cdx.json", docker).name for role, (ref, _, _) in local.items()
    }
    registry.login(docker)
    pushed = {}
    for role, (ref, name, labels) in local.items():
        registry.prepare(name.repository)
        remote = f"{registry.address}/{name.repository}:{name.tag}"
        there = registry.existing(name.repository, name.tag)
        if there:
            theirs = registry.labels(name.repository, there[1])
            if theirs.get(INPUTS_LABEL) != labels[INPUTS_LABEL]:
                raise PushError(why_different(remote, theirs, labels))
            print(
                f"{remote} is already in the registry, built from the same inputs ({labels[INPUTS_LABEL]}): "
                "not pushed again; recording the registry's digest"
            )
            digest, labels = there[0], theirs
        else:
            digest = docker.push(ref, remote)
        pushed[role] = {
            "image": remote,
            "digest": digest,
            "uri": f"{registry.address}/{name.repository}@{digest}",
            "labels": labels,
            "sbom": boms[role],
        }
        print(f"{role}: {pushed[role]['uri']}")
    return pushed


def write_record(pushed: dict[str, dict], path: Path) -> None:
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
