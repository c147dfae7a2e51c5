"""The training jobs train.py runs: local mode on this machine, or a SageMaker training job with its data
uploaded, its log streamed and its debugging results reported. The CLI parses the options and the
hyperparameters, calls one function here and maps its errors to an exit status.

Errors: SettingsError (a setting, option or record that cannot be used; no job started), TrainingFailed
(the job ran and failed: its log is above, its reason in the message)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import records, settings
from .data import fingerprint
from .sagemaker.access import Access
from .settings import SettingsError
from .tracking import runs
from .tracking.journal import Journal

REPORTS_DIR = settings.ROOT / "reports"
# --debugger project: the project's rules and HTML report over the downloaded job folder, in a process of
# its own (smdebug is slow to import and noisy).
REPORT_COMMAND = [sys.executable, "-m", "classifier_host.cli.report"]


class TrainingFailed(Exception):
    """The job started and failed (local mode's container, or SageMaker's FailureReason)."""


@dataclass(frozen=True)
class TrainingRequest:
    """What train.py asks for (its --help says what each option does); hyperparameters already checked."""

    data: str  # a folder (local; cloud: uploaded first) or an s3:// prefix (cloud)
    output_dir: Path
    hyperparameters: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    gpu: bool = False
    job_name: str | None = None
    instance_count: int = 1
    checkpoint_dir: Path | None = None
    instance_type: str = "ml.g5.xlarge"
    spot: bool = False
    max_run: int = 4 * 3600
    max_wait: int | None = None
    network_isolation: bool = False
    debugger: str = "sagemaker"


def train_local(request: TrainingRequest, journal: Journal | None = None) -> Path:
    """A local-mode job on the training image; the model.tar.gz it wrote. Tracked as an MLflow run (in
    `journal`, else one of its own: tracking/)."""
    hp = request.hyperparameters
    data = Path(request.data)
    if not data.is_dir():
        raise SettingsError(f"--data {data} is not a folder")
    if request.checkpoint_dir and "checkpoint-dir" in hp:
        raise SettingsError(
            "give the checkpoint folder once: --checkpoint-dir (local folder) or --hp checkpoint-dir "
            "(a path inside the container), not both"
        )
    from .images.names import local_image
    from .sagemaker import local

    image = request.image or local_image("train")
    job_name = request.job_name or local.new_job_name()
    tags = {
        runs.KIND_TAG: "training",
        "mode": "local",
        "data.location": str(data.resolve()),
        **fingerprint.of_folder(data).tags(),
        **runs.local_image_tags(image),
    }
    with runs.journal_session(journal) as session:
        run = runs.TrainingRun.start(session, job_name, job_params(request, "local"), tags)
        with runs.run_ending(run):
            try:
                with run.tapping():
                    model = local.train_local(
                        image,
                        data,
                        request.output_dir,
                        hp,
                        gpu=request.gpu,
                        job_name=job_name,
                        instance_count=request.instance_count,
                        checkpoint_dir=request.checkpoint_dir,
                    )
            except RuntimeError as err:
                raise TrainingFailed(str(err)) from err
            job_dir = model.parent / job_name
            run.log_model(str(job_dir / "model.tar.gz"), job_dir / "model.tar.gz", job_dir / "tracked")
    return model


def job_params(request: TrainingRequest, mode: str) -> dict[str, str]:
    """The run's parameters: the hyperparameters as the job gets them, and where it runs."""
    where = (
        {"instance_type": "local_gpu" if request.gpu else "local", "spot": "false"}
        if mode == "local"
        else {"instance_type": request.instance_type, "spot": str(request.spot).lower()}
    )
    return {**request.hyperparameters, **where, "instance_count": str(request.instance_count)}


def data_uri(data: str, cfg: settings.Settings, s3_client) -> str:
    """An s3:// URI as given; a local folder is uploaded to s3://BUCKET/PREFIX/data/<folder name>."""
    if data.startswith("s3://"):
        return data.rstrip("/")
    from .data import s3

    folder = Path(data)
    if not folder.is_dir():
        raise SettingsError(f"--data {data} is neither a folder nor an s3:// URI")
    uri = cfg.s3_uri("data", folder.absolute().name or folder.resolve().name)
    bucket, prefix = s3.parse_s3_uri(uri)
    sent = s3.upload_folder(s3_client, folder, bucket, prefix, kms_key_id=cfg.kms_key_id)
    print(f"data: {uri} ({sent} files uploaded)")
    return uri


def train_cloud(request: TrainingRequest, journal: Journal | None = None) -> str:
    """Start the job, wait for it with its log, record it for deploy.py, then report its debugging
    results (request.debugger); the model's S3 URI. Tracked as an MLflow run (tracking/)."""
    cfg = settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET")
    image = records.cloud_image(request.image, "train")
    if request.max_wait and not request.spot:
        raise SettingsError("--max-wait applies only with --spot")
    hp = request.hyperparameters
    # The SDK takes over a second to import: only once the settings are known good.
    from .sagemaker import session, training

    if request.debugger == "project":  # the trainer must know the hook's hyperparameters before a job starts
        from classifier.contract import hyperparams

        try:
            hyperparams.parse({**hp, **training.debugger_settings("project", "", cfg.region)[1]})
        except hyperparams.HyperparameterError as err:
            raise SettingsError(f"--debugger project: {err}") from None
    boto = session.boto_session(cfg.region)
    s3 = boto.client("s3")
    job_name = request.job_name or session.new_job_name()
    try:
        spec = training.JobSpec(
            image,
            Access.of(cfg, request.network_isolation),
            cfg.s3_uri("output"),
            hp,
            instance_type=request.instance_type,
            instance_count=request.instance_count,
            spot=request.spot,
            max_run=request.max_run,
            max_wait=request.max_wait,
            checkpoint_s3_uri=cfg.s3_uri("checkpoints", job_name) if request.spot else None,
        )
        data = fingerprint.of_folder(Path(request.data)) if not request.data.startswith("s3://") else None
        channel = data_uri(request.data, cfg, s3)
    except ValueError as err:  # SettingsError is one: a bad setting or option, nothing started
        raise SettingsError(str(err)) from None
    tags = {
        runs.KIND_TAG: "training",
        "mode": "cloud",
        "data.location": channel,
        **(data or fingerprint.of_s3(s3, channel)).tags(),
        **cloud_image_tags(image),
    }
    print(f"training job {job_name} on {request.instance_count} x {request.instance_type} ({image})")
    with runs.journal_session(journal) as session:
        run = runs.TrainingRun.start(session, job_name, job_params(request, "cloud"), tags)
        with runs.run_ending(run):
            try:
                training.start_training(boto, spec, channel, job_name, debugger=request.debugger)
                with run.tapping():
                    description = training.wait_with_logs(boto, job_name)
            except RuntimeError as err:
                raise TrainingFailed(str(err)) from err
            records.record("training-job", job_name)
            model_uri = description["ModelArtifacts"]["S3ModelArtifacts"]
            print(f"model: {model_uri}")
            print(f"job name recorded in {settings.STATE_DIR / 'training-job.txt'} (deploy.py reads it)")
            job_dir = Path(request.output_dir) / job_name
            if request.debugger == "sagemaker":
                run.log_files(report_sagemaker_debugger(description, s3, REPORTS_DIR))
            elif request.debugger == "project":
                report_project_debugger(description, s3, Path(request.output_dir))
                run.log_files(REPORTS_DIR / f"{job_name}-report.html")
            if not (job_dir / "model.tar.gz").is_file():
                try:  # for its metadata.json in the run; tracking never fails a job that succeeded
                    download_archives(description, s3, job_dir, ("model.tar.gz",))
                except Exception as err:
                    print(f"warning: {model_uri} was not downloaded, its metadata is not tracked ({err})")
            run.log_model(model_uri, job_dir / "model.tar.gz", job_dir / "tracked")
    return model_uri


def cloud_image_tags(image: str) -> dict[str, str]:
    """The image by digest, with its inputs-digest label when `make push` recorded it."""
    import json

    if settings.IMAGES_FILE.is_file():
        pushed = json.loads(settings.IMAGES_FILE.read_text())
        if pushed.get("train", {}).get("uri") == image:
            return runs.pushed_image_tags(pushed, "train")
    return {"image.train": image}


def download_archives(description: dict, s3, job_dir: Path, names: tuple[str, ...]) -> None:
    """The job's archives (model.tar.gz, output.tar.gz) into job_dir, the layout of a local-mode job."""
    from .data.s3 import parse_s3_uri

    model_uri = description["ModelArtifacts"]["S3ModelArtifacts"]
    job_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        bucket, key = parse_s3_uri(model_uri.rsplit("/", 1)[0] + "/" + name)
        s3.download_file(bucket, key, str(job_dir / name))


def report_sagemaker_debugger(description: dict, s3, reports_dir: Path) -> Path | None:
    """Print every rule's status and download the ProfilerReport HTML; returns its local path."""
    from .data.s3 import parse_s3_uri
    from .sagemaker.training import rule_statuses

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
    job_dir = output_dir / description["TrainingJobName"]
    download_archives(description, s3, job_dir, ("model.tar.gz", "output.tar.gz"))
    print(f"job output: {job_dir}")
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    out = REPORTS_DIR / f"{description['TrainingJobName']}-report.html"
    done = subprocess.run([*REPORT_COMMAND, str(job_dir), "--out", str(out)], check=False)
    if done.returncode:
        print(f"warning: the report failed (exit status {done.returncode}); the job output is in {job_dir}")
    return job_dir
