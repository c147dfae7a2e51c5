"""Grad-CAM of the model the local-mode job trained: its heat falls on the shapes, and the trainer's
evaluation gallery carries the same maps the host computes."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from classifier.model import artifact, decoding, explanations, runtimes
from classifier.training import data
from classifier_host.data import samples as sample_set


@pytest.fixture(scope="module")
def model(trained_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("explained-model")
    with tarfile.open(trained_model[0]) as tar:
        tar.extractall(folder, filter="data")
    network, metadata = artifact.load(folder)
    return folder, runtimes.TorchRuntime(network, metadata["preprocessing"], metadata["explanation"]), metadata


def heat_on_shape(heat: np.ndarray, mask: np.ndarray) -> float:
    """Share of the heat on the shape over the shape's share of the crop: a uniform map scores 1."""
    return float(heat[mask].sum() / heat.sum()) / float(mask.mean())


def test_the_heat_falls_on_the_shape(model, tmp_path):
    """Held-out images with smaller shapes (30-45% of the shorter side, the training set's are 50-80%)
    leave room to tell: at 60% of the crop a shape could hold at most 1.7x. On the images the model gets
    right, Grad-CAM puts on average at least twice the shape's area share of its heat on the shape."""
    folder, runtime, metadata = model
    root = sample_set.make(tmp_path / "held-out", per_class=(0, 0, 16), seed=7, scale=(0.3, 0.45), masks=True)
    prep = metadata["preprocessing"]
    samples = data.list_samples(root / "test", metadata["classes"])
    crops = np.stack([decoding.eval_image(path, prep) for path, _ in samples])
    probabilities, maps = runtime.explain(crops)
    ratios, uniform = [], []
    for (path, label), raw, predicted in zip(samples, maps, probabilities.argmax(1), strict=True):
        with Image.open(root / sample_set.MASKS / "test" / path.parent.name / f"{path.stem}.png") as mask:
            on_shape = decoding.resize_center_crop(mask.convert("RGB"), prep["resize"], prep["crop"])[0] > 127
        heat = explanations.heatmap(raw, prep["crop"]).astype(np.float64)
        if predicted != label or on_shape.mean() < 0.02 or heat.sum() == 0:
            continue  # a wrong answer's heat is about another class; a shape cropped away has no inside
        ratios.append(heat_on_shape(heat, on_shape))
        uniform.append(heat_on_shape(np.ones_like(heat), on_shape))
    assert len(ratios) >= 0.4 * len(samples), f"the model got only {len(ratios)} of {len(samples)} right"
    assert np.allclose(uniform, 1.0)
    print(
        f"heat on the shape: {np.mean(ratios):.2f}x its area share (median {np.median(ratios):.2f}x, "
        f"{len(ratios)} images)"
    )
    assert np.mean(ratios) >= 2.0, sorted(ratios)


def test_the_trainers_gallery_has_the_grad_cam_of_each_mistake(model, sample_data):
    """evaluation.json's worst mistakes carry the Grad-CAM of the class each was taken for: the host's."""
    folder, runtime, metadata = model
    result = json.loads((folder / artifact.EVALUATION_FILE).read_text())
    assert result["explanation"]["layer"] == metadata["explanation"]["layer"] == "layer2"
    prep = metadata["preprocessing"]
    for mistake in result["worst_mistakes"]:
        crop = decoding.eval_image(sample_data / "test" / mistake["source"], prep)
        probabilities, maps = runtime.explain(crop[None])
        assert metadata["classes"][probabilities.argmax()] == mistake["predicted"]
        ours = explanations.heatmap(np.asarray(mistake["gradcam"], dtype=np.float32), prep["crop"]).astype(int)
        assert np.abs(ours - explanations.heatmap(maps[0], prep["crop"]).astype(int)).max() <= 2
        assert explanations.decode_image(mistake["crop_jpeg"]).shape == (64, 64, 3)  # JPEG: near the crop, not equal
