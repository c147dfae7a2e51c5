"""The trainer run in-process on the tiny set: metric lines, artifact round trip, failures."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from classifier.contract import hyperparams, metrics
from classifier.contract.paths import SageMakerPaths
from classifier.model import artifact, decoding, forward, runtimes, selection
from classifier.training import data, export, finalize, trainer

SMALL = {
    "model-name": "resnet18",
    "weights": "none",
    "fine-tune": "full",
    "image-size": "32",
    "epochs": "2",
    "batch-size": "16",
    "lr": "0.003",
    "num-workers": "0",
    "augment": "basic",
}


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
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("SAGEMAKER_BASE_DIR", str(base))
        code = trainer.main()
    return SageMakerPaths(base), out.getvalue(), code


def split_images(data_dir, meta):
    """The test split through THE eval preprocessing: uint8 (N,3,H,W) and labels."""
    images, labels = [], []
    for index, name in enumerate(meta["classes"]):
        for path in sorted((data_dir / "test" / name).iterdir()):
            images.append(decoding.eval_image(path, meta["preprocessing"]))
            labels.append(index)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels)


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
    assert sorted(p.name for p in paths.model.iterdir()) == [
        "check_images.npy",
        "check_probabilities.npy",
        "evaluation.json",
        "metadata.json",
        "model.int8.onnx",
        "model.onnx",
        "model.pt",
    ]
    state = torch.load(paths.model / "model.pt", weights_only=True)
    assert "fc.weight" in state
    network, meta = artifact.load(paths.model)
    assert meta["classes"] == sorted(p.name for p in (tiny_data / "train").iterdir())
    assert meta["model_name"] == "resnet18" and meta["image_size"] == 32
    assert meta["preprocessing"] == decoding.eval_preprocessing(32)
    assert meta["hyperparameters"]["lr"] == 0.003 and meta["hyperparameters"]["epochs"] == 2
    assert {"test_acc", "test_loss", "best_val_acc", "history"} <= set(meta["metrics"])
    # The loaded model reproduces the test accuracy the trainer recorded, through the server's code path.
    images, labels = split_images(tiny_data, meta)
    probs = forward.probabilities(network, images, meta["preprocessing"])
    acc = (probs.argmax(1) == labels).float().mean().item()
    assert acc == pytest.approx(meta["metrics"]["test_acc"], abs=1e-6)


def test_every_runtime_is_exported_and_scored_as_the_server_would_run_it(trained, tiny_data):
    paths, log, _ = trained
    meta = artifact.load_metadata(paths.model)
    scores = artifact.runtime_scores(meta)
    assert set(scores) == {runtimes.TORCH, runtimes.ONNX, runtimes.ONNX_INT8}
    assert meta["export"]["enabled"] and meta["export"]["skipped"] == {} and meta["export"]["seconds"] > 0
    assert scores[runtimes.TORCH]["test_acc"] == pytest.approx(meta["metrics"]["test_acc"], abs=1e-6)
    network, _ = artifact.load(paths.model)
    images, labels = split_images(tiny_data, meta)
    reference = runtimes.TorchRuntime(network, meta["preprocessing"]).probabilities(images).argmax(1)
    found = metrics.parse_metrics(log)
    for name in (runtimes.ONNX, runtimes.ONNX_INT8):
        # The recorded figures are what a fresh ONNX Runtime session gives on the test files, at any batch size.
        runtime = runtimes.OnnxRuntime(name, paths.model / scores[name]["file"], meta["preprocessing"])
        one_by_one = np.concatenate([runtime.probabilities(images[i : i + 1].numpy()) for i in range(len(images))])
        assert np.allclose(one_by_one, runtime.probabilities(images.numpy()), atol=1e-5)
        top1 = one_by_one.argmax(1)
        assert scores[name]["test_acc"] == pytest.approx((top1 == labels.numpy()).mean(), abs=1e-6)
        assert scores[name]["agreement"] == pytest.approx((top1 == reference).mean(), abs=1e-6)
        for score in ("test_acc", "agreement"):
            assert found[metrics.runtime_metric(name, score)] == [pytest.approx(scores[name][score], abs=1e-6)]
    # fp32 ONNX is the same function as torch; int8 is close to it.
    assert scores[runtimes.ONNX]["agreement"] == 1.0
    assert scores[runtimes.ONNX_INT8]["agreement"] >= 0.8
    assert len(found["export_seconds"]) == 1
    # The log names the runtime an endpoint's `auto` will serve: one that passes the gate.
    candidates, _ = selection.plan(paths.model, meta, selection.Gate())
    assert f"SERVING_RUNTIME=auto will serve {candidates[0]} on a CPU endpoint (it passes the gate" in log
    # The test split's evaluation is that runtime's: its top-1 is the accuracy recorded for it.
    result = json.loads((paths.model / artifact.EVALUATION_FILE).read_text())
    assert result["runtime"] == candidates[0] and result["images"] == len(labels)
    assert result["top1"] == pytest.approx(scores[candidates[0]]["test_acc"], abs=1e-9)
    assert sum(c["support"] for c in result["per_class"].values()) == len(labels)
    assert set(result["per_class"]) == set(meta["classes"]) and 0 <= result["calibration"]["ece"] <= 1
    for mistake in result["worst_mistakes"]:
        assert (tiny_data / "test" / mistake["source"]).is_file() and mistake["true"] != mistake["predicted"]
    assert result["top1"] == 1.0 or result["worst_mistakes"]
    assert "evaluation (" in log and "top-5" in log


def test_the_check_set_is_plain_npy_with_the_torch_probabilities(trained):
    paths, _, _ = trained
    network, meta = artifact.load(paths.model)
    images, probabilities = artifact.load_check_set(paths.model)  # np.load(allow_pickle=False) inside
    assert images.dtype == np.uint8 and images.shape == (20, 3, 32, 32)  # all 20 test images (fewer than 32)
    assert probabilities.shape == (20, len(meta["classes"]))
    torch_now = runtimes.TorchRuntime(network, meta["preprocessing"]).probabilities(images)
    assert np.allclose(torch_now, probabilities, atol=1e-6)
    onnx_now = runtimes.OnnxRuntime(runtimes.ONNX, paths.model / "model.onnx", meta["preprocessing"])
    assert np.allclose(onnx_now.probabilities(images), probabilities, atol=1e-4)


def test_an_export_that_breaks_leaves_a_torch_only_artifact(trained, tiny_data, tmp_path, monkeypatch):
    """Whatever breaks after model.pt is written (here: the whole export step), the job keeps the model."""
    paths, _, _ = trained
    copy = SageMakerPaths(tmp_path)
    copy.model.mkdir(parents=True)
    for path in paths.model.iterdir():  # a half-done export: its files and metadata are there
        (copy.model / path.name).write_bytes(path.read_bytes())

    def out_of_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "export_and_evaluate", out_of_disk)
    meta = artifact.load_metadata(paths.model)
    samples = data.list_samples(tiny_data / "train", meta["classes"])
    test_set = data.TensorImages(*split_images(tiny_data, meta))
    finalize.export_runtimes(hyperparams.parse(SMALL), copy, *artifact.load(copy.model), samples, test_set)
    after = artifact.load_metadata(copy.model)
    assert list(artifact.runtime_scores(after)) == [runtimes.TORCH]
    assert "No space left on device" in after["export"]["skipped"][runtimes.ONNX]
    assert sorted(p.name for p in copy.model.iterdir()) == ["metadata.json", "model.pt"]
    artifact.load(copy.model)  # still servable


def test_same_seed_same_run_on_cpu_and_export_turns_off(trained, tiny_data, tmp_path, monkeypatch):
    paths, log, _ = trained
    base = sagemaker_dirs(tmp_path, tiny_data, {**SMALL, "_tuning_objective_metric": "best_val_acc", "export": "false"})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert trainer.main() == 0
    first = metrics.parse_metrics(log)
    second = metrics.parse_metrics(out.getvalue())
    for name in ("train_loss", "val_loss", "val_acc", "test_acc"):
        assert second[name] == first[name], name
    # export=false: the torch-only artifact of before, and no export metric lines.
    model_dir = SageMakerPaths(base).model
    assert sorted(p.name for p in model_dir.iterdir()) == ["evaluation.json", "metadata.json", "model.pt"]
    assert json.loads((model_dir / "evaluation.json").read_text())["runtime"] == runtimes.TORCH  # no exports
    meta = artifact.load_metadata(model_dir)
    assert meta["export"] == {"enabled": False} and list(artifact.runtime_scores(meta)) == [runtimes.TORCH]
    assert not set(metrics.EXPORT_METRICS) & set(second)
    assert artifact.load_check_set(model_dir) is None


@pytest.mark.parametrize(
    "hps, words",
    [
        ({"lr": "-1"}, ["HyperparameterError", "'lr'"]),
        ({"bogus": "1"}, ["unknown hyperparameter", "bogus"]),
        ({"model-name": "resnet18", "weights": "imagenet"}, ["ModelError", "not in this image"]),
    ],
)
def test_failures_write_the_reason_and_exit_non_zero(tiny_data, tmp_path, monkeypatch, hps, words):
    base = sagemaker_dirs(tmp_path, tiny_data, {**SMALL, **hps})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    assert trainer.main() == 1
    failure = (base / "output" / "failure").read_text()
    for word in words:
        assert word in failure
    assert not (base / "model" / "model.pt").exists()


def test_scheduler_warms_up_then_decays():
    from types import SimpleNamespace

    hp = SimpleNamespace(warmup_epochs=1, epochs=4, scheduler="cosine", lr=1.0)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = trainer.make_scheduler(hp, opt, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
