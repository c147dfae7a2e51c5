"""The training image in real SageMaker local mode (docker-compose, sagemaker.core.local)."""

import io
import json
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path

import torch

from classifier.contract import metrics
from classifier.model import artifact, runtimes
from classifier_host.sagemaker import local

from .jobs import SMALL_HP, run_train


def test_model_tar_holds_what_the_server_needs(trained_model):
    model_tar, log = trained_model
    with tarfile.open(model_tar) as tar:
        assert sorted(tar.getnames()) == [
            "check_images.npy",
            "check_probabilities.npy",
            "evaluation.json",
            "metadata.json",
            "model.int8.onnx",
            "model.onnx",
            "model.pt",
        ]
        evaluation = json.load(tar.extractfile("evaluation.json"))
        meta = json.load(tar.extractfile("metadata.json"))
        state = torch.load(io.BytesIO(tar.extractfile("model.pt").read()), weights_only=True)
    assert meta["format_version"] == artifact.FORMAT_VERSION
    assert meta["classes"][0] == "001.Red_circle" and len(meta["classes"]) == 5
    assert meta["model_name"] == "resnet18" and meta["image_size"] == 64
    assert set(meta["preprocessing"]) == {"resize", "crop", "interpolation", "mean", "std"}
    assert state["fc.weight"].shape == (5, 512)
    # Hyperparameters went through SageMaker (hyperparameters.json) and back into the artifact.
    assert meta["hyperparameters"]["lr"] == float(SMALL_HP["lr"])
    assert meta["hyperparameters"]["epochs"] == int(SMALL_HP["epochs"])
    # The test split's evaluation, through the runtime a CPU endpoint's `auto` serves.
    assert evaluation["runtime"] in meta["runtimes"] and evaluation["images"] == 50
    assert abs(evaluation["top1"] - meta["runtimes"][evaluation["runtime"]]["test_acc"]) < 1e-9
    assert len(evaluation["confusion_matrix"]) == 5 and set(evaluation["per_class"]) == set(meta["classes"])
    # Local mode's working folder (a copy of the model) is gone with the job.
    # (It holds the job's docker-compose.yaml; the SDK's default, a bare mkdtemp, was never removed.)
    job = (model_tar.parent / "last_training_job.txt").read_text().strip()
    compose_files = [
        *Path(tempfile.gettempdir()).glob("*/docker-compose.yaml"),
        *Path(tempfile.gettempdir()).glob(f"{local.LOCAL_SCRATCH_PREFIX}*/*/docker-compose.yaml"),
    ]
    assert not [f for f in compose_files if job in f.read_text(errors="replace")]


def test_metric_lines_reach_the_job_log_and_accuracy_is_well_above_chance(trained_model):
    model_tar, log = trained_model
    found = metrics.parse_metrics(log)
    assert found["epoch"] == [float(e) for e in range(1, int(SMALL_HP["epochs"]) + 1)]
    with tarfile.open(model_tar) as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    assert metrics.last_value(log, "test_acc") == round(meta["metrics"]["test_acc"], 6)
    chance = 1 / len(meta["classes"])
    assert meta["metrics"]["test_acc"] >= 0.5 > chance, meta["metrics"]


def test_the_image_exports_onnx_and_int8_and_scores_them(trained_model):
    """The training image carries the exporter and ONNX Runtime: both exports exist and track torch fp32."""
    model_tar, log = trained_model
    with tarfile.open(model_tar) as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    scores = artifact.runtime_scores(meta)
    assert meta["export"]["skipped"] == {} and set(scores) == {runtimes.TORCH, runtimes.ONNX, runtimes.ONNX_INT8}
    found = metrics.parse_metrics(log)
    for name in (runtimes.ONNX, runtimes.ONNX_INT8):
        assert found[metrics.runtime_metric(name, "agreement")] == [round(scores[name]["agreement"], 6)]
        assert scores[name]["agreement"] >= 0.95, scores
        assert abs(scores[name]["test_acc"] - scores[runtimes.TORCH]["test_acc"]) <= 0.05, scores
    print(f"export: {found['export_seconds'][0]:.1f}s, runtimes {scores}")  # the README's figures (pytest -s)


def test_bad_hyperparameter_fails_the_job_with_the_reason(sample_data, train_image, tmp_path):
    # local.train_local directly: past the launcher's own check, the container must refuse it too
    import pytest

    job = f"bad-hp-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError) as info:
        local.train_local(train_image, sample_data, tmp_path, {**SMALL_HP, "batch-size": "many"}, job_name=job)
    message = str(info.value)
    assert "HyperparameterError" in message and "'batch-size'" in message and "'many'" in message
    # Local mode never runs `compose down`; train_local removes the job's container, failed or not.
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"ancestor={train_image}"], capture_output=True, text=True, check=True
    ).stdout.split()
    envs = (
        subprocess.run(
            ["docker", "inspect", "--format", "{{json .Config.Env}}", *ids], capture_output=True, text=True
        ).stdout
        if ids
        else ""
    )
    assert f"TRAINING_JOB_NAME={job}" not in envs


def test_launcher_refuses_bad_hyperparameters_before_starting_a_container(sample_data, train_image, tmp_path):
    done = run_train(sample_data, tmp_path, train_image, {"fine-tune": "everything"})
    assert done.returncode == 2
    assert "'fine-tune'" in done.stderr and "head, last-block, full" in done.stderr
