"""Explanations as the server answers them: numpy and Pillow only (the slim serving image has no torch).

A runtime gives a raw Grad-CAM map per image (gradcam.py: torch with gradients, or the CAM output of
the ONNX export); here it becomes a heatmap the size of the model's input crop, PNG-encoded beside the
crop itself, so a client can overlay the two. The trainer, scripts/evaluate.py and the server all go
through `heatmap`, so an endpoint's explanation equals the offline one.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from classifier.model import runtime_names

METHOD = "gradcam"
CAM_OUTPUT = "cam"  # the ONNX export's second output when the model has one (gradcam.WithCam)


class ExplainUnavailable(Exception):
    """This model cannot be explained on this runtime: the message says why and what would."""


def problem(runtime: str, metadata: dict) -> str | None:
    """Why `runtime` cannot explain this artifact's model, or None when it can.

    torch computes Grad-CAM for any CNN (artifacts without a recorded layer: located when first asked).
    The ONNX runtimes only when the export carries the CAM output: Grad-CAM at the model's last map with
    a pooling + Linear head, where it equals CAM from the head's weights.
    """
    recorded = metadata.get("explanation")
    if recorded and "unsupported" in recorded:
        return f"explain={METHOD} is not available for this model: {recorded['unsupported']}"
    if runtime == runtime_names.TORCH:
        return None
    if not recorded:
        return (
            f"explain={METHOD} needs the torch runtime for this model (its ONNX export predates explanations): "
            "serve it on the serve image with SERVING_RUNTIME=torch, or retrain it"
        )
    if not recorded.get("head_weights"):
        return (
            f"explain={METHOD} for this model needs gradients at {recorded['layer']} "
            f"({'x'.join(map(str, recorded['map']))}, the last map of at least 7x7 at its crop, is not the map its "
            f"head pools), which the {runtime} runtime cannot compute: serve it on the serve image with "
            "SERVING_RUNTIME=torch (serve-cpu has no torch)"
        )
    return None


def heatmap(raw: np.ndarray, size: int) -> np.ndarray:
    """A raw map (h, w) -> uint8 (size, size): ReLU, scaled so its peak is 1, bilinear upsampling, x255.

    A map with no positive value (nothing speaks for the class) is all zeros."""
    positive = np.maximum(np.asarray(raw, dtype=np.float32), 0)
    peak = float(positive.max())
    if peak > 0:
        positive /= peak
    upsampled = Image.fromarray(positive, mode="F").resize((size, size), Image.BILINEAR)
    return np.clip(np.rint(np.asarray(upsampled) * 255), 0, 255).astype(np.uint8)


def crop_image(row: np.ndarray, preprocessing: dict) -> np.ndarray:
    """The model's input for one image as uint8 (H, W, 3): a decoded crop as is, a normalised tensor
    (the .npy input) mapped back to pixels."""
    if row.dtype == np.uint8:
        return np.ascontiguousarray(row.transpose(1, 2, 0))
    mean = np.asarray(preprocessing["mean"], dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(preprocessing["std"], dtype=np.float32).reshape(3, 1, 1)
    pixels = np.clip(np.rint((row * std + mean) * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels.transpose(1, 2, 0))


def png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W) grey or (H, W, 3) RGB -> PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def jpeg(pixels: np.ndarray, quality: int = 90) -> str:
    """uint8 (H, W, 3) -> base64 JPEG (the evaluation's gallery keeps its crops this way: a tenth of PNG)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return base64.b64encode(out.getvalue()).decode()


def decode_image(encoded: str) -> np.ndarray:
    """A base64 PNG of an answer (or the evaluation's JPEG crop) -> its uint8 pixels."""
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
        return np.asarray(image)


def record(raw: np.ndarray, row: np.ndarray, preprocessing: dict, layer: str, label: str, index: int) -> dict:
    """One image's explanation as the endpoint answers it."""
    crop = preprocessing["crop"]
    return {
        "method": METHOD,
        "layer": layer,
        "label": label,
        "index": index,
        "heatmap_png": base64.b64encode(png(heatmap(raw, crop))).decode(),
        "crop_png": base64.b64encode(png(crop_image(row, preprocessing))).decode(),
    }
