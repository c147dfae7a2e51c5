"""Classify images with the model behind an endpoint: a serving container's URL (local mode) or a SageMaker
endpoint (InvokeEndpoint through sagemaker-core). What scripts/query.py and `deploy.py --query` use.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
TIMEOUT_S = 60  # SageMaker's own limit for one invocation


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


def content_type_of(source: str, data: bytes) -> str:
    """The image's own format (not its name): image/jpeg, image/png or application/x-image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
    except (UnidentifiedImageError, OSError) as err:
        raise QueryError(f"{source} is not an image ({err})", 2) from None
    return CONTENT_TYPES.get(fmt, "application/x-image")


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
        response = requests.post(endpoint, data=image.data, timeout=TIMEOUT_S, headers={
            "Content-Type": image.content_type, "Accept": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": custom_attributes(top_k, explain)})
    except requests.ConnectionError:
        raise QueryError(f"cannot reach {endpoint}: is the container running (make deploy)?") from None
    except requests.RequestException as err:
        raise QueryError(f"request to {endpoint} failed: {err}") from None
    if response.status_code != 200:
        raise QueryError(f"{endpoint} answered {response.status_code} for {image.source}: "
                         f"{answer_error(response.text)}")
    return parse_answer(response.content, endpoint)


def invoke_endpoint(boto, endpoint: str, image: ImageInput, top_k: int, explain: bool = False) -> dict:
    """One image to a SageMaker endpoint (boto: a boto3 session in the endpoint's region)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .sagemaker import endpoints

    try:
        body = endpoints.invoke(boto, endpoint, image.data, image.content_type,
                                custom_attributes=custom_attributes(top_k, explain))
    except ClientError as err:
        error = err.response.get("Error", {})
        # ModelError: the container answered 4xx/5xx; its message carries the container's own.
        status = err.response.get("OriginalStatusCode")
        detail = f" (container status {status})" if status else ""
        raise QueryError(f"endpoint {endpoint} refused {image.source}: {error.get('Code')}{detail}: "
                         f"{error.get('Message')}") from None
    except BotoCoreError as err:  # no credentials, no region, no network
        raise QueryError(f"cannot reach endpoint {endpoint}: {err}") from None
    return parse_answer(body, f"endpoint {endpoint}")


def save_overlay(folder: Path, source: str, explanation: dict, taken: set[str]) -> Path:
    """The answer's heatmap over its crop as folder/<name>.gradcam.png (names made unique in this run)."""
    from classifier import explain

    from .reports.overlays import overlay

    try:
        heat, crop = (explain.decode_image(explanation[key]) for key in ("heatmap_png", "crop_png"))
    except (KeyError, ValueError, OSError) as err:
        raise QueryError(f"the explanation for {source} is not two base64 PNGs ({err})") from None
    stem = Path(source.split("?")[0].rstrip("/")).stem or "image"
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    path = folder / f"{name}.gradcam.png"
    overlay(crop, heat).save(path)
    return path


def format_table(source: str, predictions: list[dict]) -> str:
    width = max(len(p["label"]) for p in predictions)
    lines = [source]
    lines += [f"  {rank}. {p['label']:<{width}}  {p['probability']:7.2%}" for rank, p in enumerate(predictions, 1)]
    return "\n".join(lines)
