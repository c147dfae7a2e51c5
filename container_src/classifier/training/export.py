"""ONNX exports of the trained model at the end of training, each evaluated on the test split.

fp32: torch's dynamo exporter (the legacy TorchScript exporter's graphs crash ONNX Runtime's
`quant_pre_process` on ViT), with a dynamic batch dimension (without `dynamic_shapes` it fixes the
batch at the example's). int8: ONNX Runtime's own static quantization (QDQ, per-channel int8
weights, uint8 activations) calibrated on training images through the eval preprocessing, after
`quant_pre_process` (shape inference + graph optimisation, as ONNX Runtime recommends).

Every runtime is evaluated through `runtimes`, the code the server runs, against the fp32 torch
model: test accuracy, and top-1 agreement with torch on each test image. A runtime that fails to
export, quantize or run is left out with its reason; the torch model is always there.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from classifier.model import artifact, decoding, explanations, gradcam, runtimes

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 64  # min/max calibration settles within a few dozen images; each costs a forward pass
CHECK_IMAGES = 32  # the server re-checks its runtime on these at start (well under a second for int8)
BATCH = 32
INPUT, OUTPUT = "images", "logits"
REASON_CHARS = 600  # exporter errors run to pages; the log and metadata keep the start, which names the op


@dataclass
class Outcome:
    """What `export_and_evaluate` found: per runtime its scores, or why it was left out."""

    scores: dict[str, dict] = field(default_factory=dict)  # runtime -> {file, test_acc, agreement}
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)  # runtime -> on the test split
    skipped: dict[str, str] = field(default_factory=dict)  # runtime -> reason
    seconds: float = 0.0


def export_fp32(network: nn.Module, image_size: int, path: Path, cam_layer: str | None = None) -> None:
    """`network` (CPU, eval) -> one ONNX file taking normalised (N,3,S,S) float32, giving logits and, with
    `cam_layer`, the CAM of each image's top class at that layer (gradcam.WithCam)."""
    outputs = [OUTPUT]
    if cam_layer:
        network, outputs = gradcam.WithCam(network, cam_layer).eval(), [OUTPUT, explanations.CAM_OUTPUT]
    example = torch.zeros(2, 3, image_size, image_size)  # 2, not 1: a batch of 1 gets specialised
    # The exporter's optimiser logs every pass at INFO (dozens of lines in the job log, none actionable).
    for name in ("onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.onnx.export(
        network,
        (example,),
        str(path),
        dynamo=True,
        external_data=False,
        input_names=[INPUT],
        output_names=outputs,
        dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
        verbose=False,
    )


def quantize_int8(fp32_path: Path, path: Path, calibration: np.ndarray, preprocessing: dict) -> None:
    """Static QDQ int8 of `fp32_path`, calibrated (min/max) on uint8 images `calibration`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                runtimes.normalize(calibration[i : i + BATCH], preprocessing) for i in range(0, len(calibration), BATCH)
            )

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared),
            str(path),
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def calibration_images(samples: list[tuple[Path, int]], preprocessing: dict, seed: int) -> np.ndarray:
    """A seeded sample of training files through THE eval preprocessing: uint8 (N,3,H,W)."""
    chosen = random.Random(seed).sample(samples, min(CALIBRATION_IMAGES, len(samples)))
    images = []
    for path, _ in chosen:
        try:
            images.append(decoding.eval_image(path, preprocessing))
        except decoding.BadImage:  # already counted as skipped when the split was decoded
            continue
    return np.stack(images)


def check_indices(reference: np.ndarray, count: int) -> np.ndarray:
    """The test images torch fp32 is surest of (largest gap between its first and second class).

    A runtime that passed the gate changes the answer for none of them, so the server's start-up check
    can demand (nearly) full agreement without flaking; a CPU that computes the runtime wrongly (int8
    saturating on pre-VNNI x86) moves probabilities far more than that gap and flips them.
    """
    ranked = np.sort(reference, axis=1)
    margin = ranked[:, -1] - ranked[:, -2] if reference.shape[1] > 1 else ranked[:, -1]
    return np.sort(np.argsort(-margin, kind="stable")[:count])


def score(probabilities: np.ndarray, labels: np.ndarray, reference_top1: np.ndarray) -> dict:
    top1 = probabilities.argmax(1)
    return {"test_acc": float((top1 == labels).mean()), "agreement": float((top1 == reference_top1).mean())}


def export_and_evaluate(
    network: nn.Module,
    preprocessing: dict,
    model_dir: Path,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    calibration: np.ndarray,
    explanation: dict | None = None,
) -> Outcome:
    """Write the check set and the ONNX files into `model_dir`; score every runtime on the test split.

    network: the fp32 model as the artifact holds it (CPU, eval). Nothing here raises for a model that
    does not export: the runtime is skipped with its reason. explanation: metadata.json's (gradcam.locate);
    when its Grad-CAM equals CAM from the head's weights, the exports carry that CAM as a second output.
    """
    cam_layer = explanation["layer"] if explanation and explanation.get("head_weights") else None
    start = time.perf_counter()
    outcome = Outcome()
    images, labels = test_images.numpy(), test_labels.numpy()
    reference = runtimes.probabilities_in_batches(runtimes.TorchRuntime(network, preprocessing), images, BATCH)
    reference_top1 = reference.argmax(1)
    outcome.scores[runtimes.TORCH] = {"file": artifact.WEIGHTS_FILE, **score(reference, labels, reference_top1)}
    outcome.probabilities[runtimes.TORCH] = reference
    check = check_indices(reference, CHECK_IMAGES)
    artifact.save_check_set(model_dir, images[check], reference[check])

    def export_onnx(path: Path) -> None:
        if cam_layer:
            try:
                return export_fp32(network, preprocessing["crop"], path, cam_layer)
            except Exception as err:  # explanations are a bonus: the runtime itself must not be lost to them
                log.warning(
                    "the ONNX export with the CAM output failed (%s); exporting without it: the ONNX "
                    "runtimes will not explain",
                    f"{type(err).__name__}: {err}"[:REASON_CHARS],
                )
        export_fp32(network, preprocessing["crop"], path)

    steps = {
        runtimes.ONNX: export_onnx,
        runtimes.ONNX_INT8: lambda path: quantize_int8(
            model_dir / artifact.RUNTIME_FILES[runtimes.ONNX], path, calibration, preprocessing
        ),
    }
    for name, make in steps.items():
        path = model_dir / artifact.RUNTIME_FILES[name]
        if runtimes.ONNX in outcome.skipped:  # int8 quantizes the fp32 file
            outcome.skipped[name] = f"no {runtimes.ONNX} export to quantize"
            continue
        step_start = time.perf_counter()
        try:
            make(path)
            probabilities = runtimes.probabilities_in_batches(
                runtimes.OnnxRuntime(name, path, preprocessing), images, BATCH
            )
        except Exception as err:  # any exporter/quantizer/runtime failure: this runtime is left out, not the job
            path.unlink(missing_ok=True)
            outcome.skipped[name] = f"{type(err).__name__}: {err}"[:REASON_CHARS]
            log.warning("%s export skipped, the model serves without it: %s", name, outcome.skipped[name])
            continue
        outcome.scores[name] = {"file": path.name, **score(probabilities, labels, reference_top1)}
        outcome.probabilities[name] = probabilities
        log.info(
            "%s: %s (%.0f MB) test_acc %.4f, top-1 agreement with torch fp32 %.4f (%.1fs)",
            name,
            path.name,
            path.stat().st_size / 1e6,
            outcome.scores[name]["test_acc"],
            outcome.scores[name]["agreement"],
            time.perf_counter() - step_start,
        )
    outcome.seconds = time.perf_counter() - start
    return outcome
