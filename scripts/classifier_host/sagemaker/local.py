"""SageMaker local mode: training jobs and endpoints of the project's images in Docker on this machine.

`sagemaker.core.local` is SDK v2's local mode ported to v3's core (it is exported but not in the v3 docs;
the pinned minor version and the integration tests hold it in place). It takes the same requests as the
SageMaker API, runs `docker-compose`, and serves endpoints on localhost:8080. v3's ModelTrainer local
container mode was not used: it fixes host names (algo-1..N on one shared network, so two multi-instance
jobs clash), rejects file:// data and leaves its folders behind; ModelBuilder cannot serve a plain BYOC
image locally (../shared/FACTS.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .session import local_session, new_job_name

LOCAL_SCRATCH_PREFIX = "sagemaker-local-"  # a training job's working folder (train_local)
# Local mode publishes every endpoint here (its `serving_port`, 8080): one local endpoint at a time.
LOCAL_ENDPOINT_URL = "http://localhost:8080"
VARIANT = "AllTraffic"

# Local mode refuses CheckpointConfig silently and has no /opt/ml/checkpoints; a file:// channel is
# bind-mounted read-write, so a checkpoint folder travels as this channel (every instance sees it).
CHECKPOINT_CHANNEL = "checkpoints"
CHECKPOINT_CHANNEL_PATH = f"/opt/ml/input/data/{CHECKPOINT_CHANNEL}"


def file_channel(name: str, folder: Path) -> dict:
    """A channel of InputDataConfig reading a host folder (local mode mounts it)."""
    return {
        "ChannelName": name,
        "DataSource": {
            "FileDataSource": {
                "FileDataDistributionType": "FullyReplicated",
                "FileUri": f"file://{Path(folder).resolve()}",
            }
        },
    }


def train_local(
    image_uri: str,
    data_dir: Path,
    output_dir: Path,
    hyperparameters: dict[str, str],
    gpu: bool = False,
    instance_count: int = 1,
    job_name: str | None = None,
    checkpoint_dir: Path | None = None,
) -> Path:
    """Run a local-mode training job on `data_dir` (one `training` channel) and return model.tar.gz.

    The job's artifacts (model.tar.gz, output.tar.gz) land in output_dir/<job name>/; model.tar.gz
    is also copied to output_dir. checkpoint_dir: a host folder for the trainer's checkpoints (created
    when missing); a job started again with the same folder resumes. Raises RuntimeError naming the
    job and its failure reason.
    """
    channels = [file_channel("training", data_dir)]
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir).resolve()
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        channels.append(file_channel(CHECKPOINT_CHANNEL, checkpoint_dir))
        hyperparameters = {**hyperparameters, "checkpoint-dir": CHECKPOINT_CHANNEL_PATH}
    job_name = job_name or new_job_name()
    job_dir = Path(output_dir).resolve() / job_name
    job_dir.mkdir(parents=True, exist_ok=True)
    # Local mode leaves its working folder behind (a copy of the model, ~100 MB a ResNet18 job): it gets one
    # of ours, removed after the job.
    scratch = Path(tempfile.mkdtemp(prefix=f"{LOCAL_SCRATCH_PREFIX}{job_name}-"))
    try:  # from here on, whatever fails, the scratch folder goes
        client = local_session(scratch).sagemaker_client
        # Blocks until the containers exit, their log streaming here.
        client.create_training_job(
            TrainingJobName=job_name,
            AlgorithmSpecification={"TrainingImage": image_uri, "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"file://{job_dir}"},  # local mode writes the archives right here
            ResourceConfig={"InstanceType": "local_gpu" if gpu else "local", "InstanceCount": instance_count},
            InputDataConfig=channels,
            Environment=local_thread_limits(instance_count),
            HyperParameters={str(k): str(v) for k, v in hyperparameters.items()},
        )
        # Local mode trusts `docker-compose up --abort-on-container-exit`'s exit status, which compose 1.x
        # does not guarantee to be the container's (docker/compose#5966): a job whose trainer exited 1 came
        # back as a success once in CI. The job's own `failure` file is the verdict.
        failure = read_failure(job_dir)
        if failure is not None:
            raise RuntimeError(failure)
    except Exception as err:  # local mode raises a bare RuntimeError
        raise RuntimeError(f"training job {job_name} failed: {read_failure(job_dir) or err}") from err
    finally:
        remove_job_containers(image_uri, job_name)
        shutil.rmtree(scratch, ignore_errors=True)
    shutil.copyfile(job_dir / "model.tar.gz", job_dir.parent / "model.tar.gz")
    (job_dir.parent / "last_training_job.txt").write_text(job_name + "\n")
    return job_dir.parent / "model.tar.gz"


def remove_job_containers(image: str, job_name: str) -> None:
    """Remove the exited containers of one local job (local mode never runs `compose down`).

    Matched by the TRAINING_JOB_NAME local mode sets in each container, so other jobs are untouched.
    """
    listed = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"ancestor={image}", "--filter", "status=exited"],
        capture_output=True,
        text=True,
    )
    ids = listed.stdout.split()
    if listed.returncode or not ids:
        return
    envs = subprocess.run(
        ["docker", "inspect", "--format", "{{.Id}} {{json .Config.Env}}", *ids], capture_output=True, text=True
    ).stdout.splitlines()
    mine = [line.split(" ", 1)[0] for line in envs if f'"TRAINING_JOB_NAME={job_name}"' in line]
    if mine:
        subprocess.run(["docker", "rm", *mine], capture_output=True)


def local_thread_limits(instance_count: int) -> dict[str, str]:
    """Local instances share this machine's cores; each container would otherwise start one torch
    thread per core, and OpenMP threads that spin-wait for a core another container holds slow
    every step down several-fold."""
    if instance_count <= 1:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // instance_count))}


def read_failure(job_dir: Path) -> str | None:
    """The job's `failure` file (SageMaker's FailureReason), from its output.tar.gz."""
    archive = job_dir / "output.tar.gz"
    if not archive.is_file():
        return None
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if PurePosixPath(member.name) == PurePosixPath("failure"):  # "failure" or "./failure"
                return tar.extractfile(member).read().decode(errors="replace")
    return None


# ---- local endpoints ----


def serving_port_in_use() -> bool:
    """Whether something answers on local mode's serving port: a local endpoint, a transform, another
    program. Local mode would start a second container there anyway, and its health check and requests
    would reach whatever already listens (another model) instead of the new container."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", int(LOCAL_ENDPOINT_URL.rsplit(":", 1)[1]))) == 0


def check_can_serve(image: str) -> None:
    """Before a local endpoint or a local transform starts: `image` is built and local mode's serving port
    is free (ValueError naming what is not)."""
    from ..images.names import built

    if not built(image):
        raise ValueError(f"serving image {image} is not built: run `make build`")
    if serving_port_in_use():
        raise ValueError(
            f"{LOCAL_ENDPOINT_URL} is in use: a local endpoint (deploy.py --local) or another transform serves "
            "there, and local mode would send this job's requests to it. Stop it (Ctrl-C in its deploy.py, or "
            "`docker ps` / `docker stop`) and retry"
        )


@dataclass
class LocalEndpoint:
    """A running local endpoint: its name (model and endpoint config carry it too), where it answers,
    the folder its model.tar.gz was staged in, and the session that knows it."""

    name: str
    url: str
    staging_dir: Path
    session: object


def deploy_local(
    image_uri: str,
    model_data: str,
    gpu: bool = False,
    env: dict[str, str] | None = None,
    endpoint_name: str | None = None,
) -> LocalEndpoint:
    """A local-mode endpoint of `image_uri` serving `model_data` (file://.../model.tar.gz).

    Local mode unpacks the archive beside itself and mounts that whole folder as /opt/ml/model, so it
    is first copied to a folder of its own (removed by delete_local). Returns once /ping answers 200
    (local mode's create_endpoint waits for it); raises RuntimeError when it never does.
    """
    source = Path(model_data.removeprefix("file://"))
    if not source.is_file():
        raise FileNotFoundError(f"model data {model_data} is not a file: pass file://PATH/model.tar.gz")
    staging = Path(tempfile.mkdtemp(prefix="local-endpoint-"))
    name = endpoint_name or new_job_name()
    session = None
    try:
        shutil.copyfile(source, staging / "model.tar.gz")
        session = local_session()
        client = session.sagemaker_client
        client.create_model(
            ModelName=name,
            PrimaryContainer={
                "Image": image_uri,
                "ModelDataUrl": f"file://{staging / 'model.tar.gz'}",
                "Environment": env or {},
            },
        )
        client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": VARIANT,
                    "ModelName": name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "local_gpu" if gpu else "local",
                }
            ],
        )
        client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    except BaseException:
        if session is not None:
            delete_local(LocalEndpoint(name, LOCAL_ENDPOINT_URL, staging, session))
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return LocalEndpoint(name, LOCAL_ENDPOINT_URL, staging, session)


def delete_local(endpoint: LocalEndpoint) -> None:
    """Stop the local endpoint's container, remove it, and forget its endpoint, config and model."""
    from sagemaker.core.local.local_session import LocalSagemakerClient

    # Local mode stops the container (it ends its `docker-compose up`) but leaves it behind.
    running = LocalSagemakerClient._endpoints.get(endpoint.name)
    hosts = list(getattr(getattr(running, "container", None), "hosts", []))
    client = endpoint.session.sagemaker_client
    try:
        client.delete_endpoint(EndpointName=endpoint.name)
        client.delete_endpoint_config(EndpointConfigName=endpoint.name)
        client.delete_model(ModelName=endpoint.name)
        LocalSagemakerClient._endpoints.pop(endpoint.name, None)  # local mode stops it but keeps it listed
    finally:
        shutil.rmtree(endpoint.staging_dir, ignore_errors=True)
        remove_serving_containers(hosts)


def remove_serving_containers(hosts) -> None:
    """Remove the containers local mode served from (an endpoint's or a transform's): stopping them
    leaves them behind. Compose names each <project>-<host>."""
    for host in hosts:
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"name=-{host}$"], capture_output=True, text=True
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
