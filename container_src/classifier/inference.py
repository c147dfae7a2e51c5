"""Forward pass shared by the trainer's evaluation and the server: batch in, probabilities out."""
from __future__ import annotations

import torch
from torch import nn

from . import presets


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
        batch = presets.normalize(batch, preprocessing)
    batch = batch.contiguous(memory_format=memory_format)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        return model(batch).float()


@torch.inference_mode()
def probabilities(model: nn.Module, batch: torch.Tensor, preprocessing: dict) -> torch.Tensor:
    return torch.softmax(logits(model, batch, preprocessing), dim=1).cpu()
