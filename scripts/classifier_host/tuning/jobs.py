"""The searches tune.py runs: local-mode trials driven by Optuna's TPE sampler, or a SageMaker tuning job
(started, or attached to by name) whose trials are read back. Both write best_hyperparameters.json,
trials.csv and tuning.png in the request's output folder (results.py). The CLI parses the options, calls
one function here and maps its errors to an exit status.

Errors: SettingsError (a setting, option or file that cannot be used; nothing started), SearchFailed (a
tuning job SageMaker could not describe), StoppedWaiting (Ctrl-C while waiting: the cloud job goes on)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.contract import hyperparams, metrics

from .. import records, settings
from ..data import fingerprint
from ..sagemaker.access import Access
from ..settings import SettingsError
from ..tracking import runs
from ..tracking.metric_tap import MetricTap
from .results import Trial


class SearchFailed(Exception):
    """The tuning job could not be read (no such job, or SageMaker refused)."""


class StoppedWaiting(Exception):
    """Waiting for a cloud tuning job was interrupted; the message says how to attach to it later."""


@dataclass(frozen=True)
class SearchRequest:
    """What tune.py asks for (its --help says what each option does); `fixed` already checked."""

    output_dir: Path
    fixed: dict[str, str] = field(default_factory=dict)
    data: str | None = None  # a folder (local) or an s3:// prefix (cloud)
    attach: str | None = None  # cloud: read this tuning job instead of starting one
    max_jobs: int = 10
    max_parallel_jobs: int = 2
    image: str | None = None
    gpu: bool = False
    seed: int = 0
    start_from: Path | None = None
    spot: bool = False
    instance_type: str = "ml.g5.xlarge"
    max_run_hours: float = 24
    network_isolation: bool = False
    no_wait: bool = False


@dataclass(frozen=True)
class Outcome:
    """Where the results are, the best hyperparameters' file (None when no trial completed), every trial."""

    output: Path
    best: Path | None
    trials: list[Trial]


def search_space(fixed: dict[str, str]) -> dict[str, Any]:
    """SEARCH_SPACE without the names the user fixed with --hp."""
    return {name: rng for name, rng in hyperparams.SEARCH_SPACE.items() if name not in fixed}


def tune_local(request: SearchRequest, space: dict[str, Any]) -> Outcome:
    data = Path(request.data)
    if not data.is_dir():
        raise SettingsError(f"--data {data} is not a folder")
    first = []
    if request.start_from:
        from . import results

        try:
            start = results.load_best(request.start_from)
        except hyperparams.HyperparameterError as err:
            raise SettingsError(str(err)) from None
        first = [{name: hyperparams.BY_NAME[name].parse(value) for name, value in start.items() if name in space}]

    from ..images.names import local_image
    from . import search  # Optuna and the SDK: after the argument checks

    image = request.image or local_image("train")
    name = datetime.datetime.now(datetime.UTC).strftime("tune-%Y%m%d-%H%M%S")
    output = request.output_dir.resolve()
    with runs.journal_session() as journal:
        # The search is the parent run; each trial a child run whose metrics are read off its log as it runs.
        parent = runs.TrainingRun.start(
            journal,
            name,
            {**request.fixed, "max_jobs": request.max_jobs, "seed": request.seed},
            {
                runs.KIND_TAG: "search",
                "mode": "local",
                "data.location": str(data.resolve()),
                **fingerprint.of_folder(data).tags(),
                **runs.local_image_tags(image),
            },
        )
        trial_runs: dict[str, runs.TrainingRun] = {}

        def tap(job_name: str, log):
            run = runs.TrainingRun.start(journal, job_name, {}, {runs.KIND_TAG: "trial"}, parent=parent.key)
            trial_runs[job_name] = run
            return MetricTap(log, run.on_metrics)

        with runs.run_ending(parent):
            trials = search.search(
                search.local_job_runner(image, data, gpu=request.gpu, tap=tap),
                output,
                request.max_jobs,
                fixed=request.fixed,
                space=space,
                seed=request.seed,
                first_trials=first,
                name=name,
            )
            best = search.write_results(output, trials, request.fixed, space, name)
            track_trials(trial_runs, trials, output, request.fixed)
            parent.log_files(output / "trials.csv", output / "tuning.png", best)
    return Outcome(output, best, trials)


def track_trials(trial_runs: dict, trials: list[Trial], output: Path, fixed: dict[str, str]) -> None:
    """Each trial's run: its hyperparameters, its model, its end state; the best one tagged."""
    from . import results

    best = results.best_of(trials)
    for trial in trials:
        run = trial_runs.get(trial.job_name)
        if run is None:
            continue
        run.journal.log_params(run.key, {**fixed, **{k: results.as_hp_string(v) for k, v in trial.tuned.items()}})
        model = output / "jobs" / trial.job_name / "model.tar.gz"
        if model.is_file():
            run.log_model(str(model), model, model.parent / "tracked")
        if best is not None and trial.job_name == best.job_name:
            run.journal.set_tags(run.key, {runs.BEST_TAG: "true"})
        run.end("FINISHED" if trial.status == results.COMPLETED else "FAILED")


def tune_cloud(request: SearchRequest, space: dict[str, Any]) -> Outcome | None:
    """Start a tuning job (or attach to request.attach), wait for it and write its results; None with
    request.no_wait (the job started; tune.py --attach reads it later)."""
    if request.data and not request.data.startswith("s3://"):
        raise SettingsError(f"--data {request.data} must be an s3:// prefix for a cloud search (or add --local)")
    cfg = settings.load() if request.attach else settings.load("SAGEMAKER_ROLE_ARN", "S3_BUCKET")
    image = None if request.attach else records.cloud_image(request.image, "train")
    # The SDK takes over a second to import: only once the settings are known good.
    from ..sagemaker import session, training, tuning
    from . import cloud

    boto = session.boto_session(cfg.region)
    if request.attach:
        job_name = request.attach
        try:
            tuning.describe(boto, job_name)
        except RuntimeError as err:
            raise SearchFailed(str(err)) from err
    else:
        job_name = tuning.new_tuning_job_name()
        try:
            spec = training.JobSpec(
                image,
                Access.of(cfg, request.network_isolation),
                cfg.s3_uri("tuning"),
                request.fixed,
                instance_type=request.instance_type,
                spot=request.spot,
                max_run=int(request.max_run_hours * 3600),
                checkpoint_s3_uri=cfg.s3_uri("checkpoints", job_name) if request.spot else None,
            )
        except ValueError as err:
            raise SettingsError(str(err)) from None
        tuning.start_tuning(boto, spec, space, request.data, job_name, request.max_jobs, request.max_parallel_jobs)
        print(
            f"[tune] started tuning job {job_name} ({request.max_jobs} jobs, {request.max_parallel_jobs} at a time, "
            f"{request.instance_type}{', spot' if request.spot else ''}, image {image})"
        )
        if request.no_wait:
            print(f"later: python scripts/tune.py --attach {job_name} --output-dir {request.output_dir}")
            return None
    try:
        description = tuning.wait_for_tuning(boto, job_name)
    except KeyboardInterrupt:
        raise StoppedWaiting(
            f"stopped waiting; the tuning job goes on. Later: python scripts/tune.py --attach {job_name}"
        ) from None
    summaries = tuning.training_job_summaries(boto, job_name)
    output = request.output_dir.resolve()
    best = cloud.write_cloud_results(output, description, summaries)
    trials = cloud.cloud_trials(summaries)
    track_cloud_search(job_name, request, trials, output, best)
    return Outcome(output, best, trials)


def track_cloud_search(job_name: str, request: SearchRequest, trials: list[Trial], output: Path, best: Path | None):
    """The tuning job as a parent run, each of its training jobs a child with its final metrics (SageMaker ran
    them; their logs are not streamed here, so no per-epoch values), the best one tagged."""
    from . import results

    with runs.journal_session() as journal:
        parent = runs.TrainingRun.start(
            journal,
            job_name,
            {
                **request.fixed,
                "max_jobs": request.max_jobs,
                "instance_type": request.instance_type,
                "spot": request.spot,
            },
            {runs.KIND_TAG: "search", "mode": "cloud", "data.location": request.data or ""},
        )
        with runs.run_ending(parent):
            top = results.best_of(trials)
            for trial in trials:
                child = runs.TrainingRun.start(
                    journal,
                    trial.job_name,
                    {k: results.as_hp_string(v) for k, v in trial.tuned.items()},
                    {runs.KIND_TAG: "trial", "mode": "cloud"}
                    | ({runs.BEST_TAG: "true"} if top and trial.job_name == top.job_name else {}),
                    parent=parent.key,
                )
                if trial.objective is not None:
                    journal.log_metric(child.key, metrics.OBJECTIVE, trial.objective)
                for name, value in trial.extra.items():
                    if isinstance(value, int | float):
                        journal.log_metric(child.key, name, value)
                child.end("FINISHED" if trial.status == results.COMPLETED else "FAILED")
            parent.log_files(output / "trials.csv", output / "tuning.png", best)
