"""The provenance labels of the built images, what the inputs digest reads, and that the labels leave
the layer cache alone. Real docker builds; the small ones take seconds."""
from __future__ import annotations

import datetime
import io
import re
import subprocess
import tarfile
import uuid

import provenance
from provenance import INPUTS_LABEL, OCI

from .jobs import ROOT
from .registry import labels, make_build, remove_images, small_context


def test_context_files_are_what_docker_sends(tmp_path):
    """The digest reads the files docker's own client puts in the build context: the repository's
    .dockerignore on a tree shaped like the repository, compared with what `COPY . /` copied."""
    for path in ("container_src/classifier/train.py", "container_src/classifier/serving/app.py",
                 "container_src/classifier/notes.txt", "container_src/sagemaker_program.py",
                 "container_src/classifier/new_package/module.py",
                 "container_src/pyproject.toml", "build/weights/resnet50.pth", "build/output/model.tar.gz",
                 "build/wheelhouse/torch.whl", "scripts/train.py", "README.md", ".venv/bin/python"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(path)
    (tmp_path / ".dockerignore").write_text((ROOT / ".dockerignore").read_text())
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    image = f"provenance-context-test:{uuid.uuid4().hex[:12]}"
    subprocess.run(["docker", "build", "-q", "-f", "docker/Dockerfile", "-t", image, "."], cwd=tmp_path,
                   check=True, capture_output=True)
    try:
        container = subprocess.run(["docker", "create", image, "none"], check=True, capture_output=True,
                                   text=True).stdout.strip()
        exported = subprocess.run(["docker", "export", container], check=True, capture_output=True).stdout
        subprocess.run(["docker", "rm", container], capture_output=True)
    finally:
        remove_images(image)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        # (etc/, dev/ and .dockerenv are docker's own, made in every container.)
        copied = {m.name for m in tar.getmembers() if m.isfile() and not m.name.startswith(("etc/", "dev/", ".dockerenv"))}
    # The Dockerfile and .dockerignore are read by docker, not copied: inputs all the same.
    assert copied | {"docker/Dockerfile", ".dockerignore"} == set(provenance.context_files(tmp_path))
    assert "container_src/classifier/serving/app.py" in copied and "README.md" not in copied


def test_the_built_images_carry_their_provenance(train_image, serve_image):
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    digests = set()
    for image in (train_image, serve_image):
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
    refs = [f"provenance-cache-test-{role}:{tag}" for role in ("train", "serve")]
    context = small_context(tmp_path / "context", "cache test")
    try:
        make_build(ROOT, context, *refs)
        first = {ref: (layers(ref), labels(ref)) for ref in refs}
        again = make_build(ROOT, context, *refs)
        for ref in refs:
            assert layers(ref) == first[ref][0]
            assert labels(ref)[INPUTS_LABEL] == first[ref][1][INPUTS_LABEL]
        assert " ---> Running in " not in again.stdout  # every step came from the cache
    finally:
        remove_images(*refs)


def layers(ref: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", ref],
                          check=True, capture_output=True, text=True).stdout
