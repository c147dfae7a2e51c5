"""The training images' own preprocessing: the decode into the training cache (a square at the eval resize,
so random crops see the scale the eval crop sees) and the augmentation preset (the `augment` hyperparameter),
as torchvision's reference recipes name their presets. Evaluation and serving preprocess with
classifier.model.decoding alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classifier.model import decoding


def cache_side(image_size: int) -> int:
    """Side of the cached square training image: the eval resize, so crops see the same scale."""
    return decoding.eval_preprocessing(image_size)["resize"]


def decode_for_cache(path: str | Path, image_size: int) -> np.ndarray:
    """Training-only decode: reduced-size JPEG decoding, then a square uint8 (3, S, S)."""
    side = cache_side(image_size)
    return decoding.resize_center_crop(decoding.open_rgb(path, draft_size=side), side, side)


def train_preset(image_size: int, augment: str):
    """Augmentation on uint8 tensors (cheap next to decoding): RRC + flip (+ TrivialAugmentWide)."""
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    if augment == "trivialaugment":
        steps.append(v2.TrivialAugmentWide())
    return v2.Compose(steps)
