"""Evaluate a trained model on any labelled folder: what it gets wrong, and how far to trust it.

    python scripts/evaluate.py --model-data build/output/model.tar.gz --data build/sample-data/test --output OUT
        [--runtime auto|torch|onnx|onnx-int8]

--data holds one folder per class, named as the model's classes (a subset is fine). Every file is
decoded by the trainer's and server's eval preprocessing (presets.eval_image) and run through the
runtime a CPU endpoint serves (`auto`: the fastest that passes the gate, as the server picks it; the
page says which), so the numbers are the endpoint's. Files that are not readable images are skipped,
counted and listed. Writes OUT/evaluation.json (classifier/evaluation.py) and OUT/evaluation.html.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
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
    from classifier import data as data_lib

    if not data.is_dir():
        raise EvaluationError(f"--data {data}: no such folder")
    folders = data_lib.class_folders(data)
    if not folders:
        raise EvaluationError(f"--data {data} has no class folders: give a folder with one subfolder per class")
    unknown = [f for f in folders if f not in classes]
    if unknown:
        hint = " (it looks like a dataset root: give its test/ folder)" if set(folders) <= {"train", "valid", "test"} \
            else ""
        raise EvaluationError(f"--data {data}: folders {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not "
                              f"classes of this model{hint}; its classes are e.g. {classes[:3]}")
    samples = data_lib.list_samples(data, classes)
    if not samples:
        raise EvaluationError(f"--data {data}: the class folders hold no files")
    return samples


def evaluate(model_dir: Path, data: Path, runtime_name: str) -> dict:
    import numpy as np

    from classifier import artifact, evaluation, presets, runtimes
    from classifier.serving import selection

    metadata = artifact.load_metadata(model_dir)
    if runtime_name == selection.AUTO:
        runtime_name = selection.plan(model_dir, metadata, selection.Gate())[0][0]
    elif runtime_name not in artifact.exported(model_dir, metadata):
        raise EvaluationError(f"--runtime {runtime_name}: the model has no such export; it has "
                              f"{', '.join(artifact.exported(model_dir, metadata))}")
    runtime = selection.build(model_dir, runtime_name, metadata, None)
    runtime.start(os.cpu_count() or 1)
    samples = labelled_files(data, metadata["classes"])
    images, labels, sources, skipped = [], [], [], []
    for path, label in samples:
        try:
            images.append(presets.eval_image(path, metadata["preprocessing"]))
        except presets.BadImage as err:
            skipped.append({"path": str(path.relative_to(data)), "reason": str(err)})
            continue
        labels.append(label)
        sources.append(str(path.relative_to(data)))
    if not images:
        raise EvaluationError(f"--data {data}: none of its {len(samples)} files is a readable image")
    images = np.stack(images)
    probabilities = runtimes.probabilities_in_batches(runtime, images, 32)
    result = evaluation.evaluate(probabilities, np.array(labels), metadata["classes"], sources, runtime_name)
    # The gallery's Grad-CAM through torch, the reference (equal to the ONNX CAM where the export has one).
    torch_runtime = runtime if runtime_name == runtimes.TORCH else selection.build(model_dir, runtimes.TORCH,
                                                                                   metadata, None)
    evaluation.explain_mistakes(result, torch_runtime, images)
    return {**result, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-data", type=Path, required=True, help="model.tar.gz (or its unpacked folder)")
    parser.add_argument("--data", type=Path, required=True, help="folder with one subfolder per class")
    parser.add_argument("--output", type=Path, required=True, help="folder for evaluation.json and evaluation.html")
    parser.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnx", "onnx-int8"),
                        help="forward pass (default auto: the one a CPU endpoint serves)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            result = evaluate(model_folder(args.model_data, Path(scratch)), args.data, args.runtime)
    except EvaluationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import evaluation_page
    from classifier import artifact, evaluation

    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / artifact.EVALUATION_FILE).write_text(json.dumps(result) + "\n")
    page = args.output / "evaluation.html"
    page.write_text(evaluation_page.render(result, f"Evaluation of {args.model_data.name} on {args.data}",
                                           args.data))
    print(evaluation.summary(result) + (f"; skipped {len(result['skipped'])} unreadable file(s)"
                                        if result["skipped"] else ""))
    print(f"wrote {args.output / artifact.EVALUATION_FILE} and {page} in {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
