"""The evaluation's numbers against ones computed by hand on a small fixed prediction set."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.model import evaluation

CLASSES = ["a", "b", "c"]
# true class, probabilities; each confidence in a calibration bin of its own.
CASES = [
    (0, [0.90, 0.05, 0.05]),  # right, 0.90
    (0, [0.62, 0.28, 0.10]),  # right, 0.62
    (0, [0.20, 0.70, 0.10]),  # wrong: a taken for b, 0.70
    (1, [0.10, 0.82, 0.08]),  # right, 0.82
    (1, [0.50, 0.42, 0.08]),  # wrong: b taken for a, 0.50
    (2, [0.30, 0.25, 0.45]),  # right, 0.45
]


@pytest.fixture(scope="module")
def result():
    labels = np.array([c for c, _ in CASES])
    probabilities = np.array([p for _, p in CASES])
    return evaluation.evaluate(probabilities, labels, CLASSES, [f"img{i}.jpg" for i in range(6)], runtime="onnx")


def test_accuracy_and_confusion(result):
    assert result["images"] == 6 and result["runtime"] == "onnx"
    assert result["top1"] == pytest.approx(4 / 6) and result["top5"] == 1.0
    assert result["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_per_class_precision_recall_f1_support(result):
    by_hand = {"a": (2 / 3, 2 / 3, 2 / 3, 3), "b": (1 / 2, 1 / 2, 1 / 2, 2), "c": (1.0, 1.0, 1.0, 1)}
    for name, (precision, recall, f1, support) in by_hand.items():
        got = result["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((precision, recall, f1))
        assert got["support"] == support
    assert result["macro"]["f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_most_confused_pairs(result):
    assert result["most_confused"] == [
        {"true": "a", "predicted": "b", "count": 1, "share_of_true": pytest.approx(1 / 3)},
        {"true": "b", "predicted": "a", "count": 1, "share_of_true": pytest.approx(1 / 2)},
    ]


def test_expected_calibration_error(result):
    # One image per bin: ECE = mean |correct - confidence|.
    assert result["calibration"]["ece"] == pytest.approx((0.10 + 0.38 + 0.70 + 0.18 + 0.50 + 0.55) / 6)
    bins = result["calibration"]["bins"]
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 6
    assert [b["count"] for b in bins].count(1) == 6
    assert bins[13]["confidence"] == pytest.approx(0.90) and bins[13]["accuracy"] == 1.0  # (0.867, 0.933]
    assert bins[0]["confidence"] is None


def test_worst_mistakes_most_confident_first(result):
    assert [(m["source"], m["true"], m["predicted"]) for m in result["worst_mistakes"]] == [
        ("img2.jpg", "a", "b"),
        ("img4.jpg", "b", "a"),
    ]
    assert result["worst_mistakes"][0]["probability"] == pytest.approx(0.70)
    assert result["worst_mistakes"][0]["true_probability"] == pytest.approx(0.20)


def test_a_class_never_predicted_and_a_class_absent():
    result = evaluation.evaluate(np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0]]), np.array([0, 1]), CLASSES)
    assert result["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["per_class"]["c"]["support"] == 0
    assert result["macro"]["recall"] == pytest.approx(0.5)  # over a and b: c has no images


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        evaluation.evaluate(np.zeros((2, 3)), np.zeros(3, int), CLASSES)
    with pytest.raises(ValueError, match="no images"):
        evaluation.evaluate(np.zeros((0, 3)), np.zeros(0, int), CLASSES)
