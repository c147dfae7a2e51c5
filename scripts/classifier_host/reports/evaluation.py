"""A trained model evaluated on any labelled folder, as a CPU endpoint would answer it.

Every file is decoded by the trainer's and server's eval preprocessing (presets.eval_image) and run
through the runtime a CPU endpoint serves (`auto`: the fastest that passes the gate, as the server picks
it), so the numbers are the endpoint's. Files that are not readable images are skipped, counted and
listed. The result is classifier/model/evaluation.py's, plus the skipped files; scripts/evaluate.py writes it.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path


class EvaluationError(ValueError):
    """Bad model or data; the message says what and how to fix it."""


def model_folder(model_data: Path, scratch: Path) -> Path:
    """A folder holding the artifact: model_data itself, or model.tar.gz unpacked into `scratch`."""
    if model_data.is_dir():
        return model_data
    if not model_data.is_file():
        raise EvaluationError(f"--model-data {model_data}: no such file or folder")
    try:
        with tarfile.open(model_data) as tar:
            tar.extractall(scratch, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise EvaluationError(f"--model-data {model_data} is not a readable model.tar.gz: {err}") from None
    return scratch


def labelled_files(data: Path, classes: list[str]) -> list[tuple[Path, int]]:
    from classifier.training import data as data_lib

    if not data.is_dir():
        raise EvaluationError(f"--data {data}: no such folder")
    folders = data_lib.class_folders(data)
    if not folders:
        raise EvaluationError(f"--data {data} has no class folders: give a folder with one subfolder per class")
    unknown = [f for f in folders if f not in classes]
    if unknown:
        hint = (
            " (it looks like a dataset root: give its test/ folder)"
            if set(folders) <= {"train", "valid", "test"}
            else ""
        )
        raise EvaluationError(
            f"--data {data}: folders {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not "
            f"classes of this model{hint}; its classes are e.g. {classes[:3]}"
        )
    samples = data_lib.list_samples(data, classes)
    if not samples:
        raise EvaluationError(f"--data {data}: the class folders hold no files")
    return samples


def evaluate(model_dir: Path, data: Path, runtime_name: str) -> dict:
    import numpy as np

    from classifier.model import artifact, decoding, evaluation, runtimes, selection

    metadata = artifact.load_metadata(model_dir)
    if runtime_name == selection.AUTO:
        runtime_name = selection.plan(model_dir, metadata, selection.Gate())[0][0]
    elif runtime_name not in artifact.exported(model_dir, metadata):
        raise EvaluationError(
            f"--runtime {runtime_name}: the model has no such export; it has "
            f"{', '.join(artifact.exported(model_dir, metadata))}"
        )
    runtime = selection.build(model_dir, runtime_name, metadata, None)
    runtime.start(os.cpu_count() or 1)
    samples = labelled_files(data, metadata["classes"])
    images, labels, sources, skipped = [], [], [], []
    for path, label in samples:
        try:
            images.append(decoding.eval_image(path, metadata["preprocessing"]))
        except decoding.BadImage as err:
            skipped.append({"path": str(path.relative_to(data)), "kind": err.kind, "reason": str(err)})
            continue
        labels.append(label)
        sources.append(str(path.relative_to(data)))
    if not images:
        raise EvaluationError(f"--data {data}: none of its {len(samples)} files is a readable image")
    images = np.stack(images)
    probabilities = runtimes.probabilities_in_batches(runtime, images, 32)
    result = evaluation.evaluate(probabilities, np.array(labels), metadata["classes"], sources, runtime_name)
    # The gallery's Grad-CAM through torch, the reference (equal to the ONNX CAM where the export has one).
    torch_runtime = (
        runtime if runtime_name == runtimes.TORCH else selection.build(model_dir, runtimes.TORCH, metadata, None)
    )
    evaluation.explain_mistakes(result, torch_runtime, images)
    return {**result, "skipped": skipped}
