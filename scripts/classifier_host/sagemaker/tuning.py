"""Cloud hyperparameter tuning jobs (sagemaker-core's `HyperParameterTuningJob` resource).

The training definition is the training job's own (training.JobSpec): network isolation, inter-container
encryption and the volume KMS key reach the tuning job's trials too, which v3's HyperparameterTuner would
drop. The search space is classifier.contract.hyperparams.SEARCH_SPACE; the objective and the metric regexes are
classifier.contract.metrics'. Local mode has no tuning jobs: classifier_host.tuning.search runs the same space.
"""

from __future__ import annotations

import time

from .session import new_job_name, sagemaker_client
from .training import JobSpec

TUNING_DONE = ("Completed", "Failed", "Stopped")
# SageMaker allows 32 characters; a millisecond timestamp (23) leaves room for only a short base.
TUNING_JOB_BASE, TUNING_JOB_MAX = "ic-tune", 32


def parameter_ranges(space: dict):
    """The search space as CreateHyperParameterTuningJob's ParameterRanges (values as strings)."""
    from sagemaker.core import shapes

    from classifier.contract import hyperparams

    ranges = {"continuous_parameter_ranges": [], "integer_parameter_ranges": [], "categorical_parameter_ranges": []}
    for name, rng in space.items():
        scaling = "Logarithmic" if getattr(rng, "log", False) else "Linear"
        if isinstance(rng, hyperparams.Continuous):
            ranges["continuous_parameter_ranges"].append(
                shapes.ContinuousParameterRange(
                    name=name, min_value=str(rng.min), max_value=str(rng.max), scaling_type=scaling
                )
            )
        elif isinstance(rng, hyperparams.Integer):
            ranges["integer_parameter_ranges"].append(
                shapes.IntegerParameterRange(
                    name=name, min_value=str(rng.min), max_value=str(rng.max), scaling_type=scaling
                )
            )
        elif isinstance(rng, hyperparams.Categorical):
            ranges["categorical_parameter_ranges"].append(
                shapes.CategoricalParameterRange(name=name, values=[str(v) for v in rng.values])
            )
        else:
            raise TypeError(f"search space entry {name!r}: {rng!r} is not Continuous, Integer or Categorical")
    return shapes.ParameterRanges(**{kind: entries for kind, entries in ranges.items() if entries})


def start_tuning(
    boto, spec: JobSpec, space: dict, data_uri: str, job_name: str, max_jobs: int, max_parallel_jobs: int
) -> str:
    """CreateHyperParameterTuningJob: Bayesian search maximising the objective, early stopping left to
    SageMaker (`Auto`), every trial a training job as `spec` describes. Returns the job's name."""
    from sagemaker.core import resources, shapes

    from classifier.contract import metrics

    common = spec.common(data_uri)
    metric_definitions = common.pop("metric_definitions")
    resources.HyperParameterTuningJob.create(
        hyper_parameter_tuning_job_name=job_name,
        hyper_parameter_tuning_job_config=shapes.HyperParameterTuningJobConfig(
            strategy="Bayesian",
            hyper_parameter_tuning_job_objective=shapes.HyperParameterTuningJobObjective(
                type="Maximize", metric_name=metrics.OBJECTIVE
            ),
            resource_limits=shapes.ResourceLimits(
                max_number_of_training_jobs=max_jobs, max_parallel_training_jobs=max_parallel_jobs
            ),
            parameter_ranges=parameter_ranges(space),
            training_job_early_stopping_type="Auto",
        ),
        training_job_definition=shapes.HyperParameterTrainingJobDefinition(
            algorithm_specification=shapes.HyperParameterAlgorithmSpecification(
                training_image=spec.image_uri, training_input_mode="File", metric_definitions=metric_definitions
            ),
            static_hyper_parameters=dict(spec.hyperparameters),
            **common,
        ),
        session=boto,
        region=boto.region_name,
    )
    return job_name


def new_tuning_job_name() -> str:
    return new_job_name(TUNING_JOB_BASE, max_length=TUNING_JOB_MAX)


def describe(boto, job_name: str) -> dict:
    """DescribeHyperParameterTuningJob, with a clear error when there is no such job."""
    from botocore.exceptions import ClientError

    try:
        client = sagemaker_client(boto)
        return client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job_name)
    except ClientError as err:
        raise RuntimeError(f"cannot attach to tuning job {job_name!r}: {err}") from None


def wait_for_tuning(boto, job_name: str, poll_seconds: float = 60, say=print) -> dict:
    """Poll DescribeHyperParameterTuningJob until the job ends, printing a line when counts change."""
    last = None
    while True:
        description = describe(boto, job_name)
        status = description["HyperParameterTuningJobStatus"]
        counts = description.get("TrainingJobStatusCounters", {})
        best = description.get("BestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric", {})
        line = (
            f"[tune] {job_name}: {status}; jobs completed {counts.get('Completed', 0)}, "
            f"running {counts.get('InProgress', 0)}, stopped {counts.get('Stopped', 0)}, "
            f"failed {counts.get('RetryableError', 0) + counts.get('NonRetryableError', 0)}; "
            f"best {best.get('MetricName', '')}={best.get('Value', '-')}"
        )
        if line != last:
            say(line)
            last = line
        if status in TUNING_DONE:
            return description
        time.sleep(poll_seconds)


def training_job_summaries(boto, job_name: str) -> list[dict]:
    """Every training job of the tuning job (ListTrainingJobsForHyperParameterTuningJob, all pages)."""
    pages = (
        sagemaker_client(boto)
        .get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
        .paginate(HyperParameterTuningJobName=job_name)
    )
    return [summary for page in pages for summary in page["TrainingJobSummaries"]]
