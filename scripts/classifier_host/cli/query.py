"""Send images to the classifier and print the breeds ranked with probabilities.

    python scripts/query.py --url http://localhost:8080 IMAGE|DIR|URL ...      (a local container)
    python scripts/query.py --endpoint NAME [--region R] IMAGE|DIR|URL ...     (a SageMaker endpoint)

Options: --top-k K (default 5), --json (machine-readable), --explain DIR (ask for Grad-CAM and save, per
image, DIR/<name>.gradcam.png: the crop the model saw with the heat of its top class drawn over it).
An asynchronous endpoint (deploy.py --async) is recognised by its endpoint config: each image is uploaded
to s3://S3_BUCKET/S3_PREFIX/async/input/, queued, and its answer read back from S3 once it appears
(--async-timeout, default 900 s: how long SageMaker may work on it and how long this waits).
Exits non-zero with a message naming the problem for a missing file, a non-image, an unreachable
endpoint, an error answer or an async answer that did not come in time.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .. import settings
from ..client import (
    AsyncTarget,
    ImageInput,
    QueryError,
    format_table,
    invoke_endpoint,
    invoke_endpoint_async,
    invoke_url,
    is_async_endpoint,
    read_source,
    save_overlay,
)
from ..sagemaker.endpoints import ASYNC_INVOCATION_TIMEOUT_S, ASYNC_MAX_INVOCATION_TIMEOUT_S
from . import errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a serving container, e.g. http://localhost:8080")
    target.add_argument("--endpoint", help="a SageMaker endpoint name")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"), help="AWS region (default $AWS_REGION)")
    parser.add_argument("--top-k", type=int, default=5, help="how many classes to show per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="DIR",
        help="ask for Grad-CAM explanations and save each as DIR/<name>.gradcam.png",
    )
    parser.add_argument(
        "--async-timeout",
        type=int,
        metavar="SECONDS",
        help="an async endpoint: how long SageMaker may work on a request and this waits for its "
        f"answer (default {ASYNC_INVOCATION_TIMEOUT_S}, at most {ASYNC_MAX_INVOCATION_TIMEOUT_S})",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE|DIR|URL")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")
    if args.async_timeout is not None:
        if args.url:
            parser.error("--async-timeout is for SageMaker async endpoints (--endpoint), not --url")
        if not 1 <= args.async_timeout <= ASYNC_MAX_INVOCATION_TIMEOUT_S:
            parser.error(
                f"--async-timeout must be 1 to {ASYNC_MAX_INVOCATION_TIMEOUT_S} "
                f"(InvokeEndpointAsync's limit), got {args.async_timeout}"
            )

    try:
        images = [image for source in args.inputs for image in read_source(source)]
        if args.explain:
            try:
                args.explain.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise QueryError(f"--explain {args.explain}: cannot create it ({err})", 2) from None
        results, taken = [], set()
        explain = args.explain is not None
        send = sender(args, explain)
        for image in images:
            answer = send(image)
            result = {"source": image.source, "predictions": answer["predictions"]}
            if explain:
                if "explanations" not in answer:
                    raise QueryError(
                        f"the answer for {image.source} has no explanation: the server predates "
                        "explain=gradcam (rebuild and redeploy the serving image)"
                    )
                result["explanation"] = str(save_overlay(args.explain, image.source, answer["explanations"], taken))
            results.append(result)
            if not args.json:
                print(format_table(image.source, answer["predictions"]), flush=True)
                if explain:
                    print(f"  Grad-CAM: {result['explanation']}", flush=True)
    except QueryError as err:
        return errors.fail(err, err.exit_code)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def sender(args: argparse.Namespace, explain: bool) -> Callable[[ImageInput], dict]:
    """How each image is sent: to the URL, or to the endpoint as its kind wants (found by describing it)."""
    if args.url:
        return functools.partial(invoke_url, args.url, top_k=args.top_k, explain=explain)
    boto = endpoint_session(args.region)
    if not is_async_endpoint(boto, args.endpoint):
        if args.async_timeout is not None:
            raise QueryError(
                f"--async-timeout: endpoint {args.endpoint} is real-time, not asynchronous "
                "(SageMaker answers it within 60 s)",
                2,
            )
        return functools.partial(invoke_endpoint, boto, args.endpoint, top_k=args.top_k, explain=explain)
    target = async_target(args.endpoint, args.region, args.async_timeout or ASYNC_INVOCATION_TIMEOUT_S)
    return functools.partial(
        invoke_endpoint_async, boto, args.endpoint, top_k=args.top_k, explain=explain, target=target
    )


def async_target(endpoint: str, region: str, timeout_s: int) -> AsyncTarget:
    """Where an async endpoint's requests go: the project's S3 prefix (S3_BUCKET is required for it)."""
    try:
        cfg = settings.load("S3_BUCKET", env={**os.environ, "AWS_REGION": region})
    except settings.SettingsError as err:
        raise QueryError(f"endpoint {endpoint} is asynchronous: its requests go through S3. {err}", 2) from None
    return AsyncTarget(cfg.s3_uri(settings.ASYNC_INPUT), timeout_s, cfg.kms_key_id)


def endpoint_session(region: str | None):
    """A boto3 session in the endpoint's region; QueryError when there is none to use."""
    if not region:
        raise QueryError("no AWS region for --endpoint: set AWS_REGION or pass --region", 2)
    from ..sagemaker.session import boto_session

    return boto_session(region)


if __name__ == "__main__":  # python -m classifier_host.cli.query
    sys.exit(main())
