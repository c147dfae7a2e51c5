"""What a model gets wrong, from its probabilities on a labelled set: one module for every caller.

The trainer evaluates its test split with it (evaluation.json in the artifact), `scripts/evaluate.py`
any model on any labelled folder; numpy only, so it runs wherever the server runs (serve-cpu has no
torch). The JSON is the source of truth; pages and plots are drawn from it on the host.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15  # equal-width confidence bins (Guo et al. 2017's choice)
MOST_CONFUSED = 20  # class pairs listed
WORST_MISTAKES = 24  # most confident wrong answers kept for the gallery


def evaluate(
    probabilities: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    sources: list[str] | None = None,
    runtime: str = "",
) -> dict:
    """probabilities (N, C) rows summing to 1, labels (N,) class indices, sources: each image's name."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(labels) or probabilities.shape[1] != len(classes):
        raise ValueError(
            f"probabilities {probabilities.shape}, labels {labels.shape} and {len(classes)} classes do not match"
        )
    if len(labels) == 0:
        raise ValueError("no images to evaluate")
    predicted = probabilities.argmax(1)
    top5 = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]
    matrix = confusion_matrix(labels, predicted, len(classes))
    return {
        "runtime": runtime,
        "images": int(len(labels)),
        "top1": float((predicted == labels).mean()),
        "top5": float((top5 == labels[:, None]).any(axis=1).mean()),
        **per_class(matrix, classes),
        "confusion_matrix": matrix.tolist(),
        "most_confused": most_confused(matrix, classes),
        "calibration": calibration(probabilities.max(1), predicted == labels),
        "worst_mistakes": worst_mistakes(probabilities, labels, classes, sources),
    }


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    return np.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class(matrix: np.ndarray, classes: list[str]) -> dict:
    """Precision, recall, F1 and support per class (0 where undefined, as scikit-learn's zero_division=0),
    and their unweighted (macro) means over the classes present in the set."""
    true_positive = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(1), matrix.sum(0)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(true_positive), where=both > 0)
    present = support > 0
    return {
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "macro": {
            "precision": float(precision[present].mean()),
            "recall": float(recall[present].mean()),
            "f1": float(f1[present].mean()),
        },
    }


def most_confused(matrix: np.ndarray, classes: list[str], count: int = MOST_CONFUSED) -> list[dict]:
    """The largest off-diagonal cells: which true class is taken for which, how often, and what share of it."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:count]
    pairs = []
    for flat in order:
        true, predicted = divmod(int(flat), len(classes))
        if off[true, predicted] == 0:
            break
        pairs.append(
            {
                "true": classes[true],
                "predicted": classes[predicted],
                "count": int(off[true, predicted]),
                "share_of_true": float(off[true, predicted] / matrix[true].sum()),
            }
        )
    return pairs


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Expected calibration error over `bins` equal-width confidence bins, and each bin for a reliability
    diagram. ECE = sum over bins of (images in bin / all) x |accuracy - mean confidence|."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bins are (lower, upper], the first [0, upper]: a confidence of exactly 1 falls in the last bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        row = {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": count,
            "confidence": float(confidence[inside].mean()) if count else None,
            "accuracy": float(correct[inside].mean()) if count else None,
        }
        if count:
            ece += count / len(confidence) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {"ece": float(ece), "bins": rows}


def worst_mistakes(
    probabilities: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    sources: list[str] | None,
    count: int = WORST_MISTAKES,
) -> list[dict]:
    """The most confident wrong answers, most confident first."""
    predicted = probabilities.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count]
    return [
        {
            "index": int(i),
            "source": sources[i] if sources else str(i),
            "true": classes[labels[i]],
            "predicted": classes[predicted[i]],
            "probability": float(probabilities[i, predicted[i]]),
            "true_probability": float(probabilities[i, labels[i]]),
        }
        for i in order
    ]


def explain_mistakes(result: dict, runtime, images: np.ndarray, batch_size: int = 8) -> None:
    """Add each worst mistake's crop (JPEG) and raw Grad-CAM map (of the class it was taken for), for the
    page's overlays, with no need of the images; a model that cannot be explained gets the reason instead.

    runtime: anything with `explain` (runtimes.py); images: the evaluated uint8 crops, by result index.
    """
    from classifier.model import explanations

    mistakes = result["worst_mistakes"]
    if not mistakes:
        return
    chosen = images[[m["index"] for m in mistakes]]
    try:
        maps = np.concatenate(
            [runtime.explain(chosen[i : i + batch_size])[1] for i in range(0, len(chosen), batch_size)]
        )
    except explanations.ExplainUnavailable as err:
        result["explanation"] = {"unavailable": str(err)}
        return
    result["explanation"] = {
        "method": explanations.METHOD,
        "layer": runtime.explanation["layer"],
        "runtime": runtime.name,
        "preprocessing": runtime.preprocessing,
    }
    for mistake, raw, crop in zip(mistakes, maps, chosen, strict=True):
        mistake["gradcam"] = np.round(raw.astype(np.float64), 6).tolist()
        mistake["crop_jpeg"] = explanations.jpeg(explanations.crop_image(crop, runtime.preprocessing))


def summary(result: dict) -> str:
    """One log line."""
    pair = result["most_confused"][0] if result["most_confused"] else None
    confused = f"; most confused: {pair['true']} taken for {pair['predicted']} {pair['count']}x" if pair else ""
    return (
        f"evaluation ({result['runtime'] or 'model'}, {result['images']} images): top-1 {result['top1']:.4f}, "
        f"top-5 {result['top5']:.4f}, macro F1 {result['macro']['f1']:.4f}, "
        f"ECE {result['calibration']['ece']:.4f}{confused}"
    )
