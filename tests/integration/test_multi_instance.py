"""instance_count=2 in local mode: two training containers on SageMaker's local network, gloo between them."""

import json
import tarfile

import numpy as np
import torch

from classifier.contract import metrics
from classifier.model import artifact, decoding, forward
from classifier_host.data import samples as sample_set
from classifier_host.sagemaker import local

from .jobs import SMALL_HP, run_train


def held_out_accuracy(model_tar, root) -> float:
    """Accuracy on a large held-out set: the sample set's 50 test images put one image at 2 points,
    too coarse to compare two runs within 5 points."""
    model_dir = model_tar.parent / (model_tar.name + ".d")
    with tarfile.open(model_tar) as tar:
        tar.extractall(model_dir, filter="data")
    network, meta = artifact.load(model_dir)
    images, labels = [], []
    for index, name in enumerate(meta["classes"]):
        for path in sorted((root / "test" / name).iterdir()):
            images.append(decoding.eval_image(path, meta["preprocessing"]))
            labels.append(index)
    probs = forward.probabilities(network, torch.from_numpy(np.stack(images)), meta["preprocessing"])
    return (probs.argmax(1) == torch.tensor(labels)).float().mean().item()


def test_two_instances_train_a_model_as_good_as_one(trained_model, sample_data, train_image, tmp_path):
    single_tar, _ = trained_model
    # The same global batch as the single-instance run (2 ranks x 16 = 32): as many steps, same lr.
    hps = {**SMALL_HP, "batch-size": str(int(SMALL_HP["batch-size"]) // 2)}
    done = run_train(sample_data, tmp_path, train_image, hps, "--instance-count", "2")
    log = done.stdout
    assert done.returncode == 0, f"two-instance job failed:\n{log[-6000:]}\n{done.stderr[-3000:]}"
    # Both containers joined one process group (gloo over the sagemaker-local network, eth0).
    assert "rank 0 of 2 on algo-1" in log and "rank 1 of 2 on algo-2" in log, log[-6000:]
    # The two containers share this machine's cores: each gets its share of torch threads.
    threads = local.local_thread_limits(2)["OMP_NUM_THREADS"]
    assert log.count(f"device cpu, {threads} torch threads,") == 2, log[-6000:]
    # Only rank 0 prints metric lines: each epoch once, then the final line once.
    found = metrics.parse_metrics(log)
    assert found["epoch"] == [float(e) for e in range(1, int(SMALL_HP["epochs"]) + 1)]
    assert len(found["test_acc"]) == 1
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    assert round(meta["metrics"]["test_acc"], 6) == metrics.last_value(log, "test_acc")
    held_out = sample_set.make(tmp_path / "held-out", per_class=(0, 0, 60), seed=123)
    single = held_out_accuracy(single_tar, held_out)
    multi = held_out_accuracy(tmp_path / "model.tar.gz", held_out)
    assert abs(multi - single) <= 0.05, (
        f"held-out accuracy (300 images): 2 instances {multi:.3f}, 1 instance {single:.3f}"
    )
