"""The project's five training rules, run on a job's smdebug tensors after the job (local mode, or
accounts without SageMaker Debugger). AWS's built-in rules run only in AWS's rules image and their
code is not published; these follow their documented intent and parameter names:

    vanishing_gradient          most gradients' mean |g| under a threshold
    overfit                     validation loss above training loss by a ratio and worse than its best,
                                `patience` epochs running
    overtraining                validation loss stopped improving for `patience` epochs while training goes on
    poor_weight_initialization  ReLU input variances far apart across layers, or a layer's inputs all <= 0
    loss_not_decreasing         mean training loss over a window of saved steps stops going down

Each is an smdebug `Rule` run by `invoke_rule`; `evaluate()` runs them all and returns one result per
rule: IssuesFound (with the first step it fired at and why), NoIssuesFound, or InsufficientData.
Works on full tensors and on the reductions classifier.debugging.hook saves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

from classifier.contract import outputs
from classifier.debugging.hook import import_smdebug

ISSUES, NO_ISSUES, NO_DATA = "IssuesFound", "NoIssuesFound", "InsufficientData"


@dataclass
class RuleResult:
    rule: str
    status: str
    step: int | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


class InsufficientData(Exception):
    """The trial lacks what a rule reads (e.g. no gradients saved)."""


def reduction(trial, name: str, step: int, kind: str, absolute: bool = False) -> float:
    """A saved reduction, or the same statistic of the full tensor when that is what was saved."""
    tensor = trial.tensor(name)
    try:
        return float(tensor.reduction_value(step, kind, abs=absolute))
    except Exception:  # the reduction was not saved: compute it from the full tensor
        import numpy as np

        value = np.asarray(tensor.value(step), dtype=np.float64)
        value = np.abs(value) if absolute else value
        return float({"mean": np.mean, "variance": np.var, "min": np.min, "max": np.max, "std": np.std}[kind](value))


def _rule_base():
    import_smdebug()
    from smdebug.rules import Rule

    return Rule


Rule = _rule_base()


class _ProjectRule(Rule):
    name = ""

    def __init__(self, base_trial):
        super().__init__(base_trial, action_str="")  # "" = no SageMaker actions (stop job, SNS...)
        self.reason = ""
        self.checked = 0

    def summary(self) -> str:
        raise NotImplementedError


@dataclass
class EvalRound:
    """One validation pass: its last global step, its mean loss, and the mean training loss before it."""

    step: int
    val_loss: float
    train_loss: float


class _LossRule(_ProjectRule):
    """Training loss per saved step and validation rounds, from the `losses` collection."""

    @cached_property
    def series(self) -> tuple[list[tuple[int, float]], list[EvalRound]]:
        smd = import_smdebug()
        names = self.base_trial.tensor_names(collection=outputs.LOSSES)
        if not names:
            raise InsufficientData("no `losses` collection was saved")
        loss = self.base_trial.tensor(names[0])
        train, rounds, pending_train, pending_val = [], [], [], []

        def close_round(step):
            if pending_val:
                rounds.append(
                    EvalRound(
                        step,
                        sum(pending_val) / len(pending_val),
                        sum(pending_train) / len(pending_train) if pending_train else math.nan,
                    )
                )
                pending_val.clear()
                pending_train.clear()

        last_eval = None
        for step in sorted(loss.steps()):
            mode, _ = self.base_trial.mode_modestep(step)
            value = float(loss.value(step))
            if mode == smd.modes.EVAL:
                pending_val.append(value)
                last_eval = step
                continue
            close_round(last_eval)
            if mode == smd.modes.TRAIN:
                train.append((step, value))
                pending_train.append(value)
        close_round(last_eval)
        return train, rounds

    def round_ending_at(self, step: int) -> int | None:
        for index, r in enumerate(self.series[1]):
            if r.step == step:
                return index
        return None


class VanishingGradient(_ProjectRule):
    name = "vanishing_gradient"

    def __init__(self, base_trial, threshold: float = 1e-7, fraction: float = 0.5):
        super().__init__(base_trial)
        self.threshold, self.fraction = threshold, fraction
        self.names = base_trial.tensor_names(collection="gradients")
        if not self.names:
            raise InsufficientData("no `gradients` collection was saved")
        self.smallest = math.inf

    def invoke_at_step(self, step):
        means = {}
        for name in self.names:
            if step in self.base_trial.tensor(name).steps():
                means[name] = reduction(self.base_trial, name, step, "mean", absolute=True)
        if not means:
            return False
        self.checked += 1
        vanished = sorted(n for n, m in means.items() if m < self.threshold)
        self.smallest = min(self.smallest, min(means.values()))
        if len(vanished) > self.fraction * len(means):
            self.reason = (
                f"{len(vanished)} of {len(means)} gradient tensors have mean |g| < {self.threshold:g} "
                f"(e.g. {vanished[0]}): the network is not learning through them"
            )
            return True
        return False

    def summary(self):
        return f"{self.checked} saved steps checked; smallest mean |g| {self.smallest:.3g} (limit {self.threshold:g})"


class _ValidationLossRule(_LossRule):
    """A rule over the epochs' (training, validation) loss pairs: it needs validation losses saved."""

    def __init__(self, base_trial):
        super().__init__(base_trial)
        if not self.series[1]:
            raise InsufficientData("no validation losses were saved")


class Overfit(_ValidationLossRule):
    name = "overfit"

    def __init__(self, base_trial, ratio_threshold: float = 0.1, patience: int = 2):
        super().__init__(base_trial)
        self.ratio_threshold, self.patience = ratio_threshold, patience
        self.largest, self.running, self.best_val = -math.inf, 0, math.inf

    def invoke_at_step(self, step):
        index = self.round_ending_at(step)
        if index is None:
            return False
        r = self.series[1][index]
        if math.isnan(r.train_loss):
            return False
        self.checked += 1
        ratio = (r.val_loss - r.train_loss) / r.train_loss
        self.largest = max(self.largest, ratio)
        # A gap alone is not overfitting (early epochs, BatchNorm statistics still settling): the validation
        # loss must also be getting worse while the model trains on.
        worsening = r.val_loss > self.best_val
        self.best_val = min(self.best_val, r.val_loss)
        self.running = self.running + 1 if ratio > self.ratio_threshold and worsening else 0
        if self.running >= self.patience:
            self.reason = (
                f"validation loss {r.val_loss:.4f} is {ratio:.0%} above training loss {r.train_loss:.4f} "
                f"and above its best ({self.best_val:.4f}), {self.running} epochs running: the model "
                "memorises the training set"
            )
            return True
        return False

    def summary(self):
        return (
            f"{self.checked} epochs checked; largest (val - train) / train {self.largest:.0%} "
            f"(limit {self.ratio_threshold:.0%} for {self.patience} epochs)"
        )


class Overtraining(_ValidationLossRule):
    name = "overtraining"

    def __init__(self, base_trial, patience: int = 3, delta: float = 0.01):
        super().__init__(base_trial)
        self.patience, self.delta = patience, delta
        self.best, self.best_index = math.inf, -1

    def invoke_at_step(self, step):
        index = self.round_ending_at(step)
        if index is None:
            return False
        self.checked += 1
        val = self.series[1][index].val_loss
        if val < self.best * (1 - self.delta):
            self.best, self.best_index = val, index
        elif index - self.best_index >= self.patience:
            self.reason = (
                f"validation loss has not improved by {self.delta:.0%} for {index - self.best_index} "
                f"epochs (best {self.best:.4f} at epoch {self.best_index + 1}): training longer "
                "does not help"
            )
            return True
        return False

    def summary(self):
        return f"{self.checked} epochs checked; best validation loss {self.best:.4f} at epoch {self.best_index + 1}"


class LossNotDecreasing(_LossRule):
    name = "loss_not_decreasing"

    def __init__(self, base_trial, window: int = 5, diff_percent: float = 0.1, patience: int = 2):
        super().__init__(base_trial)
        self.window, self.diff_percent, self.patience = window, diff_percent, patience
        train = self.series[0]
        if len(train) < 2 * window:
            raise InsufficientData(
                f"{len(train)} training losses saved; need {2 * window} (lower debugger-loss-interval)"
            )
        self.ends = {train[i + window - 1][0]: i for i in range(0, len(train) - window + 1, window)}
        self.best, self.stalled = math.inf, 0

    def invoke_at_step(self, step):
        if step not in self.ends:
            return False
        start = self.ends[step]
        values = [v for _, v in self.series[0][start : start + self.window]]
        mean = sum(values) / len(values)
        self.checked += 1
        if mean < self.best * (1 - self.diff_percent / 100):
            self.best, self.stalled = mean, 0
            return False
        self.stalled += 1
        if self.stalled >= self.patience:
            self.reason = (
                f"mean training loss over the last {self.stalled} windows of {self.window} saved steps "
                f"({mean:.4f}) is not {self.diff_percent:g}% below the best window ({self.best:.4f})"
            )
            return True
        return False

    def summary(self):
        return f"{self.checked} windows of {self.window} saved steps checked; best window mean {self.best:.4f}"


class PoorWeightInitialization(_ProjectRule):
    name = "poor_weight_initialization"

    def __init__(self, base_trial, threshold: float = 10.0, steps: int = 3):
        super().__init__(base_trial)
        self.threshold, self.steps = threshold, steps
        self.names = base_trial.tensor_names(collection=outputs.RELU_INPUT)
        if not self.names:
            raise InsufficientData("no `relu_input` collection was saved")
        smd = import_smdebug()
        saved = sorted(
            {
                s
                for n in self.names
                for s in base_trial.tensor(n).steps()
                if base_trial.mode_modestep(s)[0] == smd.modes.TRAIN
            }
        )
        self.first_steps = set(saved[:steps])  # initialisation shows at the start only
        self.largest_ratio = 0.0

    def invoke_at_step(self, step):
        if step not in self.first_steps:
            return False
        self.checked += 1
        variances, dead = {}, []
        for name in self.names:
            if step not in self.base_trial.tensor(name).steps():
                continue
            variances[name] = reduction(self.base_trial, name, step, "variance")
            if reduction(self.base_trial, name, step, "max") <= 0:
                dead.append(name)
        if dead:
            self.reason = (
                f"{len(dead)} ReLU layer(s) get only inputs <= 0 (e.g. {dead[0]}): they are dead from the start"
            )
            return True
        lowest = min(variances, key=variances.get)
        highest = max(variances, key=variances.get)
        ratio = variances[highest] / max(variances[lowest], 1e-30)
        self.largest_ratio = max(self.largest_ratio, ratio)
        if ratio > self.threshold:
            self.reason = (
                f"ReLU input variance differs {ratio:.3g}x across layers ({lowest} {variances[lowest]:.3g}, "
                f"{highest} {variances[highest]:.3g}; limit {self.threshold:g}x): activations vanish or "
                "explode with depth"
            )
            return True
        return False

    def summary(self):
        return (
            f"{self.checked} early steps checked; largest ReLU input variance ratio "
            f"{self.largest_ratio:.3g}x (limit {self.threshold:g}x)"
        )


RULES = (VanishingGradient, Overfit, Overtraining, PoorWeightInitialization, LossNotDecreasing)


def run_rule(rule_class, trial, **params) -> RuleResult:
    from smdebug.exceptions import RuleEvaluationConditionMet
    from smdebug.rules import invoke_rule

    try:
        rule = rule_class(trial, **params)
    except InsufficientData as err:
        return RuleResult(rule_class.name, NO_DATA, None, str(err))
    steps = trial.steps()
    try:
        invoke_rule(rule, start_step=steps[0], end_step=steps[-1] + 1, raise_eval_cond=True)
    except RuleEvaluationConditionMet as met:
        return RuleResult(rule.name, ISSUES, met.step, rule.reason)
    if not rule.checked:
        return RuleResult(rule.name, NO_DATA, None, "no saved step had what this rule reads")
    return RuleResult(rule.name, NO_ISSUES, None, rule.summary())


def evaluate(tensors_dir: Path) -> list[RuleResult]:
    """Every rule on the smdebug output in `tensors_dir` (the hook's out_dir)."""
    import_smdebug()
    from smdebug.trials import create_trial

    trial = create_trial(str(tensors_dir), name=Path(tensors_dir).name)
    if not trial.steps():
        return [RuleResult(r.name, NO_DATA, None, f"no steps saved in {tensors_dir}") for r in RULES]
    return [run_rule(rule, trial) for rule in RULES]
