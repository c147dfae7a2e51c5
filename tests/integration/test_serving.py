"""Both serving images with the model the foundation's local-mode job trained (`trained_model`).

Every contract test runs against the serve image on torch (SERVING_RUNTIME=torch: the GPU image's
path) and against the slim serve-cpu image on the runtime it picks (`auto`: ONNX Runtime); the
local-mode tests run the image deploy.py picks.

Plain `docker run IMAGE serve` containers publish on ephemeral ports; only the SageMaker local-mode
tests use localhost:8080 (local mode's fixed endpoint port).
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from classifier.model import artifact, decoding, explanations, runtimes, selection
from classifier_host.sagemaker import local
from tests import image_cases
from tests.serving_probes import VARIANTS, ServingContainer, cgroup_memory, urllib_post

from .jobs import ROOT


def unpack(model_tar: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(model_tar) as tar:
        tar.extractall(into, filter="data")
    into.chmod(0o755)
    return into


@pytest.fixture(scope="module")
def model_dir(trained_model, tmp_path_factory) -> Path:
    return unpack(trained_model[0], tmp_path_factory.mktemp("served-model"))


@pytest.fixture(scope="module", params=list(VARIANTS))
def container(request, model_dir):
    image_fixture, env = VARIANTS[request.param]
    served = ServingContainer(request.getfixturevalue(image_fixture), model_dir, env)
    print(
        f"{request.param}: cold start (docker run -> first 200 on /ping) {served.cold_start_s:.1f}s, "
        f"runtime {served.runtime}"
    )
    yield served
    served.close()


@pytest.fixture(params=["serve_image", "serve_cpu_image"])
def any_serve_image(request) -> str:
    return request.getfixturevalue(request.param)


def test_each_image_serves_the_runtime_it_should(container, model_dir):
    """serve with SERVING_RUNTIME=torch: torch. serve-cpu with auto: the fastest runtime that passes
    the gate (the one the training log named), since this CPU is the trainer's and passes the check."""
    metadata = artifact.load_metadata(model_dir)
    ping = requests.get(container.url + "/ping", timeout=5).json()
    if container.runtime == runtimes.TORCH:
        assert ping["runtime_reason"].startswith("torch: test accuracy")
        return
    candidates, _ = selection.plan(model_dir, metadata, selection.Gate())
    assert container.runtime == [c for c in candidates if c != runtimes.TORCH][0], ping
    checked = "check images agree on this CPU" if container.runtime == runtimes.ONNX_INT8 else "no start-up check"
    assert checked in ping["runtime_reason"], ping


def test_image_contract(serve_image):
    config = json.loads(
        subprocess.run(["docker", "image", "inspect", serve_image], capture_output=True, text=True, check=True).stdout
    )[0]["Config"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert config["Entrypoint"] == ["serve"]
    # Training packages, and the inference toolkit's (the handler keeps its contract without it).
    unwanted = ("sagemaker_training", "smdebug", "sagemaker_inference", "boto3", "scipy")
    probe = f"import importlib.util as u; print([m for m in {unwanted!r} if u.find_spec(m)])"
    found = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "python", serve_image, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert found == "[]", f"packages the serving image does not need: {found}"


def test_unprivileged_workers(container):
    processes = subprocess.run(
        ["docker", "top", container.id, "-eo", "uid,pid,ppid,args"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    servers = [line.split(None, 3) for line in processes if "classifier.serving" in line]
    master = [p for p in servers if not any(p[2] == q[1] for q in servers)]
    workers = [p for p in servers if any(p[2] == q[1] for q in servers)]
    assert len(master) == 1 and master[0][0] == "0", processes  # root, as SageMaker starts it
    assert workers and all(w[0] != "0" for w in workers), processes  # request parsers are not root


def test_query_script_against_the_container(container, sample_data):
    files = sorted((sample_data / "test").rglob("*.jpg"))[::4]  # a few of every class
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "query.py"),
            "--url",
            container.url,
            "--json",
            "--top-k",
            "2",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(files)
    correct = sum(Path(r["source"]).parent.name == r["predictions"][0]["label"] for r in results)
    assert correct / len(results) > 0.5  # the trained model is well above chance (1/5) on its test set


def test_server_agrees_with_the_trainers_evaluation(container, model_dir, sample_data):
    """The whole test split through the container, against the trainer's eval preprocessing and the same
    runtime on the host: the same top-1 everywhere, probabilities within 1e-4, and the test accuracy and
    agreement with torch fp32 that the trainer recorded for this runtime in metadata.json."""
    metadata = artifact.load_metadata(model_dir)
    prep, classes = metadata["preprocessing"], metadata["classes"]
    files = sorted((sample_data / "test").rglob("*.jpg"))
    labels = np.array([classes.index(f.parent.name) for f in files])
    batch = np.stack([decoding.eval_image(f, prep) for f in files])
    network, _ = artifact.load(model_dir)
    reference = runtimes.TorchRuntime(network, prep).probabilities(batch)
    on_host = (
        reference
        if container.runtime == runtimes.TORCH
        else runtimes.OnnxRuntime(
            container.runtime, model_dir / artifact.RUNTIME_FILES[container.runtime], prep
        ).probabilities(batch)
    )
    got = np.zeros_like(reference)
    for start in range(0, len(files), 32):
        chunk = files[start : start + 32]
        body = {"instances": [{"b64": base64.b64encode(f.read_bytes()).decode()} for f in chunk]}
        answer = requests.post(
            container.url + "/invocations",
            json=body,
            timeout=60,
            headers={"X-Amzn-SageMaker-Custom-Attributes": f"top_k={len(classes)}"},
        )
        assert answer.status_code == 200, answer.text
        for i, row in enumerate(answer.json()["predictions"], start):
            for p in row:
                got[i, p["index"]] = p["probability"]
    assert (got.argmax(1) == on_host.argmax(1)).all()
    assert np.allclose(got, on_host, atol=1e-4), np.abs(got - on_host).max()
    recorded = metadata["runtimes"][container.runtime]
    assert (got.argmax(1) == labels).mean() == pytest.approx(recorded["test_acc"], abs=1e-9)
    assert (got.argmax(1) == reference.argmax(1)).mean() == pytest.approx(recorded["agreement"], abs=1e-9)


def test_explanations_equal_the_offline_ones(container, model_dir, sample_data, tmp_path):
    """explain=gradcam. serve on torch: each image's heatmap is the host's Grad-CAM of the same crop (layer2,
    the last map of at least 7x7 at 64 px), its crop the one the trainer's preprocessing makes, its answer
    the one without the attribute; query.py --explain saves the overlays. serve-cpu: this model's Grad-CAM
    needs gradients, which ONNX Runtime cannot compute: a 400 that says so, and the server stays up."""
    files = sorted((sample_data / "test").rglob("*.jpg"))[::12][:4]
    body = {"instances": [{"b64": base64.b64encode(f.read_bytes()).decode()} for f in files]}

    def ask(attributes):
        headers = {"X-Amzn-SageMaker-Custom-Attributes": attributes}
        return requests.post(container.url + "/invocations", json=body, timeout=120, headers=headers)

    metadata = artifact.load_metadata(model_dir)
    explained = ask("top_k=3,explain=gradcam")
    problem = explanations.problem(container.runtime, metadata)
    if problem:
        assert container.runtime != runtimes.TORCH and "needs gradients at layer2" in problem
        assert explained.status_code == 400 and explained.json()["error"] == problem
        assert requests.get(container.url + "/ping", timeout=5).status_code == 200
        return
    assert explained.status_code == 200, explained.text
    answer = explained.json()
    assert answer["predictions"] == ask("top_k=3").json()["predictions"]
    prep = metadata["preprocessing"]
    crops = np.stack([decoding.eval_image(f, prep) for f in files])
    network, _ = artifact.load(model_dir)
    _, maps = runtimes.TorchRuntime(network, prep, metadata["explanation"]).explain(crops)
    for record, raw, crop in zip(answer["explanations"], maps, crops, strict=True):
        assert record["layer"] == metadata["explanation"]["layer"] == "layer2"
        assert np.array_equal(explanations.decode_image(record["crop_png"]), crop.transpose(1, 2, 0))
        offline = explanations.heatmap(raw, prep["crop"]).astype(int)
        assert np.abs(explanations.decode_image(record["heatmap_png"]).astype(int) - offline).max() <= 2
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "query.py"),
            "--url",
            container.url,
            "--explain",
            str(tmp_path / "cams"),
            *map(str, files[:2]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == sorted(f"{f.stem}.gradcam.png" for f in files[:2])


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
        answer = requests.post(
            container.url + "/invocations", data=body, timeout=60, headers={"Content-Type": content_type, **headers}
        )
        assert answer.status_code == status, (content_type, answer.status_code, answer.text)
        assert answer.json()["error"]
    assert requests.get(container.url + "/ping", timeout=2).status_code == 200
    assert (
        requests.post(
            container.url + "/invocations", data=good, headers={"Content-Type": "image/jpeg"}, timeout=60
        ).status_code
        == 200
    )
    assert container.logs().count("Booting worker") == 1  # no worker died and was replaced


def test_bind_to_port_and_graceful_sigterm(any_serve_image, model_dir, sample_data):
    """SAGEMAKER_BIND_TO_PORT moves the port; SIGTERM lets a request in flight finish, then exits 0.

    `Expect: 100-continue` tells the test when a worker thread holds the request (gunicorn answers
    "100 Continue" from the thread that handles it): SIGTERM comes exactly then, no sleeps.
    """
    served = ServingContainer(any_serve_image, model_dir, env={"SAGEMAKER_BIND_TO_PORT": "9123"}, port=9123)
    try:
        image = next((sample_data / "test").rglob("*.jpg")).read_bytes()
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=60) as client:
            client.sendall(
                f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(image)}\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            assert client.recv(64).startswith(b"HTTP/1.1 100 Continue")
            start = time.monotonic()
            subprocess.run(["docker", "kill", "-s", "TERM", served.id], check=True, capture_output=True)
            client.sendall(image)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        exit_code = subprocess.run(["docker", "wait", served.id], capture_output=True, text=True).stdout.strip()
        assert exit_code == "0" and time.monotonic() - start < 25, served.logs()
    finally:
        served.close()


# ---- hardening: what no request may break (test_server_wire.py's limits, in the image)
def test_phone_photos_are_read_upright(container, sample_data):
    """Each EXIF orientation: a lossless PNG gives the upright image's probabilities, a re-encoded JPEG its top-1."""
    photo = sorted((sample_data / "test").rglob("*.jpg"))[0].read_bytes()
    k = f"top_k={len(json.loads((container.model_dir / 'metadata.json').read_text())['classes'])}"
    upright_png = image_cases.rotated(photo, 1, "PNG")
    pngs = [image_cases.rotated(photo, o, "PNG") for o in range(2, 9)]
    status, body = urllib_post(container.url, image_cases.b64_instances(upright_png, *pngs), "application/json", k)
    assert status == 200, body
    want = {p["index"]: p["probability"] for p in body["predictions"][0]}
    for orientation, rows in zip(range(2, 9), body["predictions"][1:], strict=False):
        got = {p["index"]: p["probability"] for p in rows}
        assert max(abs(got[i] - want[i]) for i in want) < 1e-4, orientation
    upright_top1 = urllib_post(container.url, photo, "image/jpeg")[1]["predictions"][0]["index"]
    for orientation in range(1, 9):
        status, body = urllib_post(container.url, image_cases.rotated(photo, orientation, "JPEG"), "image/jpeg")
        assert status == 200 and body["predictions"][0]["index"] == upright_top1, orientation


def test_a_concurrent_attack_leaves_the_worker_up_and_memory_bounded(container, sample_data):
    """Many requests of every bad kind at once, beside good ones: every answer is the right status,
    the worker is never restarted, /ping stays fast, good images keep their answers, and the
    container's memory peak stays within what the limits allow."""
    photos = sorted((sample_data / "test").rglob("*.jpg"))[:8]
    expected = {
        p: urllib_post(container.url, p.read_bytes(), "image/jpeg")[1]["predictions"][0]["label"] for p in photos
    }
    baseline, _ = cgroup_memory(container.id)
    attacks = image_cases.attack()
    good = [(p, image_cases.rotated(p.read_bytes(), o, "JPEG")) for o, p in zip(range(1, 9), photos, strict=False)]
    good += [(p, p.read_bytes()) for p in photos]
    with ThreadPoolExecutor(len(attacks) + len(good)) as pool:
        bad_answers = [
            (name, allowed, pool.submit(urllib_post, container.url, body, kind))
            for name, body, kind, allowed in attacks
        ]
        good_answers = [(path, pool.submit(urllib_post, container.url, body, "image/jpeg")) for path, body in good]
        for name, allowed, future in bad_answers:
            status, body = future.result()
            assert status in allowed and (status == 200 or body["error"]), (name, status, body)
            if status == 503:
                assert "SERVING_DECODE_BUDGET_MEGAPIXELS" in body["error"], body
        for path, future in good_answers:
            status, body = future.result()
            assert status in (200, 503), (path, body)  # a good image may wait behind the big ones
            if status == 200:
                assert body["predictions"][0]["label"] == expected[path], path
    start = time.monotonic()
    assert requests.get(container.url + "/ping", timeout=2).status_code == 200
    assert time.monotonic() - start < 2
    for path in photos:
        assert (
            urllib_post(container.url, path.read_bytes(), "image/jpeg")[1]["predictions"][0]["label"] == expected[path]
        )
    assert container.logs().count("Booting worker") == 1, container.logs()[-3000:]
    _, peak = cgroup_memory(container.id)
    budget_bytes = 8 * 100_000_000  # SERVING_DECODE_BUDGET_MEGAPIXELS' default at <= 8 bytes a decoded pixel
    margin = 512 * 1024 * 1024  # request bodies (32 threads x 6 MiB, their JSON), crops, allocator slack
    print(
        f"container memory: {baseline / 2**20:.0f} MiB before the attack, peak {peak / 2**20:.0f} MiB "
        f"(bound {(baseline + budget_bytes + margin) / 2**20:.0f} MiB)"
    )
    assert peak < baseline + budget_bytes + margin


# ---- SageMaker local mode (localhost:8080)
def test_local_mode_endpoint_answers_and_is_removed(serve_image, trained_model, sample_data):
    image = next((sample_data / "test").rglob("*.jpg")).read_bytes()
    endpoint = local.deploy_local(serve_image, f"file://{trained_model[0]}")
    try:
        # through local mode's runtime client, the SDK's own path to a local endpoint
        response = endpoint.session.sagemaker_runtime_client.invoke_endpoint(
            EndpointName=endpoint.name,
            Body=image,
            ContentType="image/jpeg",
            Accept="application/json",
            CustomAttributes="top_k=3",
        )
        answer = json.loads(response["Body"].read())
        assert len(answer["predictions"]) == 3
        assert answer["predictions"][0]["probability"] >= answer["predictions"][1]["probability"]
    finally:
        local.delete_local(endpoint)
    with pytest.raises(requests.ConnectionError):
        requests.get(local.LOCAL_ENDPOINT_URL + "/ping", timeout=2)
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"ancestor={serve_image}", "--filter", "name=algo-"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert left == [], "the local endpoint's container was left behind"


def test_deploy_script_queries_then_tears_down(serve_cpu_image, trained_model, sample_data):
    """No --image: deploy.py reads the model's metadata.json and picks serve-cpu (ONNX exports, a CPU)."""
    some = sorted((sample_data / "test").iterdir())[0]
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "deploy.py"),
            "--local",
            "--model-data",
            str(trained_model[0]),
            "--query",
            str(some),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"serving image: {serve_cpu_image} (local is a CPU instance and the model has onnx" in done.stdout
    assert "endpoint deleted" in done.stdout
    # query.py's table: the image, then its top 5 ranked "  1. label  97.31%"
    ranks = re.findall(r"^  ([1-5])\. \S+ +\d+\.\d\d%$", done.stdout, re.MULTILINE)
    assert ranks and ranks == [str(1 + i % 5) for i in range(len(ranks))], done.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(local.LOCAL_ENDPOINT_URL + "/ping", timeout=2)
