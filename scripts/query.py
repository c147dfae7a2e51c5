"""Send images to the classifier and print the breeds ranked with probabilities.

    python scripts/query.py --url http://localhost:8080 IMAGE|DIR|URL ...      (a local container)
    python scripts/query.py --endpoint NAME [--region R] IMAGE|DIR|URL ...     (a SageMaker endpoint)

Options: --top-k K (default 5), --json (machine-readable), --explain DIR (ask for Grad-CAM and save, per
image, DIR/<name>.gradcam.png: the crop the model saw with the heat of its top class drawn over it).
Exits non-zero with a message naming the problem for a missing file, a non-image, an unreachable
endpoint or an error answer.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
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


def runtime_client(region: str | None):
    """boto3's sagemaker-runtime client (tests replace it with a Stubber-wrapped one)."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.client("sagemaker-runtime", region_name=region)
    except BotoCoreError as err:  # NoRegionError above all
        raise QueryError(f"cannot create the sagemaker-runtime client: {err} (set AWS_REGION or --region)") from None


def invoke_endpoint(client, endpoint: str, image: ImageInput, top_k: int, explain: bool = False) -> dict:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.invoke_endpoint(EndpointName=endpoint, Body=image.data, ContentType=image.content_type,
                                          Accept="application/json",
                                          CustomAttributes=custom_attributes(top_k, explain))
    except ClientError as err:
        error = err.response.get("Error", {})
        # ModelError: the container answered 4xx/5xx; its message carries the container's own.
        status = err.response.get("OriginalStatusCode")
        detail = f" (container status {status})" if status else ""
        raise QueryError(f"endpoint {endpoint} refused {image.source}: {error.get('Code')}{detail}: "
                         f"{error.get('Message')}") from None
    except BotoCoreError as err:  # no credentials, no region, no network
        raise QueryError(f"cannot reach endpoint {endpoint}: {err}") from None
    return parse_answer(response["Body"].read(), f"endpoint {endpoint}")


def save_overlay(folder: Path, source: str, explanation: dict, taken: set[str]) -> Path:
    """The answer's heatmap over its crop as folder/<name>.gradcam.png (names made unique in this run)."""
    from classifier import explain
    from overlays import overlay

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a serving container, e.g. http://localhost:8080")
    target.add_argument("--endpoint", help="a SageMaker endpoint name (boto3 sagemaker-runtime)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"), help="AWS region (default $AWS_REGION)")
    parser.add_argument("--top-k", type=int, default=5, help="how many classes to show per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--explain", type=Path, metavar="DIR",
                        help="ask for Grad-CAM explanations and save each as DIR/<name>.gradcam.png")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE|DIR|URL")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")

    try:
        images = [image for source in args.inputs for image in read_source(source)]
        if args.explain:
            try:
                args.explain.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise QueryError(f"--explain {args.explain}: cannot create it ({err})", 2) from None
        client = runtime_client(args.region) if args.endpoint else None
        results, taken = [], set()
        explain = args.explain is not None
        for image in images:
            if client is not None:
                answer = invoke_endpoint(client, args.endpoint, image, args.top_k, explain)
            else:
                answer = invoke_url(args.url, image, args.top_k, explain)
            result = {"source": image.source, "predictions": answer["predictions"]}
            if explain:
                if "explanations" not in answer:
                    raise QueryError(f"the answer for {image.source} has no explanation: the server predates "
                                     "explain=gradcam (rebuild and redeploy the serving image)")
                result["explanation"] = str(save_overlay(args.explain, image.source, answer["explanations"], taken))
            results.append(result)
            if not args.json:
                print(format_table(image.source, answer["predictions"]), flush=True)
                if explain:
                    print(f"  Grad-CAM: {result['explanation']}", flush=True)
    except QueryError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
