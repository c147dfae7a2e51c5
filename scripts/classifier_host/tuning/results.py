"""What a hyperparameter search leaves behind, the same for the SageMaker tuner and the local one.

- `best_hyperparameters.json`: {"source", "tuning_job_name", "best_training_job_name",
  "objective": {"name", "type", "value"}, "tuned": [names], "hyperparameters": {name: value}}
  where `hyperparameters` is the full set the best job trained with (fixed + tuned), in the
  trainer's schema names and types; `scripts/train.py --hyperparameters-file` reads it back.
- `trials.csv`: one row per training job (status, objective, tuned values, failure reason).
- `tuning.png`: objective by trial and objective against each tuned hyperparameter.

No SageMaker SDK, Optuna or torch here: the train command imports this module to read the file.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.contract import hyperparams, metrics

BEST_FILE = "best_hyperparameters.json"
TRIALS_FILE = "trials.csv"
PLOT_FILE = "tuning.png"
OBJECTIVE_TYPE = "Maximize"
# SageMaker's TrainingJobStatus words, used for local trials too so both CSVs read the same.
COMPLETED, FAILED, STOPPED = "Completed", "Failed", "Stopped"


@dataclass
class Trial:
    number: int
    job_name: str
    status: str
    objective: float | None
    tuned: dict[str, Any]
    seconds: float | None = None
    failure_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # other metrics of the job (test_acc...)


def as_hp_string(value: Any) -> str:
    """A value as SageMaker delivers hyperparameters: a string the schema parses back exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form, e.g. 0.00031 or 1e-05
    return str(value)


def normalize(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Schema-typed values of the trainer's hyperparameters in `raw`; SageMaker's own keys dropped.

    Accepts what a training job holds (strings, possibly JSON-quoted) or typed JSON values.
    """
    out = {}
    for name, value in raw.items():
        if name in hyperparams.TUNER_KEYS or name.startswith(hyperparams.SAGEMAKER_PREFIX):
            continue
        param = hyperparams.BY_NAME.get(name)
        if param is None:
            raise hyperparams.HyperparameterError(
                f"{where}: unknown hyperparameter {name!r}; known: {', '.join(hyperparams.BY_NAME)}"
            )
        try:
            out[name] = param.parse(as_hp_string(value))
        except hyperparams.HyperparameterError:
            if param.check is None or param.type is not str:
                raise
            # A machine-dependent check (e.g. a weights file that exists inside the image, not here):
            # keep the value as the job had it; the trainer checks it where it runs.
            out[name] = _unquoted(as_hp_string(value))
    return out


def _unquoted(text: str) -> str:
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        return text
    return decoded if isinstance(decoded, str) else text


def best_of(trials: list[Trial]) -> Trial | None:
    """The completed trial with the highest objective (the earliest of equals)."""
    done = [t for t in trials if t.status == COMPLETED and t.objective is not None and not math.isnan(t.objective)]
    return max(done, key=lambda t: t.objective, default=None)


def write_best(
    path: Path,
    *,
    source: str,
    tuning_job_name: str,
    best_training_job_name: str,
    objective_value: float,
    hyperparameters: dict[str, Any],
    tuned: list[str],
) -> Path:
    document = {
        "source": source,
        "tuning_job_name": tuning_job_name,
        "best_training_job_name": best_training_job_name,
        "objective": {"name": metrics.OBJECTIVE, "type": OBJECTIVE_TYPE, "value": objective_value},
        "tuned": sorted(tuned),
        "hyperparameters": normalize(hyperparameters, best_training_job_name),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def load_best(path: Path) -> dict[str, str]:
    """The hyperparameters of a best_hyperparameters.json, as strings for a training job."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise hyperparams.HyperparameterError(f"{path} does not exist (run `make tune` first)") from None
    except json.JSONDecodeError as err:
        raise hyperparams.HyperparameterError(f"{path} is not valid JSON: {err}") from None
    values = document.get("hyperparameters") if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise hyperparams.HyperparameterError(
            f"{path} has no 'hyperparameters' object; expected the file `scripts/tune.py` writes"
        )
    return {name: as_hp_string(value) for name, value in normalize(values, str(path)).items()}


def write_csv(path: Path, trials: list[Trial], tuned: list[str]) -> Path:
    extra = sorted({name for t in trials for name in t.extra})
    columns = ["trial", "job_name", "status", metrics.OBJECTIVE, *tuned, *extra, "seconds", "failure_reason"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for t in trials:
            reason = " ".join(t.failure_reason.split())[:500]  # one line; the job log has the rest
            writer.writerow(
                [
                    t.number,
                    t.job_name,
                    t.status,
                    _cell(t.objective),
                    *(_cell(t.tuned.get(n)) for n in tuned),
                    *(_cell(t.extra.get(n)) for n in extra),
                    _cell(t.seconds),
                    reason,
                ]
            )
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def plot(path: Path, trials: list[Trial], space: dict[str, Any], title: str) -> Path:
    """Objective by trial (with the running best; failures marked) and against each tuned value."""
    import matplotlib.ticker

    from ..reports.figures import pyplot

    plt = pyplot()

    names = [n for n in space if any(n in t.tuned for t in trials)]
    panels = 1 + len(names)
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    flat = axes.ravel()
    done = [t for t in trials if t.status == COMPLETED and t.objective is not None]
    failed = [t for t in trials if t not in done]

    ax = flat[0]
    ax.scatter([t.number for t in done], [t.objective for t in done], color="tab:blue", label="completed")
    running, best = [], -math.inf
    for t in sorted(done, key=lambda t: t.number):
        best = max(best, t.objective)
        running.append((t.number, best))
    if running:
        ax.step(*zip(*running, strict=True), where="post", color="tab:green", label="best so far")
    floor = min([t.objective for t in done], default=0.0)
    if failed:
        ax.scatter(
            [t.number for t in failed],
            [floor] * len(failed),
            marker="x",
            color="tab:red",
            label=f"failed/stopped ({len(failed)})",
        )
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(metrics.OBJECTIVE)
    ax.set_title("objective by trial")
    ax.legend(fontsize=8)

    for ax, name in zip(flat[1:], names, strict=False):
        rng = space[name]
        points = [(t.tuned[name], t.objective) for t in done if name in t.tuned]
        if isinstance(rng, hyperparams.Categorical):
            labels = [str(v) for v in rng.values]
            xs = [labels.index(str(v)) if str(v) in labels else len(labels) for v, _ in points]
            ax.set_xticks(range(len(labels)), labels)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        else:
            xs = [float(v) for v, _ in points]
            if getattr(rng, "log", False):
                ax.set_xscale("log")
            elif isinstance(rng, hyperparams.Integer):
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.scatter(xs, [y for _, y in points], color="tab:blue")
        ax.set_xlabel(name)
        ax.set_ylabel(metrics.OBJECTIVE)
    for ax in flat[panels:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_all(output_dir: Path, trials: list[Trial], space: dict[str, Any], title: str) -> tuple[Path, Path]:
    """trials.csv and tuning.png for any search (best_hyperparameters.json is written by the caller)."""
    tuned = [n for n in space if any(n in t.tuned for t in trials)]
    return write_csv(output_dir / TRIALS_FILE, trials, tuned), plot(output_dir / PLOT_FILE, trials, space, title)
