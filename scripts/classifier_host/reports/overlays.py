"""Grad-CAM heatmaps drawn over the crops the model saw (query.py --explain, the evaluation page).

The endpoint answers a grey heatmap and the crop as two PNGs (classifier/model/explanations.py) so that any
client can draw them its own way; this is ours: matplotlib's "jet" colour map, half transparent.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ALPHA = 0.45  # share of the heatmap's colour in each pixel


def overlay(crop: np.ndarray, heat: np.ndarray, alpha: float = ALPHA) -> Image.Image:
    """crop uint8 (H, W, 3), heat uint8 (H, W) -> RGB image: the crop tinted by the heatmap."""
    from matplotlib import colormaps

    if crop.shape[:2] != heat.shape:
        raise ValueError(f"heatmap {heat.shape} and crop {crop.shape[:2]} differ in size")
    colours = colormaps["jet"](heat.astype(np.float32) / 255)[..., :3] * 255
    blended = (1 - alpha) * crop.astype(np.float32) + alpha * colours
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), "RGB")
