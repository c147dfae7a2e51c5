"""The real server (gunicorn master + worker) over real sockets on loopback: limits, the 413 a client
that sends its whole body still reads, liveness with a stuck forward pass, batch mode (SageMaker Batch
Transform) and a large payload limit with its body budget. No Docker: the serving image runs the same
code (tests/integration/test_serving.py repeats the attack against it)."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.image_cases import bomb_png, encode, noise_image, tiny_pngs_body, truncated_jpeg
from tests.serving_probes import urllib_post

from .live_server import LiveServer

SEVEN_MB = 7 * 1024 * 1024


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    live = LiveServer(model_dir, tmp_path_factory.mktemp("live"), env={"SERVING_REQUEST_TIMEOUT_S": "2"})
    yield live
    live.stop()


def test_a_client_that_sends_the_whole_oversized_body_reads_the_413(server):
    status, body = urllib_post(server.url, b"\xff" * SEVEN_MB, "image/jpeg")
    assert status == 413 and "the limit is 6,291,456 (SERVING_MAX_PAYLOAD_MB)" in body["error"]
    # Chunked (no Content-Length): the limit holds while reading, and the answer still arrives.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunks = (b"\xff" * (1024 * 1024) for _ in range(7))
    connection.request("POST", "/invocations", body=chunks, headers={"Content-Type": "image/jpeg"}, encode_chunked=True)
    answer = connection.getresponse()
    assert answer.status == 413 and "chunked" in json.loads(answer.read())["error"]
    connection.close()


def test_fifty_thousand_tiny_images_are_refused_by_count_and_the_worker_survives(server):
    body = tiny_pngs_body(50_000)
    assert len(body) < 6 * 1024 * 1024  # under the payload limit: only the image count refuses it
    start = time.monotonic()
    status, answer = urllib_post(server.url, body, "application/json")
    took = time.monotonic() - start
    assert status == 413 and "50,000 images; the limit is 64" in answer["error"]
    assert took < 10, (
        f"refused after {took:.1f}s: the images were decoded first"
    )  # ~0.1 s; bounds only a regression to decoding
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200
    assert server.log().count("Booting worker") == 1


def test_bombs_and_unknown_formats_over_the_wire(server):
    assert urllib_post(server.url, bomb_png(), "image/png")[0] == 413
    status, body = urllib_post(server.url, encode((1, 2, 3), "PPM"), "application/octet-stream")
    assert status == 415 and "image format PPM is not accepted" in body["error"]
    assert urllib_post(server.url, noise_image(1), "image/jpeg")[0] == 200


def test_a_stuck_forward_pass_gets_503s_not_hung_connections_and_fails_ping(server):
    server.gate.touch()
    try:
        start = time.monotonic()
        status, body = urllib_post(server.url, noise_image(2), "image/jpeg")
        assert status == 503 and "deadline of 2 s" in body["error"]
        assert time.monotonic() - start < 30  # answered at the deadline, not hung
        ping = requests.get(server.url + "/ping", timeout=2)
        deadline = time.monotonic() + 30
        while ping.status_code == 200 and time.monotonic() < deadline:  # until the pass passes 2 s
            time.sleep(0.1)
            ping = requests.get(server.url + "/ping", timeout=2)
        assert ping.status_code == 503 and "forward pass has been running" in ping.json()["status"]
    finally:
        server.gate.unlink()
    deadline = time.monotonic() + 30
    while requests.get(server.url + "/ping", timeout=2).status_code != 200:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    assert urllib_post(server.url, noise_image(2), "image/jpeg")[0] == 200


def test_a_bug_is_an_opaque_500_with_a_request_id_and_the_traceback_goes_to_the_log(server):
    server.gate.write_text("fail")
    try:
        answer = requests.post(
            server.url + "/invocations", data=noise_image(3), timeout=60, headers={"Content-Type": "image/jpeg"}
        )
    finally:
        server.gate.unlink()
    body = answer.json()
    assert answer.status_code == 500 and body["error"] == "internal error"
    assert "injected" not in answer.text and answer.headers["X-Request-Id"] == body["request_id"]
    log = server.log()
    assert f"request {body['request_id']} failed" in log and "RuntimeError: injected failure" in log
    assert urllib_post(server.url, noise_image(3), "image/jpeg")[0] == 200


def test_execution_parameters_are_404_outside_batch_mode(server):
    answer = requests.get(server.url + "/execution-parameters", timeout=10)
    assert answer.status_code == 404 and "not in batch mode (SAGEMAKER_BATCH)" in answer.json()["error"]


# ---- batch mode: SageMaker Batch Transform (what a job with MaxPayloadInMB=2, MaxConcurrentTransforms=3 sets)
@pytest.fixture(scope="module")
def batch_server(model_dir, tmp_path_factory):
    live = LiveServer(
        model_dir,
        tmp_path_factory.mktemp("batch"),
        env={"SAGEMAKER_BATCH": "True", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "3"},
    )
    yield live
    live.stop()


def test_batch_mode_answers_the_jobs_execution_parameters(batch_server):
    answer = requests.get(batch_server.url + "/execution-parameters", timeout=10)
    assert answer.status_code == 200 and answer.json() == {"MaxConcurrentTransforms": 3, "MaxPayloadInMB": 2}
    assert requests.head(batch_server.url + "/execution-parameters", timeout=10).status_code == 200
    refused = requests.post(batch_server.url + "/execution-parameters", timeout=10)
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "body,status,words",
    [
        (truncated_jpeg(), 400, "image"),
        (b"hello, this is text", 400, "not a readable image"),
        (b"\xff" * (2 * 1024 * 1024 + 1), 413, "the limit is 2,097,152 (SAGEMAKER_MAX_PAYLOAD_IN_MB)"),
    ],
    ids=["corrupt image", "not an image", "over MaxPayloadInMB"],
)
def test_batch_mode_answers_a_bad_record_200_with_an_error_record(batch_server, body, status, words):
    answer = requests.post(
        batch_server.url + "/invocations", data=body, timeout=60, headers={"Content-Type": "image/jpeg"}
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    record = answer.json()
    assert record["status"] == status and words in record["error"] and set(record) == {"error", "status"}
    assert f"{status} answered as a 200 error record (batch mode)" in batch_server.log()
    # The job goes on: the next record gets its predictions from the same worker.
    assert len(urllib_post(batch_server.url, noise_image(4), "image/jpeg")[1]["predictions"]) == 5
    assert requests.get(batch_server.url + "/ping", timeout=2).status_code == 200
    assert batch_server.log().count("Booting worker") == 1


def test_batch_mode_answers_a_bug_200_with_an_opaque_error_record(batch_server):
    batch_server.gate.write_text("fail")
    try:
        status, record = urllib_post(batch_server.url, noise_image(5), "image/jpeg")
    finally:
        batch_server.gate.unlink()
    assert status == 200 and record["status"] == 500 and record["error"] == "internal error"
    assert f"request {record['request_id']} failed" in batch_server.log()
    assert urllib_post(batch_server.url, noise_image(5), "image/jpeg")[0] == 200


# ---- a large payload limit (an async endpoint's), with the body budget that bounds it
@pytest.fixture(scope="module")
def large_server(model_dir, tmp_path_factory):
    live = LiveServer(
        model_dir,
        tmp_path_factory.mktemp("large"),
        env={"SERVING_MAX_PAYLOAD_MB": "8", "SERVING_BODY_BUDGET_MB": "8", "SERVING_DECODE_WAIT_MS": "300"},
    )
    yield live
    live.stop()


def test_a_7_mib_body_reaches_the_handler_when_the_limit_is_raised(large_server):
    status, body = urllib_post(large_server.url, b"\xff" * SEVEN_MB, "image/jpeg")  # a 413 by default
    assert status == 400 and "not a readable image" in body["error"]
    status, body = urllib_post(large_server.url, b"\xff" * (8 * 1024 * 1024 + 1), "image/jpeg")
    assert status == 413 and "the limit is 8,388,608 (SERVING_MAX_PAYLOAD_MB)" in body["error"]


def test_a_request_waits_for_the_body_budget_then_gets_a_503_it_reads_after_sending_its_body(large_server):
    """A chunked upload (its size unknown) holds the whole payload limit, here the whole budget, while
    its forward pass is held at the gate; a 7 MiB body then waits SERVING_DECODE_WAIT_MS and gets a 503."""
    large_server.gate.touch()
    with ThreadPoolExecutor(1) as pool:
        try:
            holder = pool.submit(chunked_post, large_server.port, noise_image(6))
            large_server.wait_entered()
            start = time.monotonic()
            status, body = urllib_post(large_server.url, b"\xff" * SEVEN_MB, "image/jpeg")
            waited = time.monotonic() - start
        finally:
            large_server.gate.unlink()
            large_server.entered.unlink(missing_ok=True)
        assert holder.result(timeout=60) == 200
    assert status == 503 and "SERVING_BODY_BUDGET_MB" in body["error"] and "8,388,608" in body["error"]
    assert waited >= 0.3
    # Given back: the same body now reaches the handler.
    assert urllib_post(large_server.url, b"\xff" * SEVEN_MB, "image/jpeg")[0] == 400


def chunked_post(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST", "/invocations", body=iter([body]), headers={"Content-Type": "image/jpeg"}, encode_chunked=True
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()
