"""`make build` + `make push REGISTRY=host:port` against a real registry (Debian's docker-registry on
127.0.0.1 with a login): push, pull back by the recorded digest, same image; a rebuild of the same inputs
with no layer cache (a CI retry) is not pushed again and the same digests are recorded; a changed input
under the same tag is refused. Small images built by the real `make build` from a small context go
through the same code path as the real ones (pushing the 6 GB training image would take minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from classifier_host.images.provenance import INPUTS_LABEL

from .jobs import ROOT
from .registry import ROLES, image_id, image_variables, labels, make_build, remove_images, small_context


def make_push(
    registry, refs: dict[str, str], images_file, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = env or {**os.environ, "REGISTRY_USER": registry.user, "REGISTRY_PASSWORD": registry.password}
    names = [f"{name}={ref}" for name, ref in image_variables(refs).items()]
    return subprocess.run(
        ["make", "-s", "push", f"REGISTRY={registry.address}", *names, f"IMAGES_FILE={images_file}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def small_images(local_registry, tmp_path):
    """(refs, build context): the small images named as `make build REGISTRY=...` names them (a fresh
    tag per test), built by `make build` from a small context."""
    tag = uuid.uuid4().hex[:12]
    refs = {role: f"{local_registry.address}/sagemaker-image-classifier-{role}:{tag}" for role in ROLES}
    context = small_context(tmp_path / "context", f"content {tag}")
    make_build(ROOT, context, refs)
    yield refs, context
    remove_images(*refs.values())


def test_push_pull_round_trip_keeps_the_digest_and_records_labels_and_sboms(local_registry, small_images, tmp_path):
    refs, _ = small_images
    ids = {role: image_id(ref) for role, ref in refs.items()}
    record = tmp_path / "images.json"
    done = make_push(local_registry, refs, record)
    assert done.returncode == 0, done.stdout + done.stderr
    pushed = json.loads(record.read_text())
    assert set(pushed) == set(ROLES)
    for role, entry in pushed.items():
        assert entry["image"] == refs[role]
        assert entry["uri"] == refs[role].rsplit(":", 1)[0] + "@" + entry["digest"]
        assert f"{role}: {entry['uri']}" in done.stdout
        assert entry["labels"] == labels(refs[role])
        bom = json.loads((tmp_path / entry["sbom"]).read_text())
        assert bom["metadata"]["component"]["version"] == refs[role].rsplit(":", 1)[1]
        # The small images hold no Python packages; their Debian packages are all there, by purl.
        assert any(c["purl"].startswith("pkg:deb/debian/python3.11@") for c in bom["components"])
    # Pull back by digest with no local copy left: the registry returns the very same image.
    remove_images(*refs.values())
    for role, entry in pushed.items():
        subprocess.run(["docker", "pull", "-q", entry["uri"]], check=True, capture_output=True, timeout=120)
        assert image_id(entry["uri"]) == ids[role]
        remove_images(entry["uri"])


def test_a_rebuild_without_cache_is_not_pushed_again_and_a_changed_input_is_refused(
    local_registry, small_images, tmp_path
):
    refs, context = small_images
    record = tmp_path / "images.json"
    first = make_push(local_registry, refs, record)
    assert first.returncode == 0, first.stdout + first.stderr
    digests = {role: entry["digest"] for role, entry in json.loads(record.read_text()).items()}
    before = {role: (image_id(ref), labels(ref)) for role, ref in refs.items()}
    print(f"built and pushed: {digests}")

    # What a CodeBuild retry does: the same commit, no layer cache, a new image id and build time.
    rebuild = make_build(ROOT, context, refs, "DOCKER_BUILD_FLAGS=--no-cache")
    assert "Using cache" not in rebuild.stdout  # the flag reached docker build: every step ran again
    for role, ref in refs.items():
        rebuilt = labels(ref)
        assert image_id(ref) != before[role][0]
        assert rebuilt[INPUTS_LABEL] == before[role][1][INPUTS_LABEL]
        print(
            f"rebuilt {role} with --no-cache: image id {before[role][0][:19]} -> {image_id(ref)[:19]}, "
            f"inputs {rebuilt[INPUTS_LABEL]}"
        )
    again = make_push(local_registry, refs, record)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("built from the same inputs") == len(ROLES) and "Pushed" not in again.stdout
    assert {role: entry["digest"] for role, entry in json.loads(record.read_text()).items()} == digests
    print(
        "push after the rebuild:\n"
        + "\n".join(line for line in again.stdout.splitlines() if "inputs" in line or ": " in line)
    )

    # One input changed, same tag: refused, nothing recorded.
    (context / "content.txt").write_text("something else")
    make_build(ROOT, context, refs)
    changed = make_push(local_registry, refs, record)
    assert changed.returncode != 0
    assert "already holds an image built from other inputs" in changed.stderr
    # Same commit, same base: the difference lies outside git, and the advice says so.
    assert "what differs is outside git" in changed.stderr
    assert {role: entry["digest"] for role, entry in json.loads(record.read_text()).items()} == digests
    print(f"push after changing an input (exit {changed.returncode}):\n{changed.stderr.strip()}")


def test_push_without_login_is_refused_by_the_registry(local_registry, small_images, tmp_path):
    """The registry really demands the login the push performs (so the test above proves the login path)."""
    refs, _ = small_images
    subprocess.run(["docker", "logout", local_registry.address], capture_output=True)
    done = make_push(
        local_registry,
        refs,
        tmp_path / "i.json",
        env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
    )
    assert done.returncode != 0
    assert "401" in done.stderr or "no basic auth" in done.stderr.lower() or "unauthorized" in done.stderr.lower()
