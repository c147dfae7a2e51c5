"""Start a training job on the training image: SageMaker local mode here, SageMaker in the cloud.

    python scripts/train.py --local --data DIR --output-dir DIR [--hp NAME=VALUE ...] [--gpu]
                            [--hyperparameters-file best_hyperparameters.json]   (from scripts/tune.py)
                            [--instance-count N] [--checkpoint-dir DIR]   (multi-instance; resumable)
    python scripts/train.py --data DIR|s3://... --output-dir DIR [...]   (cloud: see scripts/cloud_train.py)

Hyperparameters are the trainer's schema (container_src/classifier/hyperparams.py); they are
checked here before any container starts, and again by the trainer.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import cloud_train
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


def hyperparameters_from_file(path: Path | None) -> dict[str, str]:
    """The hyperparameters of a tuning result (scripts/tune.py's best_hyperparameters.json)."""
    if path is None:
        return {}
    import tuning_report

    return tuning_report.load_best(path)


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
    parser.add_argument("--hyperparameters-file", type=Path, metavar="FILE",
                        help="best_hyperparameters.json from scripts/tune.py; --hp values override it")
    parser.add_argument("--image", help="training image (default: $TRAIN_IMAGE or make print-images; "
                                        "cloud: the digest `make push` recorded in build/images.json)")
    parser.add_argument("--gpu", action="store_true", help="local_gpu instead of local")
    parser.add_argument("--job-name", help="training job name (default: generated)")
    parser.add_argument("--checkpoint-dir", type=Path, metavar="DIR",
                        help="local mode: keep checkpoints in DIR (the job's `checkpoints` channel); a job started "
                             "again with the same DIR resumes where the last one stopped")
    cloud_train.add_arguments(parser)
    args = parser.parse_args(argv)

    try:
        hp = {**hyperparameters_from_file(args.hyperparameters_file), **parse_hp(args.hp)}
        hyperparams.parse(hp)
    except hyperparams.HyperparameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.local:
        return cloud_train.run(args, hp)
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: --data {data} is not a folder", file=sys.stderr)
        return 2

    import sagemaker_api  # after argument checks: importing the SDK takes seconds

    if args.instance_count < 1:
        print(f"error: --instance-count must be >= 1, got {args.instance_count}", file=sys.stderr)
        return 2
    if args.checkpoint_dir and "checkpoint-dir" in hp:
        print("error: give the checkpoint folder once: --checkpoint-dir (local folder) or --hp checkpoint-dir "
              "(a path inside the container), not both", file=sys.stderr)
        return 2
    image = args.image or os.environ.get("TRAIN_IMAGE") or default_train_image()
    try:
        model = sagemaker_api.train_local(image, data, args.output_dir, hp, gpu=args.gpu, job_name=args.job_name,
                                          instance_count=args.instance_count, checkpoint_dir=args.checkpoint_dir)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"model: {model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
