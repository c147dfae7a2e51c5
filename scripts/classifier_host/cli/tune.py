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
import datetime
import sys
from pathlib import Path
from typing import Any

from classifier.contract import hyperparams

from .. import records, settings
from ..sagemaker.access import Access
from ..tuning import results
from ..tuning.results import Trial
from . import errors
from .train import parse_hp


def search_space(fixed: dict[str, str]) -> dict[str, Any]:
    """SEARCH_SPACE without the names the user fixed with --hp."""
    return {name: rng for name, rng in hyperparams.SEARCH_SPACE.items() if name not in fixed}


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
    space = search_space(fixed)
    if not space:
        return errors.fail("every tuned hyperparameter is fixed with --hp; nothing left to search", 2)
    if args.local:
        return run_local(args, fixed, space)
    return run_cloud(args, fixed, space)


# --- local -------------------------------------------------------------------------------------


def run_local(args, fixed: dict[str, str], space: dict[str, Any]) -> int:
    data = Path(args.data)
    if not data.is_dir():
        return errors.fail(f"--data {data} is not a folder", 2)
    first = []
    if args.start_from:
        try:
            start = results.load_best(args.start_from)
        except hyperparams.HyperparameterError as err:
            return errors.fail(err, 2)
        first = [{name: hyperparams.BY_NAME[name].parse(value) for name, value in start.items() if name in space}]

    from ..images.names import local_image
    from ..tuning import search  # Optuna and the SDK: after the argument checks

    image = args.image or local_image("train")
    name = datetime.datetime.now(datetime.UTC).strftime("tune-%Y%m%d-%H%M%S")
    output = args.output_dir.resolve()
    trials = search.search(
        search.local_job_runner(image, data, gpu=args.gpu),
        output,
        args.max_jobs,
        fixed=fixed,
        space=space,
        seed=args.seed,
        first_trials=first,
        name=name,
    )
    best = search.write_results(output, trials, fixed, space, name)
    return report(output, best, trials)


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


# --- cloud -------------------------------------------------------------------------------------


def run_cloud(args, fixed: dict[str, str], space: dict[str, Any]) -> int:
    if args.data and not args.data.startswith("s3://"):
        return errors.fail(f"--data {args.data} must be an s3:// prefix for a cloud search (or add --local)", 2)
    try:
        cfg = settings.load() if args.attach else settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET")
        image = None if args.attach else records.cloud_image(args.image, "train")
    except settings.SettingsError as err:
        return errors.fail(err, 2)
    # The SDK takes over a second to import: only once the settings are known good.
    from ..sagemaker import session, training, tuning
    from ..tuning import cloud

    boto = session.boto_session(cfg.region)
    if args.attach:
        job_name = args.attach
        try:
            tuning.describe(boto, job_name)
        except RuntimeError as err:
            return errors.fail(err, 1)
    else:
        job_name = tuning.new_tuning_job_name()
        try:
            spec = training.JobSpec(
                image,
                Access.of(cfg, args.network_isolation),
                cfg.s3_uri("tuning"),
                fixed,
                instance_type=args.instance_type,
                spot=args.spot,
                max_run=int(args.max_run_hours * 3600),
                checkpoint_s3_uri=cfg.s3_uri("checkpoints", job_name) if args.spot else None,
            )
        except ValueError as err:
            return errors.fail(err, 2)
        tuning.start_tuning(boto, spec, space, args.data, job_name, args.max_jobs, args.max_parallel_jobs)
        print(
            f"[tune] started tuning job {job_name} ({args.max_jobs} jobs, {args.max_parallel_jobs} at a time, "
            f"{args.instance_type}{', spot' if args.spot else ''}, image {image})"
        )
        if args.no_wait:
            print(f"later: python scripts/tune.py --attach {job_name} --output-dir {args.output_dir}")
            return 0
    try:
        description = tuning.wait_for_tuning(boto, job_name)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the tuning job goes on. Later: python scripts/tune.py --attach {job_name}")
        return 130
    summaries = tuning.training_job_summaries(boto, job_name)
    output = args.output_dir.resolve()
    best = cloud.write_cloud_results(output, description, summaries)
    return report(output, best, cloud.cloud_trials(summaries))


if __name__ == "__main__":  # python -m classifier_host.cli.tune
    sys.exit(main())
