"""The serve-cpu image as built: no torch, the packages its lock names and nothing else, the same hosting
contract as the serve image, and small. (How it serves is tested with the serve image, in test_serving.py.)"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from .jobs import ROOT

MAX_SIZE = 1_000_000_000  # bytes, as `docker image inspect` counts them (the target: under 1 GB)


def run_python(image: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )


def inspect(image: str) -> dict:
    out = subprocess.run(["docker", "image", "inspect", image], check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]


@pytest.mark.parametrize("module", ["torch", "torchvision"])
def test_it_has_no_torch(serve_cpu_image, module):
    done = run_python(serve_cpu_image, f"import {module}")
    assert done.returncode != 0 and f"No module named '{module}'" in done.stderr, done.stdout + done.stderr


def test_it_imports_what_it_serves_with(serve_cpu_image):
    done = run_python(
        serve_cpu_image,
        "import onnxruntime, numpy, PIL, pillow_heif, gunicorn; print(onnxruntime.get_available_providers())",
    )
    assert done.returncode == 0, done.stderr
    assert "CPUExecutionProvider" in done.stdout


def test_its_venv_holds_exactly_the_locked_packages(serve_cpu_image):
    """Every installed distribution is a line of serve-cpu.txt at its version, and the other way round
    (no pip or setuptools either: the image installs nothing)."""
    done = run_python(
        serve_cpu_image,
        "import importlib.metadata as m; print('\\n'.join(f'{d.name}=={d.version}' for d in m.distributions()))",
    )
    assert done.returncode == 0, done.stderr
    installed = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower(): line.split("==")[1] for line in done.stdout.split()
    }
    lock = (ROOT / "docker" / "requirements" / "serve-cpu.txt").read_text()
    locked = {name.lower(): version for name, version in re.findall(r"^([\w.-]+)==(\S+) --hash=", lock, re.MULTILINE)}
    assert installed == locked


def test_it_keeps_the_serve_images_hosting_contract(serve_cpu_image, serve_image):
    """SageMaker's contract, as the serve image has it: `serve` entry point, port 8080 with the
    bind-to-port label, the unprivileged user the workers switch to, the environment; the project's code."""
    cpu, torch = inspect(serve_cpu_image)["Config"], inspect(serve_image)["Config"]
    assert cpu["Entrypoint"] == torch["Entrypoint"] == ["serve"]
    assert cpu["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert cpu["ExposedPorts"] == torch["ExposedPorts"] == {"8080/tcp": {}}
    assert cpu["Env"] == torch["Env"]
    done = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            serve_cpu_image,
            "-c",
            "test -f /opt/program/classifier/serving/server.py && id -u model-server && cat /usr/local/bin/serve",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    uid, script = done.stdout.split("\n", 1)
    assert int(uid) != 0
    assert 'exec python -m classifier.serving "$@"' in script


def test_it_is_under_a_gigabyte(serve_cpu_image):
    size = inspect(serve_cpu_image)["Size"]
    print(f"{serve_cpu_image}: {size / 1e6:.0f} MB")
    assert size <= MAX_SIZE


# Each image copies only the packages it runs (docker/Dockerfile; the import contracts in pyproject.toml).
IMAGE_PACKAGES = {
    "train_image": ["contract", "debugging", "model", "training"],
    "serve_image": ["contract", "model", "serving"],
    "serve_cpu_image": ["contract", "model", "serving"],
}


@pytest.mark.parametrize("image_fixture", sorted(IMAGE_PACKAGES))
def test_each_image_holds_only_the_packages_it_runs(image_fixture, request):
    image = request.getfixturevalue(image_fixture)
    done = run_python(
        image,
        "import classifier, pathlib; "
        "print(sorted(p.name for p in pathlib.Path(classifier.__file__).parent.iterdir() "
        "if p.is_dir() and p.name != '__pycache__'))",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.replace("'", '"')) == IMAGE_PACKAGES[image_fixture]


@pytest.mark.parametrize("image_fixture", ["serve_image", "serve_cpu_image"])
def test_a_serving_image_cannot_import_training_code_and_still_loads_its_server(image_fixture, request):
    image = request.getfixturevalue(image_fixture)
    for package in ("classifier.training", "classifier.debugging"):
        done = run_python(image, f"import {package}")
        assert done.returncode != 0 and f"No module named '{package}'" in done.stderr, done.stdout + done.stderr
    done = run_python(image, "import classifier.serving.server, classifier.serving.app; print('ok')")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
