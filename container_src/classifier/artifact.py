"""The model artifact: one writer (the trainer) and one reader (the server). Versioned.

/opt/ml/model (packed by SageMaker into model.tar.gz):
    model.pt        state dict, loadable with torch.load(..., weights_only=True)
    metadata.json   format_version, classes, model_name, image_size, preprocessing, hyperparameters, metrics
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from . import model as model_lib

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.pt"
METADATA_FILE = "metadata.json"
REQUIRED_KEYS = ("format_version", "classes", "model_name", "image_size", "preprocessing")


class ArtifactError(ValueError):
    """A model folder that this code cannot serve; the message names the file and the problem."""


def save(model_dir: Path, state_dict: dict, *, classes: list[str], model_name: str, image_size: int,
         preprocessing: dict, hyperparameters: dict, metrics: dict) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, model_dir / WEIGHTS_FILE)
    metadata = {
        "format_version": FORMAT_VERSION,
        "classes": list(classes),
        "model_name": model_name,
        "image_size": image_size,
        "preprocessing": preprocessing,
        "hyperparameters": hyperparameters,
        "metrics": metrics,
    }
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def load_metadata(model_dir: Path) -> dict:
    path = model_dir / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: is this a model.tar.gz written by this project's trainer?") from None
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path} is not valid JSON: {err}") from None
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise ArtifactError(f"{path} lacks {missing}")
    if metadata["format_version"] != FORMAT_VERSION:
        raise ArtifactError(f"{path} has format_version {metadata['format_version']}; this code reads "
                            f"{FORMAT_VERSION}: use the serving image built with the trainer that wrote it")
    return metadata


def load(model_dir: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The trained model in eval mode on `device`, and its metadata."""
    metadata = load_metadata(model_dir)
    network = model_lib.build(metadata["model_name"], len(metadata["classes"]), weights="none")
    path = model_dir / WEIGHTS_FILE
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing") from None
    except Exception as err:
        raise ArtifactError(f"{path} does not fit {metadata['model_name']} with "
                            f"{len(metadata['classes'])} classes: {err}") from None
    return network.to(device).eval(), metadata
