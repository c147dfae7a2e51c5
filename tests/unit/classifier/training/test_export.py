"""ONNX export and scoring on small untrained models (no training needed): what is written, what is skipped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from classifier.model import artifact, decoding, runtimes
from classifier.model import network as model_lib
from classifier.training import export

PREP = decoding.eval_preprocessing(32)
CLASSES = 4


def random_split(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator),
        torch.randint(0, CLASSES, (count,), generator=generator),
    )


class DataDependent(nn.Module):
    """A branch on the values of the input: torch.export cannot trace it, as some custom heads do."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, CLASSES)

    def forward(self, x):
        pooled = x.mean(dim=(2, 3))
        if pooled.sum() > 0:
            return self.head(pooled)
        return -self.head(pooled)


def test_a_model_that_does_not_export_is_torch_only_with_the_reason(tmp_path):
    images, labels = random_split(6, 0)
    outcome = export.export_and_evaluate(
        DataDependent().eval(), PREP, tmp_path, images, labels, calibration=images.numpy()
    )
    assert list(outcome.scores) == [runtimes.TORCH]
    assert outcome.skipped[runtimes.ONNX]  # the exporter's own words
    assert outcome.skipped[runtimes.ONNX_INT8] == "no onnx export to quantize"
    assert not list(tmp_path.glob("*.onnx*"))  # nothing half-written is left for a server to pick up
    assert artifact.load_check_set(tmp_path)[0].shape == (6, 3, 32, 32)  # the check set is torch's, kept


def test_resnet18_exports_with_a_dynamic_batch_and_int8_tracks_fp32(tmp_path):
    torch.manual_seed(0)
    network = model_lib.build("resnet18", CLASSES).eval()
    images, labels = random_split(40, 1)
    calibration, _ = random_split(16, 2)
    outcome = export.export_and_evaluate(network, PREP, tmp_path, images, labels, calibration.numpy())
    assert outcome.skipped == {}
    assert {name: score["file"] for name, score in outcome.scores.items()} == artifact.RUNTIME_FILES
    assert outcome.scores[runtimes.ONNX]["agreement"] == 1.0
    int8 = runtimes.OnnxRuntime(runtimes.ONNX_INT8, tmp_path / "model.int8.onnx", PREP)
    assert int8.session.get_inputs()[0].shape[0] not in (1, 2)  # symbolic: any batch size
    for batch in (1, 5):
        assert int8.probabilities(images[:batch].numpy()).shape == (batch, CLASSES)
    # Quantization really happened (int8 weights, QDQ nodes), and int8 still mostly agrees with fp32
    # (an untrained net on noise has close logits, the hardest case for agreement).
    assert (tmp_path / "model.int8.onnx").stat().st_size < (tmp_path / "model.onnx").stat().st_size / 3
    assert outcome.scores[runtimes.ONNX_INT8]["agreement"] >= 0.7


def test_version_1_artifacts_still_load_and_serve_with_torch(tmp_path):
    torch.manual_seed(0)
    network = model_lib.build("resnet18", CLASSES)
    torch.save(network.state_dict(), tmp_path / "model.pt")
    (tmp_path / "metadata.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "classes": list("abcd"),
                "model_name": "resnet18",
                "image_size": 32,
                "preprocessing": PREP,
                "hyperparameters": {},
                "metrics": {"test_acc": 0.5},
            }
        )
    )
    loaded, metadata = artifact.load(tmp_path)
    assert artifact.runtime_scores(metadata) == {
        runtimes.TORCH: {"file": "model.pt", "test_acc": 0.5, "agreement": 1.0}
    }
    assert artifact.load_check_set(tmp_path) is None


def test_a_pickled_check_set_is_refused(tmp_path):
    np.save(tmp_path / artifact.CHECK_IMAGES_FILE, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / artifact.CHECK_PROBABILITIES_FILE, np.zeros((1, 2), np.float32))
    with pytest.raises(artifact.ArtifactError, match="not plain .npy"):
        artifact.load_check_set(tmp_path)
