"""The job's metric lines (classifier/contract/metrics.py), read as its log passes through the launcher: local
mode streams the containers' output through sys.stdout, the cloud's log tailer prints CloudWatch's lines there."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable

from classifier.contract import metrics


class MetricTap(io.TextIOBase):
    """A text stream that passes everything to `stream` and calls on_metrics({name: value}) per metric line."""

    def __init__(self, stream, on_metrics: Callable[[dict[str, float]], None]):
        self.stream, self.on_metrics = stream, on_metrics
        self._partial = ""

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()[-65536:]  # a line without its end yet (bounded: a log is not ours)
        for line in lines:
            if metrics.PREFIX in line:
                found = {name: values[-1] for name, values in metrics.parse_metrics(line).items()}
                if found:
                    try:
                        self.on_metrics(found)
                    except Exception as err:  # tracking must never break the job's output
                        print(f"warning: a metric line was not tracked: {err}", file=sys.stderr)
        return written if written is not None else len(text)

    def flush(self) -> None:
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", "utf-8")


@contextlib.contextmanager
def tapping_stdout(on_metrics: Callable[[dict[str, float]], None]):
    """sys.stdout through a MetricTap for the duration."""
    with contextlib.redirect_stdout(MetricTap(sys.stdout, on_metrics)):
        yield


class EpochSteps:
    """Metric values -> (name, value, step) with the step MLflow shows: the epoch of the line (epoch lines carry
    it), else the last epoch seen (the final and export lines come after the last epoch)."""

    def __init__(self):
        self.epoch = 0

    def points(self, values: dict[str, float]) -> list[tuple[str, float, int]]:
        if "epoch" in values:
            self.epoch = int(values["epoch"])
        return [(name, value, self.epoch) for name, value in values.items() if name != "epoch"]
