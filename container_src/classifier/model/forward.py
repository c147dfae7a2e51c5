"""Forward pass shared by the trainer's evaluation and the server: batch in, probabilities out."""

from __future__ import annotations

import torch
from torch import nn


def device_settings(device: torch.device) -> tuple[torch.dtype | None, torch.memory_format]:
    """Autocast dtype and memory format: bf16 (or fp16) + channels_last on GPUs, plain fp32 on CPU."""
    if device.type != "cuda":
        return None, torch.contiguous_format
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dtype, torch.channels_last


def logits(model: nn.Module, batch: torch.Tensor, preprocessing: dict) -> torch.Tensor:
    """uint8 images (N,3,H,W) are normalised here; float batches are taken as already normalised."""
    device = next(model.parameters()).device
    dtype, memory_format = device_settings(device)
    batch = batch.to(device, non_blocking=True)
    if batch.dtype == torch.uint8:
        batch = normalize(batch, preprocessing)
    batch = batch.contiguous(memory_format=memory_format)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        return model(batch).float()


def normalize(batch: torch.Tensor, preprocessing: dict) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 normalised, on the batch's device."""
    mean = torch.tensor(preprocessing["mean"], device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing["std"], device=batch.device).view(1, 3, 1, 1)
    return (batch.float().div_(255) - mean) / std


@torch.inference_mode()
def probabilities(model: nn.Module, batch: torch.Tensor, preprocessing: dict) -> torch.Tensor:
    return torch.softmax(logits(model, batch, preprocessing), dim=1).cpu()
