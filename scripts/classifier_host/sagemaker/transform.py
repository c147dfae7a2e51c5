"""Batch Transform: a serving image classifies many files without an endpoint, in local mode here or as a
SageMaker transform job (sagemaker-core's `TransformJob` resource).

Both send one file per request (BatchStrategy SingleRecord) as `application/x-image` and ask for JSON.
The container, told by SAGEMAKER_BATCH that it serves a transform, answers a bad file with a 200 error
record, and the cloud job retries nothing (InvocationsMaxRetries 0), so one bad image never fails the job.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from .access import Access
from .local import remove_serving_containers
from .session import local_session, sagemaker_client

CONTENT_TYPE = "application/x-image"
ACCEPT = "application/json"
BATCH_STRATEGY = "SingleRecord"
LOG_GROUP = "/aws/sagemaker/TransformJobs"
DONE = ("Completed", "Failed", "Stopped")
SCRATCH_PREFIX = "sagemaker-transform-"  # a local job's working folder, removed after it


def transform_local(
    image_uri: str,
    model_data: Path,
    staged: Path,
    output: Path,
    job_name: str,
    max_payload_mb: int,
    gpu: bool = False,
    env: dict[str, str] | None = None,
) -> None:
    """A local-mode transform job of `image_uri` serving `model_data` over the flat folder `staged`;
    each file's answer lands in `output` as <name>.out. Its container serves on localhost:8080, as a
    local endpoint does: the caller checks local.serving_port_in_use() first. Whatever happens, the job's model
    and containers are removed."""
    from sagemaker.core.local.local_session import LocalSagemakerClient

    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{job_name}-"))
    client = None
    try:
        # Local mode unpacks the archive beside itself and mounts that folder: a folder of its own.
        shutil.copyfile(model_data, scratch / "model.tar.gz")
        client = local_session(scratch).sagemaker_client
        client.create_model(
            ModelName=job_name,
            PrimaryContainer={
                "Image": image_uri,
                "ModelDataUrl": f"file://{scratch / 'model.tar.gz'}",
                "Environment": env or {},
            },
        )
        output.mkdir(parents=True, exist_ok=True)
        client.create_transform_job(
            TransformJobName=job_name,
            ModelName=job_name,
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"file://{staged}"}},
                "ContentType": CONTENT_TYPE,
                "SplitType": "None",
            },
            TransformOutput={"S3OutputPath": f"file://{output}", "Accept": ACCEPT, "AssembleWith": "None"},
            TransformResources={"InstanceType": "local_gpu" if gpu else "local", "InstanceCount": 1},
            BatchStrategy=BATCH_STRATEGY,
            MaxPayloadInMB=max_payload_mb,
        )
    finally:
        try:
            job = LocalSagemakerClient._transform_jobs.pop(job_name, None)
            container = getattr(job, "container", None)
            if container is not None:
                if job.state != job._COMPLETED:  # local mode stops it itself only when every file went well
                    container.stop_serving()
                remove_serving_containers(getattr(container, "hosts", []))
            if client is not None:
                client.delete_model(ModelName=job_name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def sendable_locally(path: Path) -> bool:
    """Whether local mode can send the file: its NoneSplitter takes a file with no byte below 0x20 (but
    tab, newline...) for text and decodes it as UTF-8, so such a file that is not UTF-8 (a truncated JPEG
    can be one) raises UnicodeDecodeError and ends the whole job. Decided by the SDK's own test."""
    from sagemaker.core.local.data import NoneSplitter

    data = path.read_bytes()
    if NoneSplitter()._is_binary(data):
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


# ---- cloud ----


def start_cloud(
    boto,
    job_name: str,
    image_uri: str,
    model_data: str,
    access: Access,
    manifest_uri: str,
    output_uri: str,
    instance_type: str = "ml.m5.xlarge",
    instance_count: int = 1,
    max_concurrent: int = 1,
    max_payload_mb: int = 6,
    environment: dict[str, str] | None = None,
    invocation_timeout_s: int = 600,
    package: tuple[str, str | None] | None = None,
):
    """CreateModel (the job's own, named as the job: VPC and network isolation live on the model; a
    transform job has no VpcConfig) and CreateTransformJob over the files a manifest names. package: a
    registered model package version (endpoints.create_model)."""
    from .endpoints import create_model

    create_model(boto, job_name, image_uri, model_data, access, environment, package)
    kms_key_id = access.kms_key_id
    # The request as a dict through the core's client: sagemaker-core's shapes drop falsy values, and
    # InvocationsMaxRetries must be sent as 0 (a bad file gets a 200 error record from the container;
    # SageMaker's default of 3 retries would only repeat a failure).
    kms = {"KmsKeyId": kms_key_id} if kms_key_id else {}
    client = sagemaker_client(boto)
    client.create_transform_job(
        TransformJobName=job_name,
        ModelName=job_name,
        MaxConcurrentTransforms=max_concurrent,
        MaxPayloadInMB=max_payload_mb,
        BatchStrategy=BATCH_STRATEGY,
        ModelClientConfig={"InvocationsTimeoutInSeconds": invocation_timeout_s, "InvocationsMaxRetries": 0},
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": manifest_uri}},
            "ContentType": CONTENT_TYPE,
            "SplitType": "None",
        },
        TransformOutput={"S3OutputPath": output_uri, "Accept": ACCEPT, "AssembleWith": "None", **kms},
        TransformResources={
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            **({"VolumeKmsKeyId": kms_key_id} if kms_key_id else {}),
        },
    )


def wait_with_logs(boto, job_name: str, poll_s: float = 10, say=print) -> dict:
    """Stream the job's CloudWatch log (every instance's stream) until it ends; DescribeTransformJob's
    last answer. RuntimeError with SageMaker's FailureReason when it failed or was stopped.

    The core's log reader for SageMaker jobs (the one its training tailer uses), with the job's own
    region: TransformJob.wait(logs=True) reads CloudWatch in the default region."""
    from sagemaker.core.helper.session_helper import _flush_log_streams

    client, logs = sagemaker_client(boto), boto.client("logs")
    positions = {}  # stream name -> how far it was read
    while True:
        description = client.describe_transform_job(TransformJobName=job_name)
        instances = description.get("TransformResources", {}).get("InstanceCount", 1)
        _flush_log_streams(
            list(positions), instances, logs, LOG_GROUP, job_name, positions, False, lambda index, message: say(message)
        )
        status = description["TransformJobStatus"]
        if status in DONE:
            break
        time.sleep(poll_s)
    if status != "Completed":
        raise RuntimeError(
            f"transform job {job_name} {status.lower()}: {description.get('FailureReason', 'no reason given')}"
        )
    return description


def delete_model(boto, job_name: str) -> None:
    """The model made for one transform job goes with it (it costs nothing, but piles up)."""
    client = sagemaker_client(boto)
    client.delete_model(ModelName=job_name)
