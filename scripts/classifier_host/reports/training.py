"""One self-contained HTML report of a training job: curves, debugger rules, utilisation, profiler.

The job folder holds model.tar.gz and/or output.tar.gz (as local mode writes them, or as downloaded from
S3; already-extracted folders work too), or is a scripts/train.py --output-dir (its last job). The report
is JOB/report.html unless told otherwise; rules.json lands beside it. `make report` runs it
(scripts/report.py).

What it reads (see container_src/classifier/debugging/hook.py and training/profiling.py):
- model.tar.gz  metadata.json: per-epoch losses and accuracies, test accuracy, hyperparameters;
                evaluation.json: the test split's evaluation (classifier/model/evaluation.py), drawn as
                evaluation.html beside the report (reports/evaluation_page.py) and linked from it
- output.tar.gz tensors/ or data/tensors/ (smdebug) -> the five local rules (classifier/debugging/rules.py)
                and the per-step loss; data/profile/ (or profile/) -> utilisation, operators, split
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from classifier.contract import outputs

from ..data.archives import unpack_once
from . import evaluation_page
from .figures import DPI, png, pyplot

ARCHIVES = ("model.tar.gz", "output.tar.gz")
UNPACKED = "unpacked"
EVALUATION_PAGE = "evaluation.html"  # written beside the report
LAST_JOB = "last_training_job.txt"  # written by sagemaker/local.py train_local in its output dir
# Thresholds for the plain-language advice.
DATA_SHARE_HIGH = 0.30
GPU_IDLE_HIGH = 0.50
MEMORY_HIGH = 90.0
CPU_BUSY = 85.0


class ReportError(RuntimeError):
    """The job folder lacks what a report needs; the message says what was looked for."""


@dataclass
class JobFiles:
    job_dir: Path
    metadata: dict | None = None
    evaluation: dict | None = None
    tensors_dir: Path | None = None
    profile_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


# --- finding the job's files ------------------------------------------------------------------------


def job_folder(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path} is not a folder (give the job folder or the training --output-dir)")
    if (path / LAST_JOB).is_file() and not any((path / a).is_file() for a in ARCHIVES[1:]):
        return path / (path / LAST_JOB).read_text().strip()
    return path


def unpack(job_dir: Path) -> None:
    """Extract the archives into job_dir/unpacked/{model,output}, once (an extraction cut short is redone)."""
    for archive in ARCHIVES:
        source = job_dir / archive
        if source.is_file():
            unpack_once(source, job_dir / UNPACKED / archive.split(".")[0])


def find(job_dir: Path) -> JobFiles:
    unpack(job_dir)
    files = JobFiles(job_dir)
    metadata = sorted(job_dir.rglob(outputs.METADATA_FILE))
    if metadata:
        files.metadata = json.loads(metadata[0].read_text())
        evaluation = metadata[0].parent / outputs.EVALUATION_FILE
        if evaluation.is_file():
            files.evaluation = json.loads(evaluation.read_text())
    else:
        files.notes.append("no model metadata.json (model.tar.gz): epoch curves are missing")
    events = sorted(p.parent for p in job_dir.rglob("events") if p.is_dir())
    if events:
        files.tensors_dir = events[0]
    else:
        files.notes.append(
            "no smdebug tensors (debugger=false, or SageMaker Debugger kept them in S3): rules not evaluated"
        )
    profiles = sorted(p for p in job_dir.rglob(outputs.PROFILE_DIR) if p.is_dir())
    if profiles:
        files.profile_dir = profiles[0]
    else:
        files.notes.append("no profile/ folder (profiling=false): utilisation and operators are missing")
    if files.metadata is None and files.tensors_dir is None and files.profile_dir is None:
        raise ReportError(
            f"{job_dir} holds no model.tar.gz, output.tar.gz, metadata.json, tensors or profile "
            "data: is it a training job's folder?"
        )
    return files


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- rules and step losses from the tensors ---------------------------------------------------------


def run_local_rules(tensors_dir: Path) -> list[dict]:
    from classifier.debugging import rules

    return [r.to_dict() for r in rules.evaluate(tensors_dir)]


def step_losses(tensors_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Saved training and validation losses by global step."""
    from classifier.debugging import hook

    smd = hook.import_smdebug()
    from smdebug.trials import create_trial

    trial = create_trial(str(tensors_dir))
    names = trial.tensor_names(collection=outputs.LOSSES)
    series = {"train": [], "validation": []}
    if not names:
        return series
    loss = trial.tensor(names[0])
    for step in loss.steps():
        mode = trial.mode_modestep(step)[0]
        key = {smd.modes.TRAIN: "train", smd.modes.EVAL: "validation"}.get(mode)
        if key:
            series[key].append((step, float(loss.value(step))))
    return series


# --- charts (matplotlib -> inline PNG) --------------------------------------------------------------

HALF, FULL = 4.8, 9.6  # figure widths (inches) for a chart in the two-column grid and one across the page


def _log_if_wide(ax, values) -> None:
    """A loss that spans orders of magnitude (a diverging validation loss) reads better on a log axis."""
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 50:
        ax.set_yscale("log")


def _figure(width=FULL, height=3.0):
    fig, ax = pyplot().subplots(figsize=(width, height), dpi=DPI)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.3)
    return fig, ax


def chart_epochs(history: list[dict], kind: str) -> str:
    fig, ax = _figure(HALF, 3.0)
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row[f"train_{kind}"] for row in history], "o-", label="training")
    ax.plot(epochs, [row[f"val_{kind}"] for row in history], "s-", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy" if kind == "acc" else "loss")
    if kind == "acc":
        ax.set_ylim(0, 1.02)
    else:
        _log_if_wide(ax, [row[f"{split}_loss"] for row in history for split in ("train", "val")])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(frameon=False)
    return png(fig)


def chart_steps(series: dict[str, list[tuple[int, float]]]) -> str:
    fig, ax = _figure(FULL, 3.0)
    _log_if_wide(ax, [v for key in series for _, v in series[key]])
    for key, style in (("train", "-"), ("validation", ".")):
        if series[key]:
            steps, values = zip(*series[key], strict=True)
            ax.plot(steps, values, style, label=f"{key} (smdebug)", markersize=4)
    ax.set_xlabel("global step (training and validation steps)")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    return png(fig)


def chart_utilisation(samples: list[dict]) -> str:
    fig, ax = _figure(height=3.2)
    t = [s["t"] for s in samples]
    ax.plot(t, [s["cpu"] for s in samples], label="CPU %")
    ax.plot(t, [s["mem"] for s in samples], label="memory %")
    for key in sorted(k for k in samples[0] if k.startswith("gpu")):
        ax.plot(t, [s.get(key, 0) for s in samples], label=key.replace("_util", " busy %").replace("_mem", " memory %"))
    ax.set_ylim(0, 105)
    ax.set_xlabel("seconds since training started")
    ax.set_ylabel("%")
    ax.legend(frameon=False, ncol=4, loc="upper center", bbox_to_anchor=(0.5, 1.18))
    return png(fig)


def chart_split(epochs: list[dict]) -> str:
    fig, ax = _figure(height=2.6)
    x = [e["epoch"] for e in epochs]
    data = [e["data_seconds"] for e in epochs]
    compute = [e["compute_seconds"] for e in epochs]
    ax.bar(x, compute, label="compute", color="#4c72b0")
    ax.bar(x, data, bottom=compute, label="waiting for data", color="#dd8452")
    ax.set_xlabel("epoch")
    ax.set_ylabel("seconds")
    ax.set_xticks(x)
    ax.legend(frameon=False)
    return png(fig)


def chart_operators(operators: list[dict], top: int = 12) -> str:
    rows = operators[:top][::-1]
    fig, ax = _figure(height=0.28 * len(rows) + 0.8)
    ax.barh([r["name"][:48] for r in rows], [r["self_cpu_ms"] + r["self_device_ms"] for r in rows], color="#55a868")
    ax.set_xlabel("self time in the profiled window (ms, CPU + device)")
    ax.tick_params(axis="y", labelsize=8)
    return png(fig)


# --- advice -----------------------------------------------------------------------------------------

RULE_ADVICE = {
    "vanishing_gradient": "Gradients vanished: the network stopped learning. Raise lr, train more layers "
    "(fine-tune=last-block or full), or check that the data's labels vary.",
    "overfit": "Validation loss pulls away from training loss: the model memorises the training images. Use "
    "augment=trivialaugment, raise weight-decay or label-smoothing, train fewer epochs, or add data.",
    "overtraining": "Validation loss stopped improving: later epochs cost time without gain (the best epoch is "
    "kept). Lower epochs to about where it stopped.",
    "poor_weight_initialization": "Activations vanish or explode across layers at the start: use weights=imagenet, "
    "or check a custom weights file.",
    "loss_not_decreasing": "Training loss plateaued. Early in training: lr is too low or too high. Late: the model "
    "has converged for this lr schedule; fewer epochs would do.",
}


def recommendations(files: JobFiles, rule_results: list[dict], samples: list[dict], epochs: list[dict]) -> list[str]:
    advice = []
    hp = (files.metadata or {}).get("hyperparameters", {})
    if epochs:
        total = sum(e["seconds"] for e in epochs)
        share = sum(e["data_seconds"] for e in epochs) / total if total else 0.0
        if share > DATA_SHARE_HIGH:
            advice.append(
                f"Training steps wait for the data loader {share:.0%} of the time: data loading is the "
                f"bottleneck. Raise num-workers (now {hp.get('num-workers', '?')}, -1 = one per CPU), keep "
                "cache-images=true, or pick an instance with more CPUs."
            )
        else:
            advice.append(
                f"Data loading takes {share:.0%} of step time: the loader keeps up; speed comes from "
                "compute (batch size, a GPU, mixed precision)."
            )
    if samples:
        gpu_keys = [k for k in samples[0] if k.startswith("gpu") and k.endswith("_util")]
        mean = lambda key: sum(s.get(key, 0) for s in samples) / len(samples)  # noqa: E731
        if gpu_keys:
            idle = 1 - sum(mean(k) for k in gpu_keys) / len(gpu_keys) / 100
            if idle > GPU_IDLE_HIGH:
                cause = (
                    "data loading is the bottleneck; raise num-workers"
                    if epochs
                    and sum(e["data_seconds"] for e in epochs) > DATA_SHARE_HIGH * sum(e["seconds"] for e in epochs)
                    else "raise batch-size, or choose a smaller instance"
                )
                advice.append(f"GPU idle {idle:.0%} of the time: {cause}.")
        else:
            cpu = mean("cpu")
            advice.append(
                f"No GPU was sampled (this job ran on CPU, {cpu:.0f}% busy on average). "
                + (
                    "The CPUs are saturated: a GPU instance (e.g. ml.g5.xlarge) would train many times faster."
                    if cpu > CPU_BUSY
                    else "The CPUs were not saturated either: raise num-workers or batch-size."
                )
            )
        peak = max(s["mem"] for s in samples)
        if peak > MEMORY_HIGH:
            advice.append(
                f"Memory peaked at {peak:.0f}%: lower batch-size or set cache-images=false before the job "
                "runs out of memory."
            )
    found = [r for r in rule_results if r["status"] == "IssuesFound"]
    advice += [RULE_ADVICE[r["rule"]] for r in found if r["rule"] in RULE_ADVICE]
    if rule_results and not found:
        advice.append("No debugger rule found an issue.")
    return advice


# --- HTML -------------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;background:#f5f7fa;margin:0}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px}
.sub{color:#52606d;margin:0 0 20px}
section{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:18px 20px;margin:0 0 18px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
img{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{color:#52606d;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.IssuesFound{background:#fde8e8;color:#9b1c1c}.NoIssuesFound{background:#def7ec;color:#03543f}
.InsufficientData{background:#f0f0f0;color:#52606d}
.kpis{display:flex;gap:14px;flex-wrap:wrap;margin:0 0 18px}
.kpi{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:10px 16px;min-width:140px}
.kpi b{display:block;font-size:22px}.kpi span{color:#52606d;font-size:13px}
ul.advice li{margin:0 0 6px}.note{color:#52606d;font-size:13px}
"""


def _kpi(value) -> str:
    """A headline figure: fractions as percentages, the rest as they are."""
    return f"{value:.1%}" if isinstance(value, float) and value <= 1 else str(value)


def _e(value) -> str:
    return html.escape(str(value))


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{_e(alt)}">'


def evaluation_section(result: dict) -> str:
    """The test split's evaluation in brief, linking the full page (heatmap, reliability, gallery)."""
    pairs = "".join(
        f"<li>{_e(p['true'])} taken for {_e(p['predicted'])}: {p['count']} "
        f"({p['share_of_true']:.0%} of its images)</li>"
        for p in result["most_confused"][:5]
    )
    return (
        f"<section><h2>Test-split evaluation</h2><p>{result['images']} test images through "
        f"<b>{_e(result['runtime'])}</b>, the runtime a CPU endpoint serves: top-1 {result['top1']:.1%}, top-5 "
        f"{result['top5']:.1%}, macro F1 {result['macro']['f1']:.3f}, expected calibration error "
        f"{result['calibration']['ece']:.3f}.</p>"
        + (f"<p>Most confused:</p><ul>{pairs}</ul>" if pairs else "<p>No confusions.</p>")
        + f"<p><a href='{EVALUATION_PAGE}'>Full evaluation</a>: per-class precision and recall, confusion "
        "matrix, reliability diagram, most confident mistakes.</p></section>"
    )


def render(files: JobFiles, rule_results: list[dict], series, samples, epochs, operators) -> str:
    meta = files.metadata or {}
    results = meta.get("metrics", {})
    history = results.get("history", [])
    title = f"Training report: {files.job_dir.name}"
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
    ]
    hp = meta.get("hyperparameters", {})
    sub = ", ".join(
        f"{k}={hp[k]:.3g}" if isinstance(hp[k], float) else f"{k}={hp[k]}"
        for k in ("model-name", "weights", "fine-tune", "epochs", "batch-size", "lr")
        if k in hp
    )
    parts.append(
        f"<p class=sub>{_e(meta.get('model_name', ''))} on {len(meta.get('classes', []))} classes. {_e(sub)}</p>"
    )
    kpis = [
        ("best validation accuracy", results.get("best_val_acc")),
        ("test accuracy", results.get("test_acc")),
        ("epochs", len(history) or None),
    ]
    if epochs:
        kpis.append(("images/s (last epoch)", round(epochs[-1]["images_per_sec"], 1)))
    parts.append(
        "<div class=kpis>"
        + "".join(f"<div class=kpi><b>{_e(_kpi(v))}</b><span>{_e(k)}</span></div>" for k, v in kpis if v is not None)
        + "</div>"
    )

    if files.evaluation:
        parts.append(evaluation_section(files.evaluation))
    advice = recommendations(files, rule_results, samples, epochs)
    parts.append(
        "<section><h2>Recommendations</h2><ul class=advice>"
        + "".join(f"<li>{_e(a)}</li>" for a in advice)
        + "</ul>"
        + "".join(f"<p class=note>Note: {_e(n)}</p>" for n in files.notes)
        + "</section>"
    )

    parts.append("<section><h2>Loss and accuracy</h2>")
    if history:
        parts.append(
            f"<div class=grid>{_img(chart_epochs(history, 'loss'), 'loss per epoch')}"
            f"{_img(chart_epochs(history, 'acc'), 'accuracy per epoch')}</div>"
        )
    if series and (series["train"] or series["validation"]):
        parts.append(_img(chart_steps(series), "loss per saved step"))
    if not history and not (series and series["train"]):
        parts.append("<p class=note>No losses were found for this job.</p>")
    parts.append("</section>")

    parts.append("<section><h2>Debugger rules</h2>")
    if rule_results:
        parts.append(
            "<table><tr><th>rule</th><th>status</th><th>step</th><th>reason</th></tr>"
            + "".join(
                f"<tr><td>{_e(r['rule'])}</td><td><span class='badge {_e(r['status'])}'>{_e(r['status'])}</span></td>"
                f"<td class=num>{'' if r['step'] is None else _e(r['step'])}</td><td>{_e(r['reason'])}</td></tr>"
                for r in rule_results
            )
            + "</table><p class=note>Evaluated on the job's smdebug tensors by the "
            "project's rules (classifier/debugging/rules.py); steps are smdebug global steps.</p>"
        )
    else:
        parts.append("<p class=note>No tensors: rules were not evaluated.</p>")
    parts.append("</section>")

    parts.append("<section><h2>System utilisation</h2>")
    if samples:
        peak = max(s["rss_gb"] for s in samples)
        parts.append(
            _img(chart_utilisation(samples), "utilisation timeline")
            + f"<p class=note>{len(samples)} samples; trainer process peak memory {peak:.2f} GB.</p>"
        )
    else:
        parts.append("<p class=note>No utilisation samples.</p>")
    parts.append("</section>")

    parts.append("<section><h2>Where step time goes: data loading vs compute</h2>")
    if epochs:
        total = sum(e["seconds"] for e in epochs)
        data = sum(e["data_seconds"] for e in epochs)
        parts.append(
            _img(chart_split(epochs), "data vs compute per epoch")
            + f"<p>Over {len(epochs)} epochs: {total:.1f} s of training steps, {data:.1f} s "
            f"({data / total:.0%}) waiting for the data loader, {total - data:.1f} s computing.</p>"
            "<p class=note>Epoch 1 also carries start-up and the torch.profiler window.</p>"
        )
    else:
        parts.append("<p class=note>No per-epoch timing.</p>")
    parts.append("</section>")

    parts.append("<section><h2>Top operators (torch.profiler window)</h2>")
    if operators:
        parts.append(
            _img(chart_operators(operators), "top operators")
            + "<table><tr><th>operator</th><th>calls</th><th>self CPU ms</th><th>self device ms</th></tr>"
            + "".join(
                f"<tr><td>{_e(o['name'])}</td><td class=num>{o['calls']}</td>"
                f"<td class=num>{o['self_cpu_ms']:.1f}</td><td class=num>{o['self_device_ms']:.1f}</td></tr>"
                for o in operators[:15]
            )
            + "</table>"
            + "<p class=note>The full trace is profile/trace.json in output.tar.gz: open it in "
            "chrome://tracing or ui.perfetto.dev.</p>"
        )
    else:
        parts.append("<p class=note>No profiler window was recorded.</p>")
    parts.append("</section></main></body></html>\n")
    return "".join(parts)


def build_report(job: Path, out: Path | None = None) -> Path:
    """The report for a job folder (see the module doc); returns the HTML path. rules.json goes beside it."""
    # smdebug's protobuf files need the pure-Python backend, chosen when protobuf is first imported: set
    # before the rules and step losses below load smdebug (a caller that loaded protobuf earlier keeps its own).
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    files = find(job_folder(job))
    rule_results = run_local_rules(files.tensors_dir) if files.tensors_dir else []
    series = step_losses(files.tensors_dir) if files.tensors_dir else None
    profile = files.profile_dir
    samples = read_jsonl(profile / outputs.SYSTEM_FILE) if profile else []
    epochs = read_jsonl(profile / outputs.EPOCHS_FILE) if profile else []
    operators = (
        json.loads((profile / outputs.OPERATORS_FILE).read_text())
        if profile and (profile / outputs.OPERATORS_FILE).is_file()
        else []
    )
    out = Path(out) if out else files.job_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    if files.evaluation:
        (out.parent / EVALUATION_PAGE).write_text(
            evaluation_page.render(files.evaluation, f"Test-split evaluation: {files.job_dir.name}")
        )
    out.write_text(render(files, rule_results, series, samples, epochs, operators))
    (out.parent / "rules.json").write_text(json.dumps(rule_results, indent=2) + "\n")
    return out
