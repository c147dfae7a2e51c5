"""Start a training job on the training image: SageMaker local mode here, SageMaker in the cloud.

    python scripts/train.py --local --data DIR --output-dir DIR [--hp NAME=VALUE ...] [--gpu]
                            [--hyperparameters-file best_hyperparameters.json]   (from scripts/tune.py)
                            [--instance-count N] [--checkpoint-dir DIR]   (multi-instance; resumable)
    python scripts/train.py --data DIR|s3://... --output-dir DIR [--hp ...] [--instance-type ml.g5.xlarge]
        [--instance-count 1] [--spot] [--max-run S] [--max-wait S] [--network-isolation]
        [--debugger sagemaker|project|off]                                      (cloud)

Hyperparameters are the trainer's schema (container_src/classifier/contract/hyperparams.py); they are checked here
before any container starts, and again by the trainer. The cloud reads AWS_REGION, SAGEMAKER_ROLE_ARN,
S3_BUCKET (and the optional settings of classifier_host.settings) and the image digests `make push` wrote
(build/images.json). A local data folder is uploaded first (files already in S3 with the same size and
checksum are skipped). After a cloud job: the model's S3 URI, the job name recorded for deploy.py, and
the debugging results of the chosen --debugger mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .. import training_jobs
from ..settings import DEBUGGER_MODES, SettingsError
from . import errors
from .arguments import parse_hp

# TrainingRequest's fields, but the hyperparameters, are the options of the same names.
REQUEST_OPTIONS = [f.name for f in dataclasses.fields(training_jobs.TrainingRequest) if f.name != "hyperparameters"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="run in SageMaker local mode (Docker on this machine)")
    parser.add_argument("--data", required=True, help="data folder (train/ valid/ test/ inside), or s3:// (cloud)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where model.tar.gz lands")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="a hyperparameter (repeatable)")
    parser.add_argument(
        "--hyperparameters-file",
        type=Path,
        metavar="FILE",
        help="best_hyperparameters.json from scripts/tune.py; --hp values override it",
    )
    parser.add_argument(
        "--image",
        help="training image (default: $TRAIN_IMAGE or make print-images; "
        "cloud: the digest `make push` recorded in build/images.json)",
    )
    parser.add_argument("--gpu", action="store_true", help="local_gpu instead of local")
    parser.add_argument("--job-name", help="training job name (default: generated)")
    parser.add_argument("--instance-count", type=int, default=1, help="instances (default 1)")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        metavar="DIR",
        help="local mode: keep checkpoints in DIR (the job's `checkpoints` channel); a job started "
        "again with the same DIR resumes where the last one stopped",
    )
    group = parser.add_argument_group("cloud (without --local; AWS settings from the environment)")
    group.add_argument("--instance-type", default="ml.g5.xlarge", help="training instance (default ml.g5.xlarge)")
    group.add_argument("--spot", action="store_true", help="managed spot training, checkpoints in S3")
    group.add_argument("--max-run", type=int, default=4 * 3600, help="seconds the job may train (default 4 h)")
    group.add_argument(
        "--max-wait", type=int, help="with --spot: seconds to wait for capacity + train (default 2 x max-run)"
    )
    group.add_argument("--network-isolation", action="store_true", help="the container gets no network access")
    group.add_argument(
        "--debugger",
        choices=DEBUGGER_MODES,
        default="sagemaker",
        help="sagemaker: SageMaker Debugger rules + profiler; project: the project's own hook "
        "and rules (accounts without Debugger); off (default sagemaker)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from classifier.contract import hyperparams

    from ..tuning import results

    try:
        hp = {
            **(results.load_best(args.hyperparameters_file) if args.hyperparameters_file else {}),
            **parse_hp(args.hp),
        }
        hyperparams.parse(hp)
    except hyperparams.HyperparameterError as err:
        return errors.fail(err, 2)
    if args.instance_count < 1:
        return errors.fail(f"--instance-count must be >= 1, got {args.instance_count}", 2)
    request = training_jobs.TrainingRequest(
        hyperparameters=hp, **{name: getattr(args, name) for name in REQUEST_OPTIONS}
    )
    try:
        if args.local:
            print(f"model: {training_jobs.train_local(request)}")
        else:
            training_jobs.train_cloud(request)
    except SettingsError as err:
        return errors.fail(err, 2)
    except training_jobs.TrainingFailed as err:
        return errors.fail(err, 1)
    return 0


if __name__ == "__main__":  # python -m classifier_host.cli.train
    sys.exit(main())
