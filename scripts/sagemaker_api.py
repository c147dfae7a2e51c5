"""Every SageMaker SDK call of the project lives here (SDK v2), so the move to v3 touches one file.

Local mode (`LocalSession`) runs the same images with docker-compose on this machine; the cloud
functions use a regular `Session`. Callers pass plain values and get plain values back.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# Local mode still builds boto3 clients; a region is all it needs (no credentials, no AWS calls).
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))

import sagemaker  # noqa: E402
from sagemaker.estimator import Estimator  # noqa: E402
from sagemaker.local import LocalSession  # noqa: E402

# Local mode has no role to assume; the SDK only checks that the string looks like an ARN.
LOCAL_ROLE = "arn:aws:iam::111111111111:role/local-mode-no-aws-access"
# Without it the SDK posts telemetry to an AWS host on some calls and logs a traceback offline.
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
BASE_JOB_NAME = "image-classifier"


def local_session() -> LocalSession:
    session = LocalSession(sagemaker_config=NO_TELEMETRY)
    session.config = {"local": {"local_code": True}}
    return session


def train_local(image_uri: str, data_dir: Path, output_dir: Path, hyperparameters: dict[str, str],
                gpu: bool = False, instance_count: int = 1, job_name: str | None = None) -> Path:
    """Run a local-mode training job on `data_dir` (one `training` channel) and return model.tar.gz.

    The job's artifacts (model.tar.gz, output.tar.gz) land in output_dir/<job name>/; model.tar.gz
    is also copied to output_dir. Raises RuntimeError naming the job and its failure reason.
    """
    job_name = job_name or sagemaker.utils.name_from_base(BASE_JOB_NAME)
    job_dir = Path(output_dir).resolve() / job_name
    job_dir.mkdir(parents=True, exist_ok=True)
    estimator = Estimator(
        image_uri=image_uri,
        role=LOCAL_ROLE,
        instance_count=instance_count,
        instance_type="local_gpu" if gpu else "local",
        output_path=f"file://{job_dir}",  # local mode writes the archives right here
        hyperparameters=hyperparameters,
        sagemaker_session=local_session(),
    )
    try:
        estimator.fit({"training": f"file://{Path(data_dir).resolve()}"}, job_name=job_name, logs=True)
    except Exception as err:  # local mode raises a bare RuntimeError
        raise RuntimeError(f"training job {job_name} failed: {read_failure(job_dir) or err}") from err
    shutil.copyfile(job_dir / "model.tar.gz", job_dir.parent / "model.tar.gz")
    (job_dir.parent / "last_training_job.txt").write_text(job_name + "\n")
    return job_dir.parent / "model.tar.gz"


def read_failure(job_dir: Path) -> str | None:
    """The job's `failure` file (SageMaker's FailureReason), from its output.tar.gz."""
    archive = job_dir / "output.tar.gz"
    if not archive.is_file():
        return None
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.lstrip("./") == "failure":
                return tar.extractfile(member).read().decode(errors="replace")
    return None


def sdk_version() -> str:
    return sagemaker.__version__
