"""The serving image with the model the foundation's local-mode job trained (`trained_model`).

Plain `docker run IMAGE serve` containers publish on ephemeral ports; only the SageMaker local-mode
tests use localhost:8080 (local mode's fixed endpoint port).
"""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

import sagemaker_api
from classifier import artifact, inference, presets

from .jobs import ROOT

PING_DEADLINE_S = 60  # cold start is measured and printed; this only bounds a broken start


def unpack(model_tar: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(model_tar) as tar:
        tar.extractall(into, filter="data")
    into.chmod(0o755)
    return into


class Container:
    """`docker run -d IMAGE serve` with /opt/ml/model mounted; removed by stop()."""

    def __init__(self, image: str, model_dir: Path, env: dict[str, str] | None = None, port: int = 8080):
        args = ["docker", "run", "-d", "-p", f"127.0.0.1::{port}", "-v", f"{model_dir}:/opt/ml/model:ro"]
        for name, value in (env or {}).items():
            args += ["-e", f"{name}={value}"]
        self.started = time.monotonic()
        self.id = subprocess.run([*args, image, "serve"], capture_output=True, text=True, check=True).stdout.strip()
        mapping = subprocess.run(["docker", "port", self.id, str(port)], capture_output=True, text=True,
                                 check=True).stdout.split()[0]
        self.url = "http://" + mapping
        self.cold_start_s = self.wait_ready()

    def wait_ready(self) -> float:
        while time.monotonic() - self.started < PING_DEADLINE_S:
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"/ping never answered 200 within {PING_DEADLINE_S}s:\n{self.logs()}")

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", self.id], capture_output=True, text=True)
        return done.stdout + done.stderr

    def stop(self, timeout: int = 30) -> subprocess.CompletedProcess:
        done = subprocess.run(["docker", "stop", "-t", str(timeout), self.id], capture_output=True, text=True)
        return done

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.id], capture_output=True)


@pytest.fixture(scope="module")
def model_dir(trained_model, tmp_path_factory) -> Path:
    return unpack(trained_model[0], tmp_path_factory.mktemp("served-model"))


@pytest.fixture(scope="module")
def container(serve_image, model_dir):
    served = Container(serve_image, model_dir)
    print(f"cold start (docker run -> first 200 on /ping): {served.cold_start_s:.1f}s")
    yield served
    served.remove()


def test_image_contract(serve_image):
    config = json.loads(subprocess.run(["docker", "image", "inspect", serve_image], capture_output=True,
                                       text=True, check=True).stdout)[0]["Config"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert config["Entrypoint"] == ["serve"]
    probe = "import importlib.util as u; print([m for m in ('sagemaker_training', 'smdebug') if u.find_spec(m)])"
    found = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", serve_image, "-c", probe],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[]", f"training-only packages in the serving image: {found}"


def test_unprivileged_workers(container):
    processes = subprocess.run(["docker", "top", container.id, "-eo", "uid,pid,ppid,args"], capture_output=True,
                               text=True, check=True).stdout.splitlines()[1:]
    servers = [line.split(None, 3) for line in processes if "classifier.serving" in line]
    master = [p for p in servers if not any(p[2] == q[1] for q in servers)]
    workers = [p for p in servers if any(p[2] == q[1] for q in servers)]
    assert len(master) == 1 and master[0][0] == "0", processes  # root, as SageMaker starts it
    assert workers and all(w[0] != "0" for w in workers), processes  # request parsers are not root


def test_query_script_against_the_container(container, sample_data):
    files = sorted((sample_data / "test").rglob("*.jpg"))[::4]  # a few of every class
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "query.py"), "--url", container.url, "--json",
                           "--top-k", "2", *map(str, files)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(files)
    correct = sum(Path(r["source"]).parent.name == r["predictions"][0]["label"] for r in results)
    assert correct / len(results) > 0.5  # the trained model is well above chance (1/5) on its test set


def test_server_agrees_with_the_trainers_evaluation(container, model_dir, sample_data):
    """Same images through the container and through the trainer's own eval path on the host."""
    network, metadata = artifact.load(model_dir)
    files = sorted((sample_data / "test").rglob("*.jpg"))[::5]
    batch = torch.stack([presets.eval_image(f, metadata["preprocessing"]) for f in files])
    expected = inference.probabilities(network, batch, metadata["preprocessing"])
    body = {"instances": [{"b64": base64.b64encode(f.read_bytes()).decode()} for f in files]}
    k = len(metadata["classes"])
    answer = requests.post(container.url + "/invocations", json=body, timeout=60,
                           headers={"X-Amzn-SageMaker-Custom-Attributes": f"top_k={k}"})
    assert answer.status_code == 200, answer.text
    for row, want in zip(answer.json()["predictions"], expected):
        assert row[0]["index"] == int(want.argmax())
        got = torch.zeros(k)
        for p in row:
            got[p["index"]] = p["probability"]
        assert torch.allclose(got, want, atol=1e-4), (got, want)


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_bad_input_matrix_never_takes_the_server_down(container, sample_data):
    good = next((sample_data / "test").rglob("*.jpg")).read_bytes()
    cases = [
        ("text/plain", good, {}, 415),
        ("image/jpeg", b"", {}, 400),
        ("image/jpeg", b"definitely not a jpeg", {}, 400),
        ("image/jpeg", good[: len(good) // 2], {}, 400),
        ("application/json", b'{"instances": [', {}, 400),
        ("application/json", b'{"instances": [{"b64": "***"}]}', {}, 400),
        ("application/x-npy", npy(np.zeros((3, 7, 7), np.float32)), {}, 400),
        ("application/x-npy", npy(np.array([object()], dtype=object)), {}, 400),
        ("image/jpeg", good, {"X-Amzn-SageMaker-Custom-Attributes": "top_k=zero"}, 400),
        ("image/jpeg", b"\xff" * (6 * 1024 * 1024 + 10), {}, 413),
    ]
    for content_type, body, headers, status in cases:
        answer = requests.post(container.url + "/invocations", data=body, timeout=60,
                               headers={"Content-Type": content_type, **headers})
        assert answer.status_code == status, (content_type, answer.status_code, answer.text)
        assert answer.json()["error"]
    assert requests.get(container.url + "/ping", timeout=2).status_code == 200
    assert requests.post(container.url + "/invocations", data=good, headers={"Content-Type": "image/jpeg"},
                         timeout=60).status_code == 200
    assert container.logs().count("Booting worker") == 1  # no worker died and was replaced


def test_bind_to_port_and_graceful_sigterm(serve_image, model_dir, sample_data):
    """SAGEMAKER_BIND_TO_PORT moves the port; SIGTERM lets a request in flight finish, then exits 0."""
    served = Container(serve_image, model_dir, env={"SAGEMAKER_BIND_TO_PORT": "9123"}, port=9123)
    try:
        image = next((sample_data / "test").rglob("*.jpg")).read_bytes()

        def slow_upload():  # a chunked body still arriving when SIGTERM comes
            yield image[:100]
            time.sleep(2)
            yield image[100:]

        answers = []
        request = threading.Thread(target=lambda: answers.append(requests.post(
            served.url + "/invocations", data=slow_upload(), headers={"Content-Type": "image/jpeg"}, timeout=60)))
        request.start()
        time.sleep(0.5)
        start = time.monotonic()
        stopped = served.stop(timeout=30)
        request.join()
        assert stopped.returncode == 0 and time.monotonic() - start < 25
        assert answers and answers[0].status_code == 200
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", served.id], capture_output=True,
                               text=True).stdout.strip()
        assert state == "0", served.logs()
    finally:
        served.remove()


# ---- SageMaker local mode (localhost:8080)
def test_local_mode_deploy_and_predictor(serve_image, trained_model, sample_data):
    image = next((sample_data / "test").rglob("*.jpg")).read_bytes()
    predictor = sagemaker_api.deploy_local(serve_image, f"file://{trained_model[0]}")
    try:
        answer = sagemaker_api.predict(predictor, image, "image/jpeg", top_k=3)
        assert len(answer["predictions"]) == 3
        assert answer["predictions"][0]["probability"] >= answer["predictions"][1]["probability"]
    finally:
        sagemaker_api.delete_local(predictor)
    with pytest.raises(requests.ConnectionError):
        requests.get(sagemaker_api.LOCAL_ENDPOINT_URL + "/ping", timeout=2)
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"ancestor={serve_image}", "--filter", "name=algo-"],
                          capture_output=True, text=True).stdout.split()
    assert left == [], "the local endpoint's container was left behind"


def test_deploy_script_queries_then_tears_down(serve_image, trained_model, sample_data):
    some = sorted((sample_data / "test").iterdir())[0]
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "deploy.py"), "--local", "--image", serve_image,
                           "--model-data", str(trained_model[0]), "--query", str(some)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "endpoint deleted" in done.stdout and "%" in done.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(sagemaker_api.LOCAL_ENDPOINT_URL + "/ping", timeout=2)
