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
import subprocess
import sys
from pathlib import Path

from .. import records, settings
from ..sagemaker.access import Access
from ..settings import DEBUGGER_MODES, SettingsError
from . import errors

REPORTS_DIR = settings.ROOT / "reports"
# --debugger project: the project's rules and HTML report over the downloaded job folder, in a process of
# its own (smdebug is slow to import and noisy).
REPORT_COMMAND = [sys.executable, "-m", "classifier_host.cli.report"]


def parse_hp(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"error: --hp expects NAME=VALUE, got {pair!r}")
        values[name.strip()] = value.strip()
    return values


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
    if not args.local:
        return run_cloud(args, hp)
    data = Path(args.data)
    if not data.is_dir():
        return errors.fail(f"--data {data} is not a folder", 2)
    if args.checkpoint_dir and "checkpoint-dir" in hp:
        return errors.fail(
            "give the checkpoint folder once: --checkpoint-dir (local folder) or --hp checkpoint-dir "
            "(a path inside the container), not both",
            2,
        )
    from ..images.names import local_image
    from ..sagemaker import local

    image = args.image or local_image("train")
    try:
        model = local.train_local(
            image,
            data,
            args.output_dir,
            hp,
            gpu=args.gpu,
            job_name=args.job_name,
            instance_count=args.instance_count,
            checkpoint_dir=args.checkpoint_dir,
        )
    except RuntimeError as err:
        return errors.fail(err, 1)
    print(f"model: {model}")
    return 0


# ---- cloud ----


def data_uri(data: str, cfg: settings.Settings, s3_client) -> str:
    """An s3:// URI as given; a local folder is uploaded to s3://BUCKET/PREFIX/data/<folder name>."""
    if data.startswith("s3://"):
        return data.rstrip("/")
    from ..data import s3

    folder = Path(data)
    if not folder.is_dir():
        raise SettingsError(f"--data {data} is neither a folder nor an s3:// URI")
    uri = cfg.s3_uri("data", folder.absolute().name or folder.resolve().name)
    bucket, prefix = s3.parse_s3_uri(uri)
    sent = s3.upload_folder(s3_client, folder, bucket, prefix, kms_key_id=cfg.kms_key_id)
    print(f"data: {uri} ({sent} files uploaded)")
    return uri


def run_cloud(args: argparse.Namespace, hp: dict[str, str]) -> int:
    """Start the job, wait for it with its log, then report. Returns the exit status."""
    try:
        cfg = settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET")
        image = records.cloud_image(args.image, "train")
        if args.max_wait and not args.spot:
            raise SettingsError("--max-wait applies only with --spot")
    except SettingsError as err:
        return errors.fail(err, 2)
    # The SDK takes over a second to import: only once the settings are known good.
    from ..sagemaker import session, training

    if args.debugger == "project":  # the trainer must know the hook's hyperparameters before a job starts
        from classifier.contract import hyperparams

        try:
            hyperparams.parse({**hp, **training.debugger_settings("project", "", cfg.region)[1]})
        except hyperparams.HyperparameterError as err:
            return errors.fail(f"--debugger project: {err}", 2)
    boto = session.boto_session(cfg.region)
    s3 = boto.client("s3")
    job_name = args.job_name or session.new_job_name()
    try:
        spec = training.JobSpec(
            image,
            Access.of(cfg, args.network_isolation),
            cfg.s3_uri("output"),
            hp,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            spot=args.spot,
            max_run=args.max_run,
            max_wait=args.max_wait,
            checkpoint_s3_uri=cfg.s3_uri("checkpoints", job_name) if args.spot else None,
        )
        channel = data_uri(args.data, cfg, s3)
    except (SettingsError, ValueError) as err:
        return errors.fail(err, 2)
    print(f"training job {job_name} on {args.instance_count} x {args.instance_type} ({image})")
    try:
        training.start_training(boto, spec, channel, job_name, debugger=args.debugger)
        description = training.wait_with_logs(boto, job_name)
    except RuntimeError as err:
        return errors.fail(err, 1)
    records.record("training-job", job_name)
    print(f"model: {description['ModelArtifacts']['S3ModelArtifacts']}")
    print(f"job name recorded in {settings.STATE_DIR / 'training-job.txt'} (deploy.py reads it)")
    if args.debugger == "sagemaker":
        report_sagemaker_debugger(description, s3, REPORTS_DIR)
    elif args.debugger == "project":
        report_project_debugger(description, s3, Path(args.output_dir))
    return 0


def report_sagemaker_debugger(description: dict, s3, reports_dir: Path) -> Path | None:
    """Print every rule's status and download the ProfilerReport HTML; returns its local path."""
    from ..data.s3 import parse_s3_uri
    from ..sagemaker.training import rule_statuses

    for name, status, details in rule_statuses(description):
        print(f"rule {name}: {status}" + (f" ({details})" if details else ""))
    # The rules write under <output path>/<job name>/rule-output/.
    output_path = description["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    bucket, prefix = parse_s3_uri(f"{output_path}/{description['TrainingJobName']}/rule-output")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        for o in page.get("Contents", [])
        if o["Key"].endswith("profiler-output/profiler-report.html")
    ]
    if not keys:
        print(f"no ProfilerReport HTML under s3://{bucket}/{prefix}/ yet (the rule may still be running)")
        return None
    reports_dir.mkdir(parents=True, exist_ok=True)
    local = reports_dir / f"{description['TrainingJobName']}-profiler-report.html"
    s3.download_file(bucket, keys[0], str(local))
    print(f"profiler report: {local}")
    return local


def report_project_debugger(description: dict, s3, output_dir: Path) -> Path:
    """Download the job's model.tar.gz and output.tar.gz (the trainer's tensors come back in the latter)
    into <output dir>/<job>/, the layout of a local-mode job, and run the project's rules and report
    over it (REPORT_COMMAND); returns the job folder."""
    from ..data.s3 import parse_s3_uri

    model_uri = description["ModelArtifacts"]["S3ModelArtifacts"]
    job_dir = output_dir / description["TrainingJobName"]
    job_dir.mkdir(parents=True, exist_ok=True)
    for name in ("model.tar.gz", "output.tar.gz"):
        bucket, key = parse_s3_uri(model_uri.rsplit("/", 1)[0] + "/" + name)
        s3.download_file(bucket, key, str(job_dir / name))
    print(f"job output: {job_dir}")
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    out = REPORTS_DIR / f"{description['TrainingJobName']}-report.html"
    done = subprocess.run([*REPORT_COMMAND, str(job_dir), "--out", str(out)], check=False)
    if done.returncode:
        print(f"warning: the report failed (exit status {done.returncode}); the job output is in {job_dir}")
    return job_dir


if __name__ == "__main__":  # python -m classifier_host.cli.train
    sys.exit(main())
