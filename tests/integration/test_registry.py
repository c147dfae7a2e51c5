"""`make push REGISTRY=host:port` against a real registry (Debian's docker-registry on 127.0.0.1 with a
login): push, pull back by the recorded digest, same image; a second push leaves the tag alone; a
different image under the same tag is refused. Tiny images go through the same code path as the real
ones (pushing the 6 GB training image would take minutes)."""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from .jobs import ROOT
from .registry import image_id, remove_images, tiny_image


def make_push(registry, train: str, serve: str, images_file) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGISTRY_USER": registry.user, "REGISTRY_PASSWORD": registry.password}
    return subprocess.run(["make", "-s", "push", f"REGISTRY={registry.address}", f"TRAIN_IMAGE={train}",
                           f"SERVE_IMAGE={serve}", f"IMAGES_FILE={images_file}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def tiny_pair(local_registry):
    """Two tiny images named as `make build REGISTRY=...` names them (a fresh tag per test)."""
    tag = uuid.uuid4().hex[:12]
    refs = {role: f"{local_registry.address}/sagemaker-image-classifier-{role}:{tag}" for role in ("train", "serve")}
    ids = {role: tiny_image(ref, f"{role} {tag}") for role, ref in refs.items()}
    yield refs, ids
    remove_images(*refs.values())


def test_push_pull_round_trip_keeps_the_digest(local_registry, tiny_pair, tmp_path):
    refs, ids = tiny_pair
    record = tmp_path / "images.json"
    done = make_push(local_registry, refs["train"], refs["serve"], record)
    assert done.returncode == 0, done.stdout + done.stderr
    pushed = json.loads(record.read_text())
    assert set(pushed) == {"train", "serve"}
    for role, entry in pushed.items():
        assert entry["image"] == refs[role]
        assert entry["uri"] == refs[role].rsplit(":", 1)[0] + "@" + entry["digest"]
        assert f"{role}: {entry['uri']}" in done.stdout
    # Pull back by digest with no local copy left: the registry returns the very same image.
    remove_images(*refs.values())
    for role, entry in pushed.items():
        subprocess.run(["docker", "pull", "-q", entry["uri"]], check=True, capture_output=True, timeout=120)
        assert image_id(entry["uri"]) == ids[role]
        remove_images(entry["uri"])


def test_second_push_skips_and_a_changed_image_is_refused(local_registry, tiny_pair, tmp_path):
    refs, ids = tiny_pair
    record = tmp_path / "images.json"
    first = make_push(local_registry, refs["train"], refs["serve"], record)
    assert first.returncode == 0, first.stdout + first.stderr
    digests = json.loads(record.read_text())
    again = make_push(local_registry, refs["train"], refs["serve"], record)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already in the registry with this image: not pushed again" in again.stdout
    assert json.loads(record.read_text()) == digests
    # Same tag, other content: never overwritten.
    remove_images(refs["train"])
    tiny_image(refs["train"], "something else")
    changed = make_push(local_registry, refs["train"], refs["serve"], record)
    assert changed.returncode != 0
    assert "already holds a different image" in changed.stderr
    assert json.loads(record.read_text()) == digests


def test_push_without_login_is_refused_by_the_registry(local_registry, tiny_pair, tmp_path):
    """The registry really demands the login the push performs (so the test above proves the login path)."""
    refs, _ = tiny_pair
    subprocess.run(["docker", "logout", local_registry.address], capture_output=True)
    done = subprocess.run(["make", "-s", "push", f"REGISTRY={local_registry.address}", f"TRAIN_IMAGE={refs['train']}",
                           f"SERVE_IMAGE={refs['serve']}", f"IMAGES_FILE={tmp_path / 'i.json'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")})
    assert done.returncode != 0
    assert "401" in done.stderr or "no basic auth" in done.stderr.lower() or "unauthorized" in done.stderr.lower()
