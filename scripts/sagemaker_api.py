"""Every SageMaker SDK call of the project lives here (SDK v2), so the move to v3 touches one file.

Local mode (`LocalSession`) runs the same images with docker-compose on this machine; the cloud
functions use a regular `Session`. Callers pass plain values and get plain values back.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# Local mode still builds boto3 clients; a region is all it needs (no credentials, no AWS calls).
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))

import sagemaker  # noqa: E402
from sagemaker.estimator import Estimator  # noqa: E402
from sagemaker.local import LocalSession  # noqa: E402

LOCAL_SCRATCH_PREFIX = "sagemaker-local-"  # a training job's working folder (train_local)
# Local mode has no role to assume; the SDK only checks that the string looks like an ARN.
LOCAL_ROLE = "arn:aws:iam::111111111111:role/local-mode-no-aws-access"
# Without it the SDK posts telemetry to an AWS host on some calls and logs a traceback offline.
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
BASE_JOB_NAME = "image-classifier"


def local_session(container_root: Path | None = None) -> LocalSession:
    """container_root: where local mode makes its working folders (default: the system's temp folder)."""
    session = LocalSession(sagemaker_config=NO_TELEMETRY)
    session.config = {"local": {"local_code": True,
                                **({"container_root": str(container_root)} if container_root else {})}}
    return session


# Local mode refuses checkpoint_s3_uri and has no /opt/ml/checkpoints; a file:// channel is
# bind-mounted read-write, so a checkpoint folder travels as this channel (every instance sees it).
CHECKPOINT_CHANNEL = "checkpoints"
CHECKPOINT_CHANNEL_PATH = f"/opt/ml/input/data/{CHECKPOINT_CHANNEL}"


def train_local(image_uri: str, data_dir: Path, output_dir: Path, hyperparameters: dict[str, str],
                gpu: bool = False, instance_count: int = 1, job_name: str | None = None,
                checkpoint_dir: Path | None = None) -> Path:
    """Run a local-mode training job on `data_dir` (one `training` channel) and return model.tar.gz.

    The job's artifacts (model.tar.gz, output.tar.gz) land in output_dir/<job name>/; model.tar.gz
    is also copied to output_dir. checkpoint_dir: a host folder for the trainer's checkpoints (created
    when missing); a job started again with the same folder resumes. Raises RuntimeError naming the
    job and its failure reason.
    """
    inputs = {"training": f"file://{Path(data_dir).resolve()}"}
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir).resolve()
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        inputs[CHECKPOINT_CHANNEL] = f"file://{checkpoint_dir}"
        hyperparameters = {**hyperparameters, "checkpoint-dir": CHECKPOINT_CHANNEL_PATH}
    job_name = job_name or sagemaker.utils.name_from_base(BASE_JOB_NAME)
    job_dir = Path(output_dir).resolve() / job_name
    job_dir.mkdir(parents=True, exist_ok=True)
    # Local mode leaves its working folder behind (a copy of the model, ~100 MB a ResNet18 job): it gets one
    # of ours, removed after the job.
    scratch = Path(tempfile.mkdtemp(prefix=f"{LOCAL_SCRATCH_PREFIX}{job_name}-"))
    try:  # from here on, whatever fails, the scratch folder goes
        estimator = Estimator(
            image_uri=image_uri,
            role=LOCAL_ROLE,
            instance_count=instance_count,
            instance_type="local_gpu" if gpu else "local",
            output_path=f"file://{job_dir}",  # local mode writes the archives right here
            hyperparameters=hyperparameters,
            environment=local_thread_limits(instance_count),
            sagemaker_session=local_session(scratch),
        )
        estimator.fit(inputs, job_name=job_name, logs=True)
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
    listed = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"ancestor={image}", "--filter", "status=exited"],
                            capture_output=True, text=True)
    ids = listed.stdout.split()
    if listed.returncode or not ids:
        return
    envs = subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{json .Config.Env}}", *ids],
                          capture_output=True, text=True).stdout.splitlines()
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


# --- Hyperparameter tuning on SageMaker (issue 4) -------------------------------------------------
# Local mode has no tuning jobs: scripts/local_tuner.py runs the same search space over local jobs.
# The search space is classifier.hyperparams.SEARCH_SPACE; the metric regexes are classifier.metrics'.

def tuning_ranges(space: dict) -> dict:
    """The search space as the SDK's parameter ranges (what CreateHyperParameterTuningJob receives)."""
    from classifier import hyperparams
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, IntegerParameter

    ranges = {}
    for name, rng in space.items():
        scaling = "Logarithmic" if getattr(rng, "log", False) else "Linear"
        if isinstance(rng, hyperparams.Continuous):
            ranges[name] = ContinuousParameter(rng.min, rng.max, scaling_type=scaling)
        elif isinstance(rng, hyperparams.Integer):
            ranges[name] = IntegerParameter(rng.min, rng.max, scaling_type=scaling)
        elif isinstance(rng, hyperparams.Categorical):
            ranges[name] = CategoricalParameter([str(v) for v in rng.values])
        else:
            raise TypeError(f"search space entry {name!r}: {rng!r} is not Continuous, Integer or Categorical")
    return ranges


def new_tuning_job_name() -> str:
    """A unique tuning job name: SageMaker allows 32 characters, which a millisecond timestamp
    (23) leaves room for only a short base beside (a longer base gets minute-resolution names)."""
    return sagemaker.utils.name_from_base("ic-tune", max_length=32)


def create_tuner(estimator: Estimator, space: dict, max_jobs: int, max_parallel_jobs: int):
    """A Bayesian HyperparameterTuner over `estimator` (cloud_estimator's) maximising best_val_acc,
    with early stopping left to SageMaker (`Auto`)."""
    from classifier import metrics
    from sagemaker.tuner import HyperparameterTuner

    return HyperparameterTuner(
        estimator,
        objective_metric_name=metrics.OBJECTIVE,
        hyperparameter_ranges=tuning_ranges(space),
        metric_definitions=metrics.metric_definitions(),
        strategy="Bayesian",
        objective_type="Maximize",
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        early_stopping_type="Auto",
    )


def start_tuning(tuner, data_uri: str, job_name: str) -> str:
    """CreateHyperParameterTuningJob on the `training` channel; returns the tuning job's name."""
    tuner.fit({"training": data_uri}, job_name=job_name, wait=False)
    return tuner.latest_tuning_job.name


def attach_tuning(session, job_name: str) -> dict:
    """DescribeHyperParameterTuningJob of an existing tuning job, with a clear error when there is none.

    Not `HyperparameterTuner.attach`: in SDK 2.257 it rebuilds the estimator from `ResourceConfig`,
    but the jobs this SDK creates carry `HyperParameterTuningResourceConfig` instead (KeyError).
    """
    from botocore.exceptions import ClientError

    try:
        return session.sagemaker_client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job_name)
    except ClientError as err:
        raise RuntimeError(f"cannot attach to tuning job {job_name!r}: {err}") from None


TUNING_DONE = ("Completed", "Failed", "Stopped")


def wait_for_tuning(session, job_name: str, poll_seconds: float = 60, say=print) -> dict:
    """Poll DescribeHyperParameterTuningJob until the job ends, printing a line when counts change."""
    import time

    last = None
    while True:
        description = session.sagemaker_client.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=job_name)
        status = description["HyperParameterTuningJobStatus"]
        counts = description.get("TrainingJobStatusCounters", {})
        best = description.get("BestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric", {})
        line = (f"[tune] {job_name}: {status}; jobs completed {counts.get('Completed', 0)}, "
                f"running {counts.get('InProgress', 0)}, stopped {counts.get('Stopped', 0)}, "
                f"failed {counts.get('RetryableError', 0) + counts.get('NonRetryableError', 0)}; "
                f"best {best.get('MetricName', '')}={best.get('Value', '-')}")
        if line != last:
            say(line)
            last = line
        if status in TUNING_DONE:
            return description
        time.sleep(poll_seconds)


def tuning_results(session, job_name: str) -> tuple[dict, list[dict]]:
    """(DescribeHyperParameterTuningJob, every training job's summary) via the SDK's analytics."""
    from sagemaker.analytics import HyperparameterTuningJobAnalytics

    analytics = HyperparameterTuningJobAnalytics(job_name, sagemaker_session=session)
    return analytics.description(), analytics.training_job_summaries()


# ==== Cloud (issue 6): a regular Session; every AWS call goes through the clients it holds ====

# Where the container's own smdebug hook writes in --debugger project mode: under
# /opt/ml/output/data, so the tensors come back in the job's output.tar.gz.
PROJECT_TENSORS_DIR = "/opt/ml/output/data/tensors"
from settings import DEBUGGER_MODES  # noqa: E402
# SageMaker Debugger's built-in rules (they run in AWS's rules containers, beside the job).
DEBUGGER_RULES = ("vanishing_gradient", "overfit", "overtraining", "poor_weight_initialization",
                  "loss_not_decreasing")
PROFILER_RULES = ("LowGPUUtilization", "ProfilerReport")


class _CloudEstimator(Estimator):
    """An Estimator that sends no ProfilerConfig at all when the profiler is off.

    The SDK sends {"DisableProfiler": true} even then; --debugger project promises a request with no
    Debugger or profiler settings, for accounts that cannot use SageMaker Debugger.
    """

    def _prepare_profiler_for_training(self):
        super()._prepare_profiler_for_training()
        if self.disable_profiler:
            self.profiler_config = None


def cloud_session(region: str, boto_session=None, sagemaker_client=None) -> sagemaker.Session:
    """A SageMaker session in `region` (tests pass a boto session/client whose calls are stubbed)."""
    import boto3

    boto_session = boto_session or boto3.Session(region_name=region)
    return sagemaker.Session(boto_session=boto_session, sagemaker_client=sagemaker_client,
                             sagemaker_config=NO_TELEMETRY)


def debugger_settings(mode: str, s3_output: str) -> tuple[dict, dict[str, str]]:
    """(Estimator keyword arguments, extra hyperparameters) for a --debugger mode.

    sagemaker: SageMaker Debugger's hook config, built-in rules and the profiler (system metrics every
      500 ms, ProfilerReport). project: no Debugger/profiler settings at all (accounts opened after
      2026-07-30 cannot use Debugger); the trainer's own hook writes tensors to PROJECT_TENSORS_DIR.
    off: neither.
    """
    from sagemaker.debugger import (DebuggerHookConfig, ProfilerConfig, ProfilerRule, Rule,
                                    rule_configs)

    if mode == "sagemaker":
        rules = [Rule.sagemaker(getattr(rule_configs, name)()) for name in DEBUGGER_RULES]
        rules += [ProfilerRule.sagemaker(getattr(rule_configs, name)()) for name in PROFILER_RULES]
        return {
            "debugger_hook_config": DebuggerHookConfig(s3_output_path=s3_output),
            "rules": rules,
            "profiler_config": ProfilerConfig(system_monitor_interval_millis=500),
        }, {}
    if mode in ("project", "off"):
        # off sends no `debugger` value, so a tuning job's best_hyperparameters.json (static values
        # included) doesn't switch the hook off for the final training; `--hp debugger=false` does.
        extra = {"debugger": "true", "tensors-dir": PROJECT_TENSORS_DIR} if mode == "project" else {}
        return {"debugger_hook_config": False, "disable_profiler": True}, extra
    raise ValueError(f"debugger mode {mode!r} is not one of {', '.join(DEBUGGER_MODES)}")


def cloud_estimator(session: sagemaker.Session, image_uri: str, role: str, output_path: str,
                    hyperparameters: dict[str, str], instance_type: str = "ml.g5.xlarge",
                    instance_count: int = 1, spot: bool = False, max_run: int = 4 * 3600,
                    max_wait: int | None = None, checkpoint_s3_uri: str | None = None,
                    network_isolation: bool = False, kms_key_id: str | None = None,
                    vpc_config: dict | None = None, debugger: str = "off",
                    volume_size: int = 50) -> Estimator:
    """THE cloud training Estimator (train.py and the HyperparameterTuner both build on it).

    image_uri: the pushed training image, by digest (repo@sha256:...). Metric definitions come from
    classifier.metrics, so the tuner's objective is scraped from the same log lines. Managed spot needs
    checkpoint_s3_uri (the trainer resumes from /opt/ml/checkpoints) and max_wait >= max_run.
    """
    from classifier import metrics

    if spot and not checkpoint_s3_uri:
        raise ValueError("managed spot training needs a checkpoint_s3_uri: an interrupted job resumes from it")
    if spot:
        max_wait = max_wait or 2 * max_run
        if max_wait < max_run:
            raise ValueError(f"max_wait ({max_wait}s) must be >= max_run ({max_run}s) with spot instances")
    elif max_wait:
        raise ValueError("max_wait applies only to managed spot training (--spot)")
    debug_kwargs, debug_hp = debugger_settings(debugger, f"{output_path.rstrip('/')}/debugger")
    vpc = vpc_config or {}
    return _CloudEstimator(
        image_uri=image_uri,
        role=role,
        instance_count=instance_count,
        instance_type=instance_type,
        volume_size=volume_size,
        volume_kms_key=kms_key_id,
        output_kms_key=kms_key_id,
        max_run=max_run,
        use_spot_instances=spot,
        max_wait=max_wait if spot else None,
        checkpoint_s3_uri=checkpoint_s3_uri,
        output_path=output_path,
        base_job_name=BASE_JOB_NAME,
        hyperparameters={**hyperparameters, **debug_hp},
        metric_definitions=metrics.metric_definitions(),
        enable_network_isolation=network_isolation,
        # With several instances (or KMS) the traffic between hosts is encrypted too.
        encrypt_inter_container_traffic=bool(kms_key_id) and instance_count > 1,
        subnets=vpc.get("Subnets"),
        security_group_ids=vpc.get("SecurityGroupIds"),
        sagemaker_session=session,
        **debug_kwargs,
    )


def train_cloud(estimator: Estimator, data_s3_uri: str, job_name: str | None = None,
                wait: bool = True, logs: bool = True) -> dict:
    """Start the job on one `training` channel; with wait, stream its CloudWatch log until it ends.

    Returns DescribeTrainingJob's answer (TrainingJobName, TrainingJobStatus, ModelArtifacts...).
    Raises RuntimeError naming the job and SageMaker's FailureReason when it fails.
    """
    from botocore.exceptions import ClientError

    job_name = job_name or sagemaker.utils.name_from_base(BASE_JOB_NAME)
    try:
        estimator.fit({"training": data_s3_uri}, job_name=job_name, wait=wait, logs="All" if logs else "None")
    except sagemaker.exceptions.UnexpectedStatusException as err:
        raise RuntimeError(f"training job {job_name} failed: {err}") from err
    except ClientError as err:  # refused before it started: quota, permissions, a bad parameter
        hint = (" (a new account has no GPU quota: README, 'GPU quotas')"
                if err.response["Error"]["Code"] == "ResourceLimitExceeded" else "")
        raise RuntimeError(f"training job {job_name} was not started: {err}{hint}") from err
    return estimator.sagemaker_session.describe_training_job(job_name)


def rule_statuses(description: dict) -> list[tuple[str, str, str]]:
    """(rule name, status, details) of every Debugger and profiler rule of a described job."""
    out = []
    for key in ("DebugRuleEvaluationStatuses", "ProfilerRuleEvaluationStatuses"):
        for status in description.get(key, []):
            out.append((status["RuleConfigurationName"], status.get("RuleEvaluationStatus", "?"),
                        status.get("StatusDetails", "")))
    return out


def new_job_name() -> str:
    """A unique job name (image-classifier-<timestamp>), the SDK's scheme."""
    return sagemaker.utils.name_from_base(BASE_JOB_NAME)


# ==== Serving (issue 3): local-mode endpoints of the serving image ====

LOCAL_ENDPOINT_URL = "http://localhost:8080"  # local mode publishes every endpoint here (local.serving_port)


def deploy_local(image_uri: str, model_data: str, gpu: bool = False, env: dict[str, str] | None = None,
                 endpoint_name: str | None = None):
    """A local-mode endpoint of `image_uri` serving `model_data` (file://.../model.tar.gz); its Predictor.

    Local mode unpacks the archive beside itself and mounts that whole folder as /opt/ml/model, so it
    is first copied to a folder of its own (removed by delete_local). Returns once /ping answers 200.
    """
    import tempfile

    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    source = Path(model_data.removeprefix("file://"))
    if not source.is_file():
        raise FileNotFoundError(f"model data {model_data} is not a file: pass file://PATH/model.tar.gz")
    staging = Path(tempfile.mkdtemp(prefix="local-endpoint-"))
    shutil.copyfile(source, staging / "model.tar.gz")
    name = endpoint_name or sagemaker.utils.name_from_base(BASE_JOB_NAME)
    model = Model(image_uri=image_uri, model_data=f"file://{staging / 'model.tar.gz'}", role=LOCAL_ROLE,
                  env=env or {}, name=name, predictor_cls=Predictor, sagemaker_session=local_session())
    try:
        predictor = model.deploy(initial_instance_count=1, instance_type="local_gpu" if gpu else "local",
                                 endpoint_name=name, serializer=IdentitySerializer("image/jpeg"),
                                 deserializer=JSONDeserializer(),
                                 # Local mode's create_endpoint already waits for /ping; the SDK's own
                                 # wait would then sleep 30 s before its first DescribeEndpoint.
                                 wait=False)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    predictor.staging_dir = staging
    return predictor


def delete_local(predictor) -> None:
    """Stop the local endpoint's container, remove it, and forget its endpoint, config and model."""
    from sagemaker.local.local_session import LocalSagemakerClient

    # Local mode stops the container (it ends its `docker-compose up`) but leaves it behind.
    endpoint = LocalSagemakerClient._endpoints.get(predictor.endpoint_name)
    hosts = list(getattr(getattr(endpoint, "container", None), "hosts", []))
    try:
        predictor.delete_model()  # first: it finds the model through the endpoint config
        predictor.delete_endpoint(delete_endpoint_config=True)
    finally:
        shutil.rmtree(getattr(predictor, "staging_dir", ""), ignore_errors=True)
        for host in hosts:  # compose names the container <project>-<host>
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=-{host}$"], capture_output=True,
                                 text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


# ---- cloud endpoints (issue 6) ----

VARIANT = "AllTraffic"  # the SDK's production variant name
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def training_job_model(session: sagemaker.Session, job_name: str) -> str:
    """model.tar.gz's S3 URI of a completed training job; ValueError naming the job's state otherwise."""
    description = session.sagemaker_client.describe_training_job(TrainingJobName=job_name)
    status = description["TrainingJobStatus"]
    if status != "Completed":
        raise ValueError(f"training job {job_name} is {status}, not Completed: no model to deploy"
                         + (f" ({description['FailureReason']})" if description.get("FailureReason") else ""))
    return description["ModelArtifacts"]["S3ModelArtifacts"]


def deploy_cloud(session: sagemaker.Session, image_uri: str, model_data: str, role: str, endpoint_name: str,
                 instance_type: str = "ml.m5.xlarge", instance_count: int = 1,
                 data_capture_s3: str | None = None, kms_key_id: str | None = None,
                 vpc_config: dict | None = None, network_isolation: bool = False, wait: bool = True) -> str:
    """Model + endpoint config + endpoint, all named endpoint_name; waits until InService.

    image_uri: the pushed serving image by digest. data_capture_s3: capture every request and response
    there (Model Monitor's format). Returns the endpoint name.
    """
    from sagemaker.model import Model
    from sagemaker.model_monitor import DataCaptureConfig

    model = Model(image_uri=image_uri, model_data=model_data, role=role, name=endpoint_name,
                  vpc_config=vpc_config, enable_network_isolation=network_isolation, sagemaker_session=session)
    capture = None
    if data_capture_s3:
        capture = DataCaptureConfig(enable_capture=True, sampling_percentage=100, destination_s3_uri=data_capture_s3,
                                    kms_key_id=kms_key_id, sagemaker_session=session)
    model.deploy(initial_instance_count=instance_count, instance_type=instance_type, endpoint_name=endpoint_name,
                 data_capture_config=capture, kms_key=kms_key_id, wait=wait)
    return endpoint_name


def enable_autoscaling(autoscaling, endpoint_name: str, min_count: int, max_count: int,
                       invocations_per_instance: int) -> None:
    """Target tracking on SageMakerVariantInvocationsPerInstance (invocations per instance per minute)."""
    if not 1 <= min_count <= max_count:
        raise ValueError(f"autoscaling needs 1 <= min ({min_count}) <= max ({max_count})")
    resource = f"endpoint/{endpoint_name}/variant/{VARIANT}"
    autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                         ScalableDimension=SCALABLE_DIMENSION,
                                         MinCapacity=min_count, MaxCapacity=max_count)
    autoscaling.put_scaling_policy(
        PolicyName=f"{endpoint_name}-invocations", ServiceNamespace="sagemaker", ResourceId=resource,
        ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            # Scale out fast on a burst, scale in slowly (a new instance takes minutes to come up).
            "ScaleOutCooldown": 60, "ScaleInCooldown": 300})


def delete_cloud_endpoint(session: sagemaker.Session, endpoint_name: str, autoscaling=None) -> list[str]:
    """Delete the endpoint, its endpoint config, its models and its scaling targets; returns what was
    deleted ('endpoint NAME', ...). Raises ValueError when there is no such endpoint."""
    from botocore.exceptions import ClientError

    client = session.sagemaker_client
    try:
        endpoint = client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as err:
        if "Could not find endpoint" in str(err):
            raise ValueError(f"there is no endpoint {endpoint_name} in {session.boto_region_name}") from None
        raise
    config_name = endpoint["EndpointConfigName"]
    config = client.describe_endpoint_config(EndpointConfigName=config_name)
    deleted = []
    if autoscaling is not None:
        for variant in config["ProductionVariants"]:
            resource = f"endpoint/{endpoint_name}/variant/{variant['VariantName']}"
            targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource],
                                                            ScalableDimension=SCALABLE_DIMENSION)
            if targets["ScalableTargets"]:
                autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                                       ScalableDimension=SCALABLE_DIMENSION)
                deleted.append(f"scaling target {resource}")
    client.delete_endpoint(EndpointName=endpoint_name)
    deleted.append(f"endpoint {endpoint_name}")
    client.delete_endpoint_config(EndpointConfigName=config_name)
    deleted.append(f"endpoint config {config_name}")
    for variant in config["ProductionVariants"]:
        client.delete_model(ModelName=variant["ModelName"])
        deleted.append(f"model {variant['ModelName']}")
    return deleted
