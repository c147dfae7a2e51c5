"""Tracking on a real MLflow store (SQLite in a temp dir): the journal's runs, metrics with their steps,
parents, artifacts; a store that is down (never slows the caller, warns once, saves to a file that replays);
a store that comes back; the metric lines read off a stream; the data fingerprint."""

from __future__ import annotations

import io
import json
import tarfile
import time

import boto3
import pytest
from moto import mock_aws

from classifier.contract import metrics
from classifier_host.cli import track
from classifier_host.data import fingerprint
from classifier_host.tracking import runs, store
from classifier_host.tracking.journal import Journal, read_file
from classifier_host.tracking.metric_tap import EpochSteps, MetricTap


def client(uri):
    return store.client(uri)


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"


def test_a_journal_records_runs_params_metrics_children_and_artifacts(uri, tmp_path):
    journal = Journal(uri, unsent_dir=tmp_path / "unsent")
    parent = journal.start_run("search-1", {runs.KIND_TAG: "search"})
    child = journal.start_run("trial-1", {runs.KIND_TAG: "trial"}, parent=parent)
    journal.log_params(child, {"lr": "0.01", "epochs": "3"})
    for epoch in (1, 2, 3):
        journal.log_metric(child, "val_acc", epoch / 4, epoch)
    (tmp_path / "metadata.json").write_text("{}")
    journal.log_artifact(child, tmp_path / "metadata.json")
    journal.end_run(child, "FAILED")
    journal.end_run(parent)
    assert journal.close() is None
    mlflow = client(uri)
    run = mlflow.get_run(journal.run_id(child))
    assert run.data.params == {"lr": "0.01", "epochs": "3"}
    assert run.data.tags["mlflow.parentRunId"] == journal.run_id(parent)
    assert run.info.status == "FAILED" and mlflow.get_run(journal.run_id(parent)).info.status == "FINISHED"
    history = mlflow.get_metric_history(run.info.run_id, "val_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    assert [a.path for a in mlflow.list_artifacts(run.info.run_id)] == ["metadata.json"]
    # A SQLite store keeps artifacts beside it, not in ./mlruns of whatever folder the command ran from.
    assert run.info.artifact_uri.startswith((tmp_path / "store" / "artifacts").as_uri())


def test_a_store_that_is_down_never_slows_the_job_warns_once_and_saves_a_file_that_replays(uri, tmp_path):
    warnings = []
    journal = Journal("http://127.0.0.1:9", tmp_path / "unsent", warnings.append, retry_seconds=0.05, drain_seconds=1)
    start = time.perf_counter()
    key = journal.start_run("job-1", {"a": "b"})
    journal.log_params(key, {"lr": "0.1"})
    for step in range(200):
        journal.log_metric(key, "train_loss", 1 / (step + 1), step)
    journal.end_run(key)
    assert time.perf_counter() - start < 0.5  # 203 calls, none waiting for the store
    saved = journal.close()
    failure_warnings = [w for w in warnings if "failed" in w]
    assert len(failure_warnings) == 1 and "127.0.0.1:9" in failure_warnings[0]
    assert str(saved) in warnings[-1] and "classifier-track --replay" in warnings[-1]
    saved_uri, known_runs, events = read_file(saved)
    assert saved_uri == "http://127.0.0.1:9" and known_runs == {} and len(events) == 203
    assert track.main(["--replay", str(saved), "--tracking-uri", uri]) == 0
    assert not saved.exists()
    found = client(uri).search_runs([client(uri).get_experiment_by_name(store.EXPERIMENT).experiment_id])
    assert len(found) == 1 and found[0].data.tags["a"] == "b" and found[0].info.status == "FINISHED"
    assert len(client(uri).get_metric_history(found[0].info.run_id, "train_loss")) == 200


def test_a_replay_that_fails_again_keeps_what_is_unsent(tmp_path, uri, capsys):
    journal = Journal("http://127.0.0.1:9", tmp_path / "unsent", lambda _: None, retry_seconds=0.05, drain_seconds=1)
    journal.end_run(journal.start_run("job-1"))
    saved = journal.close()
    assert track.main(["--replay", str(saved)]) == 1  # its own store is still down
    assert saved.exists() and len(read_file(saved)[2]) == 2
    assert "kept for later" in capsys.readouterr().err
    (tmp_path / "not-a-journal.jsonl").write_text('{"x": 1}\n')
    assert track.main(["--replay", str(tmp_path / "not-a-journal.jsonl")]) == 2


def test_what_was_held_while_the_store_was_down_is_sent_when_it_answers_again(tmp_path):
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store's folder must go: the store cannot open")
    uri = f"sqlite:///{blocker / 'mlflow.db'}"
    warnings = []
    journal = Journal(uri, tmp_path / "unsent", warnings.append, retry_seconds=0.1, drain_seconds=30)
    key = journal.start_run("job-1")
    journal.log_metric(key, "val_acc", 0.5, 1)
    deadline = time.monotonic() + 30
    while not warnings and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warnings, "the journal never tried the store"
    blocker.unlink()  # the store can be opened again
    journal.end_run(key)
    assert journal.close() is None
    run = client(uri).get_run(journal.run_id(key))
    assert run.info.status == "FINISHED" and run.data.metrics == {"val_acc": 0.5}


def test_the_tap_passes_the_log_through_and_reads_each_metric_line_once_whole():
    out, seen = io.StringIO(), []
    tap = MetricTap(out, seen.append)
    line = metrics.format_metrics(epoch=2, train_loss=0.5, val_acc=0.75)
    tap.write("algo-1 | starting\nalgo-1 | " + line[:10])
    assert seen == []  # half a line is not read
    tap.write(line[10:] + "\n" + metrics.format_metrics(test_acc=0.8) + "\n")
    assert seen == [{"epoch": 2.0, "train_loss": 0.5, "val_acc": 0.75}, {"test_acc": 0.8}]
    assert out.getvalue() == "algo-1 | starting\nalgo-1 | " + line + "\n" + metrics.format_metrics(test_acc=0.8) + "\n"
    steps = EpochSteps()
    assert steps.points(seen[0]) == [("train_loss", 0.5, 2), ("val_acc", 0.75, 2)]
    assert steps.points(seen[1]) == [("test_acc", 0.8, 2)]  # the final line comes after the last epoch


def test_a_training_run_logs_the_model_uri_its_metadata_and_each_runtimes_scores(uri, tmp_path):
    staging, model = tmp_path / "staging", tmp_path / "model.tar.gz"
    metadata = {
        "runtimes": {"torch": {"test_acc": 0.9, "agreement": 1.0}, "onnx-int8": {"test_acc": 0.88, "agreement": 0.97}}
    }
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    (tmp_path / "evaluation.json").write_text('{"top1": 0.9}')
    with tarfile.open(model, "w:gz") as tar:
        tar.add(tmp_path / "metadata.json", "metadata.json")
        tar.add(tmp_path / "evaluation.json", "evaluation.json")
    journal = Journal(uri, tmp_path / "unsent")
    run = runs.TrainingRun.start(journal, "job-7", {"lr": "0.1", "instance_type": "local"}, {runs.KIND_TAG: "training"})
    with pytest.raises(RuntimeError), runs.run_ending(run):
        run.on_metrics({"epoch": 1.0, "val_acc": 0.5})
        run.log_model(str(model), model, staging)
        raise RuntimeError("the job failed after its model was written")
    journal.close()
    found = client(uri).get_run(journal.run_id(run.key))
    assert found.info.status == "FAILED"
    assert found.data.tags[runs.MODEL_URI_TAG] == str(model) and found.data.tags[runs.JOB_TAG] == "job-7"
    assert found.data.metrics == {
        "val_acc": 0.5,
        "torch_test_acc": 0.9,
        "torch_agreement": 1.0,
        "onnx_int8_test_acc": 0.88,
        "onnx_int8_agreement": 0.97,
    }
    assert sorted(a.path for a in client(uri).list_artifacts(found.info.run_id)) == ["evaluation.json", "metadata.json"]
    assert runs.find_training_run(client(uri), str(model)) == found.info.run_id


def test_the_fingerprint_follows_the_contents_not_the_location(tmp_path):
    for where in ("a", "b"):
        (tmp_path / where / "train" / "001.x").mkdir(parents=True)
        (tmp_path / where / "train" / "001.x" / "1.jpg").write_bytes(b"\xff\xd8 pixels")
        (tmp_path / where / "test.txt").write_bytes(b"hello")
    a, b = fingerprint.of_folder(tmp_path / "a"), fingerprint.of_folder(tmp_path / "b")
    assert a == b and a.files == 2 and a.bytes == 14 and a.digest.startswith("sha256:")
    (tmp_path / "b" / "test.txt").write_bytes(b"hellp")  # same size, one byte
    assert fingerprint.of_folder(tmp_path / "b").digest != a.digest
    (tmp_path / "b" / "test.txt").rename(tmp_path / "b" / "moved.txt")
    assert fingerprint.of_folder(tmp_path / "b").digest != a.digest
    with pytest.raises(ValueError, match="not a folder"):
        fingerprint.of_folder(tmp_path / "missing")


@mock_aws
def test_an_s3_fingerprint_reads_keys_sizes_and_etags_from_the_listing():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    for key, body in (("sets/dogs/train/a.jpg", b"1"), ("sets/dogs/test/b.jpg", b"22"), ("sets/other/c.jpg", b"3")):
        s3.put_object(Bucket="data", Key=key, Body=body)
    first = fingerprint.of_s3(s3, "s3://data/sets/dogs")
    assert (first.files, first.bytes, first.method) == (2, 3, fingerprint.S3_METHOD)
    s3.put_object(Bucket="data", Key="sets/dogs/test/b.jpg", Body=b"23")
    assert fingerprint.of_s3(s3, "s3://data/sets/dogs/").digest != first.digest
