"""Cloud training jobs on the pushed training image (sagemaker-core's `TrainingJob` resource).

`JobSpec` is what a training job and a tuning job's training definition share (image, role, instances,
limits, spot, KMS, VPC, isolation): one place builds both, so a tuning job carries exactly what a
training job carries. v3's ModelTrainer was not used: it has no Debugger parameters, calls
iam:SimulatePrincipalPolicy when built, and its tuner drops network isolation, inter-container
encryption and the volume KMS key from the request (../shared/FACTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import DEBUGGER_MODES
from .access import Access
from .session import NO_TELEMETRY, sagemaker_client

# Where the container's own smdebug hook writes in --debugger project mode: under
# /opt/ml/output/data, so the tensors come back in the job's output.tar.gz.
PROJECT_TENSORS_DIR = "/opt/ml/output/data/tensors"
# SageMaker Debugger's built-in rules (they run in AWS's rules containers, beside the job): the
# rule configurations of AWS's smdebug_rulesconfig, by their function names there.
DEBUGGER_RULES = ("vanishing_gradient", "overfit", "overtraining", "poor_weight_initialization", "loss_not_decreasing")
PROFILER_RULES = ("LowGPUUtilization", "ProfilerReport")
PROFILER_INTERVAL_MS = 500


@dataclass(frozen=True)
class JobSpec:
    """A training job's settings, checked when built (ValueError naming the problem).

    image_uri: the pushed training image, by digest (repo@sha256:...). Managed spot needs
    checkpoint_s3_uri (the trainer resumes from /opt/ml/checkpoints) and max_wait >= max_run.
    """

    image_uri: str
    access: Access
    output_path: str
    hyperparameters: dict
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    spot: bool = False
    max_run: int = 4 * 3600
    max_wait: int | None = None
    checkpoint_s3_uri: str | None = None
    volume_size: int = 50

    def __post_init__(self):
        if self.instance_count < 1:
            raise ValueError(f"instance_count must be >= 1, got {self.instance_count}")
        if self.spot and not self.checkpoint_s3_uri:
            raise ValueError("managed spot training needs a checkpoint_s3_uri: an interrupted job resumes from it")
        if self.spot:
            object.__setattr__(self, "max_wait", self.max_wait or 2 * self.max_run)
            if self.max_wait < self.max_run:
                raise ValueError(
                    f"max_wait ({self.max_wait}s) must be >= max_run ({self.max_run}s) with spot instances"
                )
        elif self.max_wait:
            raise ValueError("max_wait applies only to managed spot training (--spot)")

    def common(self, data_uri: str) -> dict:
        """The keyword arguments CreateTrainingJob and a tuning job's training definition share (shapes)."""
        from sagemaker.core import shapes

        from classifier.contract import metrics

        kms = self.access.kms_key_id
        parts = {
            "role_arn": self.access.role,
            "input_data_config": [
                shapes.Channel(
                    channel_name="training",
                    data_source=shapes.DataSource(
                        s3_data_source=shapes.S3DataSource(
                            s3_data_type="S3Prefix", s3_uri=data_uri, s3_data_distribution_type="FullyReplicated"
                        )
                    ),
                )
            ],
            "output_data_config": shapes.OutputDataConfig(
                s3_output_path=self.output_path, **({"kms_key_id": kms} if kms else {})
            ),
            "resource_config": shapes.ResourceConfig(
                instance_type=self.instance_type,
                instance_count=self.instance_count,
                volume_size_in_gb=self.volume_size,
                **({"volume_kms_key_id": kms} if kms else {}),
            ),
            "stopping_condition": shapes.StoppingCondition(
                max_runtime_in_seconds=self.max_run,
                **({"max_wait_time_in_seconds": self.max_wait} if self.spot else {}),
            ),
        }
        if self.spot:
            parts["enable_managed_spot_training"] = True
            parts["checkpoint_config"] = shapes.CheckpointConfig(s3_uri=self.checkpoint_s3_uri)
        if self.access.network_isolation:
            parts["enable_network_isolation"] = True
        # With several instances and a KMS key, the traffic between hosts is encrypted too.
        if kms and self.instance_count > 1:
            parts["enable_inter_container_traffic_encryption"] = True
        if self.access.vpc_config:
            parts["vpc_config"] = self.access.vpc_shape()
        definitions = [shapes.MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in metrics.metric_definitions()]
        parts["metric_definitions"] = definitions
        return parts


def debugger_settings(mode: str, s3_output: str, region: str) -> tuple[dict, dict[str, str]]:
    """(TrainingJob.create keyword arguments, extra hyperparameters) for a --debugger mode.

    sagemaker: SageMaker Debugger's hook config with the collections the rules read, the built-in rules
      (AWS's rule images for the region) and the profiler (system metrics every 500 ms, ProfilerReport).
    project: no Debugger/profiler settings at all (accounts opened after 2026-07-30 cannot use Debugger);
      the trainer's own hook writes tensors to PROJECT_TENSORS_DIR. off: neither.
    """
    if mode in ("project", "off"):
        # off sends no `debugger` value, so a tuning job's best_hyperparameters.json (static values
        # included) doesn't switch the hook off for the final training; `--hp debugger=false` does.
        extra = {"debugger": "true", "tensors-dir": PROJECT_TENSORS_DIR} if mode == "project" else {}
        return {}, extra
    if mode != "sagemaker":
        raise ValueError(f"debugger mode {mode!r} is not one of {', '.join(DEBUGGER_MODES)}")
    import smdebug_rulesconfig as rule_configs
    from sagemaker.core import shapes
    from sagemaker.core.debugger import get_rule_container_image_uri

    image = get_rule_container_image_uri("sagemaker-debugger-rules", region)
    rules, collections = [], {}
    for name in DEBUGGER_RULES:
        config = getattr(rule_configs, name)()
        rule = config["DebugRuleConfiguration"]
        rules.append(
            shapes.DebugRuleConfiguration(
                rule_configuration_name=rule["RuleConfigurationName"],
                rule_evaluator_image=image,
                rule_parameters=rule.get("RuleParameters", {}),
            )
        )
        for collection in config.get("CollectionConfigurations", []):  # what the rule reads, saved once
            collections.setdefault(collection["CollectionName"], collection.get("CollectionParameters", {}))
    profiler_rules = []
    for name in PROFILER_RULES:
        rule = getattr(rule_configs, name)()
        parameters = {k: str(v) for k, v in rule.rule_parameters.items()}
        profiler_rules.append(
            shapes.ProfilerRuleConfiguration(
                rule_configuration_name=name, rule_evaluator_image=image, rule_parameters=parameters
            )
        )
    return {
        "debug_hook_config": shapes.DebugHookConfig(
            s3_output_path=s3_output,
            collection_configurations=[
                shapes.CollectionConfiguration(collection_name=name, collection_parameters=parameters)
                for name, parameters in collections.items()
            ],
        ),
        "debug_rule_configurations": rules,
        "profiler_config": shapes.ProfilerConfig(
            s3_output_path=s3_output.rsplit("/debugger", 1)[0], profiling_interval_in_milliseconds=PROFILER_INTERVAL_MS
        ),
        "profiler_rule_configurations": profiler_rules,
    }, {}


def start_training(boto, spec: JobSpec, data_uri: str, job_name: str, debugger: str = "off"):
    """CreateTrainingJob (refusals raise RuntimeError naming the job and AWS's reason; a quota hint for
    ResourceLimitExceeded). Returns sagemaker-core's TrainingJob."""
    from botocore.exceptions import ClientError
    from sagemaker.core import resources, shapes

    debug_kwargs, debug_hp = debugger_settings(debugger, f"{spec.output_path.rstrip('/')}/debugger", boto.region_name)
    common = spec.common(data_uri)
    metric_definitions = common.pop("metric_definitions")
    try:
        return resources.TrainingJob.create(
            training_job_name=job_name,
            algorithm_specification=shapes.AlgorithmSpecification(
                training_image=spec.image_uri, training_input_mode="File", metric_definitions=metric_definitions
            ),
            hyper_parameters={**spec.hyperparameters, **debug_hp},
            **common,
            **debug_kwargs,
            session=boto,
            region=boto.region_name,
        )
    except ClientError as err:  # refused before it started: quota, permissions, a bad parameter
        hint = (
            " (a new account has no GPU quota: README, 'GPU quotas')"
            if err.response["Error"]["Code"] == "ResourceLimitExceeded"
            else ""
        )
        raise RuntimeError(f"training job {job_name} was not started: {err}{hint}") from err


def wait_with_logs(boto, job_name: str) -> dict:
    """Stream the job's CloudWatch log until it ends; DescribeTrainingJob's last answer. RuntimeError
    with SageMaker's FailureReason when it fails or stops.

    The core session's log tailer, not TrainingJob.wait(logs=True): that one reads CloudWatch in the
    default region, not the job's.
    """
    from sagemaker.core.exceptions import UnexpectedStatusException
    from sagemaker.core.helper.session_helper import Session, _logs_for_job

    session = Session(boto_session=boto, sagemaker_config=NO_TELEMETRY)
    try:
        return _logs_for_job(session, job_name, wait=True, log_type="All")
    except UnexpectedStatusException as err:
        raise RuntimeError(f"training job {job_name} failed: {err}") from err


def describe(boto, job_name: str) -> dict:
    """DescribeTrainingJob's answer, as the API gives it (the rules' statuses, the model's URI...)."""
    client = sagemaker_client(boto)
    return client.describe_training_job(TrainingJobName=job_name)


def model_of(boto, job_name: str) -> str:
    """model.tar.gz's S3 URI of a completed training job; ValueError naming the job's state otherwise."""
    description = describe(boto, job_name)
    status = description["TrainingJobStatus"]
    if status != "Completed":
        raise ValueError(
            f"training job {job_name} is {status}, not Completed: no model to deploy"
            + (f" ({description['FailureReason']})" if description.get("FailureReason") else "")
        )
    return description["ModelArtifacts"]["S3ModelArtifacts"]


def rule_statuses(description: dict) -> list[tuple[str, str, str]]:
    """(rule name, status, details) of every Debugger and profiler rule of a described job."""
    out = []
    for key in ("DebugRuleEvaluationStatuses", "ProfilerRuleEvaluationStatuses"):
        for status in description.get(key, []):
            out.append(
                (
                    status["RuleConfigurationName"],
                    status.get("RuleEvaluationStatus", "?"),
                    status.get("StatusDetails", ""),
                )
            )
    return out
