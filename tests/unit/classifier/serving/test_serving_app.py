"""The server's pieces without Docker: micro-batcher, WSGI routes and status codes, settings."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from classifier.model.selection import RuntimeRequest
from classifier.serving import server
from classifier.serving.app import ServingApp
from classifier.serving.batching import Batcher
from classifier.serving.handler import ImageClassifierHandler
from classifier.serving.limits import MIB, Deadline, DeadlineExceeded, Limits
from tests.image_cases import noise_image
from tests.unit.small_model import CLASSES


# ---- batcher
class Gate:
    """Wraps a forward pass so a test decides when it may run (no sleeps, no timing)."""

    def __init__(self, predict):
        self.predict, self.open, self.entered = predict, threading.Event(), threading.Event()
        self.open.set()

    def __call__(self, batch, deadline=None):
        self.entered.set()
        assert self.open.wait(timeout=60), "the test never opened the gate"
        return self.predict(batch)


def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def slow_double(calls):
    def predict(batch):
        calls.append(len(batch))
        time.sleep(0.02)
        return batch.astype(np.float32) * 2

    return predict


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows():
    calls = []
    gate = Gate(lambda b: (calls.append(len(b)), b.astype(np.float32) * 2)[1])
    batcher = Batcher(gate, max_batch_size=8, max_delay=0.01)
    gate.open.clear()
    inputs = [np.full((1 + i % 2, 3), float(i), np.float32) for i in range(24)]
    with ThreadPoolExecutor(24) as pool:
        first = pool.submit(batcher.predict, inputs[0])
        assert gate.entered.wait(10)  # the first pass holds the model while the other 23 queue up
        rest = [pool.submit(batcher.predict, x) for x in inputs[1:]]
        wait_until(lambda: batcher._queue.qsize() == 23)
        gate.open.set()
        outputs = [first.result()] + [f.result() for f in rest]
    for x, y in zip(inputs, outputs, strict=True):
        assert np.array_equal(y, x * 2)
    assert sum(calls) == sum(len(x) for x in inputs) == 36
    # 35 queued rows in requests of 1-2: full passes of 7-8 (never more than the cap), not 23 passes
    assert calls[0] == 1 and max(calls) <= 8 and len(calls) <= 7 and sorted(calls)[-2] >= 7


def test_a_request_larger_than_the_cap_is_split_into_passes():
    calls = []
    batcher = Batcher(slow_double(calls), max_batch_size=4, max_delay=0)
    x = np.arange(10.0, dtype=np.float32).reshape(10, 1)
    assert np.array_equal(batcher.predict(x), x * 2)  # rows come back in order
    assert calls == [4, 4, 2]


def test_batch_size_one_means_one_request_per_pass():
    calls = []
    batcher = Batcher(slow_double(calls), max_batch_size=1, max_delay=0.01)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(batcher.predict, [np.ones((1, 3), np.float32)] * 8))
    assert calls == [1] * 8


def test_uint8_and_float_requests_run_in_separate_passes():
    calls = []
    batcher = Batcher(lambda b: (calls.append(b.dtype), b.astype(np.float32))[1], max_batch_size=8, max_delay=0.05)
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(batcher.predict, [np.ones((1, 3), np.uint8), np.ones((1, 3), np.float32)])
    assert a.shape == b.shape == (1, 3) and set(calls) == {np.dtype(np.uint8), np.dtype(np.float32)}


def test_explanations_run_in_passes_of_their_own_and_are_batched_together():
    """Queued while the model is busy: 3 predictions share one pass, 3 explanations another (each
    caller gets its own rows of both outputs), never mixed."""
    passes = []
    gate = Gate(lambda b: (passes.append(("predict", len(b))), b * 2)[1])

    def explain(batch):
        passes.append(("explain", len(batch)))
        return batch * 3, batch[:, :1] * 10

    batcher = Batcher(gate, max_batch_size=8, max_delay=0, explain=explain)
    gate.open.clear()
    with ThreadPoolExecutor(7) as pool:
        first = pool.submit(batcher.predict, np.zeros((1, 2), np.float32))
        assert gate.entered.wait(10)
        predicted = [pool.submit(batcher.predict, np.full((1, 2), i, np.float32)) for i in range(1, 4)]
        explained = [pool.submit(batcher.explain, np.full((1, 2), i, np.float32)) for i in range(1, 4)]
        wait_until(lambda: batcher._queue.qsize() == 6)
        gate.open.set()
        assert np.array_equal(first.result(10), np.zeros((1, 2)))
        for i, future in enumerate(predicted, 1):
            assert np.array_equal(future.result(10), np.full((1, 2), 2.0 * i))
        for i, future in enumerate(explained, 1):
            probabilities, maps = future.result(10)
            assert np.array_equal(probabilities, np.full((1, 2), 3.0 * i)) and np.array_equal(maps, [[10.0 * i]])
    assert sorted(passes) == [("explain", 3), ("predict", 1), ("predict", 3)]


def test_a_failing_pass_fails_its_callers_and_the_batcher_keeps_going():
    def predict(batch):
        if (batch < 0).any():
            raise RuntimeError("bad batch")
        return batch

    batcher = Batcher(predict, max_batch_size=4, max_delay=0)
    with pytest.raises(RuntimeError, match="bad batch"):
        batcher.predict(-np.ones((1, 3), np.float32))
    assert np.array_equal(batcher.predict(np.ones((1, 3), np.float32)), np.ones((1, 3), np.float32))


def test_a_caller_past_its_deadline_gets_deadline_exceeded_and_its_queued_images_are_dropped():
    calls = []
    gate = Gate(lambda b: (calls.append(len(b)), b * 2)[1])
    batcher = Batcher(gate, max_batch_size=2, max_delay=0)
    gate.open.clear()
    first = threading.Thread(target=batcher.predict, args=(np.ones((1, 1), np.float32),))
    first.start()
    assert gate.entered.wait(10)  # the pass of the first request is stuck
    with pytest.raises(DeadlineExceeded, match="deadline of 0.2 s"):
        batcher.predict(np.ones((6, 1), np.float32), Deadline(0.2))
    assert batcher.running_for() > 0.2
    gate.open.set()
    first.join(10)
    assert np.array_equal(batcher.predict(np.ones((1, 1), np.float32)), np.full((1, 1), 2.0))
    assert calls == [1, 1]  # the timed-out request's three passes never ran


def test_the_batching_thread_survives_its_callers_and_reports_idle():
    batcher = Batcher(lambda b: b, max_batch_size=4, max_delay=0)
    assert batcher.alive and batcher.running_for() == 0.0


# ---- WSGI app
def new_app(model_dir, limits=Limits(), gate=False, **batch):
    handler = ImageClassifierHandler(limits)
    model = handler.model_fn(str(model_dir))
    if gate:
        model.predict = Gate(model.predict)
    return ServingApp(handler, model, max_batch_size=4, max_delay=0.002, **batch)


@pytest.fixture(scope="module")
def app(model_dir):
    """A started worker's app, ready to answer."""
    served = new_app(model_dir)
    served.start_worker(threads=2)
    wait_ready(served)
    return served


def call(app, method, path, body=b"", headers=None, declare_length=True, stream=None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": stream or io.BytesIO(body)}
    if declare_length:
        environ["CONTENT_LENGTH"] = str(len(environ["wsgi.input"].getvalue()))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    seen = {}
    payload = b"".join(
        app(environ, lambda status, hdrs: seen.update(status=int(status.split()[0]), headers=dict(hdrs)))
    )
    return seen["status"], json.loads(payload), seen["headers"]


def wait_ready(app, timeout=60):
    deadline = time.monotonic() + timeout
    while not app.ready.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.ready.is_set(), app.failed


def test_ping_is_503_until_the_warm_up_passed_then_200(model_dir):
    app = new_app(model_dir)
    assert call(app, "GET", "/ping")[0] == 503
    assert call(app, "POST", "/invocations", noise_image(1), {"Content-Type": "image/jpeg"})[0] == 503
    app.start_worker(threads=2)
    wait_ready(app)
    status, body, _ = call(app, "GET", "/ping")
    assert status == 200 and body["status"] == "ready" and body["runtime"] == "torch"
    assert "not onnx-int8: the artifact has no onnx-int8 export" in body["runtime_reason"]  # a torch-only artifact


def test_invocations_answers_and_maps_errors_to_statuses(app):
    status, body, _ = call(
        app,
        "POST",
        "/invocations",
        noise_image(2),
        {"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "top_k=2"},
    )
    assert status == 200 and [r["label"] in CLASSES for r in body["predictions"]] == [True, True]
    assert call(app, "POST", "/invocations", noise_image(2), {"Content-Type": "text/plain"})[0] == 415
    assert call(app, "POST", "/invocations", b"junk", {"Content-Type": "image/png"})[0] == 400
    # An oversized body is read to its end before the 413 (so clients that send it all see the answer).
    for declare_length in (True, False):  # a chunked upload declares no length: the limit holds while reading
        stream = io.BytesIO(b"x" * (6 * 1024 * 1024 + 1))
        status, body, _ = call(
            app,
            "POST",
            "/invocations",
            headers={"Content-Type": "image/jpeg"},
            declare_length=declare_length,
            stream=stream,
        )
        assert status == 413 and "SERVING_MAX_PAYLOAD_MB" in body["error"]
        assert stream.tell() == 6 * 1024 * 1024 + 1
    assert call(app, "GET", "/invocations")[0] == 405
    assert call(app, "POST", "/ping")[0] == 405
    assert call(app, "GET", "/nope")[0] == 404


def test_concurrent_invocations_are_batched(model_dir):
    app = new_app(model_dir, gate=True)
    app.start_worker(threads=2)
    wait_ready(app)
    gate, batcher = app.model.predict, app.served.batcher
    gate.open.clear()
    gate.entered.clear()
    post = lambda im: call(app, "POST", "/invocations", im, {"Content-Type": "image/jpeg"})  # noqa: E731
    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(post, noise_image(0))
        assert gate.entered.wait(30)  # the first request's pass holds the model...
        rest = [pool.submit(post, noise_image(i)) for i in range(1, 9)]
        wait_until(lambda: batcher._queue.qsize() == 8)  # ...while eight more queue up
        gate.open.set()
        answers = [first.result()] + [r.result() for r in rest]
    assert all(a[0] == 200 for a in answers)
    assert batcher.batch_sizes[-2:] == [4, 4]  # the eight waiting requests shared two passes


def test_a_stuck_forward_pass_gives_503s_and_fails_ping_until_it_finishes(model_dir):
    app = new_app(model_dir, Limits(timeout_s=1), gate=True)
    app.start_worker(threads=2)
    wait_ready(app)
    gate = app.model.predict
    gate.open.clear()
    start = time.monotonic()
    status, body, _ = call(app, "POST", "/invocations", noise_image(1), {"Content-Type": "image/jpeg"})
    assert status == 503 and "deadline of 1 s" in body["error"] and time.monotonic() - start < 5
    wait_until(lambda: app.served.batcher.running_for() > 1)
    status, body, _ = call(app, "GET", "/ping")
    assert status == 503 and "forward pass has been running" in body["status"]
    gate.open.set()
    wait_until(lambda: call(app, "GET", "/ping")[0] == 200)
    assert call(app, "POST", "/invocations", noise_image(1), {"Content-Type": "image/jpeg"})[0] == 200


def test_an_internal_error_is_a_500_and_the_app_keeps_serving(app, monkeypatch, caplog):
    original = app.handler.predict_fn
    monkeypatch.setattr(app.handler, "predict_fn", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    status, body, headers = call(app, "POST", "/invocations", noise_image(3), {"Content-Type": "image/jpeg"})
    # The client learns nothing of the exception; the request id finds its traceback in the log.
    assert status == 500 and body["error"] == "internal error" and "boom" not in json.dumps(body)
    assert len(body["request_id"]) == 16 and headers["X-Request-Id"] == body["request_id"]
    assert f"request {body['request_id']} failed" in caplog.text and "RuntimeError: boom" in caplog.text
    monkeypatch.setattr(app.handler, "predict_fn", original)
    assert call(app, "POST", "/invocations", noise_image(3), {"Content-Type": "image/jpeg"})[0] == 200


def test_a_request_waits_for_the_body_budget_then_gets_a_503(model_dir):
    """A request whose forward pass is held holds its body's bytes, here the whole budget: another
    waits SERVING_DECODE_WAIT_MS for its share, gets a 503, and gets in once the first is answered."""
    image = noise_image(1)
    app = new_app(model_dir, Limits(body_budget_bytes=len(image), decode_wait_s=0.2), gate=True)
    app.start_worker(threads=2)
    wait_ready(app)
    gate = app.model.predict
    gate.open.clear()
    gate.entered.clear()
    post = lambda im: call(app, "POST", "/invocations", im, {"Content-Type": "image/jpeg"})  # noqa: E731
    with ThreadPoolExecutor(1) as pool:
        try:
            holder = pool.submit(post, image)
            assert gate.entered.wait(30)
            start = time.monotonic()
            status, body, _ = post(noise_image(2))
            waited = time.monotonic() - start
        finally:
            gate.open.set()
        assert holder.result(30)[0] == 200
    assert status == 503 and "SERVING_BODY_BUDGET_MB" in body["error"] and waited >= 0.2
    assert app.bodies.free == app.bodies.capacity
    assert post(noise_image(2))[0] == 200


# ---- batch mode (SageMaker Batch Transform)
@pytest.fixture(scope="module")
def batch_app(model_dir):
    """A started worker's app in batch mode, from what a transform job that sets nothing gives it (and a
    short wait for the body budget)."""
    settings = server.Settings.from_env({"SAGEMAKER_BATCH": "true", "SERVING_DECODE_WAIT_MS": "100"})
    served = new_app(
        model_dir, settings.limits, batch=True, max_concurrent_transforms=settings.max_concurrent_transforms
    )
    served.start_worker(threads=2)
    wait_ready(served)
    return served


def test_execution_parameters_in_batch_mode_only(app, batch_app):
    # Workers x SERVING_MAX_BATCH_SIZE (1 x 8) requests fill a batch; 6 MiB is SageMaker's default MaxPayloadInMB.
    assert call(batch_app, "GET", "/execution-parameters")[:2] == (
        200,
        {"MaxConcurrentTransforms": 8, "MaxPayloadInMB": 6},
    )
    assert call(batch_app, "HEAD", "/execution-parameters")[0] == 200
    status, _, headers = call(batch_app, "POST", "/execution-parameters")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, body, _ = call(app, "GET", "/execution-parameters")
    assert status == 404 and "not in batch mode (SAGEMAKER_BATCH)" in body["error"]


def test_batch_mode_answers_every_failure_200_with_an_error_record(batch_app, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, "classifier.serving.app")

    def post(body, **headers):
        return call(batch_app, "POST", "/invocations", body, {"Content-Type": "image/jpeg", **headers})

    records = {
        415: post(noise_image(1), **{"Content-Type": "text/plain"}),
        400: post(b"junk"),
        413: post(b"x" * (6 * 1024 * 1024 + 1)),
        406: post(noise_image(1), Accept="text/csv"),
    }
    with batch_app.bodies.hold(batch_app.bodies.capacity, 1):  # other requests hold every body byte
        records[503] = post(noise_image(1))
    monkeypatch.setattr(batch_app.handler, "predict_fn", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    records[500] = post(noise_image(1))
    monkeypatch.undo()
    for status, (answered, record, headers) in records.items():
        assert answered == 200 and record["status"] == status and headers["Content-Type"] == "application/json"
        assert f"{status} answered as a 200 error record (batch mode)" in caplog.text
    assert "SERVING_BODY_BUDGET_MB" in records[503][1]["error"] and len(records[503][1]["request_id"]) == 16
    assert records[500][1]["error"] == "internal error" and "boom" not in json.dumps(records[500][1])
    assert records[500][1]["request_id"] == records[500][2]["X-Request-Id"]
    assert "request_id" not in records[400][1]
    assert len(post(noise_image(1))[1]["predictions"]) == 5


def test_batch_mode_still_answers_503_while_warming_up(model_dir):
    """Not a failed record: the server is not ready yet, and SageMaker retries."""
    app = new_app(model_dir, batch=True)
    assert call(app, "POST", "/invocations", noise_image(1), {"Content-Type": "image/jpeg"})[0] == 503


# ---- settings
@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, (False, 8, 6, "SERVING_MAX_PAYLOAD_MB", 64, 50, 60)),
        # Batch mode: a body budget of at least 100 MiB, since a job keeps MaxConcurrentTransforms x payload <= 100.
        ({"SAGEMAKER_BATCH": "true"}, (True, 8, 6, "SERVING_MAX_PAYLOAD_MB", 100, 590, 600)),
        (
            {
                "SAGEMAKER_BATCH": "True",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100",
                "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "1",
                "SERVING_MAX_PAYLOAD_MB": "3",
            },
            (True, 1, 100, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 200, 590, 600),
        ),
        # Two workers, each filling a batch of 8 with at most its 4 request threads: 8, but 2 x 40 MB keeps
        # within SageMaker's 100 MB.
        (
            {
                "SAGEMAKER_BATCH": "1",
                "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
                "SERVING_THREADS": "4",
                "SERVING_MAX_PAYLOAD_MB": "40",
            },
            (True, 2, 40, "SERVING_MAX_PAYLOAD_MB", 100, 590, 600),
        ),
        (
            {"SAGEMAKER_BATCH": "1", "SERVING_MAX_BATCH_SIZE": "4", "SERVING_MAX_PAYLOAD_MB": "6"},
            (True, 4, 6, "SERVING_MAX_PAYLOAD_MB", 100, 590, 600),
        ),
        (
            {"SAGEMAKER_BATCH": "1", "SERVING_REQUEST_TIMEOUT_S": "100"},
            (True, 8, 6, "SERVING_MAX_PAYLOAD_MB", 100, 100, 110),
        ),
        # SageMaker's batch variables count in batch mode only.
        (
            {
                "SAGEMAKER_BATCH": "false",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": "50",
                "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "2",
            },
            (False, 8, 6, "SERVING_MAX_PAYLOAD_MB", 64, 50, 60),
        ),
        (
            {
                "SERVING_MAX_PAYLOAD_MB": "1024",
                "SERVING_BODY_BUDGET_MB": "1024",
                "SAGEMAKER_MODEL_SERVER_TIMEOUT": "51",
            },
            (False, 8, 1024, "SERVING_MAX_PAYLOAD_MB", 1024, 50, 51),
        ),
        ({"SERVING_MAX_PAYLOAD_MB": "1024"}, (False, 8, 1024, "SERVING_MAX_PAYLOAD_MB", 2048, 50, 60)),
    ],
)
def test_batch_mode_payload_and_timeouts_from_environment(env, expected):
    settings = server.Settings.from_env(env)
    limits = settings.limits
    assert (
        settings.batch,
        settings.max_concurrent_transforms,
        limits.max_payload_bytes // MIB,
        limits.payload_setting,
        limits.body_budget_bytes // MIB,
        limits.timeout_s,
        settings.timeout,
    ) == expected


@pytest.mark.parametrize(
    "env,names",
    [
        ({"SERVING_MAX_PAYLOAD_MB": "0"}, ["SERVING_MAX_PAYLOAD_MB"]),
        ({"SERVING_MAX_PAYLOAD_MB": "1025"}, ["SERVING_MAX_PAYLOAD_MB", "1 to 1024"]),
        ({"SAGEMAKER_BATCH": "true", "SERVING_MAX_PAYLOAD_MB": "101"}, ["SERVING_MAX_PAYLOAD_MB", "1 to 100"]),
        ({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"}, ["SAGEMAKER_MAX_PAYLOAD_IN_MB", "chunked"]),
        (
            {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "101"},
            ["SAGEMAKER_MAX_PAYLOAD_IN_MB", "1 to 100"],
        ),
        (
            {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "0"},
            ["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"],
        ),
        ({"SAGEMAKER_BATCH": "yes"}, ["SAGEMAKER_BATCH"]),
        (
            {"SERVING_MAX_PAYLOAD_MB": "100", "SERVING_BODY_BUDGET_MB": "99"},
            ["SERVING_BODY_BUDGET_MB", "SERVING_MAX_PAYLOAD_MB"],
        ),
        (
            {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "50"},
            ["SAGEMAKER_MODEL_SERVER_TIMEOUT", "SERVING_REQUEST_TIMEOUT_S (50 s)"],
        ),
        (
            {"SAGEMAKER_BATCH": "1", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "60"},
            ["SAGEMAKER_MODEL_SERVER_TIMEOUT (60 s)", "SERVING_REQUEST_TIMEOUT_S (590 s)"],
        ),
    ],
)
def test_out_of_range_settings_name_the_variable(env, names):
    with pytest.raises(server.SettingsError) as err:
        server.Settings.from_env(env)
    assert all(name in str(err.value) for name in names), err.value


def test_settings_from_environment(monkeypatch):
    env = {
        "SAGEMAKER_BIND_TO_PORT": "9000",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "SERVING_MAX_BATCH_SIZE": "1",
        "SERVING_MAX_BATCH_DELAY_MS": "0",
        "SERVING_INFERENCE_THREADS": "3",
        "SERVING_RUNTIME": "ONNX-int8",
        "SERVING_MIN_AGREEMENT": "0.95",
        "SERVING_MAX_ACCURACY_DROP": "1.5",
    }
    settings = server.Settings.from_env(env)
    assert (
        settings.port,
        settings.workers,
        settings.max_batch_size,
        settings.max_delay_ms,
        settings.inference_threads,
    ) == (9000, 2, 1, 0, 3)
    assert (settings.runtime.name, settings.runtime.threads) == ("onnx-int8", 3)
    assert settings.runtime.gate.min_agreement == 0.95 and settings.runtime.gate.max_accuracy_drop == pytest.approx(
        0.015
    )
    assert server.Settings.from_env({"SERVING_TORCH_THREADS": "5"}).inference_threads == 5  # the older name
    monkeypatch.setattr(server.resources, "available_cpus", lambda: 4)
    assert server.Settings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}).inference_threads == 2
    assert server.Settings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "8"}).inference_threads == 1
    assert server.Settings.from_env({}).runtime == RuntimeRequest(threads=4, gpu=settings.runtime.gpu)  # auto


@pytest.mark.parametrize(
    "name,value",
    [
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0"),
        ("SERVING_MAX_BATCH_SIZE", "x"),
        ("SAGEMAKER_BIND_TO_PORT", "-1"),
        ("SERVING_MAX_BATCH_DELAY_MS", "1.5"),
        ("SERVING_RUNTIME", "tensorrt"),
        ("SERVING_MIN_AGREEMENT", "1.2"),
        ("SERVING_MAX_ACCURACY_DROP", "x"),
    ],
)
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
    assert server.main(["serve"]) == 1
    assert "metadata.json is missing" in capsys.readouterr().err
