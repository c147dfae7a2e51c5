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
import json
import os
import sys
from pathlib import Path

from ..client import QueryError, format_table, invoke_endpoint, invoke_url, read_source, save_overlay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a serving container, e.g. http://localhost:8080")
    target.add_argument("--endpoint", help="a SageMaker endpoint name")
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
        boto = endpoint_session(args.region) if args.endpoint else None
        results, taken = [], set()
        explain = args.explain is not None
        for image in images:
            if boto is not None:
                answer = invoke_endpoint(boto, args.endpoint, image, args.top_k, explain)
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



def endpoint_session(region: str | None):
    """A boto3 session in the endpoint's region; QueryError when there is none to use."""
    if not region:
        raise QueryError("no AWS region for --endpoint: set AWS_REGION or pass --region", 2)
    from ..sagemaker.session import boto_session

    return boto_session(region)


if __name__ == "__main__":  # python -m classifier_host.cli.query
    sys.exit(main())
