"""The local search over real SageMaker local-mode training jobs: 3 short trials on the sample data plus
one trial the trainer refuses inside its container, which must be recorded and must not stop the search."""

import csv
import json

import pytest

from classifier.contract import hyperparams
from classifier_host.tuning import jobs as tuning_jobs
from classifier_host.tuning import results, search

# Short trials: one epoch of a small network on 32-pixel images (about half a minute each on 2 CPUs).
FIXED = {"model-name": "resnet18", "weights": "none", "image-size": "32", "epochs": "1", "augment": "basic"}
# Beyond the schema's lr <= 10: the container must refuse it (the host-side checks are bypassed here).
REFUSED = {"lr": 50.0}


@pytest.mark.filterwarnings("ignore:Fixed parameter lr with value 50.0 is out of range")  # on purpose
def test_local_search_records_a_failed_trial_and_writes_the_best(sample_data, train_image, tmp_path):
    space = tuning_jobs.search_space(FIXED)
    lines = []
    trials = search.search(
        search.local_job_runner(train_image, sample_data),
        tmp_path,
        max_jobs=4,
        fixed=FIXED,
        space=space,
        seed=0,
        first_trials=[REFUSED],
        name="it-tune",
        say=lines.append,
    )
    statuses = [t.status for t in trials]
    assert statuses == ["Failed", "Completed", "Completed", "Completed"], [t.failure_reason for t in trials]
    refused = trials[0]
    assert refused.tuned["lr"] == 50.0
    assert "HyperparameterError" in refused.failure_reason and "'lr'" in refused.failure_reason
    assert "must be <= 10.0" in refused.failure_reason
    assert "FAILED" in lines[1] and "trial 4/4" in lines[-1]
    for t in trials[1:]:
        assert 0.0 <= t.objective <= 1.0 and "test_acc" in t.extra
        assert (tmp_path / "jobs" / t.job_name / "job.log").is_file()

    best_path = search.write_results(tmp_path, trials, FIXED, space, "it-tune")
    document = json.loads(best_path.read_text())
    best = max(trials[1:], key=lambda t: t.objective)
    assert document["best_training_job_name"] == best.job_name
    assert document["objective"]["value"] == best.objective
    assert document["hyperparameters"]["image-size"] == 32 and document["hyperparameters"]["lr"] == best.tuned["lr"]
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert len(rows) == 4 and rows[0]["status"] == "Failed" and "'lr'" in rows[0]["failure_reason"]
    assert (tmp_path / "tuning.png").stat().st_size > 1000
    # The handoff: what the training launcher would send, and the trainer's schema accepts it.
    hp = hyperparams.parse(results.load_best(best_path))
    assert hp.lr == best.tuned["lr"] and hp.batch_size == best.tuned["batch-size"]
