"""Tracking and the registry end to end: the shared local-mode job is an MLflow run with its metrics per epoch,
a deliberately weak second job is registered but not promoted, and `deploy.py --local --model champion` serves
the good one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from classifier_host.tracking import runs, store

from .jobs import ROOT, SMALL_HP, run_train

pytestmark = pytest.mark.integration
REGISTRY = "it-classifier"


def register(model, folder):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "register.py"),
            "--model-data",
            str(model),
            "--evaluate-on",
            str(folder),
            "--registry-name",
            REGISTRY,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def job_model(trained_model):
    """The shared job's own model.tar.gz (the one its MLflow run names)."""
    output = trained_model[0].parent
    return output / (output / "last_training_job.txt").read_text().strip() / "model.tar.gz"


def test_the_training_job_is_a_run_with_its_metrics_per_epoch_and_its_provenance(job_model):
    client = store.client(os.environ["MLFLOW_TRACKING_URI"])
    run = client.get_run(runs.find_training_run(client, str(job_model)))
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == SMALL_HP["lr"] and run.data.params["instance_type"] == "local"
    history = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.step for m in history] == list(range(1, int(SMALL_HP["epochs"]) + 1))
    assert {"test_acc", "torch_test_acc", "onnx_agreement"} <= set(run.data.metrics)
    tags = run.data.tags
    assert len(tags[runs.COMMIT_TAG]) == 40 and tags["data.fingerprint"].startswith("sha256:")
    assert tags["image.train.id"].startswith("sha256:") and tags[runs.JOB_TAG] == job_model.parent.name
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"metadata.json", "evaluation.json"}


def test_a_weak_model_is_not_promoted_and_deploy_serves_the_champion(job_model, sample_data, train_image, tmp_path):
    weak = run_train(sample_data, tmp_path, train_image, {**SMALL_HP, "epochs": "1", "lr": "0.000001"})
    assert weak.returncode == 0, weak.stdout[-3000:] + weak.stderr[-3000:]
    good_verdict = register(job_model, sample_data / "test")
    weak_verdict = register(tmp_path / "model.tar.gz", sample_data / "test")
    assert good_verdict["champion"] is True
    assert weak_verdict["champion"] is False and "not promoted" in weak_verdict["reason"], weak_verdict
    client = store.client(os.environ["MLFLOW_TRACKING_URI"])
    version = client.get_model_version(REGISTRY, good_verdict["version"])
    assert version.tags["data.fingerprint"].startswith("sha256:")  # the training run's provenance, repeated
    some = sorted((sample_data / "test").iterdir())[0]
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "deploy.py"),
            "--local",
            "--model",
            "champion",
            "--registry-name",
            REGISTRY,
            "--query",
            str(some),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"registered model {REGISTRY} v{good_verdict['version']} (champion): {job_model}" in done.stdout
    assert "endpoint deleted" in done.stdout
