"""Classify images with the model behind an endpoint: a serving container's URL (local mode) or a SageMaker
endpoint, real-time (InvokeEndpoint) or asynchronous (the request uploaded to S3, InvokeEndpointAsync, the
answer read back from S3), through sagemaker-core. What scripts/query.py and `deploy.py --query` use.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image, UnidentifiedImageError

from classifier.model import decoding

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif"}
TIMEOUT_S = 60  # SageMaker's own limit for one invocation
# Polling an async endpoint's answer: soon at first (a warm endpoint answers in about a second), then less
# often (one scaled to zero takes minutes to start an instance).
FIRST_POLL_S = 1.0
MAX_POLL_S = 15.0


class QueryError(Exception):
    """Something the user must fix or know; printed as `error: ...`, exit status 1 (2 for bad input)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ImageInput:
    source: str
    data: bytes
    content_type: str


@dataclass(frozen=True)
class AsyncTarget:
    """Where an async endpoint's requests are uploaded (s3://BUCKET/PREFIX/async/input), how long SageMaker
    may work on one and the caller waits for its answer, and the KMS key of the uploads (optional)."""

    input_s3: str
    timeout_s: int
    kms_key_id: str | None = None


def content_type_of(source: str, data: bytes) -> str:
    """The image's own format (not its name) as the server names it (image/jpeg, image/webp...), or
    application/x-image for a format the server would refuse by name."""
    decoding.register_heif()
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
    except (UnidentifiedImageError, OSError) as err:
        raise QueryError(f"{source} is not an image ({err})", 2) from None
    return decoding.MEDIA_TYPES.get(fmt, ("application/x-image",))[0]


def read_source(source: str) -> list[ImageInput]:
    """A file, every image under a directory (sorted), or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        try:
            response = requests.get(source, timeout=TIMEOUT_S)
        except requests.RequestException as err:
            raise QueryError(f"cannot download {source}: {err}", 2) from None
        if response.status_code != 200:
            raise QueryError(f"cannot download {source}: HTTP {response.status_code}", 2)
        return [ImageInput(source, response.content, content_type_of(source, response.content))]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise QueryError(f"{source} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})", 2)
        return [image for p in files for image in read_source(str(p))]
    if not path.is_file():
        raise QueryError(f"{source}: no such file or directory", 2)
    data = path.read_bytes()
    return [ImageInput(source, data, content_type_of(source, data))]


def answer_error(text: str) -> str:
    """The server's JSON `error` message, or the start of whatever it sent."""
    try:
        return json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return text.strip()[:500] or "(empty body)"


def custom_attributes(top_k: int, explain: bool) -> str:
    return f"top_k={top_k}" + (",explain=gradcam" if explain else "")


def parse_answer(body: bytes | str, where: str) -> dict:
    """A 200's JSON body; anything else (a proxy's HTML page, a truncated body) is an error, not a crash."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise QueryError(f"{where} answered 200 but not with JSON: {str(body)[:200]!r}") from None
    if not isinstance(answer, dict) or "predictions" not in answer:
        raise QueryError(f"{where} answered 200 without predictions: {str(answer)[:200]}")
    return answer


def invoke_url(url: str, image: ImageInput, top_k: int, explain: bool = False) -> dict:
    endpoint = url.rstrip("/") + "/invocations"
    try:
        response = requests.post(
            endpoint,
            data=image.data,
            timeout=TIMEOUT_S,
            headers={
                "Content-Type": image.content_type,
                "Accept": "application/json",
                "X-Amzn-SageMaker-Custom-Attributes": custom_attributes(top_k, explain),
            },
        )
    except requests.ConnectionError:
        raise QueryError(f"cannot reach {endpoint}: is the container running (make deploy)?") from None
    except requests.RequestException as err:
        raise QueryError(f"request to {endpoint} failed: {err}") from None
    if response.status_code != 200:
        raise QueryError(
            f"{endpoint} answered {response.status_code} for {image.source}: {answer_error(response.text)}"
        )
    return parse_answer(response.content, endpoint)


@contextmanager
def endpoint_errors(endpoint: str, source: str):
    """botocore's errors of one invocation as QueryErrors naming the endpoint and the image."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as err:
        error = err.response.get("Error", {})
        # ModelError: the container answered 4xx/5xx; its message carries the container's own.
        status = err.response.get("OriginalStatusCode")
        detail = f" (container status {status})" if status else ""
        raise QueryError(
            f"endpoint {endpoint} refused {source}: {error.get('Code')}{detail}: {error.get('Message')}"
        ) from None
    except BotoCoreError as err:  # no credentials, no region, no network
        raise QueryError(f"cannot reach endpoint {endpoint}: {err}") from None


@contextmanager
def aws_errors(what: str):
    """Any other AWS call's errors as QueryErrors saying what was being done."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as err:
        error = err.response.get("Error", {})
        raise QueryError(f"{what}: {error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as err:
        raise QueryError(f"{what}: {err}") from None


def invoke_endpoint(boto, endpoint: str, image: ImageInput, top_k: int, explain: bool = False) -> dict:
    """One image to a SageMaker endpoint (boto: a boto3 session in the endpoint's region)."""
    from .sagemaker import endpoints

    with endpoint_errors(endpoint, image.source):
        body = endpoints.invoke(
            boto, endpoint, image.data, image.content_type, custom_attributes=custom_attributes(top_k, explain)
        )
    return parse_answer(body, f"endpoint {endpoint}")


def is_async_endpoint(boto, endpoint: str) -> bool:
    """Whether the endpoint is asynchronous (it refuses InvokeEndpoint: requests go through S3)."""
    from .sagemaker import endpoints

    with aws_errors(f"cannot describe endpoint {endpoint}"):
        return endpoints.is_async(boto, endpoint)


def invoke_endpoint_async(
    boto, endpoint: str, image: ImageInput, top_k: int, explain: bool, target: AsyncTarget
) -> dict:
    """One image to an async endpoint: upload it, queue it, wait for its answer or its failure in S3."""
    from .sagemaker import endpoints

    s3 = boto.client("s3")
    request = upload_request(s3, target, image)
    with endpoint_errors(endpoint, image.source):
        output, failure = endpoints.invoke_async(
            boto,
            endpoint,
            request,
            image.content_type,
            target.timeout_s,
            custom_attributes=custom_attributes(top_k, explain),
        )
    found = wait_for_either(s3, (output, failure), target.timeout_s)
    if found is None:
        raise QueryError(
            f"endpoint {endpoint}: no answer for {image.source} within {target.timeout_s} s: neither "
            f"{output} nor {failure} exists. The request may still be queued (an endpoint scaled to "
            "zero takes minutes to start an instance): look there later, or wait longer with "
            "--async-timeout"
        )
    body = read_object(s3, found)
    if found == failure:
        raise QueryError(
            f"endpoint {endpoint} failed on {image.source}: {answer_error(body.decode('utf-8', 'replace'))} ({failure})"
        )
    return parse_answer(body, f"endpoint {endpoint}")


def upload_request(s3, target: AsyncTarget, image: ImageInput) -> str:
    """The image as s3://.../async/input/<uuid>/<file name>: a folder per request, so two images of the
    same name never overwrite each other's request while it waits in the queue."""
    from .data.s3 import parse_s3_uri

    bucket, prefix = parse_s3_uri(target.input_s3)
    key = f"{prefix}/{uuid.uuid4().hex}/{object_name(image.source)}"
    encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": target.kms_key_id} if target.kms_key_id else {}
    with aws_errors(f"cannot upload {image.source} to s3://{bucket}/{key}"):
        s3.put_object(Bucket=bucket, Key=key, Body=image.data, ContentType=image.content_type, **encryption)
    return f"s3://{bucket}/{key}"


def wait_for_either(s3, locations: tuple[str, ...], timeout_s: float) -> str | None:
    """The first of `locations` that exists, polled until timeout_s has passed; None when none appeared."""
    deadline = time.monotonic() + timeout_s
    delay = FIRST_POLL_S
    while True:
        for location in locations:
            if object_exists(s3, location):
                return location
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 2, MAX_POLL_S)


def object_exists(s3, location: str) -> bool:
    from botocore.exceptions import ClientError

    from .data.s3 import parse_s3_uri

    bucket, key = parse_s3_uri(location)
    with aws_errors(f"cannot look for {location}"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return True


def read_object(s3, location: str) -> bytes:
    from .data.s3 import parse_s3_uri

    bucket, key = parse_s3_uri(location)
    with aws_errors(f"cannot read {location}"):
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def save_overlay(folder: Path, source: str, explanation: dict, taken: set[str]) -> Path:
    """The answer's heatmap over its crop as folder/<name>.gradcam.png (names made unique in this run)."""
    from classifier.model import explanations

    from .reports.overlays import overlay

    try:
        heat, crop = (explanations.decode_image(explanation[key]) for key in ("heatmap_png", "crop_png"))
    except (KeyError, ValueError, OSError) as err:
        raise QueryError(f"the explanation for {source} is not two base64 PNGs ({err})") from None
    stem = Path(source_name(source)).stem or "image"
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    path = folder / f"{name}.gradcam.png"
    overlay(crop, heat).save(path)
    return path


def source_name(source: str) -> str:
    """The last part of an image's path or URL, without a URL's query."""
    return Path(source.split("?")[0].rstrip("/")).name


def object_name(source: str) -> str:
    """source_name in characters that need no escaping in an S3 URI ("image" when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", source_name(source)).lstrip(".") or "image"


def format_table(source: str, predictions: list[dict]) -> str:
    width = max(len(p["label"]) for p in predictions)
    lines = [source]
    lines += [f"  {rank}. {p['label']:<{width}}  {p['probability']:7.2%}" for rank, p in enumerate(predictions, 1)]
    return "\n".join(lines)
