"""scripts/query.py: the SageMaker path (botocore Stubber validates each request against the service model),
real-time and asynchronous (S3 in moto, a fake clock instead of waiting), and the --url path against the real
WSGI app on a local port."""

from __future__ import annotations

import functools
import http.server
import io
import json
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from wsgiref.simple_server import WSGIRequestHandler, make_server

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from moto import mock_aws
from PIL import Image

from classifier.model import explanations
from classifier.serving.app import ServingApp
from classifier.serving.handler import ImageClassifierHandler
from classifier_host import client as query
from classifier_host.cli import query as query_cli
from tests.image_cases import noise_image
from tests.unit.small_model import CLASSES

from .aws_stubs import ACCOUNT, BUCKET, REGION, StubbedBotoSession

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
def aws(monkeypatch):
    """SageMaker answered by Stubbers at the network boundary: sagemaker-core's Endpoint and core client
    make their clients from the boto3 session query.py opens, which hands out these."""
    boto = StubbedBotoSession()
    monkeypatch.setattr(boto3, "Session", lambda **kw: boto)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name in ("S3_BUCKET", "S3_PREFIX", "KMS_KEY_ID", "SAGEMAKER_ROLE_ARN", "SUBNETS", "SECURITY_GROUP_IDS"):
        monkeypatch.delenv(name, raising=False)
    yield boto
    boto.assert_no_pending()


def describe_stubs(aws, endpoint: str, asynchronous: bool = False):
    """What query.py asks first: the endpoint's config, whose AsyncInferenceConfig makes it asynchronous."""
    config = f"{endpoint}-config"  # the endpoint's config is found from the endpoint, not guessed from its name
    sm = aws.stub("sagemaker")
    sm.add_response(
        "describe_endpoint",
        {
            "EndpointName": endpoint,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{endpoint}",
            "EndpointConfigName": config,
            "EndpointStatus": "InService",
            "CreationTime": 0,
            "LastModifiedTime": 0,
        },
        {"EndpointName": endpoint},
    )
    extra = {"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/image-classifier/async/output"}}}
    sm.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": config,
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{config}",
            "CreationTime": 0,
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": endpoint}],
            **(extra if asynchronous else {}),
        },
        {"EndpointConfigName": config},
    )


@pytest.fixture
def stubbed(aws):
    """A real-time endpoint dogs-prod: InvokeEndpoint's Stubber (each test queues its describe_stubs)."""
    return aws.stub("sagemaker-runtime")


def body(payload: dict) -> StreamingBody:
    data = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def test_endpoint_path_sends_each_image_with_its_type_and_top_k(aws, stubbed, images, capsys):
    describe_stubs(aws, "dogs-prod")
    for name, content_type in (("a.jpg", "image/jpeg"), ("b.png", "image/png")):
        stubbed.add_response(
            "invoke_endpoint",
            {"Body": body({"predictions": PREDICTIONS}), "ContentType": "application/json"},
            {
                "EndpointName": "dogs-prod",
                "Body": (images / "dogs" / name).read_bytes(),
                "ContentType": content_type,
                "Accept": "application/json",
                "CustomAttributes": "top_k=2",
            },
        )
    assert query_cli.main(["--endpoint", "dogs-prod", "--top-k", "2", "--json", str(images / "dogs")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in out] == [str(images / "dogs" / "a.jpg"), str(images / "dogs" / "b.png")]
    assert out[0]["predictions"] == PREDICTIONS


def test_endpoint_model_error_exits_non_zero_with_the_containers_message(aws, stubbed, images, capsys):
    describe_stubs(aws, "dogs-prod")
    stubbed.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        http_status_code=424,
        service_message='Received client error (400) from primary: {"error": "image: bad"}',
        response_meta={"OriginalStatusCode": 400},
    )
    assert query_cli.main(["--endpoint", "dogs-prod", str(images / "dogs" / "a.jpg")]) == 1
    err = capsys.readouterr().err
    assert "ModelError" in err and "image: bad" in err


def test_missing_endpoint_is_reported(aws, images, capsys):
    aws.stub("sagemaker").add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        http_status_code=400,
        service_message=f'Could not find endpoint "arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/nope".',
        expected_params={"EndpointName": "nope"},
    )
    assert query_cli.main(["--endpoint", "nope", str(images / "dogs" / "a.jpg")]) == 1
    assert "cannot describe endpoint nope: ValidationException: Could not find endpoint" in capsys.readouterr().err


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
def app_url(model_dir):
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
    files = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        functools.partial(
            type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
            directory=str(images / "dogs"),
        ),
    )
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


def test_endpoint_explain_asks_for_it_and_names_files_uniquely(aws, stubbed, images, tmp_path, capsys):
    describe_stubs(aws, "dogs-prod")
    heat = np.zeros((4, 4), np.uint8)
    heat[1:3, 1:3] = 255
    explanation = explanations.record(
        heat.astype(np.float32),
        np.zeros((3, 4, 4), np.uint8),
        {"crop": 4, "mean": [0, 0, 0], "std": [1, 1, 1]},
        "layer4",
        "corgi",
        1,
    )
    for _ in range(2):
        stubbed.add_response(
            "invoke_endpoint",
            {
                "Body": body({"predictions": PREDICTIONS, "explanations": explanation}),
                "ContentType": "application/json",
            },
            {
                "EndpointName": "dogs-prod",
                "Body": (images / "dogs" / "a.jpg").read_bytes(),
                "ContentType": "image/jpeg",
                "Accept": "application/json",
                "CustomAttributes": "top_k=2,explain=gradcam",
            },
        )
    a = str(images / "dogs" / "a.jpg")
    assert query_cli.main(["--endpoint", "dogs-prod", "--top-k", "2", "--explain", str(tmp_path / "x"), a, a]) == 0
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["a-2.gradcam.png", "a.gradcam.png"]
    with Image.open(tmp_path / "x" / "a.gradcam.png") as picture:
        pixels = np.asarray(picture).astype(int)
    assert pixels[1, 1, 0] > pixels[0, 0, 0]  # hot (red in jet) where the heatmap is 255, blue where 0
    assert "Grad-CAM: " in capsys.readouterr().out


def test_a_200_that_is_not_json_is_an_error(aws, stubbed, images, capsys):
    describe_stubs(aws, "dogs-prod")
    html = b"<html>gateway</html>"
    stubbed.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(html), len(html))},
        {
            "EndpointName": "dogs-prod",
            "Body": (images / "dogs" / "a.jpg").read_bytes(),
            "ContentType": "image/jpeg",
            "Accept": "application/json",
            "CustomAttributes": "top_k=5",
        },
    )
    assert query_cli.main(["--endpoint", "dogs-prod", str(images / "dogs" / "a.jpg")]) == 1
    assert "answered 200 but not with JSON" in capsys.readouterr().err


def test_async_timeout_is_refused_for_a_real_time_endpoint_and_a_url(aws, images, capsys):
    describe_stubs(aws, "dogs-prod")
    a = str(images / "dogs" / "a.jpg")
    assert query_cli.main(["--endpoint", "dogs-prod", "--async-timeout", "60", a]) == 2
    assert "endpoint dogs-prod is real-time, not asynchronous" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        query_cli.main(["--url", "http://127.0.0.1:9", "--async-timeout", "60", a])
    assert "--async-timeout is for SageMaker async endpoints" in capsys.readouterr().err


# ---- an asynchronous endpoint: the request through S3 (moto), the answer polled on a fake clock ----

ASYNC_EP = "dogs-async"
REQUEST_ID = uuid.UUID(int=7)
INPUT_KEY = f"image-classifier/async/input/{REQUEST_ID.hex}/a.jpg"
OUTPUT_KEY = "image-classifier/async/output/inference-1.out"
FAILURE_KEY = "image-classifier/async/failures/inference-1-error.out"


class FakeClock:
    """client.py's `time`: sleep() moves the clock on at once and does what the test scheduled by then
    (an answer appearing in S3), so polling is played without waiting and without threads."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []
        self.scheduled: list[tuple[float, callable]] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        due = [item for item in self.scheduled if item[0] <= self.now]
        for item in due:
            self.scheduled.remove(item)
            item[1]()

    def at(self, when: float, action) -> None:
        self.scheduled.append((when, action))


@pytest.fixture
def async_endpoint(aws, monkeypatch):
    """dogs-async described as asynchronous, S3_BUCKET set, the bucket in moto, a fixed request folder
    and the fake clock; yields (s3 client, sagemaker-runtime stubber, clock)."""
    monkeypatch.setenv("S3_BUCKET", BUCKET)
    monkeypatch.setattr(query, "uuid", SimpleNamespace(uuid4=lambda: REQUEST_ID))
    clock = FakeClock()
    monkeypatch.setattr(query, "time", clock)
    describe_stubs(aws, ASYNC_EP, asynchronous=True)
    with mock_aws():
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield s3, aws.stub("sagemaker-runtime"), clock


def invoke_async_stub(runtime, timeout_s=900, custom="top_k=2"):
    runtime.add_response(
        "invoke_endpoint_async",
        {
            "InferenceId": "inference-1",
            "OutputLocation": f"s3://{BUCKET}/{OUTPUT_KEY}",
            "FailureLocation": f"s3://{BUCKET}/{FAILURE_KEY}",
        },
        {
            "EndpointName": ASYNC_EP,
            "InputLocation": f"s3://{BUCKET}/{INPUT_KEY}",
            "ContentType": "image/jpeg",
            "Accept": "application/json",
            "CustomAttributes": custom,
            "InvocationTimeoutSeconds": timeout_s,
        },
    )


def test_async_endpoint_uploads_invokes_and_prints_the_answer(async_endpoint, images, capsys):
    s3, runtime, clock = async_endpoint
    invoke_async_stub(runtime)
    clock.at(3, lambda: s3.put_object(Bucket=BUCKET, Key=OUTPUT_KEY, Body=json.dumps({"predictions": PREDICTIONS})))
    a = images / "dogs" / "a.jpg"
    assert query_cli.main(["--endpoint", ASYNC_EP, "--top-k", "2", str(a)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [str(a), "  1. corgi   75.00%", "  2. pug     25.00%"]
    request = s3.get_object(Bucket=BUCKET, Key=INPUT_KEY)
    assert request["Body"].read() == a.read_bytes() and request["ContentType"] == "image/jpeg"
    assert clock.sleeps == [1.0, 2.0]  # polled at 0, 1 and 3 s: found at once when it appeared


def test_async_failure_object_is_the_error(async_endpoint, images, capsys):
    s3, runtime, clock = async_endpoint
    invoke_async_stub(runtime, custom="top_k=5")
    clock.at(
        1,
        lambda: s3.put_object(
            Bucket=BUCKET, Key=FAILURE_KEY, Body=json.dumps({"error": "image: cannot identify image file"})
        ),
    )
    assert query_cli.main(["--endpoint", ASYNC_EP, "--json", str(images / "dogs" / "a.jpg")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        f"error: endpoint {ASYNC_EP} failed on {images / 'dogs' / 'a.jpg'}: image: cannot identify image file "
        f"(s3://{BUCKET}/{FAILURE_KEY})"
    ) in captured.err


def test_no_async_answer_within_the_timeout_is_a_clear_error(async_endpoint, images, capsys):
    s3, runtime, clock = async_endpoint
    invoke_async_stub(runtime, timeout_s=30, custom="top_k=5")
    assert query_cli.main(["--endpoint", ASYNC_EP, "--async-timeout", "30", str(images / "dogs" / "a.jpg")]) == 1
    err = capsys.readouterr().err
    assert f"endpoint {ASYNC_EP}: no answer for {images / 'dogs' / 'a.jpg'} within 30 s" in err
    assert f"neither s3://{BUCKET}/{OUTPUT_KEY} nor s3://{BUCKET}/{FAILURE_KEY} exists" in err
    assert clock.now == 30 and clock.sleeps == [1.0, 2.0, 4.0, 8.0, 15.0]  # backs off, stops at the deadline


def test_an_async_endpoint_needs_s3_bucket(aws, images, capsys):
    describe_stubs(aws, ASYNC_EP, asynchronous=True)
    aws.stub("sagemaker-runtime")  # nothing queued: no invocation may happen
    assert query_cli.main(["--endpoint", ASYNC_EP, str(images / "dogs" / "a.jpg")]) == 2
    err = capsys.readouterr().err
    assert f"endpoint {ASYNC_EP} is asynchronous: its requests go through S3" in err and "S3_BUCKET" in err
