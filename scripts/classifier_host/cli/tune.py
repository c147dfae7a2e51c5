"""Search hyperparameters over the training image: SageMaker's tuner on AWS, or the same search locally.

    python scripts/tune.py --local --data DIR --max-jobs N --output-dir DIR [--hp NAME=VALUE ...]
    python scripts/tune.py --data s3://BUCKET/PREFIX --max-jobs N --max-parallel-jobs M [--spot] [--no-wait]
    python scripts/tune.py --attach TUNING_JOB_NAME [--output-dir DIR]

The search space is classifier.contract.hyperparams.SEARCH_SPACE; `--hp` fixes a value for every trial
(and takes that name out of the search). Both kinds write, in --output-dir, best_hyperparameters.json
(read by `scripts/train.py --hyperparameters-file`), trials.csv and tuning.png.
Cloud runs read AWS_REGION, SAGEMAKER_ROLE_ARN and S3_BUCKET (classifier_host.settings) from the
environment, and use the training image `make push` recorded (or --image, an ECR URI).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import sys
from pathlib import Path

from classifier.contract import hyperparams

from ..settings import SettingsError
from ..tuning import jobs, results
from ..tuning.results import Trial
from . import errors
from .arguments import parse_hp

# SearchRequest's fields, but the fixed hyperparameters, are the options of the same names.
REQUEST_OPTIONS = [f.name for f in dataclasses.fields(jobs.SearchRequest) if f.name != "fixed"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="local-mode jobs on this machine (Optuna TPE)")
    parser.add_argument("--data", help="data folder (local) or s3:// prefix (cloud) with train/ valid/ test/")
    parser.add_argument("--attach", metavar="JOB_NAME", help="read the results of an existing SageMaker tuning job")
    parser.add_argument("--max-jobs", type=int, default=10, help="training jobs in total (default 10)")
    parser.add_argument("--max-parallel-jobs", type=int, default=2, help="cloud: jobs at once (default 2)")
    parser.add_argument("--output-dir", type=Path, default=Path("build/tuning"), help="where the results land")
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a fixed hyperparameter for every trial (repeatable)",
    )
    parser.add_argument(
        "--image",
        help="training image (local default: $TRAIN_IMAGE or make print-images; cloud: an ECR URI, "
        "default the digest `make push` recorded)",
    )
    parser.add_argument("--gpu", action="store_true", help="local: local_gpu instead of local")
    parser.add_argument("--seed", type=int, default=0, help="local: sampler seed (same seed, same trials)")
    parser.add_argument(
        "--start-from", type=Path, metavar="FILE", help="local: try this best_hyperparameters.json's values first"
    )
    parser.add_argument("--spot", action="store_true", help="cloud: managed spot training")
    parser.add_argument("--instance-type", default="ml.g5.xlarge", help="cloud: training instance type")
    parser.add_argument("--max-run-hours", type=float, default=24, help="cloud: limit per training job")
    parser.add_argument(
        "--network-isolation", action="store_true", help="cloud: every trial's container gets no network access"
    )
    parser.add_argument("--no-wait", action="store_true", help="cloud: start the tuning job and return")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.attach and (args.local or args.data):
        parser.error("--attach reads an existing tuning job: leave out --local and --data")
    if not args.attach and not args.data:
        parser.error("--data is required (a folder with --local, an s3:// prefix otherwise)")
    if args.max_jobs < 1 or args.max_parallel_jobs < 1:
        parser.error("--max-jobs and --max-parallel-jobs must be at least 1")
    fixed = parse_hp(args.hp)
    try:
        hyperparams.parse(fixed)  # every fixed value is checked before any job starts
    except hyperparams.HyperparameterError as err:
        return errors.fail(err, 2)
    space = jobs.search_space(fixed)
    if not space:
        return errors.fail("every tuned hyperparameter is fixed with --hp; nothing left to search", 2)
    request = jobs.SearchRequest(fixed=fixed, **{name: getattr(args, name) for name in REQUEST_OPTIONS})
    try:
        outcome = jobs.tune_local(request, space) if args.local else jobs.tune_cloud(request, space)
    except SettingsError as err:
        return errors.fail(err, 2)
    except jobs.SearchFailed as err:
        return errors.fail(err, 1)
    except jobs.StoppedWaiting as err:
        print(f"\n{err}")
        return 130
    return 0 if outcome is None else report(outcome.output, outcome.best, outcome.trials)


def report(output: Path, best: Path | None, trials: list[Trial]) -> int:
    counts = collections.Counter(t.status for t in trials)
    print(
        f"trials: {output / results.TRIALS_FILE} ("
        + ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
        + ")"
    )
    print(f"plot: {output / results.PLOT_FILE}")
    if best is None:
        return errors.fail(
            "no trial completed, so there are no best hyperparameters; see the failure reasons in trials.csv",
            1,
        )
    print(f"best hyperparameters: {best}")
    return 0


if __name__ == "__main__":  # python -m classifier_host.cli.tune
    sys.exit(main())
