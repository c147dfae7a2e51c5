"""What an image says about where it came from: the labels docker/build.sh gives every image, and the
digest of its build inputs that `make push` compares. `scripts/provenance.py` prints either
(cli/provenance.py).

Labels (the OCI image-spec annotation keys, as docker labels):
    org.opencontainers.image.revision     the full git commit
    org.opencontainers.image.source       the repository (git remote `origin`, CodeBuild's source URL)
    org.opencontainers.image.created      build time (RFC 3339, UTC)
    org.opencontainers.image.version      the tag (the Makefile's TAG: short commit, -dirty when changed)
    org.opencontainers.image.base.name    the base image reference
    org.opencontainers.image.base.digest  the base image's identity (see base_identity)
    sagemaker-image-classifier.inputs.digest   sha256 of the build inputs (see inputs_manifest)

The inputs digest is the same for every rebuild of the same inputs, whatever the layer cache or the
clock; image ids are not (timestamps), which is why the push compares this label and not ids.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..settings import ROOT

OCI = "org.opencontainers.image"
INPUTS_LABEL = "sagemaker-image-classifier.inputs.digest"
# docker/bootstrap_base.sh stamps the base it makes with the hash of its recipe: that image gets a new id
# on every machine (debootstrap writes timestamps), so its recipe is what identifies it.
RECIPE_LABEL = "sagemaker-image-classifier.base.recipe"
# Rebuilt from verified sdists (not reproducible) or checked against the locks at install: the locks'
# hashes stand for the wheelhouse in the digest, not its files.
WHEELHOUSE = "build/wheelhouse/"
LOCKS = "docker/requirements"


class ProvenanceError(RuntimeError):
    """Something the labels need is missing; the message says what and how to fix it."""


@dataclass(frozen=True)
class ImageRef:
    repository: str  # without any registry host
    tag: str

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        """'[host[:port]/]path/name:tag' -> repository 'path/name', tag."""
        name, sep, tag = ref.rpartition(":")
        if not sep or "/" in tag or not tag:
            raise ProvenanceError(f"image {ref!r} has no tag: give NAME:TAG (the Makefile's TAG is the git commit)")
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
            raise ProvenanceError(f"docker {args[0]} failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def inspect(self, ref: str, field: str) -> str:
        try:
            return self.run("image", "inspect", "--format", field, ref).strip()
        except ProvenanceError:
            raise ProvenanceError(f"image {ref} is not on this machine: run `make build` first") from None

    def image_id(self, ref: str) -> str:
        return self.inspect(ref, "{{.Id}}")

    def labels(self, ref: str) -> dict[str, str]:
        return json.loads(self.inspect(ref, "{{json .Config.Labels}}")) or {}


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def context_files(context: Path, dockerfile: str = "docker/Dockerfile") -> list[str]:
    """The files of the build context that .dockerignore admits (docker-py's matcher, the same rules
    as the docker client), plus the Dockerfile and .dockerignore, which docker reads without copying
    them; relative, sorted."""
    from docker.utils.build import exclude_paths

    ignore = context / ".dockerignore"
    patterns = [line.strip() for line in ignore.read_text().splitlines()] if ignore.exists() else []
    patterns = [p for p in patterns if p and not p.startswith("#")]
    admitted = exclude_paths(str(context), patterns, dockerfile=dockerfile)
    admitted |= {".dockerignore"} if ignore.exists() else set()
    return sorted(p for p in admitted if (context / p).is_file())


def locked_pins(context: Path) -> list[str]:
    """Every lock line without its comment (`name==version --hash=sha256:...`): the wheels and sdists
    the wheelhouse must hold. Comments and the order of lines are not inputs."""
    pins = set()
    for lock in sorted((context / LOCKS).glob("*.txt")):
        pins.update(line.split("#")[0].strip() for line in lock.read_text().splitlines())
    return sorted(pins - {""})


def base_identity(base: str, docker: Docker) -> str:
    """What identifies the base image's content on any machine: the recipe of a bootstrapped base, the
    digest of a reference by digest, else the image id (a pulled image's id is the digest of its config)."""
    recipe = docker.labels(base).get(RECIPE_LABEL)
    if recipe:
        return f"recipe {recipe}"
    if "@sha256:" in base:
        return base.rpartition("@")[2]
    return docker.image_id(base)


def inputs_manifest(context: Path, base: str, docker: Docker) -> list[str]:
    """One line per input: the base, every context file but the wheelhouse (path and sha256), every
    locked wheel and sdist (its hash from the lock)."""
    lines = [f"base {base_identity(base, docker)}"]
    lines += [
        f"file {path} sha256:{sha256_file(context / path)}"
        for path in context_files(context)
        if not path.startswith(WHEELHOUSE)
    ]
    lines += [f"lock {pin}" for pin in locked_pins(context)]
    return lines


def inputs_digest(manifest: list[str]) -> str:
    return "sha256:" + hashlib.sha256("".join(line + "\n" for line in manifest).encode()).hexdigest()


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def revision() -> str:
    """The full commit: git's, or CodeBuild's for sources without .git (S3, CodeCommit zips)."""
    found = git("rev-parse", "HEAD") or os.environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION", "")
    if not re.fullmatch(r"[0-9a-f]{40}", found):
        raise ProvenanceError(
            "no git commit to label the image with: build from a git checkout "
            "(or set CODEBUILD_RESOLVED_SOURCE_VERSION to the full commit)"
        )
    return found


def source() -> str:
    """The repository the commit belongs to; a checkout without a remote names its own folder."""
    return git("remote", "get-url", "origin") or os.environ.get("CODEBUILD_SOURCE_REPO_URL") or ROOT.as_uri()


def labels(image: str, base: str, context: Path, docker: Docker) -> dict[str, str]:
    return {
        f"{OCI}.revision": revision(),
        f"{OCI}.source": source(),
        f"{OCI}.created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        f"{OCI}.version": ImageRef.parse(image).tag,
        f"{OCI}.base.name": base,
        f"{OCI}.base.digest": base_identity(base, docker),
        INPUTS_LABEL: inputs_digest(inputs_manifest(context, base, docker)),
    }
