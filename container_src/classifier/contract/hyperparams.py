"""The hyperparameter schema: names, types, defaults, allowed values, and the parser.

One table serves the trainer (parsing what SageMaker delivers), the tuner's search space
(scripts/ reads SEARCH_SPACE) and the README's table (`python -m classifier.contract.hyperparams`).

Defaults follow the published evidence for the dog-breed set (see README, "Training recipe"):
ImageNet ResNet50, fine-tune layer4 + head with AdamW at a low learning rate, cosine schedule with
warm-up, label smoothing 0.1, TrivialAugmentWide, RandomResizedCrop 224 / eval 256->224.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# Keys SageMaker adds on its own. The tuner's key is accepted (and ignored); the SDK's
# framework keys (sagemaker_*) are ignored.
TUNER_KEYS = {"_tuning_objective_metric"}
SAGEMAKER_PREFIX = "sagemaker_"


class HyperparameterError(ValueError):
    """A hyperparameter value the trainer cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)

    def parse(self, raw: Any) -> Any:
        text = _unquote(raw)
        try:
            value = _convert(text, self.type)
        except ValueError:
            raise HyperparameterError(
                f"hyperparameter '{self.name}': {text!r} is not a valid {self.type.__name__} ({self.help})"
            ) from None
        if self.choices and value not in self.choices:
            raise HyperparameterError(
                f"hyperparameter '{self.name}': {value!r} is not one of {', '.join(map(str, self.choices))}"
            )
        if self.min is not None and (value < self.min or (self.min_exclusive and value == self.min)):
            bound = ">" if self.min_exclusive else ">="
            raise HyperparameterError(f"hyperparameter '{self.name}': {value!r} must be {bound} {self.min}")
        if self.max is not None and value > self.max:
            raise HyperparameterError(f"hyperparameter '{self.name}': {value!r} must be <= {self.max}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise HyperparameterError(f"hyperparameter '{self.name}': {problem}")
        return value


def _unquote(raw: Any) -> str:
    """SageMaker delivers strings; the SDK sometimes JSON-quotes them ('"64"')."""
    text = str(raw).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        return str(decoded).strip()
    return text


def _convert(text: str, kind: type) -> Any:
    if kind is bool:
        lowered = text.lower()
        if lowered in {"true", "1", "yes", "on"}:
            return True
        if lowered in {"false", "0", "no", "off"}:
            return False
        raise ValueError(text)
    if kind is int:
        number = float(text)  # accepts "64.0", which some tuners send for integers
        if not number.is_integer():
            raise ValueError(text)
        return int(number)
    if kind is float:
        number = float(text)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(text)
        return number
    return text


def _check_model_name(name: str) -> str | None:
    import torchvision.models  # imported here so the schema stays importable without torch

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        return f"{name!r} is not a torchvision classification model (e.g. resnet50, efficientnet_b0, convnext_tiny)"
    return None


def _check_weights(value: str) -> str | None:
    if value in {"imagenet", "none"} or Path(value).is_file():
        return None
    return f"{value!r} is neither 'imagenet', 'none' nor an existing weights file"


SCHEMA: tuple[Param, ...] = (
    Param("model-name", str, "resnet50", "torchvision classification model", check=_check_model_name),
    Param(
        "weights",
        str,
        "imagenet",
        "'imagenet' (baked into the image), 'none', or a path to a state dict",
        check=_check_weights,
    ),
    Param(
        "fine-tune",
        str,
        "last-block",
        "which parameters train: the new head, the last block + head, or all",
        choices=("head", "last-block", "full"),
    ),
    Param("epochs", int, 15, "passes over the training set", min=1, max=1000),
    Param("batch-size", int, 64, "images per step per process", min=1, max=4096),
    Param("lr", float, 1e-4, "peak learning rate", min=0.0, max=10.0, min_exclusive=True),
    Param("weight-decay", float, 0.05, "decoupled weight decay (AdamW) or L2 (SGD)", min=0.0, max=1.0),
    Param("label-smoothing", float, 0.1, "label smoothing of the cross-entropy loss", min=0.0, max=0.5),
    Param("optimizer", str, "adamw", "optimiser", choices=("adamw", "sgd")),
    Param("momentum", float, 0.9, "SGD momentum", min=0.0, max=0.999),
    Param("scheduler", str, "cosine", "learning-rate schedule after warm-up", choices=("cosine", "constant")),
    Param("warmup-epochs", int, 1, "linear warm-up length in epochs", min=0, max=100),
    Param("image-size", int, 224, "training crop and eval crop size in pixels", min=32, max=1024),
    Param(
        "augment",
        str,
        "trivialaugment",
        "training augmentation on top of random-resized-crop + flip",
        choices=("trivialaugment", "basic"),
    ),
    Param("num-workers", int, -1, "data-loader worker processes; -1 = one per CPU (at most 8)", min=-1, max=64),
    Param("cache-images", bool, True, "keep decoded training images in memory (falls back when too large)"),
    Param(
        "val-fraction",
        float,
        0.1,
        "share of train/ held out when valid/ is missing",
        min=0.0,
        max=0.5,
        min_exclusive=True,
    ),
    Param(
        "test-fraction",
        float,
        0.1,
        "share of train/ held out when test/ is missing",
        min=0.0,
        max=0.5,
        min_exclusive=True,
    ),
    Param("log-interval", int, 20, "steps between progress lines", min=1, max=100000),
    Param("seed", int, 42, "random seed (runs repeat exactly on CPU)", min=0, max=2**31 - 1),
    # Checkpoints and resume (classifier/training/checkpoint.py; README "Multi-instance and spot training").
    Param(
        "checkpoint-dir",
        str,
        "/opt/ml/checkpoints",
        "checkpoint folder, written after every epoch and on SIGTERM, resumed from at start (SageMaker creates "
        "/opt/ml/checkpoints only with checkpoint_s3_uri: without it, checkpoints are off); 'none' = off",
        check=lambda v: None if v == "none" or v.startswith("/") else "must be an absolute path or 'none'",
    ),
    # Debugging and profiling (classifier/debugging/hook.py, classifier/training/profiling.py;
    # README "Debugging and profiling").
    Param("debugger", bool, True, "save tensors with the smdebug hook (the job fails if smdebug cannot work)"),
    Param(
        "tensors-dir",
        str,
        "/opt/ml/output/tensors",
        "where the hook writes when SageMaker Debugger is not attached (/opt/ml/output/data/tensors: "
        "returned in output.tar.gz)",
        check=lambda v: None if v.startswith("/") else "must be an absolute path",
    ),
    Param(
        "debugger-save-interval",
        int,
        100,
        "training steps between saves of weights, gradients, ReLU inputs",
        min=1,
        max=1000000,
    ),
    Param(
        "debugger-loss-interval",
        int,
        10,
        "training steps between saved losses (validation: every step)",
        min=1,
        max=1000000,
    ),
    Param("profiling", bool, True, "sample CPU/GPU/memory use and record a torch.profiler window"),
    Param(
        "profiler-steps", int, 5, "training steps in the torch.profiler window (after 2 warm-up steps)", min=1, max=1000
    ),
    Param("monitor-interval-ms", int, 500, "system utilisation sampling period in milliseconds", min=50, max=60000),
    # Exports for faster serving (classifier/training/export.py; README "ONNX exports").
    Param(
        "export",
        bool,
        True,
        "also write the model as ONNX fp32 and int8 (static, calibrated), each scored on "
        "the test split against torch; a model that does not export stays torch-only; false = torch only",
    ),
)
BY_NAME = {p.name: p for p in SCHEMA}


# --- The tuning search space (one definition for the SageMaker tuner and the local tuner) ---------
# classifier_host.sagemaker.tuning turns it into a tuning job's ParameterRanges, classifier_host.tuning.search
# into Optuna suggestions; tests check that every value it can produce passes the schema above.


@dataclass(frozen=True)
class Continuous:
    min: float
    max: float
    log: bool = False  # sample the exponent evenly (learning rates, weight decay)


@dataclass(frozen=True)
class Integer:
    min: int
    max: int
    log: bool = False


@dataclass(frozen=True)
class Categorical:
    values: tuple


# Ranges follow the evidence in the README's "Training recipe": Adam-style fine-tuning wants
# lr well below 1e-2 (runs at 1e-2..1e-1 did badly), label smoothing around 0.1.
SEARCH_SPACE: dict[str, Continuous | Integer | Categorical] = {
    "lr": Continuous(1e-5, 1e-2, log=True),
    "batch-size": Categorical((32, 64, 128)),
    "weight-decay": Continuous(1e-4, 0.1, log=True),
    "label-smoothing": Continuous(0.0, 0.2),
    "fine-tune": Categorical(("head", "last-block", "full")),
    "warmup-epochs": Integer(0, 2),
}


def parse(raw: dict[str, Any]) -> SimpleNamespace:
    """Validate what SageMaker delivers; attributes use underscores (batch-size -> batch_size)."""
    unknown = sorted(k for k in raw if k not in BY_NAME and k not in TUNER_KEYS and not k.startswith(SAGEMAKER_PREFIX))
    if unknown:
        raise HyperparameterError(f"unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    values = {p.name: (p.parse(raw[p.name]) if p.name in raw else p.default) for p in SCHEMA}
    return SimpleNamespace(**{name.replace("-", "_"): value for name, value in values.items()})


def to_dict(hp: SimpleNamespace) -> dict[str, Any]:
    """Back to the schema's names, e.g. for metadata.json."""
    return {p.name: getattr(hp, p.name.replace("-", "_")) for p in SCHEMA}


def read_file(path: Path) -> dict[str, Any]:
    """hyperparameters.json as SageMaker writes it (absent means all defaults)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise HyperparameterError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise HyperparameterError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def markdown_table() -> str:
    rows = ["| name | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for p in SCHEMA:
        if p.choices:
            allowed = " \\| ".join(map(str, p.choices))
        elif p.min is not None:
            allowed = f"{'>' if p.min_exclusive else '≥'} {p.min} … ≤ {p.max}"
        else:
            allowed = ""
        rows.append(f"| `{p.name}` | {p.type.__name__} | `{p.default}` | {allowed} | {p.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
