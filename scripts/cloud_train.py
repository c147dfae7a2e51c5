"""The cloud half of scripts/train.py: a SageMaker training job on the pushed training image.

    python scripts/train.py --data DIR|s3://... --output-dir DIR [--hp ...] [--hyperparameters-file F]
        [--instance-type ml.g5.xlarge] [--instance-count 1] [--spot] [--max-run S] [--max-wait S]
        [--network-isolation] [--debugger sagemaker|project|off]

Reads AWS_REGION, SAGEMAKER_ROLE_ARN, S3_BUCKET (and the optional settings of settings.py) and the
image digests `make push` wrote (build/images.json). A local data folder is uploaded first (files
already in S3 with the same size and checksum are skipped). After the job: the model's S3 URI, the job
name recorded for deploy.py, and the debugging results of the chosen --debugger mode.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import settings
from settings import DEBUGGER_MODES, SettingsError, cloud_image

REPORTS_DIR = settings.ROOT / "reports"
# --debugger project: the project's rules and HTML report over a job folder (issue 5).
REPORT_SCRIPT = settings.ROOT / "scripts" / "report.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cloud (without --local; AWS settings from the environment)")
    group.add_argument("--instance-type", default="ml.g5.xlarge", help="training instance (default ml.g5.xlarge)")
    group.add_argument("--instance-count", type=int, default=1, help="instances (default 1)")
    group.add_argument("--spot", action="store_true", help="managed spot training, checkpoints in S3")
    group.add_argument("--max-run", type=int, default=4 * 3600, help="seconds the job may train (default 4 h)")
    group.add_argument("--max-wait", type=int, help="with --spot: seconds to wait for capacity + train (default 2 x max-run)")
    group.add_argument("--network-isolation", action="store_true", help="the container gets no network access")
    group.add_argument("--debugger", choices=DEBUGGER_MODES, default="sagemaker",
                       help="sagemaker: SageMaker Debugger rules + profiler; project: the project's own hook "
                            "and rules (accounts without Debugger); off (default sagemaker)")


def data_uri(data: str, cfg: settings.Settings, s3_client) -> str:
    """An s3:// URI as given; a local folder is uploaded to s3://BUCKET/PREFIX/data/<folder name>."""
    if data.startswith("s3://"):
        return data.rstrip("/")
    import download_dataset

    folder = Path(data)
    if not folder.is_dir():
        raise SettingsError(f"--data {data} is neither a folder nor an s3:// URI")
    uri = cfg.s3_uri("data", folder.absolute().name or folder.resolve().name)
    bucket, prefix = download_dataset.parse_s3_uri(uri)
    sent = download_dataset.upload_folder(s3_client, folder, bucket, prefix, kms_key_id=cfg.kms_key_id)
    print(f"data: {uri} ({sent} files uploaded)")
    return uri


def run(args: argparse.Namespace, hp: dict[str, str], boto_session=None) -> int:
    """Start the job, wait for it with its log, then report. Returns the exit status."""
    try:
        cfg = settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET")
        image = cloud_image(args.image, "train")
        if args.max_wait and not args.spot:
            raise SettingsError("--max-wait applies only with --spot")
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import boto3

    import sagemaker_api  # the SDK takes seconds to import: only once the settings are known good

    if args.debugger == "project":  # the trainer must know the hook's hyperparameters before a job starts
        from classifier import hyperparams
        try:
            hyperparams.parse({**hp, **sagemaker_api.debugger_settings("project", "")[1]})
        except hyperparams.HyperparameterError as err:
            print(f"error: --debugger project: {err}", file=sys.stderr)
            return 2
    boto_session = boto_session or boto3.Session(region_name=cfg.region)
    session = sagemaker_api.cloud_session(cfg.region, boto_session=boto_session)
    s3 = boto_session.client("s3")
    try:
        channel = data_uri(args.data, cfg, s3)
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    job_name = args.job_name or sagemaker_api.new_job_name()
    estimator = sagemaker_api.cloud_estimator(
        session, image, cfg.role_arn, cfg.s3_uri("output"), hp,
        instance_type=args.instance_type, instance_count=args.instance_count,
        spot=args.spot, max_run=args.max_run, max_wait=args.max_wait,
        checkpoint_s3_uri=cfg.s3_uri("checkpoints", job_name) if args.spot else None,
        network_isolation=args.network_isolation, kms_key_id=cfg.kms_key_id,
        vpc_config=cfg.vpc_config, debugger=args.debugger)
    print(f"training job {job_name} on {args.instance_count} x {args.instance_type} ({image})")
    try:
        description = sagemaker_api.train_cloud(estimator, channel, job_name=job_name)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    settings.record("training-job", job_name)
    print(f"model: {description['ModelArtifacts']['S3ModelArtifacts']}")
    print(f"job name recorded in {settings.STATE_DIR / 'training-job.txt'} (deploy.py reads it)")
    if args.debugger == "sagemaker":
        report_sagemaker_debugger(description, s3, REPORTS_DIR)
    elif args.debugger == "project":
        report_project_debugger(description, s3, Path(args.output_dir))
    return 0


def report_sagemaker_debugger(description: dict, s3, reports_dir: Path) -> Path | None:
    """Print every rule's status and download the ProfilerReport HTML; returns its local path."""
    import download_dataset
    import sagemaker_api

    for name, status, details in sagemaker_api.rule_statuses(description):
        print(f"rule {name}: {status}" + (f" ({details})" if details else ""))
    # The rules write under <output path>/<job name>/rule-output/ (the SDK's rule_output_path).
    output_path = description["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    bucket, prefix = download_dataset.parse_s3_uri(f"{output_path}/{description['TrainingJobName']}/rule-output")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
            for o in page.get("Contents", []) if o["Key"].endswith("profiler-output/profiler-report.html")]
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
    over it (scripts/report.py); returns the job folder."""
    import download_dataset

    model_uri = description["ModelArtifacts"]["S3ModelArtifacts"]
    job_dir = output_dir / description["TrainingJobName"]
    job_dir.mkdir(parents=True, exist_ok=True)
    for name in ("model.tar.gz", "output.tar.gz"):
        bucket, key = download_dataset.parse_s3_uri(model_uri.rsplit("/", 1)[0] + "/" + name)
        s3.download_file(bucket, key, str(job_dir / name))
    print(f"job output: {job_dir}")
    if REPORT_SCRIPT.is_file():
        REPORTS_DIR.mkdir(parents=True, exist_ok=True)
        out = REPORTS_DIR / f"{description['TrainingJobName']}-report.html"
        done = subprocess.run([sys.executable, str(REPORT_SCRIPT), str(job_dir), "--out", str(out)], check=False)
        if done.returncode:
            print(f"warning: {REPORT_SCRIPT.name} failed (exit status {done.returncode}); the job output is in {job_dir}")
    else:
        print(f"{REPORT_SCRIPT} is not there: the job output is downloaded but no rules ran")
    return job_dir
