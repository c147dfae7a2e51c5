"""The evaluate command (scripts/evaluate.py) on a real exported artifact and a labelled folder with a bad
file in it."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pytest
import torch

from classifier.model import artifact, decoding, runtimes
from classifier.model import network as model_lib
from classifier.training import data, export
from classifier_host.cli import evaluate

PREP = decoding.eval_preprocessing(32)


@pytest.fixture(scope="module")
def model_tar(tiny_data, tmp_path_factory):
    """A resnet18 artifact with its exports (untrained: a spread of right and wrong answers), as a tarball."""
    classes = data.class_folders(tiny_data / "train")
    torch.manual_seed(0)
    network = model_lib.build("resnet18", len(classes)).eval()
    folder = tmp_path_factory.mktemp("model")
    artifact.save(
        folder,
        network.state_dict(),
        classes=classes,
        model_name="resnet18",
        image_size=32,
        preprocessing=PREP,
        hyperparameters={},
        metrics={},
        export={"enabled": True},
    )
    samples = data.list_samples(tiny_data / "test", classes)
    images = torch.from_numpy(np.stack([decoding.eval_image(p, PREP) for p, _ in samples]))
    labels = torch.tensor([label for _, label in samples])
    outcome = export.export_and_evaluate(network, PREP, folder, images, labels, images.numpy())
    artifact.record_runtimes(folder, outcome.scores, {"enabled": True, "skipped": outcome.skipped})
    tar = folder.parent / "model.tar.gz"
    with tarfile.open(tar, "w:gz") as archive:
        for path in folder.iterdir():
            archive.add(path, arcname=path.name)
    return tar


@pytest.fixture
def labelled(tiny_data, tmp_path):
    folder = tmp_path / "test"
    shutil.copytree(tiny_data / "test", folder)
    (folder / data.class_folders(folder)[0] / "notes.txt").write_text("not an image")
    return folder


def test_writes_the_evaluation_of_the_runtime_an_endpoint_serves(model_tar, labelled, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        evaluate.main(
            ["--model-data", str(model_tar), "--data", str(labelled), "--output", str(out), "--runtime", "onnx"]
        )
        == 0
    )
    result = json.loads((out / "evaluation.json").read_text())
    classes = data.class_folders(labelled)
    samples = [(p, label) for p, label in data.list_samples(labelled, classes) if p.suffix == ".jpg"]
    assert result["runtime"] == "onnx" and result["images"] == len(samples) == 20
    assert result["skipped"] == [
        {"path": f"{classes[0]}/notes.txt", "kind": "unreadable", "reason": result["skipped"][0]["reason"]}
    ]
    # The numbers are those of that runtime on these files, computed here independently.
    with tarfile.open(model_tar) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    onnx = runtimes.OnnxRuntime("onnx", tmp_path / "model" / "model.onnx", PREP)
    probabilities = onnx.probabilities(np.stack([decoding.eval_image(p, PREP) for p, _ in samples]))
    labels = np.array([label for _, label in samples])
    assert result["top1"] == pytest.approx((probabilities.argmax(1) == labels).mean())
    page = (out / "evaluation.html").read_text()
    for heading in (
        "Most confused classes",
        "Confusion matrix",
        "Most confident mistakes",
        "Per class (worst F1 first)",
    ):
        assert f"<h2>{heading}</h2>" in page
    mistakes = result["worst_mistakes"]
    # heatmap, reliability diagram, and each mistake's Grad-CAM overlay beside its photo
    assert page.count("data:image/png;base64,") == 2 + len(mistakes)
    assert page.count("alt='Grad-CAM of ") == page.count("data:image/jpeg;base64,") == len(mistakes) > 0
    # The gallery's Grad-CAM is torch's, at the last map of at least 7x7 (layer1 is 8x8 at crop 32), of the
    # class each image was taken for.
    assert result["explanation"]["layer"] == "layer1" and result["explanation"]["runtime"] == "torch"
    network, metadata = artifact.load(tmp_path / "model")
    worst = mistakes[0]
    image = decoding.eval_image(labelled / worst["source"], PREP)[None]
    probabilities, maps = runtimes.TorchRuntime(network, PREP).explain(image)
    assert metadata["classes"][probabilities.argmax()] == worst["predicted"]
    assert np.allclose(worst["gradcam"], maps[0], atol=1e-5)
    assert "skipped 1 file(s) that are not readable images (1 unreadable)" in capsys.readouterr().out


def test_auto_picks_what_the_server_picks(model_tar, labelled, tmp_path):
    assert evaluate.main(["--model-data", str(model_tar), "--data", str(labelled), "--output", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "evaluation.json").read_text())
    with tarfile.open(model_tar) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    from classifier.model import selection

    want = selection.plan(tmp_path / "model", artifact.load_metadata(tmp_path / "model"), selection.Gate())[0][0]
    assert result["runtime"] == want


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda d: (d / "zebra").mkdir(), "folders ['zebra'] are not classes of this model"),
        (lambda d: shutil.rmtree(d), "no such folder"),
    ],
)
def test_bad_data_is_named(model_tar, labelled, tmp_path, capsys, setup, message):
    setup(labelled)
    assert evaluate.main(["--model-data", str(model_tar), "--data", str(labelled), "--output", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_a_dataset_root_gets_a_hint_and_a_bad_tarball_is_named(model_tar, tiny_data, tmp_path, capsys):
    assert evaluate.main(["--model-data", str(model_tar), "--data", str(tiny_data), "--output", str(tmp_path)]) == 2
    assert "give its test/ folder" in capsys.readouterr().err
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    assert evaluate.main(["--model-data", str(bad), "--data", str(tiny_data), "--output", str(tmp_path)]) == 2
    assert "is not a readable model.tar.gz" in capsys.readouterr().err
