"""One training epoch and one evaluation pass (the loop body, apart from set-up)."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from . import inference, model as model_lib

log = logging.getLogger(__name__)


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_one_epoch(model, trainable, loader, optimizer, scheduler, criterion, preprocessing,
                    scaler, epoch: int, epochs: int, log_interval: int) -> EpochStats:
    model_lib.train_mode(model, trainable)
    device = next(model.parameters()).device
    dtype, memory_format = inference.device_settings(device)
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    steps = len(loader)
    for step, (images, labels) in enumerate(loader, 1):
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs = inference.logits(model, images, preprocessing)
            loss = criterion(outputs, labels)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch} step {step}: "
                                     "lower lr or use a smaller batch")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total_loss += loss.item() * len(labels)
        correct += (outputs.argmax(1) == labels).sum().item()
        seen += len(labels)
        if step % log_interval == 0 or step == steps:
            elapsed = time.perf_counter() - start
            log.info("epoch %d/%d step %d/%d loss %.4f lr %.3g %.1f img/s eta %s", epoch, epochs, step, steps,
                     total_loss / seen, scheduler.get_last_lr()[0], seen / elapsed,
                     _eta(elapsed / step * (steps - step)))
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen, time.perf_counter() - start)


@torch.inference_mode()
def evaluate(model, loader, criterion, preprocessing) -> EpochStats:
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for images, labels in loader:
        labels = labels.to(device)
        outputs = inference.logits(model, images, preprocessing)
        total_loss += criterion(outputs, labels).item() * len(labels)
        correct += (outputs.argmax(1) == labels).sum().item()
        seen += len(labels)
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen, time.perf_counter() - start)
