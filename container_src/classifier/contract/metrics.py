"""The one place metric lines are formatted and parsed.

SageMaker's tuner scrapes metrics from the job log with regexes; `METRIC_REGEXES` is that table
(scripts/ hands it to the SDK as `metric_definitions`), and the local tuner and tests parse with it
too, so the format can never drift between writer and readers.
"""

from __future__ import annotations

import re

PREFIX = "[metrics]"
# A float as Python prints it, or nan/inf (a diverged run must still be parsable).
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)"

EPOCH_METRICS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "epoch_seconds",
    "images_per_sec",
)
FINAL_METRICS = ("best_val_acc", "test_loss", "test_acc")
# After the final line, when the trainer exports (classifier/training/export.py): per exported runtime
# (`runtime_metric`) its test accuracy and top-1 agreement with torch fp32, and the time export took.
EXPORT_METRICS = ("onnx_test_acc", "onnx_agreement", "onnx_int8_test_acc", "onnx_int8_agreement", "export_seconds")
# The tuning objective: SageMaker scores the last value it scrapes, which is the final line's.
OBJECTIVE = "best_val_acc"

# \b keeps `val_acc` from matching inside `best_val_acc` (`_` is a word character).
METRIC_REGEXES: dict[str, str] = {
    name: rf"\b{name}={_NUMBER}" for name in EPOCH_METRICS + FINAL_METRICS + EXPORT_METRICS
}


def runtime_metric(runtime: str, score: str) -> str:
    """Metric name of a runtime's score: ('onnx-int8', 'test_acc') -> 'onnx_int8_test_acc'."""
    return f"{runtime.replace('-', '_')}_{score}"


def format_metrics(**values: float) -> str:
    """One stable line: `[metrics] name=value ...` in the order given."""
    unknown = set(values) - set(METRIC_REGEXES)
    if unknown:
        raise ValueError(f"not in the metric table: {sorted(unknown)}")
    parts = []
    for name, value in values.items():
        parts.append(f"{name}={value:d}" if isinstance(value, int) else f"{name}={value:.6g}")
    return " ".join([PREFIX, *parts])


def metric_definitions() -> list[dict[str, str]]:
    """The table in the shape SageMaker's `metric_definitions` takes."""
    return [{"Name": name, "Regex": regex} for name, regex in METRIC_REGEXES.items()]


def parse_metrics(log_text: str) -> dict[str, list[float]]:
    """Every value of every metric in a log, in order of appearance."""
    found: dict[str, list[float]] = {}
    for name, regex in METRIC_REGEXES.items():
        values = [float(m) for m in re.findall(regex, log_text)]
        if values:
            found[name] = values
    return found


def last_value(log_text: str, name: str) -> float | None:
    """The value SageMaker would score: the last one scraped (None when there is none)."""
    values = parse_metrics(log_text).get(name)
    return values[-1] if values else None
