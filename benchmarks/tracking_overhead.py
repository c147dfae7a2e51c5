"""Tracking overhead: what MLflow tracking costs a job, side by side with the same log passed through untracked.

    python benchmarks/tracking_overhead.py [--epochs 30] [--jobs 5]

Each simulated job writes the trainer's metric lines (one epoch line of 6 metrics per epoch, then the final and
export lines) through the launcher's stdout, as a local or cloud job's log passes it:
- baseline: the lines into a plain stream (what the launcher did before tracking);
- tracked: the same lines through the MetricTap and the journal into a real SQLite MLflow store (a temp dir);
- tracked, store down: the journal pointed at a closed port (it retries, then saves the events to a file).
Prints, per job: the time the job's own thread spends (the cost a job can feel), the time until everything is in
the store (the journal's thread, off the job's path), and both per logged metric; the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

from classifier.contract import metrics
from classifier_host.tracking import runs
from classifier_host.tracking.journal import Journal
from classifier_host.tracking.metric_tap import MetricTap


def job_lines(epochs: int) -> list[str]:
    lines = []
    for epoch in range(1, epochs + 1):
        lines.append("algo-1-abcde | some log line of the trainer\n")
        lines.append(
            "algo-1-abcde | "
            + metrics.format_metrics(
                epoch=epoch,
                train_loss=1 / epoch,
                train_acc=0.5,
                val_loss=1 / epoch,
                val_acc=0.6,
                epoch_seconds=4.2,
                images_per_sec=44.0,
            )
            + "\n"
        )
    lines.append(metrics.format_metrics(best_val_acc=0.9, test_loss=0.3, test_acc=0.88) + "\n")
    lines.append(metrics.format_metrics(onnx_test_acc=0.88, onnx_agreement=1.0, export_seconds=3.0) + "\n")
    return lines


def logged_metrics(lines: list[str]) -> int:
    return sum(len(metrics.parse_metrics(line)) - ("epoch=" in line) for line in lines if metrics.PREFIX in line)


def baseline(lines: list[str]) -> float:
    out = io.StringIO()
    start = time.perf_counter()
    for line in lines:
        out.write(line)
    return time.perf_counter() - start


def tracked(lines: list[str], uri: str, unsent: Path) -> tuple[float, float]:
    """(seconds on the job's thread, seconds until the store has it all)."""
    start = time.perf_counter()
    journal = Journal(uri, unsent, warn=lambda _: None, retry_seconds=0.2, drain_seconds=60)
    run = runs.TrainingRun.start(journal, "bench-job", {"lr": "0.01", "epochs": "30"}, {runs.KIND_TAG: "training"})
    tap = MetricTap(io.StringIO(), run.on_metrics)
    for line in lines:
        tap.write(line)
    run.end()
    on_job = time.perf_counter() - start
    journal.close()
    return on_job, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args(argv)
    lines = job_lines(args.epochs)
    count = logged_metrics(lines)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        first = tracked(lines, uri, Path(tmp) / "unsent")  # the store's schema is made once, by the first job
        base = [baseline(lines) for _ in range(args.jobs)]
        up = [tracked(lines, uri, Path(tmp) / "unsent") for _ in range(args.jobs)]
        down = [tracked(lines, "http://127.0.0.1:9", Path(tmp) / "unsent") for _ in range(2)]
    b = statistics.median(base)
    on_job = statistics.median(t[0] for t in up)
    delivered = statistics.median(t[1] for t in up)
    down_job = statistics.median(t[0] for t in down)
    print(f"one job: {len(lines)} log lines, {count} metrics logged (+ params, tags, end)")
    print(f"baseline (untracked)        on the job's thread {b * 1e3:8.2f} ms")
    print(
        f"tracked, SQLite store       on the job's thread {on_job * 1e3:8.2f} ms "
        f"({on_job / count * 1e6:.0f} us/metric, "
        f"+{(on_job - b) * 1e3:.2f} ms per job over the untracked log); "
        f"delivered after {delivered:.2f} s ({delivered / count * 1e3:.1f} ms/metric)"
    )
    print(f"first job on a new store    delivered after {first[1]:.2f} s (MLflow's import and the schema's creation)")
    print(
        f"tracked, store unreachable  on the job's thread {down_job * 1e3:8.2f} ms "
        f"({down_job / on_job:.2f}x the reachable store's): never waits for the store"
    )


if __name__ == "__main__":
    main()
