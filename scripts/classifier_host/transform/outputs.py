"""What a transform's answers become: predictions.jsonl, summary.json and, for a labelled input,
accuracy, per-class precision/recall and a confusion-matrix plot.

The container answers each file with {"predictions": [...]} or, in batch mode, an error record
{"error": ..., "status": ...} (a non-2xx answer would fail the whole job). The scoring is
classifier.model.evaluation's (the one the trainer and evaluate.py use), the plot reports.evaluation_page's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .inputs import Failure

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"
CONFUSION_FILE = "confusion_matrix.png"


@dataclass(frozen=True)
class Prediction:
    path: str
    predictions: list[dict]


def read_answer(path: str, body: bytes) -> Prediction | Failure:
    """One file's answer: its predictions, or why it failed (the container's error record, or an answer
    that is not what the server sends)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return Failure(path, f"the answer is not JSON: {body[:200]!r}")
    if isinstance(answer, dict) and isinstance(answer.get("predictions"), list):
        return Prediction(path, answer["predictions"])
    if isinstance(answer, dict) and "error" in answer:
        status = f" ({answer['status']})" if "status" in answer else ""
        return Failure(path, f"{answer['error']}{status}")
    return Failure(path, f"the answer has no predictions: {str(answer)[:200]}")


def class_folder(path: str, classes: list[str]) -> str | None:
    """The class a file is labelled with: its first folder, when that names a class of the model."""
    parts = PurePosixPath(path).parts
    return parts[0] if len(parts) > 1 and parts[0] in classes else None


def labelled(paths: list[str], classes: list[str]) -> bool:
    """Laid out in class folders: every first-level folder names a class (files at the top level are
    classified but not scored)."""
    folders = {PurePosixPath(p).parts[0] for p in paths if len(PurePosixPath(p).parts) > 1}
    return bool(folders) and folders <= set(classes)


def score(predictions: list[Prediction], classes: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix over the labelled files that
    were classified, restricted to the classes that occur (as truth or answer)."""
    import numpy as np

    from classifier.model import evaluation

    index = {name: i for i, name in enumerate(classes)}
    pairs = [
        (index[class_folder(p.path, classes)], index[p.predictions[0]["label"]])
        for p in predictions
        if class_folder(p.path, classes) and p.predictions and p.predictions[0]["label"] in index
    ]
    if not pairs:
        return {}
    truth, answer = (np.asarray(column) for column in zip(*pairs, strict=True))
    matrix = evaluation.confusion_matrix(truth, answer, len(classes))
    seen = sorted(set(truth.tolist()) | set(answer.tolist()))
    matrix = matrix[np.ix_(seen, seen)]
    names = [classes[i] for i in seen]
    return {
        "scored": len(pairs),
        "accuracy": float((truth == answer).mean()),
        **evaluation.per_class(matrix, names),
        "confusion_matrix": matrix.tolist(),
    }


def write(
    output: Path, inputs: int, predictions: list[Prediction], failed: list[Failure], classes: list[str], source: str
) -> dict:
    """predictions.jsonl (one line per classified file, in path order), summary.json and, for a labelled
    input, confusion_matrix.png, in `output`. Returns the summary."""
    output.mkdir(parents=True, exist_ok=True)
    with open(output / PREDICTIONS_FILE, "w") as out:
        for entry in sorted(predictions, key=lambda p: p.path):
            out.write(json.dumps({"path": entry.path, "predictions": entry.predictions}) + "\n")
    summary = {
        "source": source,
        "images": inputs,
        "classified": len(predictions),
        "failed": [{"path": f.path, "reason": f.reason} for f in sorted(failed, key=lambda f: f.path)],
    }
    paths = [p.path for p in predictions] + [f.path for f in failed]
    if labelled(paths, classes):
        scores = score(predictions, classes)
        summary.update(scores)
        if scores:
            from ..reports.evaluation_page import confusion_figure
            from ..reports.figures import save_png

            save_png(
                confusion_figure(
                    list(scores["per_class"]), scores["confusion_matrix"], f"Confusion matrix of {source}"
                ),
                output / CONFUSION_FILE,
            )
            summary["confusion_matrix_png"] = CONFUSION_FILE
    (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
