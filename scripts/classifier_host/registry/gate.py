"""The promotion rule: a candidate becomes champion only if, evaluated on the same labelled folder as the
champion, its top-1 accuracy is not below the champion's by more than `max_drop` points, and it has a runtime
that passes the serving gate; the first model needs `min_accuracy`. The reason names both figures."""

from __future__ import annotations

from dataclasses import dataclass


class RegistryError(ValueError):
    """What register.py (or --model) cannot do; the message says what and how to fix it."""


@dataclass(frozen=True)
class Verdict:
    champion: bool
    reason: str


@dataclass(frozen=True)
class Rule:
    max_drop: float = 0.0  # percentage points of top-1 accuracy
    min_accuracy: float = 0.0  # the first model's floor (a fraction, as top-1 is)

    def __post_init__(self):
        if not 0 <= self.max_drop <= 100:
            raise RegistryError(f"--max-drop must be between 0 and 100 points, got {self.max_drop:g}")
        if not 0 <= self.min_accuracy <= 1:
            raise RegistryError(f"--min-accuracy must be a fraction between 0 and 1, got {self.min_accuracy:g}")

    def decide(
        self,
        top1: float,
        runtime: str | None,
        champion_top1: float | None = None,
        champion_version: str | None = None,
    ) -> Verdict:
        """runtime: the one `auto` serves when one passes the serving gate, else None."""
        if runtime is None:
            return Verdict(False, "not promoted: no runtime of the model passes the serving gate")
        if champion_top1 is None:
            if top1 < self.min_accuracy:
                return Verdict(False, f"not promoted: top-1 {top1:.4f} is below --min-accuracy {self.min_accuracy:.4f}")
            return Verdict(True, f"first model: top-1 {top1:.4f} >= --min-accuracy {self.min_accuracy:.4f} ({runtime})")
        drop = (champion_top1 - top1) * 100
        figures = f"top-1 {top1:.4f} vs champion v{champion_version} {champion_top1:.4f}"
        if drop > self.max_drop + 1e-9:
            return Verdict(False, f"not promoted: {figures}, {drop:.2f} points lower (--max-drop {self.max_drop:g})")
        return Verdict(True, f"promoted: {figures} (--max-drop {self.max_drop:g}; served by {runtime})")
