"""Search hyperparameters over the training image: SageMaker's tuner on AWS, or the same search locally.

    python scripts/tune.py --local --data DIR --max-jobs N --output-dir DIR [--hp NAME=VALUE ...]
    python scripts/tune.py --data s3://BUCKET/PREFIX --max-jobs N --max-parallel-jobs M [--spot] [--no-wait]
    python scripts/tune.py --attach TUNING_JOB_NAME [--output-dir DIR]

The search space is classifier.hyperparams.SEARCH_SPACE; `--hp` fixes a value for every trial
(and takes that name out of the search). Both kinds write, in --output-dir, best_hyperparameters.json
(read by `scripts/train.py --hyperparameters-file`), trials.csv and tuning.png.
Cloud runs read AWS_REGION, SAGEMAKER_ROLE_ARN and S3_BUCKET (scripts/settings.py) from the
environment, and use the training image `make push` recorded (or --image, an ECR URI).
"""
from __future__ import annotations

import argparse
import collections
import datetime
import os
import sys
from pathlib import Path
from typing import Any

import tuning_report
from classifier import hyperparams
from train import default_train_image, parse_hp
from tuning_report import Trial


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
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                        help="a fixed hyperparameter for every trial (repeatable)")
    parser.add_argument("--image", default=os.environ.get("TRAIN_IMAGE"),
                        help="training image (local default: make print-images; cloud: an ECR URI, "
                             "default the digest `make push` recorded)")
    parser.add_argument("--gpu", action="store_true", help="local: local_gpu instead of local")
    parser.add_argument("--seed", type=int, default=0, help="local: sampler seed (same seed, same trials)")
    parser.add_argument("--start-from", type=Path, metavar="FILE",
                        help="local: try this best_hyperparameters.json's values first")
    parser.add_argument("--spot", action="store_true", help="cloud: managed spot training")
    parser.add_argument("--instance-type", default="ml.g5.xlarge", help="cloud: training instance type")
    parser.add_argument("--max-run-hours", type=float, default=24, help="cloud: limit per training job")
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
        print(f"error: {err}", file=sys.stderr)
        return 2
    space = search_space(fixed)
    if not space:
        print("error: every tuned hyperparameter is fixed with --hp; nothing left to search", file=sys.stderr)
        return 2
    if args.local:
        return run_local(args, fixed, space)
    return run_cloud(args, fixed, space)


# --- local -------------------------------------------------------------------------------------

def run_local(args, fixed: dict[str, str], space: dict[str, Any]) -> int:
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: --data {data} is not a folder", file=sys.stderr)
        return 2
    first = []
    if args.start_from:
        try:
            start = tuning_report.load_best(args.start_from)
        except hyperparams.HyperparameterError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        first = [{name: hyperparams.BY_NAME[name].parse(value) for name, value in start.items() if name in space}]

    import local_tuner  # Optuna and the SDK: after the argument checks

    image = args.image or default_train_image()
    name = datetime.datetime.now(datetime.timezone.utc).strftime("tune-%Y%m%d-%H%M%S")
    output = args.output_dir.resolve()
    trials = local_tuner.search(local_tuner.local_job_runner(image, data, gpu=args.gpu), output, args.max_jobs,
                                fixed=fixed, space=space, seed=args.seed, first_trials=first, name=name)
    best = local_tuner.write_results(output, trials, fixed, space, name)
    return report(output, best, trials)


def report(output: Path, best: Path | None, trials: list[Trial]) -> int:
    counts = collections.Counter(t.status for t in trials)
    print(f"trials: {output / tuning_report.TRIALS_FILE} ("
          + ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items())) + ")")
    print(f"plot: {output / tuning_report.PLOT_FILE}")
    if best is None:
        print("error: no trial completed, so there are no best hyperparameters; see the failure reasons "
              "in trials.csv", file=sys.stderr)
        return 1
    print(f"best hyperparameters: {best}")
    return 0


# --- cloud -------------------------------------------------------------------------------------

def run_cloud(args, fixed: dict[str, str], space: dict[str, Any]) -> int:
    import cloud_train
    import settings

    if args.data and not args.data.startswith("s3://"):
        print(f"error: --data {args.data} must be an s3:// prefix for a cloud search (or add --local)", file=sys.stderr)
        return 2
    try:
        cfg = settings.load() if args.attach else settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET")
        image = None if args.attach else cloud_train.cloud_image(args.image, "train")
    except settings.SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import sagemaker_api  # the SDK takes seconds to import: only once the settings are known good

    session = sagemaker_api.cloud_session(cfg.region)
    if args.attach:
        job_name = args.attach
        try:
            sagemaker_api.attach_tuning(session, job_name)
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    else:
        job_name = sagemaker_api.new_tuning_job_name()
        max_run = int(args.max_run_hours * 3600)
        estimator = sagemaker_api.cloud_estimator(
            session, image, cfg.role_arn, cfg.s3_uri("tuning"), fixed, instance_type=args.instance_type,
            spot=args.spot, max_run=max_run,
            checkpoint_s3_uri=cfg.s3_uri("checkpoints", job_name) if args.spot else None,
            kms_key_id=cfg.kms_key_id, vpc_config=cfg.vpc_config)
        tuner = sagemaker_api.create_tuner(estimator, space, args.max_jobs, args.max_parallel_jobs)
        sagemaker_api.start_tuning(tuner, args.data, job_name)
        print(f"[tune] started tuning job {job_name} ({args.max_jobs} jobs, {args.max_parallel_jobs} at a time, "
              f"{args.instance_type}{', spot' if args.spot else ''}, image {image})")
        if args.no_wait:
            print(f"later: python scripts/tune.py --attach {job_name} --output-dir {args.output_dir}")
            return 0
    try:
        sagemaker_api.wait_for_tuning(session, job_name)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the tuning job goes on. Later: python scripts/tune.py --attach {job_name}")
        return 130
    description, summaries = sagemaker_api.tuning_results(session, job_name)
    output = args.output_dir.resolve()
    best = write_cloud_results(output, description, summaries)
    return report(output, best, cloud_trials(summaries))


def cloud_trials(summaries: list[dict]) -> list[Trial]:
    """SageMaker's training-job summaries as trials, in the order they started."""
    def started(summary):
        return summary.get("TrainingStartTime") or summary.get("CreationTime") or datetime.datetime.min

    trials = []
    for number, summary in enumerate(sorted(summaries, key=started), start=1):
        start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
        objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
        trials.append(Trial(
            number, summary["TrainingJobName"], summary["TrainingJobStatus"],
            float(objective) if objective is not None else None,
            tuning_report.normalize(summary.get("TunedHyperParameters", {}), summary["TrainingJobName"]),
            seconds=(end - start).total_seconds() if start and end else None,
            failure_reason=summary.get("FailureReason", "")))
    return trials


def space_from_ranges(ranges: dict) -> dict[str, Any]:
    """The ParameterRanges of a tuning job (as DescribeHyperParameterTuningJob returns them) as a space."""
    space: dict[str, Any] = {}
    for kind, entries in ranges.items():
        for entry in entries:
            log = entry.get("ScalingType") in ("Logarithmic", "ReverseLogarithmic")
            if kind == "CategoricalParameterRanges":
                space[entry["Name"]] = hyperparams.Categorical(tuple(entry["Values"]))
            elif kind == "IntegerParameterRanges":
                space[entry["Name"]] = hyperparams.Integer(int(entry["MinValue"]), int(entry["MaxValue"]), log)
            else:
                space[entry["Name"]] = hyperparams.Continuous(float(entry["MinValue"]), float(entry["MaxValue"]), log)
    return space


def write_cloud_results(output: Path, description: dict, summaries: list[dict]) -> Path | None:
    """trials.csv, tuning.png and best_hyperparameters.json (SageMaker's own BestTrainingJob)."""
    name = description["HyperParameterTuningJobName"]
    space = space_from_ranges(description["HyperParameterTuningJobConfig"].get("ParameterRanges", {}))
    tuning_report.write_all(output, cloud_trials(summaries), space, f"SageMaker tuning job {name}")
    best = description.get("BestTrainingJob")
    if not best:
        return None
    static = description.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {})
    return tuning_report.write_best(
        output / tuning_report.BEST_FILE, source="sagemaker", tuning_job_name=name,
        best_training_job_name=best["TrainingJobName"],
        objective_value=float(best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]),
        hyperparameters={**static, **best["TunedHyperParameters"]}, tuned=list(best["TunedHyperParameters"]))


if __name__ == "__main__":
    sys.exit(main())
