"""register.py on MLflow's real registry (SQLite in a temp dir) with real artifacts: the gate (first model,
a weaker one not promoted, the champion re-evaluated on another folder), approvals and rejections recorded with
who/when/why, deploy.py --model's lookup, and every bad input refused with nothing half-registered."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
import torch

from classifier.model import artifact, decoding
from classifier.model import network as model_lib
from classifier.training import data
from classifier_host.cli import register
from classifier_host.registry import mlflow_registry
from classifier_host.registry.gate import RegistryError, Rule
from classifier_host.registry.mlflow_registry import MlflowRegistry

PREP = decoding.eval_preprocessing(32)


def constant_model(tmp_path, classes, favourite: int, name: str):
    """A model that answers `favourite` for every image: its top-1 is that class's share of a folder."""
    torch.manual_seed(0)
    network = model_lib.build("resnet18", len(classes)).eval()
    with torch.no_grad():
        network.fc.weight.zero_()
        network.fc.bias.zero_()
        network.fc.bias[favourite] = 5.0
    folder = tmp_path / name
    artifact.save(
        folder,
        network.state_dict(),
        classes=classes,
        model_name="resnet18",
        image_size=32,
        preprocessing=PREP,
        hyperparameters={"lr": 0.1},
        metrics={},
    )
    tar = tmp_path / f"{name}.tar.gz"
    with tarfile.open(tar, "w:gz") as archive:
        for path in folder.iterdir():
            archive.add(path, arcname=path.name)
    return tar


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="module")
def models(tiny_data, tmp_path_factory):
    """good: answers class 0; weak: answers the last class, which the evaluation folder below lacks."""
    classes = data.class_folders(tiny_data / "train")
    where = tmp_path_factory.mktemp("models")
    return constant_model(where, classes, 0, "good"), constant_model(where, classes, len(classes) - 1, "weak")


@pytest.fixture
def folder(tiny_data, tmp_path):
    """The test split without its last class: good scores its first class's share, weak scores 0."""
    out = tmp_path / "eval"
    shutil.copytree(tiny_data / "test", out)
    shutil.rmtree(out / data.class_folders(out)[-1])
    return out


def run(capsys, *argv):
    status = register.main(list(argv))
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return status, (json.loads(lines[-1]) if lines else None), captured.err


def test_the_first_model_is_champion_and_a_weaker_one_is_registered_not_promoted(store, models, folder, capsys):
    good, weak = models
    status, first, _ = run(capsys, "--model-data", str(good), "--evaluate-on", str(folder))
    assert status == 0 and first["champion"] is True and first["version"] == "1"
    status, second, _ = run(capsys, "--model-data", str(weak), "--evaluate-on", str(folder))
    assert status == 0 and second == {"version": "2", "champion": False, "reason": second["reason"]}
    assert "0.0000" in second["reason"] and "0.2500" in second["reason"]  # both figures: 1 of 4 classes
    registry = MlflowRegistry(store)
    assert str(registry.champion().version) == "1" and registry.champion().source == str(good.resolve())
    weak_version = registry.version("2")
    assert weak_version.tags[mlflow_registry.STATUS] == "candidate"
    assert float(weak_version.tags[mlflow_registry.TOP1]) == 0.0
    assert weak_version.tags["verdict.reason"] == second["reason"]
    # The evaluation is in the registration's run, with the version.
    artifacts = {a.path for a in registry.client.list_artifacts(weak_version.run_id)}
    assert artifacts == {"evaluation.json", "evaluation.html"}
    # Within --max-drop the weak one would pass; an equal one passes with the default 0.
    status, third, _ = run(capsys, "--model-data", str(good), "--evaluate-on", str(folder))
    assert third["champion"] is True and str(registry.champion().version) == "3"


def test_the_champion_is_evaluated_again_on_a_folder_it_was_not_evaluated_on(store, models, folder, tmp_path, capsys):
    good, weak = models
    run(capsys, "--model-data", str(good), "--evaluate-on", str(folder))
    only_first = tmp_path / "only-first"
    only_first.mkdir()
    first_class = data.class_folders(folder)[0]
    shutil.copytree(folder / first_class, only_first / first_class)
    status, verdict, _ = run(capsys, "--model-data", str(weak), "--evaluate-on", str(only_first), "--max-drop", "99")
    # On only-first the champion scores 1.0, not its recorded 0.25: the weak one drops 100 points > 99.
    assert status == 0 and verdict["champion"] is False and "1.0000" in verdict["reason"]


def test_the_first_model_needs_min_accuracy(store, models, folder, capsys):
    status, verdict, _ = run(
        capsys, "--model-data", str(models[0]), "--evaluate-on", str(folder), "--min-accuracy", "0.5"
    )
    assert status == 0 and verdict["champion"] is False and MlflowRegistry(store).champion() is None


def test_people_approve_and_reject_with_who_when_and_why(store, models, folder, capsys):
    good, weak = models
    run(capsys, "--model-data", str(good), "--evaluate-on", str(folder))
    run(capsys, "--model-data", str(weak), "--evaluate-on", str(folder))
    status, _, err = run(capsys, "--reject", "1", "--reason", "no")
    assert status == 2 and "champion" in err  # approve another first
    status, approved, _ = run(capsys, "--approve", "2", "--reason", "the new classes matter more")
    assert status == 0 and approved["champion"] is True
    status, rejected, _ = run(capsys, "--reject", "1", "--reason", "superseded")
    assert status == 0 and rejected["champion"] is False
    registry = MlflowRegistry(store)
    assert str(registry.champion().version) == "2"
    tags = registry.version("2").tags
    assert tags["approved.reason"] == "the new classes matter more" and tags["approved.by"] and tags["approved.at"]
    assert registry.version("1").tags[mlflow_registry.STATUS] == "rejected"
    assert run(capsys, "--approve", "9", "--reason", "x")[0] == 2
    assert run(capsys, "--approve", "2")[0] == 2  # a decision needs its reason


def test_a_file_that_is_not_a_model_or_a_folder_of_other_classes_registers_nothing(
    store, models, folder, tmp_path, capsys
):
    (tmp_path / "notes.txt").write_text("not a model")
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "notes.txt", "notes.txt")
    for bad in (tmp_path / "notes.txt", tmp_path / "other.tar.gz", tmp_path / "missing.tar.gz"):
        status, verdict, err = run(capsys, "--model-data", str(bad), "--evaluate-on", str(folder))
        assert status == 2 and verdict is None and str(bad) in err
    strange = tmp_path / "strange"
    (strange / "999.Unicorn").mkdir(parents=True)
    shutil.copy(next((folder / data.class_folders(folder)[0]).iterdir()), strange / "999.Unicorn")
    status, _, err = run(capsys, "--model-data", str(models[0]), "--evaluate-on", str(strange))
    assert status == 2 and "999.Unicorn" in err and "--evaluate-on" in err
    registry = MlflowRegistry(store)
    assert registry.client.search_model_versions(f"name='{registry.name}'") == []


def test_a_registry_name_in_use_by_something_else_and_an_unreachable_store_are_refused(
    store, models, folder, tmp_path, capsys, monkeypatch
):
    from classifier_host.tracking import store as tracking_store

    tracking_store.client(store).create_registered_model("theirs")
    status, _, err = run(
        capsys, "--model-data", str(models[0]), "--evaluate-on", str(folder), "--registry-name", "theirs"
    )
    assert status == 2 and "in use by something else" in err
    assert tracking_store.client(store).search_model_versions("name='theirs'") == []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    status, _, err = run(capsys, "--model-data", str(models[0]), "--evaluate-on", str(folder))
    assert status == 2 and "127.0.0.1:9" in err


def test_deploy_finds_the_champion_and_a_version(store, models, folder, capsys):
    from classifier_host.cli import deploy

    run(capsys, "--model-data", str(models[0]), "--evaluate-on", str(folder))
    assert deploy.registered_model_data("champion", "image-classifier") == str(models[0].resolve())
    assert deploy.registered_model_data("1", "image-classifier") == str(models[0].resolve())
    with pytest.raises(RegistryError, match="no version '7'"):
        deploy.registered_model_data("7", "image-classifier")


@pytest.mark.parametrize(
    ("top1", "runtime", "champion", "promoted", "figures"),
    [
        (0.5, "onnx", None, True, ["0.5000"]),
        (0.80, "onnx", 0.80, True, ["0.8000"]),
        (0.79, "onnx", 0.80, False, ["0.7900", "0.8000", "1.00 points"]),
        (0.90, None, 0.10, False, ["serving gate"]),
    ],
)
def test_the_rule(top1, runtime, champion, promoted, figures):
    verdict = Rule().decide(top1, runtime, champion, "4" if champion is not None else None)
    assert verdict.champion is promoted
    assert all(f in verdict.reason for f in figures)
    assert Rule(max_drop=1).decide(0.79, "onnx", 0.80, "4").champion is True


def test_bad_rules_are_refused():
    for bad in ({"max_drop": -1}, {"min_accuracy": 2}):
        with pytest.raises(RegistryError):
            Rule(**bad)
