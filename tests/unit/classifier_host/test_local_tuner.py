"""The local search loop and its outputs, without Docker: jobs are stood in for by a function that
prints the trainer's metric lines (the real local-mode jobs run in tests/integration/test_local_tuning.py)."""

import csv
import json

import pytest

from classifier.contract import hyperparams, metrics
from classifier.contract.hyperparams import Categorical, Continuous
from classifier_host.cli import arguments, train
from classifier_host.tuning import results, search

SPACE = {"lr": Continuous(1e-4, 1e-1, log=True), "batch-size": Categorical((16, 32))}
FIXED = {"epochs": "2", "model-name": "resnet18"}


def fake_job(calls):
    """Scores a job by how close lr is to 1e-2; refuses lr above 0.05 like a diverged job."""

    def run(hp, job_name, job_dir):
        calls.append((job_name, dict(hp)))
        hyperparams.parse(hp)  # what reaches the job must be valid for the trainer
        lr = float(hp["lr"])
        if lr > 0.05:
            raise RuntimeError(f"training job {job_name} failed: FloatingPointError: loss became nan")
        score = 1 - abs(lr - 1e-2)
        return "\n".join(
            [
                metrics.format_metrics(epoch=1, val_acc=score / 2),
                metrics.format_metrics(best_val_acc=score, test_loss=0.5, test_acc=score - 0.1),
            ]
        )

    return run


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path):
    calls = []
    trials = search.search(
        fake_job(calls),
        tmp_path,
        max_jobs=6,
        fixed=FIXED,
        space=SPACE,
        seed=1,
        first_trials=[{"lr": 0.09, "batch-size": 16}],
        name="t",
        say=lambda _: None,
    )
    assert len(trials) == len(calls) == 6
    assert [c[0] for c in calls] == [f"t-{i:03d}" for i in range(1, 7)]
    assert all(c[1]["epochs"] == "2" and c[1]["model-name"] == "resnet18" for c in calls)
    first = trials[0]
    assert first.status == "Failed" and "loss became nan" in first.failure_reason and first.tuned["lr"] == 0.09
    done = [t for t in trials if t.status == "Completed"]
    assert done and all(t.objective == pytest.approx(1 - abs(t.tuned["lr"] - 1e-2)) for t in done)
    assert all(t.extra["test_acc"] == pytest.approx(t.objective - 0.1, abs=1e-5) for t in done)

    best_path = search.write_results(tmp_path, trials, FIXED, SPACE, "t")
    best = results.best_of(trials)
    document = json.loads(best_path.read_text())
    assert document["source"] == "local" and document["tuning_job_name"] == "t"
    assert document["best_training_job_name"] == best.job_name
    assert document["objective"] == {"name": "best_val_acc", "type": "Maximize", "value": best.objective}
    assert document["hyperparameters"] == {"epochs": 2, "model-name": "resnet18", **best.tuned}
    assert sorted(document["tuned"]) == ["batch-size", "lr"]

    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert [r["status"] for r in rows] == [t.status for t in trials]
    assert "loss became nan" in rows[0]["failure_reason"] and rows[0]["best_val_acc"] == ""
    assert rows[1]["lr"] and rows[1]["test_acc"]
    assert (tmp_path / "tuning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_job_without_the_objective_in_its_log_is_a_failed_trial(tmp_path):
    trials = search.search(
        lambda hp, name, d: "no metric lines here", tmp_path, max_jobs=2, space=SPACE, say=lambda _: None
    )
    assert [t.status for t in trials] == ["Failed", "Failed"]
    assert "no best_val_acc" in trials[0].failure_reason
    assert search.write_results(tmp_path, trials, {}, SPACE, "x") is None  # no best file without a result
    assert not (tmp_path / "best_hyperparameters.json").exists()


def test_a_name_fixed_and_tuned_at_once_is_refused(tmp_path):
    with pytest.raises(ValueError, match="batch-size"):
        search.search(fake_job([]), tmp_path, 1, fixed={"batch-size": "32"}, space=SPACE)


def test_best_file_feeds_the_training_launcher(tmp_path):
    path = results.write_best(
        tmp_path / "best.json",
        source="sagemaker",
        tuning_job_name="tj",
        best_training_job_name="tj-001-abc",
        objective_value=0.9,
        tuned=["lr"],
        hyperparameters={
            "lr": "0.00042",
            "batch-size": '"64"',
            "cache-images": "false",
            "_tuning_objective_metric": "best_val_acc",
            "sagemaker_region": '"us-east-1"',
        },
    )
    assert json.loads(path.read_text())["hyperparameters"] == {"lr": 0.00042, "batch-size": 64, "cache-images": False}
    merged = {**results.load_best(path), **arguments.parse_hp(["batch-size=32"])}
    assert merged == {"lr": "0.00042", "batch-size": "32", "cache-images": "false"}
    parsed = hyperparams.parse(merged)
    assert (parsed.lr, parsed.batch_size, parsed.cache_images) == (0.00042, 32, False)


@pytest.mark.parametrize(
    "content, words",
    [
        (None, ["does not exist", "make tune"]),
        ("{not json", ["not valid JSON"]),
        ('{"hyperparameters": {"learning-rate": 0.1}}', ["unknown hyperparameter 'learning-rate'"]),
        ('{"hyperparameters": {"lr": -1}}', ["'lr'", "> 0.0"]),
        ('{"best": 1}', ["no 'hyperparameters' object"]),
    ],
)
def test_bad_hyperparameters_file_is_named(tmp_path, content, words):
    path = tmp_path / "best.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(hyperparams.HyperparameterError) as info:
        results.load_best(path)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_launcher_reports_a_bad_hyperparameters_file(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    code = train.main(
        [
            "--local",
            "--data",
            str(tmp_path / "data"),
            "--output-dir",
            str(tmp_path / "out"),
            "--hyperparameters-file",
            str(tmp_path / "missing.json"),
        ]
    )
    assert code == 2 and "missing.json does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--data", "{tmp}/nowhere"], ["--data", "is not a folder"]),
        (["--data", "{tmp}", "--hp", "epochs=0"], ["'epochs'", ">= 1"]),
        (["--data", "{tmp}", "--start-from", "{tmp}/missing.json"], ["missing.json does not exist"]),
        (
            ["--data", "{tmp}"]
            + [
                f"--hp={name}={rng.values[0] if isinstance(rng, Categorical) else rng.min}"
                for name, rng in hyperparams.SEARCH_SPACE.items()
            ],
            ["nothing left to search"],
        ),
    ],
)
def test_local_cli_refuses_bad_input_before_any_job(tmp_path, capsys, extra, words):
    from classifier_host.cli import tune

    args = [
        "--local",
        "--max-jobs",
        "2",
        "--output-dir",
        str(tmp_path / "out"),
        *(a.replace("{tmp}", str(tmp_path)) for a in extra),
    ]
    assert tune.main(args) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not (tmp_path / "out").exists()


def test_a_value_only_the_image_can_check_is_kept_from_a_cloud_job(tmp_path):
    # weights=<file> is checked for existence; that file lives inside the training image, not here.
    path = results.write_best(
        tmp_path / "best.json",
        source="sagemaker",
        tuning_job_name="tj",
        best_training_job_name="tj-1",
        objective_value=0.5,
        tuned=["lr"],
        hyperparameters={"weights": '"/opt/weights/mine.pt"', "lr": "0.001"},
    )
    assert json.loads(path.read_text())["hyperparameters"] == {"weights": "/opt/weights/mine.pt", "lr": 0.001}
    with pytest.raises(hyperparams.HyperparameterError, match="'fine-tune'"):  # other checks still apply
        results.normalize({"fine-tune": "some"}, "x")
