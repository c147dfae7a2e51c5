"""Start a training job on the training image: SageMaker local mode here, SageMaker in the cloud.

    python scripts/train.py --local --data DIR --output-dir DIR [--hp NAME=VALUE ...] [--gpu]

Hyperparameters are the trainer's schema (container_src/classifier/hyperparams.py); they are
checked here before any container starts, and again by the trainer.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from classifier import hyperparams

ROOT = Path(__file__).resolve().parent.parent


def parse_hp(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"error: --hp expects NAME=VALUE, got {pair!r}")
        values[name.strip()] = value.strip()
    return values


def default_train_image() -> str:
    """The Makefile defines the image names; ask it rather than repeating them here."""
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "print-images"], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="run in SageMaker local mode (Docker on this machine)")
    parser.add_argument("--data", required=True, help="data folder (train/ valid/ test/ inside)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where model.tar.gz lands")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="a hyperparameter (repeatable)")
    parser.add_argument("--image", default=os.environ.get("TRAIN_IMAGE"), help="training image (default: make print-images)")
    parser.add_argument("--gpu", action="store_true", help="local_gpu instead of local")
    parser.add_argument("--job-name", help="training job name (default: generated)")
    args = parser.parse_args(argv)

    if not args.local:
        parser.error("only --local is available so far; the cloud path is not built yet")
    hp = parse_hp(args.hp)
    try:
        hyperparams.parse(hp)
    except hyperparams.HyperparameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: --data {data} is not a folder", file=sys.stderr)
        return 2

    import sagemaker_api  # after argument checks: importing the SDK takes seconds

    image = args.image or default_train_image()
    try:
        model = sagemaker_api.train_local(image, data, args.output_dir, hp, gpu=args.gpu, job_name=args.job_name)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"model: {model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
