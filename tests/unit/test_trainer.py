"""The trainer run in-process on the tiny set: metric lines, artifact round trip, failures."""
import contextlib
import io
import json

import pytest
import torch

from classifier import artifact, inference, metrics, presets, train
from classifier.paths import SageMakerPaths

SMALL = {"model-name": "resnet18", "weights": "none", "fine-tune": "full", "image-size": "32",
         "epochs": "2", "batch-size": "16", "lr": "0.003", "num-workers": "0", "augment": "basic"}


def sagemaker_dirs(tmp_path, data_dir, hps):
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "data").mkdir()
    (base / "input" / "data" / "training").symlink_to(data_dir)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    return base


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """One real training run shared by the tests below: (paths, stdout, exit code)."""
    tmp = tmp_path_factory.mktemp("job")
    base = sagemaker_dirs(tmp, tiny_data, {**SMALL, "_tuning_objective_metric": "best_val_acc"})
    mp = pytest.MonkeyPatch()
    mp.setenv("SAGEMAKER_BASE_DIR", str(base))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = train.main()
    mp.undo()
    return SageMakerPaths(base), out.getvalue(), code


def test_metric_lines_parse_with_the_regex_table(trained):
    paths, log, code = trained
    assert code == 0, log
    found = metrics.parse_metrics(log)
    assert found["epoch"] == [1.0, 2.0]
    for name in metrics.EPOCH_METRICS:
        assert len(found[name]) == 2, name
    for name in metrics.FINAL_METRICS:
        assert len(found[name]) == 1, name
    meta = artifact.load_metadata(paths.model)
    # The tuner's objective (last best_val_acc scraped) is what the artifact records.
    assert metrics.last_value(log, metrics.OBJECTIVE) == pytest.approx(meta["metrics"]["best_val_acc"], abs=1e-6)
    assert found["test_acc"][-1] == pytest.approx(meta["metrics"]["test_acc"], abs=1e-6)
    # val_acc must not also match inside best_val_acc.
    assert len(found["val_acc"]) == 2


def test_artifact_round_trip(trained, tiny_data):
    paths, _, _ = trained
    assert sorted(p.name for p in paths.model.iterdir()) == ["metadata.json", "model.pt"]
    state = torch.load(paths.model / "model.pt", weights_only=True)
    assert "fc.weight" in state
    network, meta = artifact.load(paths.model)
    assert meta["classes"] == sorted(p.name for p in (tiny_data / "train").iterdir())
    assert meta["model_name"] == "resnet18" and meta["image_size"] == 32
    assert meta["preprocessing"] == presets.eval_preprocessing(32)
    assert meta["hyperparameters"]["lr"] == 0.003 and meta["hyperparameters"]["epochs"] == 2
    assert {"test_acc", "test_loss", "best_val_acc", "history"} <= set(meta["metrics"])
    # The loaded model reproduces the test accuracy the trainer recorded, through the server's code path.
    images, labels = [], []
    for index, name in enumerate(meta["classes"]):
        for path in sorted((tiny_data / "test" / name).iterdir()):
            images.append(presets.eval_image(path, meta["preprocessing"]))
            labels.append(index)
    probs = inference.probabilities(network, torch.stack(images), meta["preprocessing"])
    acc = (probs.argmax(1) == torch.tensor(labels)).float().mean().item()
    assert acc == pytest.approx(meta["metrics"]["test_acc"], abs=1e-6)


def test_same_seed_same_run_on_cpu(trained, tiny_data, tmp_path, monkeypatch):
    paths, log, _ = trained
    base = sagemaker_dirs(tmp_path, tiny_data, {**SMALL, "_tuning_objective_metric": "best_val_acc"})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert train.main() == 0
    first = metrics.parse_metrics(log)
    second = metrics.parse_metrics(out.getvalue())
    for name in ("train_loss", "val_loss", "val_acc", "test_acc"):
        assert second[name] == first[name], name


@pytest.mark.parametrize("hps, words", [
    ({"lr": "-1"}, ["HyperparameterError", "'lr'"]),
    ({"bogus": "1"}, ["unknown hyperparameter", "bogus"]),
    ({"model-name": "resnet18", "weights": "imagenet"}, ["ModelError", "not in this image"]),
])
def test_failures_write_the_reason_and_exit_non_zero(tiny_data, tmp_path, monkeypatch, hps, words):
    base = sagemaker_dirs(tmp_path, tiny_data, {**SMALL, **hps})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    assert train.main() == 1
    failure = (base / "output" / "failure").read_text()
    for word in words:
        assert word in failure
    assert not (base / "model" / "model.pt").exists()


def test_scheduler_warms_up_then_decays():
    from types import SimpleNamespace
    hp = SimpleNamespace(warmup_epochs=1, epochs=4, scheduler="cosine", lr=1.0)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = train.make_scheduler(hp, opt, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
