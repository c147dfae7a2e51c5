"""The small artifact the serving and client tests share (saved by the `model_dir` fixture)."""

from __future__ import annotations

from pathlib import Path

CLASSES = ["beagle", "corgi", "husky", "poodle", "pug", "shiba", "whippet"]
IMAGE_SIZE = 32


def save(path: Path) -> Path:
    """An untrained ResNet18 (seeded) for CLASSES at IMAGE_SIZE, as the trainer writes it."""
    import torch

    from classifier.model import artifact, decoding, network

    torch.manual_seed(0)
    model = network.build("resnet18", len(CLASSES))
    artifact.save(
        path,
        model.state_dict(),
        classes=CLASSES,
        model_name="resnet18",
        image_size=IMAGE_SIZE,
        preprocessing=decoding.eval_preprocessing(IMAGE_SIZE),
        hyperparameters={},
        metrics={},
    )
    return path
