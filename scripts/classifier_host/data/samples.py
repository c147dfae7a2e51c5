"""A small image set in the dog-breed layout (train/ valid/ test/, one folder per class), drawn here.

No download: a few visually distinct classes (a shape and a colour each, at random positions, sizes,
angles and backgrounds), so a real model trained on them for a couple of CPU minutes lands well above
chance. Used by the tests, `make demo` (scripts/make_sample_data.py) and the benchmarks.

With masks, each test image's shape mask (white where the shape is) goes to
masks/test/<class>/<name>.png, beside the splits: the tests check that a trained model's Grad-CAM heat
falls on the shape. Off by default, so the data set holds images only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# (folder name, shape, base colour); numbered like the dog-breed set's folders.
CLASSES = (
    ("001.Red_circle", "circle", (220, 40, 40)),
    ("002.Blue_square", "square", (40, 70, 220)),
    ("003.Green_triangle", "triangle", (40, 180, 60)),
    ("004.Yellow_stripes", "stripes", (230, 210, 40)),
    ("005.Purple_cross", "cross", (150, 50, 180)),
)
SPLITS = ("train", "valid", "test")
MASKS = "masks"
SHAPE_SCALE = (0.5, 0.8)  # the shape's size, as a share of the image's shorter side


def _jitter(colour, rng, amount=30):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def draw(shape: str, colour, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    return draw_with_mask(shape, colour, width, height, rng)[0]


def draw_with_mask(
    shape: str, colour, width: int, height: int, rng: np.random.Generator, scale: tuple[float, float] = SHAPE_SCALE
) -> tuple[Image.Image, Image.Image]:
    """The image and its shape's mask ("L": 255 on the shape); the same random draws as `draw`."""
    background = rng.integers(60, 200, size=3)
    noise = rng.normal(0, 18, size=(height, width, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    mask = Image.new("L", (width, height), 0)
    size = int(min(width, height) * rng.uniform(*scale))
    cx = int(rng.uniform(size / 2, width - size / 2))
    cy = int(rng.uniform(size / 2, height - size / 2))
    fill = _jitter(colour, rng)
    box = (cx - size // 2, cy - size // 2, cx + size // 2, cy + size // 2)
    if shape == "circle":
        parts = [("ellipse", box)]
    elif shape == "square":
        angle = rng.uniform(0, math.pi / 2)
        r = size / math.sqrt(2)
        parts = [
            (
                "polygon",
                [
                    (cx + r * math.cos(angle + k * math.pi / 2), cy + r * math.sin(angle + k * math.pi / 2))
                    for k in range(4)
                ],
            )
        ]
    elif shape == "triangle":
        angle = rng.uniform(0, 2 * math.pi)
        r = size / 1.6
        parts = [
            (
                "polygon",
                [
                    (cx + r * math.cos(angle + k * 2 * math.pi / 3), cy + r * math.sin(angle + k * 2 * math.pi / 3))
                    for k in range(3)
                ],
            )
        ]
    elif shape == "stripes":
        step = max(4, size // 6)
        parts = [("rectangle", (x, box[1], x + step, box[3])) for x in range(box[0], box[2], 2 * step)]
    elif shape == "cross":
        bar = max(3, size // 4)
        parts = [
            ("rectangle", (box[0], cy - bar // 2, box[2], cy + bar // 2)),
            ("rectangle", (cx - bar // 2, box[1], cx + bar // 2, box[3])),
        ]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    for pen, ink in ((ImageDraw.Draw(image), fill), (ImageDraw.Draw(mask), 255)):
        for kind, where in parts:
            getattr(pen, kind)(where, fill=ink)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2))), mask


def make(
    root: Path,
    per_class=(40, 10, 10),
    width: int = 256,
    height: int = 200,
    seed: int = 0,
    classes=CLASSES,
    quality: int = 90,
    scale: tuple[float, float] = SHAPE_SCALE,
    masks: bool = False,
) -> Path:
    """Write the set under `root` (with `masks`, the test images' masks under root/masks); sizes vary +-20%
    around width x height, shapes span `scale` of the shorter side. Returns `root`."""
    rng = np.random.default_rng(seed)
    for split, count in zip(SPLITS, per_class, strict=True):
        for name, shape, colour in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                w = int(width * rng.uniform(0.8, 1.2))
                h = int(height * rng.uniform(0.8, 1.2))
                image, mask = draw_with_mask(shape, colour, w, h, rng, scale)
                stem = f"{name.split('.')[1]}_{i:04d}"
                image.save(folder / f"{stem}.jpg", quality=quality)
                if masks and split == "test":
                    (root / MASKS / split / name).mkdir(parents=True, exist_ok=True)
                    mask.save(root / MASKS / split / name / f"{stem}.png")
    return root
