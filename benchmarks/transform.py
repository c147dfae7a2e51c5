"""Batch Transform against an endpoint queried one image at a time: images per second of each, one run.

    python benchmarks/transform.py [--model-data build/output/model.tar.gz] [--data build/sample-data/test]
                                   [--image SERVE_IMAGE]   (make benchmark-transform)

Both in SageMaker local mode on this machine, over the same images, with the same serving image (the one
deploy.py and transform.py pick for the model): scripts/transform.py --local (its container's start
included, then one request per file from local mode's client), and a local endpoint (deploy_local) that
query.py's client sends the files to one by one (the endpoint's start timed apart, as it stays up). The
transform also runs over a tenth of the files, so its fixed cost (process, model check, container start,
result files) and its rate per additional image can be told apart. Prints each rate and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classifier_host.client import invoke_url, read_source
from classifier_host.images import serving
from classifier_host.images.names import local_image
from classifier_host.sagemaker import local

ROOT = Path(__file__).resolve().parents[1]


def transform(model: Path, data: Path, image: str, output: Path) -> float:
    start = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "transform.py"),
            "--local",
            "--model-data",
            str(model),
            "--input",
            str(data),
            "--output",
            str(output),
            "--image",
            image,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"transform failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def subset(data: Path, fraction: int, into: Path) -> int:
    """Every `fraction`-th file of `data` copied into `into` (same relative paths); how many."""
    files = sorted(p for p in data.rglob("*") if p.is_file())[::fraction]
    for path in files:
        (into / path.relative_to(data)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, into / path.relative_to(data))
    return len(files)


def endpoint(model: Path, data: Path, image: str) -> tuple[float, float, int]:
    """(seconds to InService, seconds for every image one by one, images)."""
    images = read_source(str(data))
    start = time.monotonic()
    served = local.deploy_local(image, f"file://{model}")
    try:
        up = time.monotonic() - start
        start = time.monotonic()
        for one in images:
            invoke_url(served.url, one, top_k=5)
        return up, time.monotonic() - start, len(images)
    finally:
        local.delete_local(served)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-data", type=Path, default=ROOT / "build" / "output" / "model.tar.gz")
    parser.add_argument("--data", type=Path, default=ROOT / "build" / "sample-data" / "test")
    parser.add_argument("--image", help="serving image (default: the one transform.py picks for the model)")
    args = parser.parse_args()
    if not args.model_data.is_file():
        sys.exit(f"{args.model_data}: no model (make demo trains one)")
    image = args.image or local_image(serving.image_role(serving.local_metadata(args.model_data), "local")[0])
    if local.serving_port_in_use():
        sys.exit(f"{local.LOCAL_ENDPOINT_URL} is in use: stop the local endpoint first")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        batch_s = transform(args.model_data, args.data, image, scratch / "out")
        few = subset(args.data, 10, scratch / "few")
        few_s = transform(args.model_data, scratch / "few", image, scratch / "out-few")
    up_s, query_s, count = endpoint(args.model_data, args.data, image)
    marginal = (count - few) / (batch_s - few_s) if batch_s > few_s else float("nan")
    fixed_s = batch_s - count / marginal if marginal == marginal else float("nan")
    print(f"{count} images of {args.data}, image {image}, one run on this machine")
    print(f"{'':38s} {'images/s':>9s} {'seconds':>8s}")
    print(f"{'transform.py --local, all (with start)':38s} {count / batch_s:9.1f} {batch_s:8.1f}")
    print(f"{f'transform.py --local, {few} images':38s} {few / few_s:9.1f} {few_s:8.1f}")
    print(f"{'transform: per additional image':38s} {marginal:9.1f} {'':8s}")
    print(f"{'transform: fixed cost':38s} {'':9s} {fixed_s:8.1f}")
    print(f"{'endpoint, one by one (requests)':38s} {count / query_s:9.1f} {query_s:8.1f}")
    print(f"{'endpoint start (deploy_local)':38s} {'':9s} {up_s:8.1f}")
    print(f"{'endpoint incl. start':38s} {count / (up_s + query_s):9.1f} {up_s + query_s:8.1f}")
    print(
        f"ratios: transform / endpoint incl. start {(up_s + query_s) / batch_s:.2f}x; per additional image "
        f"{marginal / (count / query_s):.2f}x"
    )


if __name__ == "__main__":
    main()
