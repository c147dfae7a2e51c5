"""Integration fixtures: the images `make test` built, and one local-mode training job per run.

The trained model is shared by every integration test (serving, tuning... build on it) so CI runs
one training job, not one per test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from classifier_host.data import samples as sample_set

from .jobs import SMALL_HP, images, run_train


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def built_image(env_var: str, index: int) -> str:
    """The image `make build` made (its reference from the environment or `make print-images`)."""
    image = os.environ.get(env_var) or images()[index]
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        pytest.fail(f"image {image} is not built: run `make build` (make test does it)")
    return image


@pytest.fixture(scope="session")
def train_image() -> str:
    return built_image("TRAIN_IMAGE", 0)


@pytest.fixture(scope="session")
def serve_image() -> str:
    return built_image("SERVE_IMAGE", 1)


@pytest.fixture(scope="session")
def serve_cpu_image() -> str:
    return built_image("SERVE_CPU_IMAGE", 2)


def container_ids(*filters: str) -> set[str]:
    args = ["docker", "ps", "-aq", "--no-trunc"] + [f"--filter={f}" for f in filters]
    return set(subprocess.run(args, capture_output=True, text=True).stdout.split())


@pytest.fixture(scope="session", autouse=True)
def remove_finished_job_containers():
    """Local mode never runs `compose down`: each job leaves its exited containers behind. Remove
    the ones this run created (never a running one, never one that was there before)."""
    before = container_ids()
    yield
    leftovers = container_ids("status=exited") - before
    if leftovers:
        subprocess.run(["docker", "rm", *leftovers], capture_output=True)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    return sample_set.make(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def trained_model(sample_data, train_image, tmp_path_factory):
    """(model.tar.gz path, job log) of one small local-mode job on the sample data."""
    output = tmp_path_factory.mktemp("trained")
    done = run_train(sample_data, output, train_image, SMALL_HP)
    assert done.returncode == 0, f"local training failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return output / "model.tar.gz", done.stdout


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory):
    """Debian's docker-registry on 127.0.0.1 (a free port, htpasswd login), stopped after the run
    (issue 6: push tests). `make test` installs it (scripts/ensure_registry.sh)."""
    from .registry import local_registry as start

    with start(tmp_path_factory.mktemp("registry")) as registry:
        yield registry
