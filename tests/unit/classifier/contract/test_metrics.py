import re

from classifier.contract import metrics


def test_line_format_and_parse_agree():
    line = metrics.format_metrics(epoch=3, train_loss=0.5, val_acc=0.875, images_per_sec=1234.5678)
    assert line == "[metrics] epoch=3 train_loss=0.5 val_acc=0.875 images_per_sec=1234.57"
    assert metrics.parse_metrics(line) == {
        "epoch": [3.0],
        "train_loss": [0.5],
        "val_acc": [0.875],
        "images_per_sec": [1234.57],
    }


def test_diverged_and_tiny_values_still_parse():
    line = metrics.format_metrics(train_loss=float("nan"), val_loss=1.5e-07, test_loss=float("inf"))
    found = metrics.parse_metrics(line)
    assert str(found["train_loss"][0]) == "nan" and found["val_loss"] == [1.5e-07]
    assert found["test_loss"] == [float("inf")]


def test_val_acc_is_not_read_out_of_best_val_acc():
    log = metrics.format_metrics(best_val_acc=0.9, test_acc=0.8)
    assert "val_acc" not in metrics.parse_metrics(log)
    assert metrics.last_value(log, metrics.OBJECTIVE) == 0.9


def test_definitions_are_the_table_and_valid_for_sagemaker():
    definitions = metrics.metric_definitions()
    assert [d["Name"] for d in definitions] == list(metrics.METRIC_REGEXES)
    for d in definitions:
        re.compile(d["Regex"])
        assert len(d["Regex"]) <= 500  # SageMaker's limit for a metric regex


def test_unknown_metric_is_refused():
    import pytest

    with pytest.raises(ValueError, match="not in the metric table"):
        metrics.format_metrics(accuracy=1.0)
