"""The real server (gunicorn master + worker) over real sockets on loopback: limits, the 413 a client
that sends its whole body still reads, liveness with a stuck forward pass. No Docker: the serving
image runs the same code (tests/integration/test_serving.py repeats the attack against it)."""
from __future__ import annotations

import http.client
import json
import time

import pytest
import requests

from tests.image_cases import bomb_png, tiny_pngs_body
from tests.serving_probes import urllib_post

from .live_server import LiveServer
from .test_handler import encode, model_dir, noise_image  # noqa: F401  (model_dir is a fixture)

SEVEN_MB = 7 * 1024 * 1024


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):  # noqa: F811
    live = LiveServer(model_dir, tmp_path_factory.mktemp("live"), env={"SERVING_REQUEST_TIMEOUT_S": "2"})
    yield live
    live.stop()


def test_a_client_that_sends_the_whole_oversized_body_reads_the_413(server):
    status, body = urllib_post(server.url, b"\xff" * SEVEN_MB, "image/jpeg")
    assert status == 413 and "the limit is 6,291,456 (SERVING_MAX_PAYLOAD_MB)" in body["error"]
    # Chunked (no Content-Length): the limit holds while reading, and the answer still arrives.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunks = (b"\xff" * (1024 * 1024) for _ in range(7))
    connection.request("POST", "/invocations", body=chunks, headers={"Content-Type": "image/jpeg"},
                       encode_chunked=True)
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
    assert took < 10, f"refused after {took:.1f}s: the images were decoded first"  # ~0.1 s; bounds only a regression to decoding
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
        answer = requests.post(server.url + "/invocations", data=noise_image(3), timeout=60,
                               headers={"Content-Type": "image/jpeg"})
    finally:
        server.gate.unlink()
    body = answer.json()
    assert answer.status_code == 500 and body["error"] == "internal error"
    assert "injected" not in answer.text and answer.headers["X-Request-Id"] == body["request_id"]
    log = server.log()
    assert f"request {body['request_id']} failed" in log and "RuntimeError: injected failure" in log
    assert urllib_post(server.url, noise_image(3), "image/jpeg")[0] == 200
