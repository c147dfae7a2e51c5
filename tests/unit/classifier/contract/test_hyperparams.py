import json

import pytest

from classifier.contract import hyperparams
from classifier.contract.hyperparams import HyperparameterError


def test_defaults_follow_the_recipe():
    hp = hyperparams.parse({})
    assert (hp.model_name, hp.weights, hp.fine_tune, hp.image_size) == ("resnet50", "imagenet", "last-block", 224)
    assert hp.optimizer == "adamw" and hp.label_smoothing == 0.1 and hp.lr == 1e-4


def test_values_arrive_as_sagemaker_sends_them():
    # Plain strings, JSON-quoted strings, and integers written as floats by some tuners.
    hp = hyperparams.parse(
        {"batch-size": '"64"', "lr": "0.001", "epochs": "3.0", "model-name": '"resnet18"', "cache-images": "false"}
    )
    assert hp.batch_size == 64 and hp.lr == 0.001 and hp.epochs == 3 and hp.model_name == "resnet18"
    assert hp.cache_images is False


def test_sagemaker_keys_are_accepted_or_ignored():
    hp = hyperparams.parse(
        {
            "_tuning_objective_metric": "best_val_acc",
            "sagemaker_region": '"us-east-1"',
            "sagemaker_container_log_level": "20",
        }
    )
    assert hp.lr == 1e-4


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"lr": "-0.1"}, ["'lr'", "> 0.0"]),
        ({"lr": "0"}, ["'lr'", "> 0.0"]),
        ({"lr": "nan"}, ["'lr'", "not a valid float"]),
        ({"batch-size": "abc"}, ["'batch-size'", "'abc'", "int"]),
        ({"batch-size": "3.5"}, ["'batch-size'", "int"]),
        ({"epochs": "0"}, ["'epochs'", ">= 1"]),
        ({"fine-tune": "layer3"}, ["'fine-tune'", "head, last-block, full"]),
        ({"model-name": "resnet51"}, ["'model-name'", "resnet51", "torchvision classification model"]),
        ({"weights": "/no/such/file.pth"}, ["'weights'", "/no/such/file.pth"]),
        ({"cache-images": "maybe"}, ["'cache-images'", "bool"]),
        ({"learning_rate": "0.1"}, ["unknown hyperparameter", "learning_rate", "lr"]),
    ],
)
def test_bad_values_name_the_problem(raw, words):
    with pytest.raises(HyperparameterError) as info:
        hyperparams.parse(raw)
    for word in words:
        assert word in str(info.value)


def test_weights_path_must_exist(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"x")
    assert hyperparams.parse({"weights": str(path)}).weights == str(path)


def test_round_trip_through_to_dict():
    hp = hyperparams.parse({"lr": "0.01", "epochs": "2"})
    again = hyperparams.parse(
        {k: json.dumps(v) if isinstance(v, str) else str(v) for k, v in hyperparams.to_dict(hp).items()}
    )
    assert again == hp


def test_read_file_rejects_non_objects(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text("[1, 2]")
    with pytest.raises(HyperparameterError, match="JSON object"):
        hyperparams.read_file(path)
    path.write_text("{oops")
    with pytest.raises(HyperparameterError, match="not valid JSON"):
        hyperparams.read_file(path)
    assert hyperparams.read_file(tmp_path / "absent.json") == {}
