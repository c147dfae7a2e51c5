"""The model artifact: one writer (the trainer) and one reader (the server). Versioned.

/opt/ml/model (packed by SageMaker into model.tar.gz):
    model.pt        state dict, loadable with torch.load(..., weights_only=True)
    metadata.json   format_version, classes, model_name, image_size, preprocessing, hyperparameters, metrics,
                    runtimes (v2: per runtime its file, test_acc and top-1 agreement with torch fp32),
                    export (v2: whether the trainer exported, how long it took, what it skipped and why)
    model.onnx, model.int8.onnx                     (v2, when exported) ONNX fp32 and int8, dynamic batch
    check_images.npy, check_probabilities.npy       (v2) a few preprocessed uint8 test images (N,3,H,W) and
                    torch fp32's probabilities for them: a server re-checks its runtime on its own CPU
    explanation     (v2) where Grad-CAM looks (gradcam.locate): {"method", "layer", "map", "head_weights"} or
                    {"unsupported": why}; head_weights: the ONNX exports carry its CAM as a second output
    evaluation.json (v2) the test split's evaluation (classifier/model/evaluation.py) through the runtime
                    a CPU endpoint serves: per-class scores, confusions, calibration, worst mistakes

Version 1 artifacts (no runtimes, no exports) still load: they serve with torch.
Reading metadata and the check set needs numpy only (the slim serving image has no torch); torch is
imported by `save` and `load`, the two that need it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from classifier.contract.outputs import (
    CHECK_IMAGES_FILE,
    CHECK_PROBABILITIES_FILE,
    EVALUATION_FILE,
    METADATA_FILE,
    ONNX_FILE,
    ONNX_INT8_FILE,
    WEIGHTS_FILE,
)
from classifier.model.runtime_names import ONNX, ONNX_INT8, TORCH

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
RUNTIME_FILES = {TORCH: WEIGHTS_FILE, ONNX: ONNX_FILE, ONNX_INT8: ONNX_INT8_FILE}
REQUIRED_KEYS = ("format_version", "classes", "model_name", "image_size", "preprocessing")


class ArtifactError(ValueError):
    """A model folder that this code cannot serve; the message names the file and the problem."""


def save(
    model_dir: Path,
    state_dict: dict,
    *,
    classes: list[str],
    model_name: str,
    image_size: int,
    preprocessing: dict,
    hyperparameters: dict,
    metrics: dict,
    export: dict | None = None,
    explanation: dict | None = None,
) -> None:
    """A complete torch-only artifact; `record_runtimes` adds the exports once they exist."""
    import torch

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
        "runtimes": runtime_scores({"metrics": metrics}),
        "export": export or {"enabled": False},
    }
    if explanation:
        metadata["explanation"] = explanation
    _write_metadata(model_dir, metadata)


def record_runtimes(model_dir: Path, scores: dict[str, dict], export: dict) -> None:
    """Replace metadata.json's runtimes (name -> {file, test_acc, agreement}) and export summary."""
    metadata = load_metadata(model_dir)
    metadata["runtimes"], metadata["export"] = scores, export
    _write_metadata(model_dir, metadata)


def drop_exports(model_dir: Path, export: dict) -> None:
    """Back to torch only (an export that broke half-way): remove every export file, record `export`."""
    exports = [f for runtime, f in RUNTIME_FILES.items() if runtime != TORCH]
    for name in exports + [CHECK_IMAGES_FILE, CHECK_PROBABILITIES_FILE, EVALUATION_FILE]:  # the evaluation follows
        (model_dir / name).unlink(missing_ok=True)
    metadata = load_metadata(model_dir)
    record_runtimes(model_dir, runtime_scores({"metrics": metadata.get("metrics", {})}), export)


def _write_metadata(model_dir: Path, metadata: dict) -> None:
    # Written whole then renamed: a job killed mid-write never leaves half a metadata.json.
    partial = model_dir / (METADATA_FILE + ".partial")
    partial.write_text(json.dumps(metadata, indent=2) + "\n")
    partial.replace(model_dir / METADATA_FILE)


def runtime_scores(metadata: dict) -> dict[str, dict]:
    """Per runtime in the artifact: its file, test_acc and agreement; a version 1 artifact has torch only."""
    if "runtimes" in metadata:
        return metadata["runtimes"]
    return {TORCH: {"file": WEIGHTS_FILE, "test_acc": metadata.get("metrics", {}).get("test_acc"), "agreement": 1.0}}


def save_check_set(model_dir: Path, images: np.ndarray, probabilities: np.ndarray) -> None:
    """uint8 (N,3,H,W) preprocessed images and their torch fp32 probabilities (N, classes), as plain .npy."""
    np.save(model_dir / CHECK_IMAGES_FILE, np.ascontiguousarray(images, dtype=np.uint8), allow_pickle=False)
    np.save(
        model_dir / CHECK_PROBABILITIES_FILE, np.ascontiguousarray(probabilities, dtype=np.float32), allow_pickle=False
    )


def load_check_set(model_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(images, probabilities), or None for an artifact without a check set (version 1, or export off)."""
    paths = model_dir / CHECK_IMAGES_FILE, model_dir / CHECK_PROBABILITIES_FILE
    if not all(p.is_file() for p in paths):
        return None
    try:
        images, probabilities = (np.load(p, allow_pickle=False) for p in paths)
    except ValueError as err:
        raise ArtifactError(
            f"{model_dir}: the check set ({paths[0].name}, {paths[1].name}) is not plain "
            f".npy: {err}; re-export the model with this project's trainer"
        ) from None
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(probabilities):
        raise ArtifactError(
            f"{model_dir}: check set shapes {images.shape} {images.dtype} / "
            f"{probabilities.shape} do not match; re-export the model with this project's trainer"
        )
    return images, probabilities


def save_evaluation(model_dir: Path, result: dict) -> None:
    """evaluation.json: classifier/model/evaluation.py's result for the test split."""
    (model_dir / EVALUATION_FILE).write_text(json.dumps(result) + "\n")


def load_metadata(model_dir: Path) -> dict:
    path = model_dir / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: is this a model.tar.gz written by this project's trainer?") from None
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path} is not valid JSON: {err}") from None
    return check_metadata(metadata, str(path))


def check_metadata(metadata: dict, where: str) -> dict:
    """metadata.json's content, if this code can serve it (ArtifactError naming `where` otherwise): the host
    checks a model.tar.gz read from S3 with it before any job starts."""
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise ArtifactError(f"{where} lacks {missing}")
    if metadata["format_version"] not in READABLE_VERSIONS:
        raise ArtifactError(
            f"{where} has format_version {metadata['format_version']}; this code reads "
            f"{READABLE_VERSIONS}: use the serving image built with the trainer that wrote it"
        )
    return metadata


def exported(model_dir: Path, metadata: dict) -> dict[str, dict]:
    """The runtimes this artifact can run on: those metadata.json scores whose file is present."""
    return {
        name: scores
        for name, scores in runtime_scores(metadata).items()
        if name in RUNTIME_FILES and (model_dir / RUNTIME_FILES[name]).is_file()
    }


def load(model_dir: Path, device="cpu"):
    """The trained model (torch.nn.Module) in eval mode on `device`, and its metadata."""
    import torch

    from classifier.model import network as model_lib

    metadata = load_metadata(model_dir)
    network = model_lib.build(metadata["model_name"], len(metadata["classes"]), weights="none")
    path = model_dir / WEIGHTS_FILE
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing") from None
    except Exception as err:
        raise ArtifactError(
            f"{path} does not fit {metadata['model_name']} with {len(metadata['classes'])} classes: {err}"
        ) from None
    return network.to(device).eval(), metadata
