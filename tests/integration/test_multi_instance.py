"""instance_count=2 in local mode: two training containers on SageMaker's local network, gloo between them."""
import json
import tarfile

from classifier import metrics

from .jobs import SMALL_HP, run_train


def test_two_instances_train_a_model_as_good_as_one(trained_model, sample_data, train_image, tmp_path):
    _, single_log = trained_model
    # The same global batch as the single-instance run (2 ranks x 16 = 32): as many steps, same lr.
    hps = {**SMALL_HP, "batch-size": str(int(SMALL_HP["batch-size"]) // 2)}
    done = run_train(sample_data, tmp_path, train_image, hps, "--instance-count", "2")
    log = done.stdout
    assert done.returncode == 0, f"two-instance job failed:\n{log[-6000:]}\n{done.stderr[-3000:]}"
    # Both containers joined one process group (gloo over the sagemaker-local network, eth0).
    assert "rank 0 of 2 on algo-1" in log and "rank 1 of 2 on algo-2" in log, log[-6000:]
    # Only rank 0 prints metric lines: each epoch once, then the final line once.
    found = metrics.parse_metrics(log)
    assert found["epoch"] == [float(e) for e in range(1, int(SMALL_HP["epochs"]) + 1)]
    assert len(found["test_acc"]) == 1
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    single, multi = metrics.last_value(single_log, "test_acc"), metrics.last_value(log, "test_acc")
    assert round(meta["metrics"]["test_acc"], 6) == multi
    assert abs(multi - single) <= 0.05, f"2 instances: test_acc {multi}; 1 instance: {single}"
