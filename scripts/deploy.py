"""Deploy a trained model.tar.gz on the serving image.

    python scripts/deploy.py --local --model-data file://build/output/model.tar.gz [--image IMAGE] [--gpu]
        SageMaker local mode: the endpoint answers on http://localhost:8080 until Ctrl-C (or SIGTERM),
        then its container is removed.
    ... --local --model-data ... --query IMAGE|DIR ...
        deploy, run scripts/query.py on those images against the endpoint, tear down (make demo).
    python scripts/deploy.py [--training-job NAME | --model-data s3://...] ...   (cloud: scripts/cloud_deploy.py)
"""
from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloud_deploy
import serving_image

ROOT = Path(__file__).resolve().parent.parent


def default_serve_image(role: str) -> str:
    """The Makefile defines the image names (train, serve, serve-cpu); ask it rather than repeat them."""
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "print-images"], capture_output=True, text=True, check=True)
    return dict(zip(("train", serving_image.SERVE, serving_image.SERVE_CPU), out.stdout.split()))[role]


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def model_data_uri(value: str) -> str:
    """A path or file:// URI of an existing model.tar.gz, as an absolute file:// URI."""
    path = Path(value.removeprefix("file://")).expanduser().resolve()
    if not path.is_file():
        raise SystemExit(f"error: --model-data {value}: no such file (train first: make demo / make train)")
    return f"file://{path}"


def _interrupt(*_):
    raise KeyboardInterrupt


def wait_for_signal() -> None:
    """Block until Ctrl-C or SIGTERM (kill, CI); the caller then tears the endpoint down."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping the endpoint...", flush=True)


def deploy_local(args) -> int:
    import query
    import sagemaker_api

    model_data = model_data_uri(args.model_data)
    image = args.image
    if not image:
        try:
            metadata = serving_image.local_metadata(Path(model_data.removeprefix("file://")))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        role, why = serving_image.image_role(metadata, "local_gpu" if args.gpu else "local")
        image = default_serve_image(role)
        print(f"serving image: {image} ({why}); --image overrides", flush=True)
    if not image_exists(image):
        print(f"error: serving image {image} is not built: run `make build`", file=sys.stderr)
        return 2
    port = int(sagemaker_api.LOCAL_ENDPOINT_URL.rsplit(":", 1)[1])
    if port_in_use(port):
        print(f"error: port {port} is already in use; local mode serves every endpoint there. Stop the other "
              "endpoint (Ctrl-C in its deploy.py, or `docker ps` and `docker stop`) and retry", file=sys.stderr)
        return 2
    print(f"deploying {model_data} on {image} (local mode)...", flush=True)
    start = time.monotonic()
    try:
        predictor = sagemaker_api.deploy_local(image, model_data, gpu=args.gpu, env=dict(args.env))
    except Exception as err:  # local mode raises a bare RuntimeError when /ping never answers
        print(f"error: the local endpoint did not come up: {err} (its container log is above)", file=sys.stderr)
        return 1
    status = 0
    try:
        print(f"endpoint {predictor.endpoint_name} in service after {time.monotonic() - start:.0f}s: "
              f"{sagemaker_api.LOCAL_ENDPOINT_URL} (POST /invocations)", flush=True)
        if args.query:
            status = query.main(["--url", sagemaker_api.LOCAL_ENDPOINT_URL, *args.query])
        else:
            print(f"try: python scripts/query.py --url {sagemaker_api.LOCAL_ENDPOINT_URL} IMAGE...; "
                  "Ctrl-C stops it", flush=True)
            wait_for_signal()
    finally:
        sagemaker_api.delete_local(predictor)
        print("endpoint deleted", flush=True)
    return status


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="SageMaker local mode (Docker on this machine)")
    parser.add_argument("--model-data", help="model.tar.gz: file://PATH or PATH (local, required), s3://... (cloud)")
    parser.add_argument("--image", help="serving image (default: serve-cpu for a model with ONNX exports on a CPU "
                                        "instance, else serve; names from make print-images or build/images.json)")
    parser.add_argument("--gpu", action="store_true", help="local_gpu instead of local")
    parser.add_argument("--env", action="append", type=env_pair, default=[], metavar="NAME=VALUE",
                        help="container environment, e.g. SERVING_MAX_BATCH_SIZE=16 (repeatable)")
    parser.add_argument("--query", nargs="+", metavar="IMAGE|DIR",
                        help="query these images with scripts/query.py once it is up, then tear down")
    cloud_deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.local:
        if not args.model_data:
            parser.error("--local needs --model-data")
        return deploy_local(args)
    return cloud_deploy.run(args)


if __name__ == "__main__":
    sys.exit(main())
