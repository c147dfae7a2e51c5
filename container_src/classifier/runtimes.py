"""The runtimes a model can run on: each turns a uint8 (N,3,H,W) batch into probabilities (N, classes).

The trainer evaluates every runtime through these classes and the server runs them, so the accuracy
and agreement recorded in metadata.json are those of the code that serves. A float batch is taken
as already normalised (the server accepts preprocessed tensors), as in `inference.logits`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import inference

TORCH, ONNX, ONNX_INT8 = "torch", "onnx", "onnx-int8"


class TorchRuntime:
    """The PyTorch model (fp32 on CPU; AMP on a GPU, see `inference.device_settings`)."""

    name = TORCH

    def __init__(self, network: nn.Module, preprocessing: dict):
        self.network = network.eval()
        self.preprocessing = preprocessing

    def probabilities(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        return inference.probabilities(self.network, torch.as_tensor(batch), self.preprocessing).numpy()


class OnnxRuntime:
    """An ONNX file (fp32 or int8 QDQ) on ONNX Runtime's CPU provider; the graph maps normalised images
    to logits, so normalisation and softmax run here in numpy, as torch does them, in float32."""

    def __init__(self, name: str, path: Path, preprocessing: dict, threads: int | None = None):
        import onnxruntime  # imported on use: the server's torch runtime does not need it

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.name = name
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.preprocessing = preprocessing

    def probabilities(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        batch = np.asarray(batch)
        if batch.dtype == np.uint8:
            batch = normalize(batch, self.preprocessing)
        (logits,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return softmax(logits)


def normalize(batch: np.ndarray, preprocessing: dict) -> np.ndarray:
    """uint8 (N,3,H,W) -> float32 normalised: `presets.normalize`'s arithmetic, in numpy."""
    mean = np.asarray(preprocessing["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocessing["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    return (batch.astype(np.float32) / 255 - mean) / std


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def probabilities_in_batches(runtime, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """A whole split through `runtime`, `batch_size` images at a time (bounded memory)."""
    return np.concatenate([runtime.probabilities(images[i:i + batch_size]) for i in range(0, len(images),
                                                                                          batch_size)])
