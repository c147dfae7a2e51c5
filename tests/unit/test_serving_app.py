"""The server's pieces without Docker: micro-batcher, WSGI routes and status codes, settings."""
from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from classifier.serving import server
from classifier.serving.app import ServingApp
from classifier.serving.batching import Batcher
from classifier.serving.handler import ImageClassifierHandler

from .test_handler import CLASSES, model_dir, noise_image  # noqa: F401  (model_dir is a fixture)


# ---- batcher
def slow_double(calls):
    def predict(batch):
        calls.append(len(batch))
        time.sleep(0.02)
        return batch.float() * 2
    return predict


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows():
    calls = []
    batcher = Batcher(slow_double(calls), max_batch_size=8, max_delay=0.01)
    inputs = [torch.full((1 + i % 2, 3), float(i)) for i in range(24)]
    with ThreadPoolExecutor(12) as pool:
        outputs = list(pool.map(batcher.predict, inputs))
    for x, y in zip(inputs, outputs):
        assert torch.equal(y, x * 2)
    assert sum(calls) == sum(len(x) for x in inputs)
    assert max(calls) > 2 and len(calls) < len(inputs)  # batched, not one pass per request
    assert max(calls) <= 8 + 1  # a request is never split; the cap holds up to one request's size


def test_batch_size_one_means_one_request_per_pass():
    calls = []
    batcher = Batcher(slow_double(calls), max_batch_size=1, max_delay=0.01)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(batcher.predict, [torch.ones(1, 3)] * 8))
    assert calls == [1] * 8


def test_uint8_and_float_requests_run_in_separate_passes():
    calls = []
    batcher = Batcher(lambda b: (calls.append(b.dtype), b.float())[1], max_batch_size=8, max_delay=0.05)
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(batcher.predict, [torch.ones(1, 3, dtype=torch.uint8), torch.ones(1, 3)])
    assert a.shape == b.shape == (1, 3) and set(calls) == {torch.uint8, torch.float32}


def test_a_failing_pass_fails_its_callers_and_the_batcher_keeps_going():
    def predict(batch):
        if (batch < 0).any():
            raise RuntimeError("bad batch")
        return batch
    batcher = Batcher(predict, max_batch_size=4, max_delay=0)
    with pytest.raises(RuntimeError, match="bad batch"):
        batcher.predict(-torch.ones(1, 3))
    assert torch.equal(batcher.predict(torch.ones(1, 3)), torch.ones(1, 3))


# ---- WSGI app
def new_app(model_dir):  # noqa: F811
    handler = ImageClassifierHandler()
    return ServingApp(handler, handler.model_fn(str(model_dir)), max_batch_size=4, max_delay=0.002)


@pytest.fixture(scope="module")
def app(model_dir):  # noqa: F811
    """A started worker's app, ready to answer."""
    served = new_app(model_dir)
    served.start_worker(torch_threads=torch.get_num_threads())
    wait_ready(served)
    return served


def call(app, method, path, body=b"", headers=None, declare_length=True):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body)}
    if declare_length:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    seen = {}
    payload = b"".join(app(environ, lambda status, hdrs: seen.update(status=int(status.split()[0]),
                                                                     headers=dict(hdrs))))
    return seen["status"], json.loads(payload), seen["headers"]


def wait_ready(app, timeout=60):
    deadline = time.monotonic() + timeout
    while not app.ready.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.ready.is_set(), app.failed


def test_ping_is_503_until_the_warm_up_passed_then_200(model_dir):  # noqa: F811
    app = new_app(model_dir)
    assert call(app, "GET", "/ping")[0] == 503
    assert call(app, "POST", "/invocations", noise_image(1), {"Content-Type": "image/jpeg"})[0] == 503
    app.start_worker(torch_threads=torch.get_num_threads())
    wait_ready(app)
    assert call(app, "GET", "/ping")[:2] == (200, {"status": "ready"})


def test_invocations_answers_and_maps_errors_to_statuses(app):
    status, body, _ = call(app, "POST", "/invocations", noise_image(2), {"Content-Type": "image/jpeg",
                                                                           "X-Amzn-SageMaker-Custom-Attributes": "top_k=2"})
    assert status == 200 and [r["label"] in CLASSES for r in body["predictions"]] == [True, True]
    assert call(app, "POST", "/invocations", noise_image(2), {"Content-Type": "text/plain"})[0] == 415
    assert call(app, "POST", "/invocations", b"junk", {"Content-Type": "image/png"})[0] == 400
    status, body, headers = call(app, "POST", "/invocations", b"x" * (6 * 1024 * 1024 + 1),
                                 {"Content-Type": "image/jpeg"})
    assert status == 413 and "limit" in body["error"] and headers.get("Connection") == "close"
    # A chunked upload declares no length: the limit is enforced while reading.
    assert call(app, "POST", "/invocations", b"x" * (6 * 1024 * 1024 + 1), {"Content-Type": "image/jpeg"},
                declare_length=False)[0] == 413
    assert call(app, "GET", "/invocations")[0] == 405
    assert call(app, "POST", "/ping")[0] == 405
    assert call(app, "GET", "/nope")[0] == 404


def test_concurrent_invocations_are_batched(app):
    app.served.batcher.batch_sizes.clear()
    images = [noise_image(i) for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda im: call(app, "POST", "/invocations", im, {"Content-Type": "image/jpeg"}),
                                images))
    assert all(a[0] == 200 for a in answers)
    assert max(app.served.batcher.batch_sizes) > 1


def test_an_internal_error_is_a_500_and_the_app_keeps_serving(app, monkeypatch):
    original = app.handler.predict_fn
    monkeypatch.setattr(app.handler, "predict_fn", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    status, body, _ = call(app, "POST", "/invocations", noise_image(3), {"Content-Type": "image/jpeg"})
    assert status == 500 and "boom" in body["error"]
    monkeypatch.setattr(app.handler, "predict_fn", original)
    assert call(app, "POST", "/invocations", noise_image(3), {"Content-Type": "image/jpeg"})[0] == 200


# ---- settings
def test_settings_from_environment(monkeypatch):
    env = {"SAGEMAKER_BIND_TO_PORT": "9000", "SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SERVING_MAX_BATCH_SIZE": "1",
           "SERVING_MAX_BATCH_DELAY_MS": "0", "SERVING_TORCH_THREADS": "3"}
    settings = server.Settings.from_env(env)
    assert (settings.port, settings.workers, settings.max_batch_size, settings.max_delay_ms,
            settings.torch_threads) == (9000, 2, 1, 0, 3)
    monkeypatch.setattr(server, "available_cpus", lambda: 4)
    assert server.Settings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}).torch_threads == 2
    assert server.Settings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "8"}).torch_threads == 1


@pytest.mark.parametrize("name,value", [("SAGEMAKER_MODEL_SERVER_WORKERS", "0"), ("SERVING_MAX_BATCH_SIZE", "x"),
                                        ("SAGEMAKER_BIND_TO_PORT", "-1"), ("SERVING_MAX_BATCH_DELAY_MS", "1.5")])
def test_bad_settings_name_the_variable(name, value):
    with pytest.raises(server.SettingsError, match=name):
        server.Settings.from_env({name: value})


def test_workers_never_keep_root(monkeypatch):
    monkeypatch.setattr(server.os, "geteuid", lambda: 0)
    with pytest.raises(server.SettingsError, match="does not exist"):
        server.worker_identity("no-such-user-here")
    with pytest.raises(server.SettingsError, match="unprivileged"):
        server.worker_identity("root")
    assert server.worker_identity("nobody")["user"] > 0


def test_serve_refuses_other_commands(capsys):
    assert server.main(["train"]) == 2
    assert "serving image" in capsys.readouterr().err


def test_main_names_a_missing_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    monkeypatch.setenv("SERVING_USER", "nobody")
    threads = torch.get_num_threads()
    try:
        assert server.main(["serve"]) == 1
    finally:
        torch.set_num_threads(threads)  # main() sets the master's count to 1
    assert "metadata.json is missing" in capsys.readouterr().err
