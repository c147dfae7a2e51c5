"""One training epoch and one evaluation pass (the loop body, apart from set-up)."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from . import inference, model as model_lib

log = logging.getLogger(__name__)


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float
    data_seconds: float = 0.0  # waiting for the loader; the rest of `seconds` is compute (profiling.py)
    interrupted: bool = False  # stopped part-way by a stop request (the EpochProgress says where)


@dataclass
class EpochProgress:
    """What the current epoch has done so far: saved in checkpoints, carried over by a resumed job."""
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_one_epoch(model, trainable, loader, optimizer, scheduler, criterion, preprocessing,
                    scaler, epoch: int, epochs: int, log_interval: int, on_step=None,
                    progress: EpochProgress | None = None, stop=None) -> EpochStats:
    """on_step: called after every optimiser step (the profiler's step clock).

    progress: where this epoch stands (a resumed job passes the checkpoint's; the loader then yields
    only the remaining batches); updated after every step. stop: called after every step but the
    last; True ends the epoch early with `interrupted` set, so the caller can checkpoint it.
    """
    model_lib.train_mode(model, trainable)
    device = next(model.parameters()).device
    dtype, memory_format = inference.device_settings(device)
    progress = progress if progress is not None else EpochProgress()
    first, earlier_seconds, earlier_seen = progress.step, progress.seconds, progress.seen
    total_loss, correct, seen = progress.loss_sum, progress.correct, progress.seen
    start = time.perf_counter()
    steps = first + len(loader)
    data_seconds, fetch_start = 0.0, start
    interrupted = False
    for step, (images, labels) in enumerate(loader, first + 1):
        data_seconds += time.perf_counter() - fetch_start
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
        elapsed = time.perf_counter() - start
        progress.step, progress.loss_sum, progress.correct, progress.seen = step, total_loss, correct, seen
        progress.seconds = earlier_seconds + elapsed
        if step % log_interval == 0 or step == steps:
            log.info("epoch %d/%d step %d/%d loss %.4f lr %.3g %.1f img/s eta %s", epoch, epochs, step, steps,
                     total_loss / seen, scheduler.get_last_lr()[0], (seen - earlier_seen) / elapsed,
                     _eta(elapsed / (step - first) * (steps - step)))
        if on_step is not None:
            on_step()
        if stop is not None and step < steps and stop():
            interrupted = True
            break
        fetch_start = time.perf_counter()
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen,
                      earlier_seconds + time.perf_counter() - start, data_seconds, interrupted)


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
