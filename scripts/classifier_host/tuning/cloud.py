"""A SageMaker tuning job's results as the files both searches write (trials.csv, tuning.png,
best_hyperparameters.json): its training-job summaries become trials, its ranges the search space."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from classifier.contract import hyperparams

from . import results
from .results import Trial


def cloud_trials(summaries: list[dict]) -> list[Trial]:
    """SageMaker's training-job summaries as trials, in the order they started."""

    def started(summary):
        return summary.get("TrainingStartTime") or summary.get("CreationTime") or datetime.datetime.min

    trials = []
    for number, summary in enumerate(sorted(summaries, key=started), start=1):
        start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
        objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
        trials.append(
            Trial(
                number,
                summary["TrainingJobName"],
                summary["TrainingJobStatus"],
                float(objective) if objective is not None else None,
                results.normalize(summary.get("TunedHyperParameters", {}), summary["TrainingJobName"]),
                seconds=(end - start).total_seconds() if start and end else None,
                failure_reason=summary.get("FailureReason", ""),
            )
        )
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
    results.write_all(output, cloud_trials(summaries), space, f"SageMaker tuning job {name}")
    best = description.get("BestTrainingJob")
    if not best:
        return None
    static = description.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {})
    return results.write_best(
        output / results.BEST_FILE,
        source="sagemaker",
        tuning_job_name=name,
        best_training_job_name=best["TrainingJobName"],
        objective_value=float(best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]),
        hyperparameters={**static, **best["TunedHyperParameters"]},
        tuned=list(best["TunedHyperParameters"]),
    )
