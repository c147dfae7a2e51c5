"""The local hyperparameter search: Optuna's TPE sampler over real SageMaker local-mode training jobs.

Local mode has no tuning jobs, so this plays SageMaker's tuner: it samples the search space of
classifier.contract.hyperparams, runs one local-mode training job per trial, scores the job by the last
`best_val_acc` its log prints (the regexes SageMaker scrapes with, classifier.contract.metrics), and records
a failed job with its reason before going on. Results go through tuning/results.py, like the cloud's.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from classifier.contract import hyperparams, metrics

from ..sagemaker import local
from . import results
from .results import COMPLETED, FAILED, Trial

# run_job(hyperparameters as strings, job name, folder for the job's files) -> the job's log text;
# raises RuntimeError (with the job's failure reason) when the job fails.
JobRunner = Callable[[dict[str, str], str, Path], str]


def distributions(space: dict[str, Any]) -> dict[str, BaseDistribution]:
    """The search space as Optuna distributions (what the TPE sampler draws from)."""
    out: dict[str, BaseDistribution] = {}
    for name, rng in space.items():
        if isinstance(rng, hyperparams.Continuous):
            out[name] = FloatDistribution(rng.min, rng.max, log=rng.log)
        elif isinstance(rng, hyperparams.Integer):
            out[name] = IntDistribution(rng.min, rng.max, log=rng.log)
        elif isinstance(rng, hyperparams.Categorical):
            out[name] = CategoricalDistribution(rng.values)
        else:
            raise TypeError(f"search space entry {name!r}: {rng!r} is not Continuous, Integer or Categorical")
    return out


def local_job_runner(
    image: str, data_dir: Path, gpu: bool = False, tap: Callable[[str, Any], Any] | None = None
) -> JobRunner:
    """Runs each trial as a local-mode training job (sagemaker/local.py); its log goes to <job folder>/job.log.
    tap(job_name, log file) -> a stream in front of it (tracking reads the metric lines as they pass)."""

    def run(hp: dict[str, str], job_name: str, job_dir: Path) -> str:
        job_dir.mkdir(parents=True, exist_ok=True)
        log_path = job_dir / "job.log"
        # Local mode streams the containers' output through sys.stdout and logs the compose file
        # through the `sagemaker` logger: keep both per trial, so the terminal shows one progress
        # line per trial and each job's log can be read back.
        with (
            open(log_path, "w") as log,
            contextlib.redirect_stdout(tap(job_name, log) if tap else log),
            _sdk_logs_to(log),
        ):
            try:
                # train_local puts the job's archives in job_dir.parent/<job name>/ = job_dir.
                single_job_copy = local.train_local(image, data_dir, job_dir.parent, hp, gpu=gpu, job_name=job_name)
            except RuntimeError as err:
                raise RuntimeError(f"{err} (log: {log_path})") from err
        single_job_copy.unlink()  # a copy for single jobs; each trial keeps its own in job_dir
        return log_path.read_text(errors="replace")

    return run


@contextlib.contextmanager
def _sdk_logs_to(stream):
    logger = logging.getLogger("sagemaker")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    config = logging.getLogger("sagemaker.config")  # has its own stderr handler: quiet it instead
    level = config.level
    config.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        config.setLevel(level)


def search(
    run_job: JobRunner,
    output_dir: Path,
    max_jobs: int,
    fixed: dict[str, str] | None = None,
    space: dict[str, Any] | None = None,
    seed: int = 0,
    first_trials: list[dict[str, Any]] = (),
    name: str | None = None,
    say: Callable[[str], None] = print,
) -> list[Trial]:
    """Run `max_jobs` trials (sequentially: local jobs share this machine) and return them all.

    fixed: hyperparameters every trial gets (epochs, model-name...); tuned names override nothing
    here, so a name must not be both fixed and tuned. first_trials: values to try before sampling
    (Optuna's enqueue_trial), e.g. a previous search's best.
    """
    space = dict(hyperparams.SEARCH_SPACE if space is None else space)
    fixed = dict(fixed or {})
    both = sorted(set(fixed) & set(space))
    if both:
        raise ValueError(f"{', '.join(both)} both fixed (--hp) and tuned; drop it from one of them")
    if max_jobs < 1:
        raise ValueError(f"max_jobs must be >= 1, got {max_jobs}")
    name = name or time.strftime("tune-%Y%m%d-%H%M%S")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own progress line per trial says it all
    # Half the budget (at most Optuna's usual 10) explores at random before TPE models the results.
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, max_jobs // 2)))
    study = optuna.create_study(study_name=name, direction="maximize", sampler=sampler)
    for values in first_trials:
        study.enqueue_trial(dict(values))
    dists = distributions(space)

    trials: list[Trial] = []
    started = time.perf_counter()
    for index in range(max_jobs):
        trial = study.ask(fixed_distributions=dists)
        job_name = f"{name}-{index + 1:03d}"
        tuned = dict(trial.params)
        hp = {**fixed, **{k: results.as_hp_string(v) for k, v in tuned.items()}}
        say(
            f"[tune] trial {index + 1}/{max_jobs} {job_name}: "
            + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in tuned.items())
        )
        t0 = time.perf_counter()
        result = _run_trial(run_job, hp, job_name, output_dir / "jobs" / job_name)
        result.number, result.tuned, result.seconds = index + 1, tuned, time.perf_counter() - t0
        trials.append(result)
        if result.status == COMPLETED:
            study.tell(trial, result.objective)
        else:
            trial.set_user_attr("failure_reason", result.failure_reason)
            study.tell(trial, state=TrialState.FAIL)
        best = results.best_of(trials)
        elapsed = time.perf_counter() - started
        eta = elapsed / (index + 1) * (max_jobs - index - 1)
        outcome = (
            f"{metrics.OBJECTIVE}={result.objective:.4f}"
            if result.status == COMPLETED
            else f"FAILED: {result.failure_reason.splitlines()[0] if result.failure_reason else '?'}"
        )
        say(
            f"[tune] trial {index + 1}/{max_jobs} {outcome} ({result.seconds:.0f}s); best "
            + (f"{best.objective:.4f} (trial {best.number})" if best else "none yet")
            + f"; ETA {eta:.0f}s"
        )
    return trials


def _run_trial(run_job: JobRunner, hp: dict[str, str], job_name: str, job_dir: Path) -> Trial:
    """One job, scored like SageMaker scores it; every way it can go wrong becomes a failed trial."""
    try:
        log = run_job(hp, job_name, job_dir)
    except RuntimeError as err:
        return Trial(0, job_name, FAILED, None, {}, failure_reason=str(err))
    objective = metrics.last_value(log, metrics.OBJECTIVE)
    if objective is None or math.isnan(objective):
        reason = (
            f"the job finished but its log has no {metrics.OBJECTIVE} value"
            if objective is None
            else f"{metrics.OBJECTIVE} is nan"
        )
        return Trial(0, job_name, FAILED, None, {}, failure_reason=reason)
    extra = {k: metrics.last_value(log, k) for k in metrics.FINAL_METRICS if k != metrics.OBJECTIVE}
    return Trial(0, job_name, COMPLETED, objective, {}, extra={k: v for k, v in extra.items() if v is not None})


def write_results(
    output_dir: Path, trials: list[Trial], fixed: dict[str, str], space: dict[str, Any] | None, name: str
) -> Path | None:
    """trials.csv, tuning.png and (when a trial completed) best_hyperparameters.json."""
    space = dict(hyperparams.SEARCH_SPACE if space is None else space)
    results.write_all(output_dir, trials, space, f"local search {name}")
    best = results.best_of(trials)
    if best is None:
        return None
    return results.write_best(
        output_dir / results.BEST_FILE,
        source="local",
        tuning_job_name=name,
        best_training_job_name=best.job_name,
        objective_value=best.objective,
        hyperparameters={**fixed, **best.tuned},
        tuned=list(best.tuned),
    )
