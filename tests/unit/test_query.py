"""scripts/query.py: the boto3 sagemaker-runtime path (botocore Stubber validates the request against
the service model) and the --url path against the real WSGI app on a local port."""
from __future__ import annotations

import functools
import http.server
import io
import json
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import boto3
import numpy as np
import pytest
import torch
from botocore.response import StreamingBody
from PIL import Image

from classifier_host import client as query
from classifier_host.cli import query as query_cli
from classifier import explain
from classifier.serving.app import ServingApp
from classifier.serving.handler import ImageClassifierHandler

from .aws_stubs import REGION, StubbedBotoSession
from .test_handler import CLASSES, model_dir, noise_image  # noqa: F401  (model_dir is a fixture)

PREDICTIONS = [{"label": "corgi", "index": 1, "probability": 0.75}, {"label": "pug", "index": 4, "probability": 0.25}]


@pytest.fixture
def images(tmp_path):
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "a.jpg").write_bytes(noise_image(1))
    (tmp_path / "dogs" / "b.png").write_bytes(noise_image(2, "PNG"))
    (tmp_path / "dogs" / "notes.txt").write_text("not an image, and skipped by suffix")
    (tmp_path / "fake.jpg").write_text("this is text named .jpg")
    return tmp_path


@pytest.fixture
def stubbed(monkeypatch):
    """InvokeEndpoint answered by a Stubber at the network boundary: sagemaker-core's Endpoint.invoke
    makes its client from the boto3 session query.py opens, which hands out this one."""
    boto = StubbedBotoSession()
    monkeypatch.setattr(boto3, "Session", lambda **kw: boto)
    monkeypatch.setenv("AWS_REGION", REGION)
    yield boto.stub("sagemaker-runtime")
    boto.assert_no_pending()


def body(payload: dict) -> StreamingBody:
    data = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def test_endpoint_path_sends_each_image_with_its_type_and_top_k(stubbed, images, capsys):
    for name, content_type in (("a.jpg", "image/jpeg"), ("b.png", "image/png")):
        stubbed.add_response(
            "invoke_endpoint",
            {"Body": body({"predictions": PREDICTIONS}), "ContentType": "application/json"},
            {"EndpointName": "dogs-prod", "Body": (images / "dogs" / name).read_bytes(), "ContentType": content_type,
             "Accept": "application/json", "CustomAttributes": "top_k=2"})
    assert query_cli.main(["--endpoint", "dogs-prod", "--top-k", "2", "--json", str(images / "dogs")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in out] == [str(images / "dogs" / "a.jpg"), str(images / "dogs" / "b.png")]
    assert out[0]["predictions"] == PREDICTIONS


def test_endpoint_model_error_exits_non_zero_with_the_containers_message(stubbed, images, capsys):
    stubbed.add_client_error("invoke_endpoint", service_error_code="ModelError", http_status_code=424,
                             service_message='Received client error (400) from primary: {"error": "image: bad"}',
                             response_meta={"OriginalStatusCode": 400})
    assert query_cli.main(["--endpoint", "dogs-prod", str(images / "dogs" / "a.jpg")]) == 1
    err = capsys.readouterr().err
    assert "ModelError" in err and "image: bad" in err


def test_missing_endpoint_is_reported(stubbed, images, capsys):
    stubbed.add_client_error("invoke_endpoint", service_error_code="ValidationError", http_status_code=400,
                             service_message="Endpoint nope of account 111 not found.")
    assert query_cli.main(["--endpoint", "nope", str(images / "dogs" / "a.jpg")]) == 1
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("source,words", [("missing.jpg", "no such file"), ("fake.jpg", "is not an image")])
def test_bad_inputs_exit_2_before_any_request(stubbed, images, capsys, source, words):
    assert query_cli.main(["--endpoint", "dogs-prod", str(images / source)]) == 2
    assert words in capsys.readouterr().err


# ---- --url against the real app (the container's code, served in-process)
class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve_in_thread(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def app_url(model_dir):  # noqa: F811
    handler = ImageClassifierHandler()
    app = ServingApp(handler, handler.model_fn(str(model_dir)), max_batch_size=1)
    app.start_worker(threads=2)
    deadline = time.monotonic() + 60
    while not app.ready.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    yield serve_in_thread(server)
    server.shutdown()


def test_url_path_prints_a_table(app_url, images, capsys):
    assert query_cli.main(["--url", app_url, "--top-k", "3", str(images / "dogs")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("a.jpg") and out[4].endswith("b.png")
    assert all(line.split()[1] in CLASSES and line.strip().endswith("%") for line in out[1:4])


def test_url_path_downloads_http_images(app_url, images, capsys):
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(images / "dogs")))
    base = serve_in_thread(files)
    try:
        assert query_cli.main(["--url", app_url, "--json", f"{base}/a.jpg"]) == 0
        assert len(json.loads(capsys.readouterr().out)[0]["predictions"]) == 5
        assert query_cli.main(["--url", app_url, f"{base}/missing.jpg"]) == 2
        assert "HTTP 404" in capsys.readouterr().err
    finally:
        files.shutdown()


def test_url_error_answer_and_unreachable_server(app_url, images, capsys, monkeypatch):
    monkeypatch.setattr(query, "content_type_of", lambda source, data: "text/plain")
    assert query_cli.main(["--url", app_url, str(images / "dogs" / "a.jpg")]) == 1
    assert "answered 415" in capsys.readouterr().err
    assert query_cli.main(["--url", "http://127.0.0.1:9", str(images / "dogs" / "a.jpg")]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_url_explain_saves_an_overlay_per_image(app_url, images, tmp_path, capsys):
    out = tmp_path / "explained"
    assert query_cli.main(["--url", app_url, "--explain", str(out), "--json", str(images / "dogs")]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [Path(r["explanation"]).name for r in results] == ["a.gradcam.png", "b.gradcam.png"]
    for result in results:
        with Image.open(result["explanation"]) as picture:
            assert picture.mode == "RGB" and picture.size == (32, 32)  # the model's crop


def test_endpoint_explain_asks_for_it_and_names_files_uniquely(stubbed, images, tmp_path, capsys):
    heat = np.zeros((4, 4), np.uint8)
    heat[1:3, 1:3] = 255
    explanation = explain.record(heat.astype(np.float32), np.zeros((3, 4, 4), np.uint8),
                                 {"crop": 4, "mean": [0, 0, 0], "std": [1, 1, 1]}, "layer4", "corgi", 1)
    for _ in range(2):
        stubbed.add_response(
            "invoke_endpoint",
            {"Body": body({"predictions": PREDICTIONS, "explanations": explanation}), "ContentType": "application/json"},
            {"EndpointName": "dogs-prod", "Body": (images / "dogs" / "a.jpg").read_bytes(), "ContentType": "image/jpeg",
             "Accept": "application/json", "CustomAttributes": "top_k=2,explain=gradcam"})
    a = str(images / "dogs" / "a.jpg")
    assert query_cli.main(["--endpoint", "dogs-prod", "--top-k", "2", "--explain", str(tmp_path / "x"), a, a]) == 0
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["a-2.gradcam.png", "a.gradcam.png"]
    with Image.open(tmp_path / "x" / "a.gradcam.png") as picture:
        pixels = np.asarray(picture).astype(int)
    assert pixels[1, 1, 0] > pixels[0, 0, 0]  # hot (red in jet) where the heatmap is 255, blue where 0
    assert "Grad-CAM: " in capsys.readouterr().out


def test_a_200_that_is_not_json_is_an_error(stubbed, images, capsys):
    html = b"<html>gateway</html>"
    stubbed.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(html), len(html))},
                         {"EndpointName": "dogs-prod", "Body": (images / "dogs" / "a.jpg").read_bytes(),
                          "ContentType": "image/jpeg", "Accept": "application/json", "CustomAttributes": "top_k=5"})
    assert query_cli.main(["--endpoint", "dogs-prod", str(images / "dogs" / "a.jpg")]) == 1
    assert "answered 200 but not with JSON" in capsys.readouterr().err
