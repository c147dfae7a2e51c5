"""The provenance labels of the built images, what the inputs digest reads, and that the labels leave
the layer cache alone. Real docker builds; the small ones take seconds."""

from __future__ import annotations

import datetime
import io
import json
import re
import subprocess
import tarfile
import uuid

from classifier_host.images import provenance, sbom
from classifier_host.images.provenance import INPUTS_LABEL, OCI

from .jobs import ROOT
from .registry import ROLES, labels, make_build, remove_images, small_context


def test_context_files_are_what_docker_sends(tmp_path):
    """The digest reads the files docker's own client puts in the build context: the repository's
    .dockerignore on a tree shaped like the repository, compared with what `COPY . /` copied."""
    for path in (
        "container_src/classifier/training/trainer.py",
        "container_src/classifier/serving/app.py",
        "container_src/classifier/notes.txt",
        "container_src/sagemaker_program.py",
        "container_src/classifier/new_package/module.py",
        "container_src/pyproject.toml",
        "build/weights/resnet50.pth",
        "build/output/model.tar.gz",
        "build/wheelhouse/torch.whl",
        "scripts/train.py",
        "README.md",
        ".venv/bin/python",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(path)
    (tmp_path / ".dockerignore").write_text((ROOT / ".dockerignore").read_text())
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    image = f"provenance-context-test:{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["docker", "build", "-q", "-f", "docker/Dockerfile", "-t", image, "."],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    try:
        container = subprocess.run(
            ["docker", "create", image, "none"], check=True, capture_output=True, text=True
        ).stdout.strip()
        exported = subprocess.run(["docker", "export", container], check=True, capture_output=True).stdout
        subprocess.run(["docker", "rm", container], capture_output=True)
    finally:
        remove_images(image)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        # (etc/, dev/ and .dockerenv are docker's own, made in every container.)
        copied = {
            m.name for m in tar.getmembers() if m.isfile() and not m.name.startswith(("etc/", "dev/", ".dockerenv"))
        }
    # The Dockerfile and .dockerignore are read by docker, not copied: inputs all the same.
    assert copied | {"docker/Dockerfile", ".dockerignore"} == set(provenance.context_files(tmp_path))
    assert "container_src/classifier/serving/app.py" in copied and "README.md" not in copied


def test_the_built_images_carry_their_provenance(train_image, serve_image, serve_cpu_image):
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    digests = set()
    for image in (train_image, serve_image, serve_cpu_image):
        found = labels(image)
        assert found[f"{OCI}.revision"] == commit
        assert found[f"{OCI}.version"] == image.rsplit(":", 1)[1]
        assert found[f"{OCI}.source"]
        assert datetime.datetime.fromisoformat(found[f"{OCI}.created"]).tzinfo is not None
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", found[INPUTS_LABEL])
        # The label is the digest of this checkout's inputs: recomputed now, it matches (else: rebuild).
        manifest = provenance.inputs_manifest(ROOT, found[f"{OCI}.base.name"], provenance.Docker())
        assert provenance.inputs_digest(manifest) == found[INPUTS_LABEL], "the image is older than the tree: make build"
        assert any(line.startswith("lock torch==") for line in manifest)
        assert not any("build/wheelhouse" in line for line in manifest)
        digests.add(found[INPUTS_LABEL])
    assert len(digests) == 1  # one build, one set of inputs


def test_labels_never_invalidate_the_layer_cache(tmp_path):
    """Two builds of the same context: other build times in the labels, the very same layers."""
    tag = uuid.uuid4().hex[:12]
    refs = {role: f"provenance-cache-test-{role}:{tag}" for role in ROLES}
    context = small_context(tmp_path / "context", "cache test")
    try:
        make_build(ROOT, context, refs)
        first = {ref: (layers(ref), labels(ref)) for ref in refs.values()}
        again = make_build(ROOT, context, refs)
        for ref in refs.values():
            assert layers(ref) == first[ref][0]
            assert labels(ref)[INPUTS_LABEL] == first[ref][1][INPUTS_LABEL]
        # Every step that makes a layer came from the cache (the label steps run, but make no layer).
        steps = re.findall(r"^Step \d+/\d+ : (\w+)[^\n]*\n ---> (Using cache|Running in)", again.stdout, re.MULTILINE)
        assert steps and all(kind == "Using cache" for instruction, kind in steps if instruction in ("RUN", "COPY"))
    finally:
        remove_images(*refs.values())


def layers(ref: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def locked(*locks: str) -> dict[str, str]:
    pins = {}
    for name in locks:
        for line in (ROOT / "docker" / "requirements" / f"{name}.txt").read_text().splitlines():
            found = re.match(r"^([A-Za-z0-9][\w.-]*)==(\S+) --hash=", line)
            if found:
                pins[re.sub(r"[-_.]+", "-", found[1]).lower()] = found[2]
    return pins


def test_the_sbom_lists_every_locked_package_and_every_debian_one(train_image, serve_image, serve_cpu_image, tmp_path):
    """Read from the image itself: every package the locks install, at its locked version, and dpkg's list."""
    for image, locks in (
        (train_image, ("base", "train", "train-nodeps")),
        (serve_image, ("base", "serve")),
        (serve_cpu_image, ("serve-cpu",)),
    ):
        bom = json.loads(sbom.write(image, tmp_path / "sbom.cdx.json", provenance.Docker()).read_text())
        python = {
            re.sub(r"[-_.]+", "-", c["name"]).lower(): c["version"]
            for c in bom["components"]
            if c["purl"].startswith("pkg:pypi/")
        }
        assert {name: python.get(name) for name in locked(*locks)} == locked(*locks)
        dpkg = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "dpkg-query", image, "-W", "-f", "${Package}\n"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert {c["name"] for c in bom["components"] if c["purl"].startswith("pkg:deb/")} == set(dpkg)
        assert bom["metadata"]["component"]["bom-ref"] == image
